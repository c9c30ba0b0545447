"""Pinhole cameras and per-pixel rays: one convention for the renderer, the model and the app.

Convention (the same as OpenCV, COLMAP and the SRN data):

- camera axes: x right, y down, z forward (the viewing direction);
- ``c2w`` is a (B,4,4) float32 camera-to-world matrix: its columns 0..2 are the camera's x/y/z axes in world
  coordinates and column 3 is the camera centre;
- ``K`` is a (B,3,3) pinhole intrinsics matrix in pixels, ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``;
- pixel (u, v) (column u, row v) covers [u, u+1) x [v, v+1) and its centre is at (u + 0.5, v + 0.5), so the principal
  point of a centred camera is (W/2, H/2) and ``project`` returns these continuous pixel coordinates.

``ray_channels`` turns a camera into the (B, C, H, W) image of rays that the denoiser reads: origins divided by
``ORIGIN_SCALE`` (the procedural world's room half-size, so values are O(1)) and unit directions, optionally followed by
NeRF-style Fourier features of both.
"""

from __future__ import annotations

import math

import torch

# Origins are divided by this before they become network inputs (the world's room half-size, see world.ROOM_HALF).
ORIGIN_SCALE = 5.0
WORLD_UP = (0.0, 0.0, 1.0)


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
