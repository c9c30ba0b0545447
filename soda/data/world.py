"""The procedural world: a room with one object, rendered by batched ray casting with exact ground truth.

World axes (right-handed, metres-like units): **z up**, the floor is the plane z = 0, the room's four walls are the
planes x = +-ROOM_HALF and y = +-ROOM_HALF (infinitely tall, no ceiling). The object stands on the floor at the
origin; cameras look at ``LOOK_AT`` = (0, 0, 0.5), the centre of a unit object. Cameras follow the OpenCV convention
of ``soda.data.cameras`` (x right, y down, z forward). Azimuth 0 puts the camera on the -y side looking towards +y
(the "back" wall); positive azimuth moves it towards +x; elevation is measured up from the floor plane.

A scene is six integer factors on the Shapes3D grid (``FACTOR_NAMES`` / ``FACTOR_SIZES``): floor, wall and object hue
(i/10 of the colour circle), scale (0.75..1.25), shape (cube, cylinder, sphere, capsule) and orientation (-30..30
degrees about the vertical axis). The cylinder stands upright; the capsule lies on its side along its local x axis, so
orientation is visible for the cube and the capsule and, as in reality, invisible for the sphere and the cylinder.

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

import colorsys
import math
from functools import lru_cache

import torch

from soda.data.cameras import intrinsics, look_at

# ----------------------------------------------------------------------------------------------------------------------
# Factors
# ----------------------------------------------------------------------------------------------------------------------
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
N_COMBINATIONS = math.prod(FACTOR_SIZES)  # 480000, as in Shapes3D
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
HUES = tuple(i / 10 for i in range(10))
SCALES = tuple(0.75 + 0.5 * i / 7 for i in range(8))  # linspace(0.75, 1.25, 8)
ORIENTATIONS_DEG = tuple(-30.0 + 60.0 * i / 14 for i in range(15))  # linspace(-30, 30, 15)
# Surface colour = HSV(hue, saturation, value); the three surfaces differ in saturation/value to stay apart.
SURFACE_SV = ((0.65, 0.85), (0.45, 0.95), (0.9, 1.0))  # floor, wall, object

# Held-out split: a fixed hash of the factor combination puts TEST_PERCENT % of the 480000 scenes in the test split.
SPLIT_SEED = 20240917
TEST_PERCENT = 10

# ----------------------------------------------------------------------------------------------------------------------
# Room, light and cameras
# ----------------------------------------------------------------------------------------------------------------------
ROOM_HALF = 5.0
LIGHT_DIR = tuple(v / math.sqrt(0.7**2 + 0.35**2 + 1.0) for v in (-0.7, -0.35, 1.0))  # unit vector towards the light
AMBIENT = 0.35
LOOK_AT = (0.0, 0.0, 0.5)
FOV_DEG = 40.0
AZIMUTH_RANGE = (-60.0, 60.0)  # degrees
ELEVATION_RANGE = (10.0, 40.0)  # degrees above the floor plane
RADIUS_RANGE = (3.5, 4.5)  # distance from LOOK_AT; horizontal reach <= 4.5 < ROOM_HALF keeps cameras inside
DEFAULT_CAMERA = {"azimuth": -30.0, "elevation": 15.0, "radius": 4.2}  # Shapes3D-like: wall corner, floor


def factor_values(factors: torch.Tensor) -> torch.Tensor:
    """(n,6) long indices -> (n,6) float64 real values (hues in [0,1), scale, shape index, orientation degrees)."""
    f = factors.long().cpu()
    out = torch.empty(f.shape, dtype=torch.float64)
    out[:, 0:3] = f[:, 0:3].double() / 10
    out[:, 3] = torch.tensor(SCALES, dtype=torch.float64)[f[:, 3]]
    out[:, 4] = f[:, 4].double()
    out[:, 5] = torch.tensor(ORIENTATIONS_DEG, dtype=torch.float64)[f[:, 5]]
    return out


def describe(factors_row) -> str:
    """One scene's (6,) factors -> a short human-readable line, e.g. 'F3 W7 O1 s1.04 cube -17deg'."""
    f = [int(v) for v in factors_row]
    return f"F{f[0]} W{f[1]} O{f[2]} s{SCALES[f[3]]:.2f} {SHAPE_NAMES[f[4]]} {ORIENTATIONS_DEG[f[5]]:+.0f}deg"


HUE_NAMES = ("red", "orange", "yellow", "lime", "green", "cyan", "sky blue", "blue", "purple", "pink")  # HUES


def caption(factors_row) -> str:
    """One scene's (6,) factors -> words a person would use, e.g. 'red sphere, blue floor, lime wall'."""
    f = [int(v) for v in factors_row]
    return f"{HUE_NAMES[f[2]]} {SHAPE_NAMES[f[4]]}, {HUE_NAMES[f[0]]} floor, {HUE_NAMES[f[1]]} wall"


