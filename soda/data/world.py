"""The procedural world: a room with one object, rendered by batched ray casting with exact ground truth.

World axes (right-handed, metres-like units): **z up**, the floor is the plane z = 0, the room's four walls are the
planes x = +-ROOM_HALF and y = +-ROOM_HALF (infinitely tall, no ceiling). The object stands on the floor at the
origin. Cameras (their convention, the orbit around ``LOOK_AT`` and its ranges, the rays) live in
``soda.data.cameras``; scenes (six integer factors on the Shapes3D grid, the held-out split, the surface colours) in
``soda.data.scenes``; exact ray-object intersections in ``soda.data.shapes``. This module renders: it re-exports the
names of ``scenes`` and the world-camera names of ``cameras``, so ``world.sample_factors``, ``world.sample_cameras``,
``world.DEFAULT_CAMERA`` etc. keep working.

Objects: the cylinder stands upright; the capsule lies on its side along its local x axis, so orientation is visible
for the cube and the capsule and, as in reality, invisible for the sphere and the cylinder.

Shading: Lambert with an ambient term from one fixed directional light (``LIGHT_DIR``), the object's shadow cast on
the floor (the light is high enough that it never reaches a wall), 2x2 supersampling (any ``supersample``).

How it is fast: images are rendered in chunks of about 2^18 rays, sorted by shape. Every ray meets the room (three
divisions: the camera is inside the box); only rays inside the image box of the object's bounding box are gathered
and tested exactly against the object, and only floor rays inside the image box of the floor shadow of that bounding
box cast shadow rays. The culling is conservative (a test renders without it and gets bit-identical images). Rendering
separates geometry from colour: the geometry pass gives three per-pixel weights (floor, wall, object: shading x
coverage) and the image is their sum with the three colours. With a fixed camera the geometry depends only on
(shape, scale, orientation), so ``FixedCameraRenderer`` caches it and colours scenes with one small einsum.
"""

from __future__ import annotations

import math

import torch

# Re-exported (``world.X`` is the public path of the scene and world-camera names used across the project).
from soda.data.cameras import (  # noqa: F401
    AZIMUTH_RANGE,
    CAMERA_RANGES,
    DEFAULT_CAMERA,
    ELEVATION_RANGE,
    FOV_DEG,
    LOOK_AT,
    RADIUS_RANGE,
    Camera,
    default_camera,
    sample_camera_angles,
    sample_cameras,
    spherical_camera,
    subpixel_directions,
)
from soda.data.scenes import (  # noqa: F401
    FACTOR_NAMES,
    FACTOR_SIZES,
    HUE_NAMES,
    HUES,
    N_COMBINATIONS,
    ORIENTATIONS_DEG,
    SCALES,
    SHAPE_NAMES,
    SPLIT_SEED,
    SURFACE_SV,
    TEST_PERCENT,
    caption,
    describe,
    factor_values,
    in_test_split,
    ravel_factors,
    sample_factors,
    scene_colours,
    split_indices,
    unravel_factors,
)
from soda.data.shapes import INF, aabb_half_extents, intersect_object, object_geometry

# ----------------------------------------------------------------------------------------------------------------------
# Room and light
# ----------------------------------------------------------------------------------------------------------------------
ROOM_HALF = 5.0
LIGHT_DIR = tuple(v / math.sqrt(0.7**2 + 0.35**2 + 1.0) for v in (-0.7, -0.35, 1.0))  # unit vector towards the light
AMBIENT = 0.35


# ----------------------------------------------------------------------------------------------------------------------
# Colours
# ----------------------------------------------------------------------------------------------------------------------
def to_signed(x: torch.Tensor) -> torch.Tensor:
    """Renders in [0,1] -> the model's image range [-1,1] (a new tensor)."""
    return x.mul(2.0).sub_(1.0)


