"""Cameras: the one module for camera geometry, used by the renderer, the model's ray inputs, the API and the app.

Convention (the same as OpenCV, COLMAP and the SRN data):

- camera axes: x right, y down, z forward (the viewing direction);
- ``c2w`` is a (B,4,4) float32 camera-to-world matrix: its columns 0..2 are the camera's x/y/z axes in world
  coordinates and column 3 is the camera centre;
- ``K`` is a (B,3,3) pinhole intrinsics matrix in pixels, ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``;
- pixel (u, v) (column u, row v) covers [u, u+1) x [v, v+1) and its centre is at (u + 0.5, v + 0.5), so the principal
  point of a centred camera is (W/2, H/2) and ``project`` returns these continuous pixel coordinates.

The world's camera rig: a ``Camera`` is a point on a sphere around ``LOOK_AT`` = (0, 0, 0.5) (the centre of a unit
object standing at the origin; world axes have z up, see ``soda.data.world``), given by azimuth and elevation in degrees
and a radius in world units, looking at ``LOOK_AT`` with a ``FOV_DEG`` field of view. Azimuth 0 puts the camera on the
-y side looking towards +y; positive azimuth moves it towards +x; elevation is measured up from the floor plane.
Training cameras are uniform in ``CAMERA_RANGES``; ``DEFAULT_CAMERA`` is the fixed (Shapes3D-like) view.
``Camera.matrices`` gives its (K, c2w); the batched forms are ``spherical_camera`` and ``sample_cameras``.

Rays: ``ray_channels`` turns a camera into the (B, C, H, W) image of rays that the denoiser reads: origins divided by
``ORIGIN_SCALE`` (the procedural world's room half-size, so values are O(1)) and unit directions, optionally followed by
NeRF-style Fourier features of both; ``ray_channel_count`` / ``fourier_bands`` are the one place where C = 6 + 12 n is
written. ``subpixel_directions`` gives the renderer's supersampled primary-ray directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

# Origins are divided by this before they become network inputs (the world's room half-size, see world.ROOM_HALF).
ORIGIN_SCALE = 5.0
WORLD_UP = (0.0, 0.0, 1.0)

# ----------------------------------------------------------------------------------------------------------------------
# The world's camera rig: ranges and the default view
# ----------------------------------------------------------------------------------------------------------------------
LOOK_AT = (0.0, 0.0, 0.5)
FOV_DEG = 40.0
AZIMUTH_RANGE = (-60.0, 60.0)  # degrees
ELEVATION_RANGE = (10.0, 40.0)  # degrees above the floor plane
RADIUS_RANGE = (3.5, 4.5)  # distance from LOOK_AT; horizontal reach <= 4.5 < world.ROOM_HALF keeps cameras inside
CAMERA_RANGES = {"azimuth": AZIMUTH_RANGE, "elevation": ELEVATION_RANGE, "radius": RADIUS_RANGE}
DEFAULT_CAMERA = {"azimuth": -30.0, "elevation": 15.0, "radius": 4.2}  # Shapes3D-like: wall corner, floor


# ----------------------------------------------------------------------------------------------------------------------
# Pinhole geometry
# ----------------------------------------------------------------------------------------------------------------------
def look_at(eye: torch.Tensor, target: torch.Tensor, up=WORLD_UP) -> torch.Tensor:
    """eye (B,3), target (B,3) -> c2w (B,4,4) float32 whose z axis points from eye to target and y axis down."""
    eye = torch.as_tensor(eye, dtype=torch.float32)
    target = torch.as_tensor(target, dtype=torch.float32, device=eye.device)
    up = torch.as_tensor(up, dtype=torch.float32, device=eye.device).expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)  # camera z
    right = torch.linalg.cross(forward, up, dim=-1)  # camera x
    # Looking straight along `up`: any right vector perpendicular to forward will do; take world x (or y).
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    if degenerate.any():
        alt = torch.tensor([1.0, 0.0, 0.0], device=eye.device).expand_as(eye)
        alt = torch.where((forward[..., :1].abs() > 0.9), torch.tensor([0.0, 1.0, 0.0], device=eye.device), alt)
        right = torch.where(degenerate, torch.linalg.cross(forward, alt, dim=-1), right)
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)  # camera y
    c2w = torch.zeros(eye.shape[0], 4, 4, dtype=torch.float32, device=eye.device)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = down
    c2w[:, :3, 2] = forward
    c2w[:, :3, 3] = eye
    c2w[:, 3, 3] = 1.0
    return c2w


def intrinsics(res: int, fov_deg: float, batch: int = 1, device=None) -> torch.Tensor:
    """Square res x res image with field of view fov_deg (both axes) -> K (B,3,3), principal point (res/2, res/2)."""
    f = 0.5 * res / math.tan(math.radians(fov_deg) / 2)
    K = torch.tensor([[f, 0.0, res / 2], [0.0, f, res / 2], [0.0, 0.0, 1.0]], dtype=torch.float32, device=device)
    return K.expand(batch, 3, 3).clone()


def scale_intrinsics(K: torch.Tensor, sx: float, sy: float | None = None) -> torch.Tensor:
    """K (B,3,3) for an image resized by (sx, sy) -> K (B,3,3). Pixel-centre convention is preserved."""
    sy = sx if sy is None else sy
    out = K.clone()
    out[..., 0, :] *= sx
    out[..., 1, :] *= sy
    return out


def invert_pose(c2w: torch.Tensor) -> torch.Tensor:
    """Rigid (B,4,4) camera-to-world -> (B,4,4) world-to-camera (exact transpose inverse of the rotation)."""
    R, t = c2w[:, :3, :3], c2w[:, :3, 3:]
    w2c = torch.zeros_like(c2w)
    w2c[:, :3, :3] = R.transpose(1, 2)
    w2c[:, :3, 3:] = -R.transpose(1, 2) @ t
    w2c[:, 3, 3] = 1.0
    return w2c


def project(points: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """World points (B,N,3) -> continuous pixel coordinates (B,N,2) (u, v), pixel centres at +0.5."""
    w2c = invert_pose(c2w.float())
    p = points.float() @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]  # (B,N,3) camera axes
    uvw = p @ K.float().transpose(1, 2)
    return uvw[..., :2] / uvw[..., 2:3]


def camera_depth(points: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """World points (B,N,3) -> (B,N) depth along the camera's z axis (positive in front of the camera)."""
    w2c = invert_pose(c2w.float())
    p = points.float() @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
    return p[..., 2]