def ravel_factors(factors: torch.Tensor) -> torch.Tensor:
    """(n,6) long -> (n,) long flat index in [0, 480000), row-major over FACTOR_SIZES (Shapes3D order)."""
    flat = torch.zeros(factors.shape[0], dtype=torch.long, device=factors.device)
    for k, size in enumerate(FACTOR_SIZES):
        flat = flat * size + factors[:, k].long()
    return flat


def unravel_factors(flat: torch.Tensor) -> torch.Tensor:
    """(n,) long flat index -> (n,6) long factors (inverse of ravel_factors)."""
    cols = []
    rest = flat.long().clone()
    for size in reversed(FACTOR_SIZES):
        cols.append(rest % size)
        rest = rest // size
    return torch.stack(cols[::-1], dim=1)


def _split_hash(flat: torch.Tensor) -> torch.Tensor:
    """(n,) long -> (n,) long in [0, 2^32): a fixed integer mix (stable across torch versions and devices)."""
    mask = 0xFFFFFFFF
    x = (flat.long() * 2654435761 + SPLIT_SEED) & mask
    for _ in range(2):
        x = x ^ (x >> 16)
        x = (x * 0x45D9F3B) & mask
    return x ^ (x >> 16)


def in_test_split(factors: torch.Tensor) -> torch.Tensor:
    """(n,6) long -> (n,) bool: True for the held-out factor combinations (never rendered for training)."""
    return (_split_hash(ravel_factors(factors)) % 100) < TEST_PERCENT


@lru_cache(maxsize=1)
def _split_tables() -> dict[str, torch.Tensor]:
    flat = torch.arange(N_COMBINATIONS)
    test = (_split_hash(flat) % 100) < TEST_PERCENT
    return {"train": flat[~test], "test": flat[test], "all": flat}


def split_indices(split: str) -> torch.Tensor:
    """'train' | 'test' | 'all' -> sorted (m,) long flat indices of that split's factor combinations."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    return _split_tables()[split]


def sample_factors(n: int, generator: torch.Generator | None = None, split: str = "train") -> torch.Tensor:
    """n scenes drawn uniformly from the split's factor combinations -> (n,6) long (on the CPU)."""
    table = split_indices(split)
    pick = torch.randint(len(table), (n,), generator=generator)
    return unravel_factors(table[pick])


# ----------------------------------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------------------------------
def spherical_camera(azimuth_deg, elevation_deg, radius, res: int, batch: int = 1, fov_deg: float = FOV_DEG):
    """Angles (floats or (B,) tensors) -> (K (B,3,3), c2w (B,4,4)) of a camera on a sphere around LOOK_AT."""
    az = torch.as_tensor(azimuth_deg, dtype=torch.float32).reshape(-1)
    el = torch.as_tensor(elevation_deg, dtype=torch.float32).reshape(-1)
    r = torch.as_tensor(radius, dtype=torch.float32).reshape(-1)
    batch = max(batch, az.numel(), el.numel(), r.numel())
    az, el, r = (v.expand(batch) if v.numel() == 1 else v for v in (az, el, r))
    az, el = torch.deg2rad(az), torch.deg2rad(el)
    target = torch.tensor(LOOK_AT, dtype=torch.float32).expand(batch, 3)
    offset = torch.stack([torch.cos(el) * torch.sin(az), -torch.cos(el) * torch.cos(az), torch.sin(el)], dim=1)
    eye = target + r[:, None] * offset
    return intrinsics(res, fov_deg, batch), look_at(eye, target)


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
    return spherical_camera(
        DEFAULT_CAMERA["azimuth"], DEFAULT_CAMERA["elevation"], DEFAULT_CAMERA["radius"], res, batch
    )


# ----------------------------------------------------------------------------------------------------------------------
# Colours
# ----------------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _palette_table() -> torch.Tensor:
    """(3 surfaces, 10 hues, 3 rgb) float32."""
    rows = [[colorsys.hsv_to_rgb(h, s, v) for h in HUES] for s, v in SURFACE_SV]
    return torch.tensor(rows, dtype=torch.float32)


def scene_colours(factors: torch.Tensor) -> torch.Tensor:
    """(B,6) long -> (B,3 surfaces [floor, wall, object],3 rgb) float32 albedos."""
    table = _palette_table().to(factors.device)
    return torch.stack([table[s][factors[:, s]] for s in range(3)], dim=1)