def colourise(weights: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Geometry weights (B,3 surfaces,H,W) and factors (B,6) -> image (B,3,H,W) in [0,1]."""
    colours = scene_colours(factors.to(weights.device))
    return torch.einsum("bsc,bshw->bchw", colours, weights).clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------------
# The geometry pass
# ----------------------------------------------------------------------------------------------------------------------
_BOX_SIGNS = torch.tensor([[i, j, k] for i in (-1.0, 1.0) for j in (-1.0, 1.0) for k in (-1.0, 1.0)])  # (8,3)


def _pixel_rect(points, K, c2w):
    """World points (B,P,3) -> (lo (B,2), hi (B,2)): the pixel-coordinate box that contains their projections.
    Images where a point is not in front of the camera get an unbounded box (every ray is a candidate)."""
    R, o = c2w[:, :3, :3], c2w[:, :3, 3]
    cam = torch.einsum("bpi,bij->bpj", points - o[:, None], R)  # (B,P,3) camera coordinates
    z = cam[..., 2:3]
    uv = cam[..., :2] / z.clamp(min=1e-6) * torch.stack([K[:, 0, 0], K[:, 1, 1]], 1)[:, None] + K[:, None, :2, 2]
    lo, hi = uv.min(1).values, uv.max(1).values
    behind = (z[..., 0] <= 1e-3).any(1, keepdim=True)
    return lo.masked_fill(behind, -INF), hi.masked_fill(behind, INF)


def _rect_mask(lo, hi, res, ss):
    """Pixel boxes (B,2) -> (B,N) bool over the sub-sample-major rays whose sample position lies in the box."""
    pos = torch.arange(res, device=lo.device)[None, :] + (torch.arange(ss, device=lo.device)[:, None] + 0.5) / ss
    cols = (pos >= lo[:, 0, None, None]) & (pos <= hi[:, 0, None, None])  # (B,ss,res)
    rows = (pos >= lo[:, 1, None, None]) & (pos <= hi[:, 1, None, None])
    B = lo.shape[0]
    return (rows[:, :, None, :, None] & cols[:, None, :, None, :]).view(B, -1)


def _chunk_geometry(shape, scale, orient_deg, K, c2w, res, ss, shadows):
    """One chunk of images sorted by shape -> (B,3,res,res) surface weights (supersampled, then averaged)."""
    device = c2w.device
    B, M = c2w.shape[0], res * res
    N = M * ss * ss
    # Ray directions in world axes as (3,B,N): one GEMM when all images share intrinsics (the usual case).
    R = c2w[:, :3, :3].transpose(0, 1)  # (3 world axes, B, 3 camera axes)
    keys = [(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])) for k in (K[:1] if _same(K) else K)]
    if len(keys) == 1:
        D = torch.mm(R.reshape(3 * B, 3), subpixel_directions(keys[0], res, ss, str(device))).view(3, B, N)
    else:
        dcams = torch.stack([subpixel_directions(key, res, ss, str(device)) for key in keys])
        D = torch.einsum("abj,bjn->abn", R, dcams).contiguous()
    dx, dy, dz = D[0], D[1], D[2]  # (B,N) each, contiguous
    o = c2w[:, :3, 3]  # (B,3) camera centres
    ox, oy, oz = o[:, 0:1], o[:, 1:2], o[:, 2:3]  # (B,1)
    lx, ly, lz = LIGHT_DIR

    # --- room: the camera is inside the box, so the ray leaves through the nearest of the three planes it faces.
    tx = ROOM_HALF / dx.abs() - ox / dx  # wall x = sign(dx) * ROOM_HALF
    ty = ROOM_HALF / dy.abs() - oy / dy
    tz = (-oz / dz).masked_fill_(dz >= 0, INF)  # floor
    floor = tz < torch.minimum(tx, ty)  # (B,N) bool
    # n.L of the surface hit: the wall x = +-R has normal -+x, so it is lit only if the light is on the -+x side;
    # likewise for y; the floor has n.L = lz.
    lam = torch.where(
        tx < ty, torch.where(dx > 0, max(-lx, 0.0), max(lx, 0.0)), torch.where(dy > 0, max(-ly, 0.0), max(ly, 0.0))
    )
    lam.masked_fill_(floor, lz)

    # --- per-image object frame, packed so that one gather serves every per-ray parameter.
    height, params = object_geometry(shape, scale)
    # The cylinder and the sphere are symmetric about z: their frame is not rotated (and their rays skip the rotation).
    th = torch.deg2rad(orient_deg.float()).masked_fill((shape == 1) | (shape == 2), 0.0)
    cos_t, sin_t = torch.cos(th), torch.sin(th)
    cx, cy, cz = o[:, 0], o[:, 1], o[:, 2] - height  # camera relative to the object centre (B,)
    table = torch.stack(
        [
            cos_t,
            sin_t,
            cos_t * cx + sin_t * cy,  # 2..4: camera centre in the object frame
            -sin_t * cx + cos_t * cy,
            cz,
            params[:, 0],  # 5, 6: size parameters
            params[:, 1],
            cos_t * lx + sin_t * ly,  # 7..9: light in the object frame
            -sin_t * lx + cos_t * ly,
            torch.full_like(cos_t, lz),
            -height,  # 10: floor height in the object frame
        ],
        dim=1,
    )  # (B,11)
    shape_list = shape.tolist()
    bounds = [0] + [i + 1 for i in range(B - 1) if shape_list[i + 1] != shape_list[i]] + [B]
    light_const = tuple(torch.tensor(v, device=device) for v in LIGHT_DIR)

    def run_groups(idx, img, rays, shadow):
        """Sorted flat ray indices and their image numbers -> (t, n.L), each shape evaluated on its own images' rays.

        Primary rays: `rays` = their world directions, origins from the table. Shadow rays: `rays` = their floor
        points (x, y), direction the light.
        """
        cuts = torch.searchsorted(idx, torch.tensor(bounds, device=device) * N).tolist()
        t_parts, ndl_parts = [], []
        for g in range(len(bounds) - 1):
            lo_i, hi_i = cuts[g], cuts[g + 1]
            if hi_i == lo_i:
                continue
            sid = shape_list[bounds[g]]
            P = table.index_select(0, img[lo_i:hi_i])  # (M,11); its columns are used as strided views
            c, s = P[:, 0], P[:, 1]
            rotate = sid in (0, 3)
            if not shadow:
                wx, wy, wz = rays[0][lo_i:hi_i], rays[1][lo_i:hi_i], rays[2][lo_i:hi_i]
                d_l = (c * wx + s * wy, c * wy - s * wx, wz) if rotate else (wx, wy, wz)
                o_l, light = (P[:, 2], P[:, 3], P[:, 4]), (P[:, 7], P[:, 8], P[:, 9])
                t, ndl = intersect_object(sid, o_l, d_l, (P[:, 5], P[:, 6]), light, True)
                ndl_parts.append(ndl)
            else:
                px, py = rays[0][lo_i:hi_i], rays[1][lo_i:hi_i]
                if rotate:
                    o_l, d_l = (c * px + s * py, c * py - s * px, P[:, 10]), (P[:, 7], P[:, 8], P[:, 9])
                else:
                    o_l, d_l = (px, py, P[:, 10]), light_const
                t, _ = intersect_object(sid, o_l, d_l, (P[:, 5], P[:, 6]), None, False)
            t_parts.append(t)
        if not t_parts:
            return torch.empty(0, device=device), torch.empty(0, device=device)
        t = t_parts[0] if len(t_parts) == 1 else torch.cat(t_parts)
        ndl = None if shadow else ndl_parts[0] if len(ndl_parts) == 1 else torch.cat(ndl_parts)
        return t, ndl

    def compact(mask):
        """(B,N) bool -> (sorted flat indices, their image numbers)."""
        counts = mask.sum(1)
        return mask.view(-1).nonzero().squeeze(1), torch.repeat_interleave(torch.arange(B, device=device), counts)

    # --- candidates: rays inside the image box of the object's bounding box (and of its shadow, on the floor).
    centre = torch.stack([torch.zeros_like(height), torch.zeros_like(height), height], 1)  # (B,3)
    corners = centre[:, None] + _BOX_SIGNS.to(device) * aabb_half_extents(shape, params, cos_t, sin_t)[:, None]
    cand, cand_img = compact(_rect_mask(*_pixel_rect(corners, K, c2w), res, ss))
    flat = (dx.view(-1).index_select(0, cand), dy.view(-1).index_select(0, cand), dz.view(-1).index_select(0, cand))
    t_obj, ndl_obj = run_groups(cand, cand_img, flat, shadow=False)
    hit = torch.isfinite(t_obj)
    obj_idx, obj_ndl = cand[hit], ndl_obj[hit]

    if shadows:
        # The shadow lies in the floor projection, along the light, of the bounding box corners.
        shadow_pts = corners - corners[..., 2:3] / lz * torch.tensor(LIGHT_DIR, device=device)
        near = _rect_mask(*_pixel_rect(shadow_pts, K, c2w), res, ss).logical_and_(floor)
        near.view(-1)[obj_idx] = False
        scand, img = compact(near)
        t_floor = tz.view(-1).index_select(0, scand)
        px = o[:, 0].index_select(0, img) + t_floor * dx.view(-1).index_select(0, scand)  # floor points (z = 0)
        py = o[:, 1].index_select(0, img) + t_floor * dy.view(-1).index_select(0, scand)
        t_sh, _ = run_groups(scand, img, (px, py), shadow=True)
        lam.view(-1)[scand[torch.isfinite(t_sh)]] = 0.0

    shade = lam.mul_(1.0 - AMBIENT).add_(AMBIENT)  # (B,N)
    obj_shade = obj_ndl.clamp_(min=0.0).mul_(1.0 - AMBIENT).add_(AMBIENT)
    shade.view(-1)[obj_idx] = obj_shade
    floor.view(-1)[obj_idx] = False
    # Average the ss*ss sub-samples of each pixel (sub-sample-major ray order: a sum of contiguous blocks) per surface.
    w_all = shade.view(B, ss * ss, M).sum(1)
    w_floor = torch.where(floor, shade, 0.0).view(B, ss * ss, M).sum(1)
    pixel = (obj_idx // N) * M + obj_idx % M
    w_obj = torch.zeros(B * M, device=device).index_add_(0, pixel, obj_shade).view(B, M)
    weights = torch.stack([w_floor, w_all - w_floor - w_obj, w_obj], dim=1)  # (B,3,M)
    return weights.mul_(1.0 / (ss * ss)).view(B, 3, res, res)


def _same(K: torch.Tensor) -> bool:
    return bool((K == K[:1]).all())


def _ray_budget(device: torch.device) -> int:
    return 1 << 22 if device.type == "cuda" else 1 << 18


def render_geometry(
    shape: torch.Tensor,
    scale_idx: torch.Tensor,
    orient_idx: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    res: int,
    supersample: int = 2,
    shadows: bool = True,
    device=None,
) -> torch.Tensor:
    """Geometry factors (B,) and cameras -> (B,3,res,res) float32 weights of floor, wall and object."""
    device = torch.device(device) if device is not None else c2w.device
    B, size = shape.shape[0], res * supersample
    shape, scale_idx, orient_idx = shape.long().to(device), scale_idx.long().to(device), orient_idx.long().to(device)
    scale = torch.tensor(SCALES, device=device)[scale_idx]
    orient = torch.tensor(ORIENTATIONS_DEG, device=device)[orient_idx]
    K = K.float().to(device).expand(B, 3, 3)
    c2w = c2w.float().to(device).expand(B, 4, 4)
    order = torch.argsort(shape, stable=True)
    out = torch.empty(B, 3, res, res, device=device)
    per_chunk = max(1, _ray_budget(device) // (size * size))
    for i in range(0, B, per_chunk):
        sel = order[i : i + per_chunk]
        out.index_copy_(
            0, sel, _chunk_geometry(shape[sel], scale[sel], orient[sel], K[sel], c2w[sel], res, supersample, shadows)
        )
    return out


def render(
    factors: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    res: int,
    supersample: int = 2,
    shadows: bool = True,
    device=None,
) -> torch.Tensor:
    """Scenes (B,6) long seen by cameras K (B,3,3), c2w (B,4,4) -> images (B,3,res,res) float32 in [0,1]."""
    device = torch.device(device) if device is not None else c2w.device
    factors = factors.long().to(device)
    w = render_geometry(factors[:, 4], factors[:, 3], factors[:, 5], K, c2w, res, supersample, shadows, device)
    return colourise(w, factors)


class FixedCameraRenderer:
    """Renders scenes from one fixed camera, caching geometry per (shape, scale, orientation): 480 entries.

    ``camera``: a ``Camera``, or its dict (``Camera.as_dict()``, optionally with 'fov_deg'); None is DEFAULT_CAMERA.
    """

    def __init__(
        self, res: int, camera: Camera | dict | None = None, supersample: int = 2, shadows: bool = True, device=None
    ):
        fov = camera.get("fov_deg", FOV_DEG) if isinstance(camera, dict) else FOV_DEG
        cam = Camera.from_dict(camera) if isinstance(camera, dict) else camera or Camera.default()
        self.res, self.supersample, self.shadows = res, supersample, shadows
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        K, c2w = cam.matrices(res, 1, fov)
        self.K, self.c2w = K.to(self.device), c2w.to(self.device)
        n_geo = FACTOR_SIZES[3] * FACTOR_SIZES[4] * FACTOR_SIZES[5]
        self._cache = torch.zeros(n_geo, 3, res, res, device=self.device)
        self._filled = torch.zeros(n_geo, dtype=torch.bool, device=self.device)

    def cameras(self, batch: int):
        """-> (K (B,3,3), c2w (B,4,4)) of the fixed camera."""
        return self.K.expand(batch, 3, 3).clone(), self.c2w.expand(batch, 4, 4).clone()

    def _keys(self, factors):
        return (factors[:, 4] * FACTOR_SIZES[3] + factors[:, 3]) * FACTOR_SIZES[5] + factors[:, 5]

    def __call__(self, factors: torch.Tensor) -> torch.Tensor:
        """(B,6) long -> (B,3,res,res) float32 in [0,1]; equal to render() with this camera up to float rounding."""
        factors = factors.long().to(self.device)
        keys = self._keys(factors)
        missing = torch.unique(keys[~self._filled[keys]])
        if missing.numel():
            orient = missing % FACTOR_SIZES[5]
            scale = (missing // FACTOR_SIZES[5]) % FACTOR_SIZES[3]
            shape = missing // (FACTOR_SIZES[5] * FACTOR_SIZES[3])
            K, c2w = self.cameras(missing.numel())
            self._cache[missing] = render_geometry(
                shape, scale, orient, K, c2w, self.res, self.supersample, self.shadows
            )
            self._filled[missing] = True
        return colourise(self._cache[keys], factors)