# ----------------------------------------------------------------------------------------------------------------------
# Orbit poses: cameras on a sphere around LOOK_AT
# ----------------------------------------------------------------------------------------------------------------------
def orbit_pose(azimuth_deg, elevation_deg, radius, batch: int = 1) -> torch.Tensor:
    """Angles in degrees and radius (floats or (B,) tensors, broadcast to ``batch``) -> c2w (B,4,4) float32 of a
    camera at that point of the sphere around LOOK_AT, looking at LOOK_AT (y down, x horizontal)."""
    az = torch.as_tensor(azimuth_deg, dtype=torch.float32).reshape(-1)
    el = torch.as_tensor(elevation_deg, dtype=torch.float32).reshape(-1)
    r = torch.as_tensor(radius, dtype=torch.float32).reshape(-1)
    batch = max(batch, az.numel(), el.numel(), r.numel())
    az, el, r = (v.expand(batch) if v.numel() == 1 else v for v in (az, el, r))
    az, el = torch.deg2rad(az), torch.deg2rad(el)
    target = torch.tensor(LOOK_AT, dtype=torch.float32).expand(batch, 3)
    offset = torch.stack([torch.cos(el) * torch.sin(az), -torch.cos(el) * torch.cos(az), torch.sin(el)], dim=1)
    eye = target + r[:, None] * offset
    return look_at(eye, target)


def spherical_camera(azimuth_deg, elevation_deg, radius, res: int, batch: int = 1, fov_deg: float = FOV_DEG):
    """Angles (floats or (B,) tensors) -> (K (B,3,3), c2w (B,4,4)) of a camera on a sphere around LOOK_AT."""
    c2w = orbit_pose(azimuth_deg, elevation_deg, radius, batch)
    return intrinsics(res, fov_deg, c2w.shape[0]), c2w