def colourise(weights: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Geometry weights (B,3 surfaces,H,W) and factors (B,6) -> image (B,3,H,W) in [0,1]."""
    colours = scene_colours(factors.to(weights.device))
    return torch.einsum("bsc,bshw->bchw", colours, weights).clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------------
# Ray casting of the object (local frame: object centre at the origin, rotated by -orientation about z)
# All functions take broadcastable 1-D tensors and return (t, n.L) with t = inf where the ray misses.
# ----------------------------------------------------------------------------------------------------------------------
INF = float("inf")


def _hit_box(o, d, a, light, want_shade=True):
    ox, oy, oz = o
    dx, dy, dz = d
    t1x, t2x = (-a - ox) / dx, (a - ox) / dx
    t1y, t2y = (-a - oy) / dy, (a - oy) / dy
    t1z, t2z = (-a - oz) / dz, (a - oz) / dz
    tminx, tminy, tminz = torch.minimum(t1x, t2x), torch.minimum(t1y, t2y), torch.minimum(t1z, t2z)
    tnear = torch.maximum(torch.maximum(tminx, tminy), tminz)
    tfar = torch.minimum(torch.minimum(torch.maximum(t1x, t2x), torch.maximum(t1y, t2y)), torch.maximum(t1z, t2z))
    t = torch.where((tnear <= tfar) & (tnear > 0), tnear, INF)
    if not want_shade:
        return t, None
    # The entry face is on the axis whose slab is entered last; its outward normal opposes the ray on that axis.
    lx, ly, lz = light
    ndl = torch.where(
        tnear == tminx, -torch.sign(dx) * lx, torch.where(tnear == tminy, -torch.sign(dy) * ly, -torch.sign(dz) * lz)
    )
    return t, ndl


def _hit_sphere(o, d, r, light, want_shade=True):
    ox, oy, oz = o
    dx, dy, dz = d
    b = ox * dx + oy * dy + oz * dz
    disc = b * b - (ox * ox + oy * oy + oz * oz - r * r)
    t = -b - torch.sqrt(disc.clamp(min=0.0))
    t = torch.where((disc > 0) & (t > 0), t, INF)
    if not want_shade:
        return t, None
    lx, ly, lz = light
    tt = torch.nan_to_num(t, posinf=0.0)
    ndl = ((ox + tt * dx) * lx + (oy + tt * dy) * ly + (oz + tt * dz) * lz) / r
    return t, ndl


def _tube_entry(ou, ov, du, dv, r):
    """Entry into the infinite cylinder u^2 + v^2 = r^2 -> (discriminant, t); it is entered only where disc > 0."""
    a2 = (du * du + dv * dv).clamp(min=1e-12)
    b = ou * du + ov * dv
    disc = b * b - a2 * (ou * ou + ov * ov - r * r)
    return disc, (-b - torch.sqrt(disc.clamp(min=0.0))) / a2


def _hit_cylinder(o, d, r, h, light, want_shade=True):
    """Upright (z-axis) capped cylinder of radius r and half-height h."""
    ox, oy, oz = o
    dx, dy, dz = d
    disc, ts = _tube_entry(ox, oy, dx, dy, r)
    zs = oz + ts * dz
    side = (disc > 0) & (ts > 0) & (zs.abs() <= h)
    # The cap facing the origin (none when the origin lies between the cap planes).
    zc = torch.where(oz > 0, h, -h)
    tc = (zc - oz) / dz
    xc, yc = ox + tc * dx, oy + tc * dy
    cap = (oz.abs() > h) & (tc > 0) & (xc * xc + yc * yc <= r * r)
    t = torch.where(side, ts, torch.where(cap, tc, INF))
    if not want_shade:
        return t, None
    lx, ly, lz = light
    ndl_side = ((ox + ts * dx) * lx + (oy + ts * dy) * ly) / r
    ndl = torch.where(side, ndl_side, torch.sign(zc) * lz)
    return t, ndl


def _hit_capsule(o, d, r, half_len, light, want_shade=True):
    """Capsule lying along the local x axis: segment (-half_len, half_len) swept by radius r."""
    ox, oy, oz = o
    dx, dy, dz = d
    disc, ts = _tube_entry(oy, oz, dy, dz, r)
    xs = ox + ts * dx
    body = (disc > 0) & (ts > 0) & (xs.abs() <= half_len)
    # Outside the body's extent the entry is on the end sphere on that side (the capsule lies in the infinite cylinder).
    end = torch.where(xs > 0, half_len, -half_len)
    cx = ox - end
    bb = cx * dx + oy * dy + oz * dz
    dd = bb * bb - (cx * cx + oy * oy + oz * oz - r * r)
    tcap = -bb - torch.sqrt(dd.clamp(min=0.0))
    cap = (disc > 0) & (dd > 0) & (tcap > 0)
    t = torch.where(body, ts, torch.where(cap, tcap, INF))
    if not want_shade:
        return t, None
    lx, ly, lz = light
    tt = torch.where(body, ts, tcap)
    px = torch.where(body, torch.zeros_like(cx), cx + tt * dx)
    ndl = (px * lx + (oy + tt * dy) * ly + (oz + tt * dz) * lz) / r
    return t, ndl


def object_geometry(shape: torch.Tensor, scale: torch.Tensor):
    """(B,) shape index and (B,) scale -> (centre height (B,), size params (B,2)).

    Size params: cube (half-size, half-size); cylinder (radius, half-height); sphere (radius, radius); capsule
    (radius, half length of its axis segment). Every object rests on the floor, so its centre height is p0.
    """
    s = scale.float()
    p0 = torch.stack([0.5 * s, 0.5 * s, 0.55 * s, 0.35 * s], dim=1).gather(1, shape[:, None]).squeeze(1)
    p1 = torch.stack([0.5 * s, 0.5 * s, 0.55 * s, 0.45 * s], dim=1).gather(1, shape[:, None]).squeeze(1)
    return p0.clone(), torch.stack([p0, p1], dim=1)


def _intersect_object(shape_id: int, o, d, params, light, want_shade):
    p0, p1 = params
    if shape_id == 0:
        return _hit_box(o, d, p0, light, want_shade)
    if shape_id == 1:
        return _hit_cylinder(o, d, p0, p1, light, want_shade)
    if shape_id == 2:
        return _hit_sphere(o, d, p0, light, want_shade)
    return _hit_capsule(o, d, p0, p1, light, want_shade)


# ----------------------------------------------------------------------------------------------------------------------
# The geometry pass
# ----------------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def _unit_camera_dirs(k_key: tuple, res: int, ss: int, device: str) -> torch.Tensor:
    """(3, ss*ss*res*res) unit directions in camera axes, sub-sample-major: ray (sy, sx, v, u) is at pixel
    (u + (sx + 0.5) / ss, v + (sy + 0.5) / ss) for intrinsics k_key = (fx, fy, cx, cy) of the res x res image."""
    fx, fy, cx, cy = k_key
    sub = (torch.arange(ss, dtype=torch.float64) + 0.5) / ss
    pix = torch.arange(res, dtype=torch.float64)
    sy, sx, v, u = torch.meshgrid(sub, sub, pix, pix, indexing="ij")
    d = torch.stack([(u + sx - cx) / fx, (v + sy - cy) / fy, torch.ones_like(u)], dim=0).reshape(3, -1)
    return torch.nn.functional.normalize(d, dim=0).float().to(device)


def _aabb_half_extents(shape, params, cos_t, sin_t):
    """(B,) shapes, (B,2) size params, rotation -> (B,3) half extents of the object's world-axis bounding box."""
    p0, p1 = params[:, 0], params[:, 1]
    c, s = cos_t.abs(), sin_t.abs()
    ext = torch.stack(
        [
            torch.stack([p0 * (c + s), p0 * (c + s), p0], 1),  # cube
            torch.stack([p0, p0, p1], 1),  # cylinder
            torch.stack([p0, p0, p0], 1),  # sphere
            torch.stack([p1 * c + p0, p1 * s + p0, p0], 1),  # capsule along its local x
        ],
        dim=1,
    )  # (B,4,3)
    return ext[torch.arange(shape.shape[0], device=shape.device), shape] * 1.01 + 1e-4


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
        D = torch.mm(R.reshape(3 * B, 3), _unit_camera_dirs(keys[0], res, ss, str(device))).view(3, B, N)
    else:
        dcams = torch.stack([_unit_camera_dirs(key, res, ss, str(device)) for key in keys])
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
                t, ndl = _intersect_object(sid, o_l, d_l, (P[:, 5], P[:, 6]), light, True)
                ndl_parts.append(ndl)
            else:
                px, py = rays[0][lo_i:hi_i], rays[1][lo_i:hi_i]
                if rotate:
                    o_l, d_l = (c * px + s * py, c * py - s * px, P[:, 10]), (P[:, 7], P[:, 8], P[:, 9])
                else:
                    o_l, d_l = (px, py, P[:, 10]), light_const
                t, _ = _intersect_object(sid, o_l, d_l, (P[:, 5], P[:, 6]), None, False)
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
    corners = centre[:, None] + _BOX_SIGNS.to(device) * _aabb_half_extents(shape, params, cos_t, sin_t)[:, None]
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
    """Renders scenes from one fixed camera, caching geometry per (shape, scale, orientation): 480 entries."""

    def __init__(self, res: int, camera: dict | None = None, supersample: int = 2, shadows: bool = True, device=None):
        cam = dict(DEFAULT_CAMERA if camera is None else camera)
        self.res, self.supersample, self.shadows = res, supersample, shadows
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        K, c2w = spherical_camera(cam["azimuth"], cam["elevation"], cam["radius"], res, 1, cam.get("fov_deg", FOV_DEG))
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