def sample_camera_angles(
    n: int,
    generator: torch.Generator | None = None,
    azimuth_range=AZIMUTH_RANGE,
    elevation_range=ELEVATION_RANGE,
    radius_range=RADIUS_RANGE,
) -> torch.Tensor:
    """n cameras -> (n,3) float32 (azimuth deg, elevation deg, radius), uniform in the given ranges."""
    u = torch.rand(n, 3, generator=generator)
    lo = torch.tensor([azimuth_range[0], elevation_range[0], radius_range[0]], dtype=torch.float32)
    hi = torch.tensor([azimuth_range[1], elevation_range[1], radius_range[1]], dtype=torch.float32)
    return lo + u * (hi - lo)


def sample_cameras(n: int, generator: torch.Generator | None = None, res: int = 64, fov_deg: float = FOV_DEG, **ranges):
    """n random cameras inside the room looking at LOOK_AT -> (K (n,3,3), c2w (n,4,4))."""
    a = sample_camera_angles(n, generator, **ranges)
    return spherical_camera(a[:, 0], a[:, 1], a[:, 2], res, n, fov_deg)


def default_camera(res: int, batch: int = 1):
    """The canonical Shapes3D-like view (DEFAULT_CAMERA) -> (K (B,3,3), c2w (B,4,4))."""
    return Camera.default().matrices(res, batch)


def camera_limits() -> dict[str, tuple[float, float]]:
    """Training ranges {'azimuth', 'elevation', 'radius': (low, high)}; views outside them are extrapolation."""
    return dict(CAMERA_RANGES)


@dataclass(frozen=True)
class Camera:
    """A view of the procedural world: azimuth and elevation in degrees, radius in world units (see the module
    docstring for the axes and CAMERA_RANGES for the training ranges)."""

    azimuth: float
    elevation: float
    radius: float

    @classmethod
    def default(cls) -> Camera:
        """The camera assumed for uploads to camera-conditioned checkpoints (DEFAULT_CAMERA, a Shapes3D-like view)."""
        return cls(**DEFAULT_CAMERA)

    @classmethod
    def from_dict(cls, d: dict) -> Camera:
        """{'azimuth', 'elevation', 'radius': finite numbers} (other keys ignored) -> Camera; ValueError otherwise."""
        if not isinstance(d, dict):
            raise ValueError(f"a camera must be a dict with azimuth, elevation and radius, got {type(d).__name__}")
        vals = {}
        for k in ("azimuth", "elevation", "radius"):
            v = d.get(k)
            try:
                vals[k] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"camera {k} must be a number") from None
            if isinstance(v, bool) or not math.isfinite(vals[k]):
                raise ValueError(f"camera {k} must be a number")
        return cls(**vals)

    def as_dict(self) -> dict[str, float]:
        """-> {'azimuth', 'elevation', 'radius'} (the form stored in recipes and explorer assets)."""
        return {"azimuth": self.azimuth, "elevation": self.elevation, "radius": self.radius}

    def outside_ranges(self) -> list[str]:
        """One line per coordinate outside its training range (empty inside them: no extrapolation)."""
        notes = []
        for k, v in self.as_dict().items():
            lo, hi = CAMERA_RANGES[k]
            if not lo <= float(v) <= hi:
                notes.append(f"camera {k} {float(v):g} is outside the training range {lo:g}..{hi:g}")
        return notes

    def matrices(self, res: int, batch: int = 1, fov_deg: float = FOV_DEG) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (K (B,3,3), c2w (B,4,4)) float32 of this view for a res x res image, repeated ``batch`` times."""
        return spherical_camera(self.azimuth, self.elevation, self.radius, res, batch, fov_deg)

    def rays(self, res: int, n_fourier: int = 0, batch: int = 1) -> torch.Tensor:
        """-> (B, ray_channel_count(n_fourier), res, res) float32 ray channels of this view (see ray_channels)."""
        return ray_channels(*self.matrices(res, batch), res, res, n_fourier)


def orbit_cameras(
    n: int,
    elevation: float | None = None,
    radius: float | None = None,
    azimuth_range: tuple[float, float] | None = None,
) -> list[Camera]:
    """n cameras sweeping azimuth across ``azimuth_range`` (default: the training range) and back, a loopable
    orbit at a fixed elevation and radius (default: the default camera's)."""
    lo, hi = azimuth_range or AZIMUTH_RANGE
    d = Camera.default()
    el, r = elevation if elevation is not None else d.elevation, radius if radius is not None else d.radius
    phase = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [Camera(float(lo + (hi - lo) * (1 - np.cos(p)) / 2), el, r) for p in phase]


# ----------------------------------------------------------------------------------------------------------------------
# Rays
# ----------------------------------------------------------------------------------------------------------------------
def camera_directions(K: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """K (B,3,3) -> (B,H,W,3) un-normalised directions in camera axes through the pixel centres (z = 1)."""
    device = K.device
    v, u = torch.meshgrid(
        torch.arange(H, dtype=torch.float32, device=device) + 0.5,
        torch.arange(W, dtype=torch.float32, device=device) + 0.5,
        indexing="ij",
    )
    fx, fy = K[:, 0, 0, None, None], K[:, 1, 1, None, None]
    cx, cy = K[:, 0, 2, None, None], K[:, 1, 2, None, None]
    skew = K[:, 0, 1, None, None]
    y = (v - cy) / fy  # (B,H,W)
    x = (u - cx - skew * y) / fx
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


@lru_cache(maxsize=16)
def subpixel_directions(k_key: tuple, res: int, ss: int, device: str) -> torch.Tensor:
    """(3, ss*ss*res*res) float32 unit directions in camera axes (computed in float64), sub-sample-major: ray
    (sy, sx, v, u) goes through pixel position (u + (sx + 0.5) / ss, v + (sy + 0.5) / ss) for intrinsics
    k_key = (fx, fy, cx, cy) of the res x res image (no skew). The renderer's primary rays; cached."""
    fx, fy, cx, cy = k_key
    sub = (torch.arange(ss, dtype=torch.float64) + 0.5) / ss
    pix = torch.arange(res, dtype=torch.float64)
    sy, sx, v, u = torch.meshgrid(sub, sub, pix, pix, indexing="ij")
    d = torch.stack([(u + sx - cx) / fx, (v + sy - cy) / fy, torch.ones_like(u)], dim=0).reshape(3, -1)
    return torch.nn.functional.normalize(d, dim=0).float().to(device)


def ray_bundle(K: torch.Tensor, c2w: torch.Tensor, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K (B,3,3), c2w (B,4,4) -> origins (B,H,W,3) (the camera centre) and unit directions (B,H,W,3), world axes."""
    d_cam = camera_directions(K.float(), H, W)  # (B,H,W,3)
    R = c2w[:, :3, :3].float()
    dirs = torch.einsum("bij,bhwj->bhwi", R, d_cam)
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    origins = c2w[:, None, None, :3, 3].float().expand_as(dirs)
    return origins, dirs


def ray_channel_count(n_fourier: int = 0) -> int:
    """Channels of ray_channels: 6 (origin xyz, direction xyz) + 12 * n_fourier (sin and cos of the 6, per band)."""
    return 6 + 12 * n_fourier


def fourier_bands(n_channels: int) -> int:
    """The inverse of ray_channel_count: channels of a ray image -> n_fourier; ValueError if not 6 + 12 n."""
    n, rest = divmod(n_channels - 6, 12)
    if n < 0 or rest:
        raise ValueError(f"ray images have 6 + 12 * n_fourier channels, got {n_channels}")
    return n


def ray_channels(
    K: torch.Tensor, c2w: torch.Tensor, H: int, W: int, n_fourier: int = 0, origin_scale: float = ORIGIN_SCALE
) -> torch.Tensor:
    """Camera -> (B, ray_channel_count(n_fourier), H, W) float32.

    Channels 0..2: ray origin / origin_scale; 3..5: unit direction; then for band k = 0..n_fourier-1 (frequency
    2^k * pi) sin of the 6 base channels followed by cos of the 6 base channels.
    """
    origins, dirs = ray_bundle(K, c2w, H, W)
    base = torch.cat([origins / origin_scale, dirs], dim=-1).permute(0, 3, 1, 2)  # (B,6,H,W)
    feats = [base]
    for k in range(n_fourier):
        arg = base * (math.pi * 2.0**k)
        feats += [torch.sin(arg), torch.cos(arg)]
    return torch.cat(feats, dim=1).contiguous()
