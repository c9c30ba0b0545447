"""Exact ray casting of the world's four objects (cube, cylinder, sphere, capsule) in the object's local frame.

Local frame: the object's centre at the origin, z up, rotated by -orientation about z (the cube and the capsule; the
cylinder and the sphere are symmetric about z). Every function takes broadcastable 1-D tensors of ray origins ``o`` and
directions ``d`` (three tensors each) and returns (t, n.L): the ray parameter of the first hit in front of the origin
(``INF`` where the ray misses) and the cosine between the surface normal there and the light (None when shading is not
wanted, e.g. for shadow rays). ``soda.data.world`` runs these on the rays that may meet the object.
"""

from __future__ import annotations

import torch

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


def intersect_object(shape_id: int, o, d, params, light, want_shade):
    p0, p1 = params
    if shape_id == 0:
        return _hit_box(o, d, p0, light, want_shade)
    if shape_id == 1:
        return _hit_cylinder(o, d, p0, p1, light, want_shade)
    if shape_id == 2:
        return _hit_sphere(o, d, p0, light, want_shade)
    return _hit_capsule(o, d, p0, p1, light, want_shade)


def aabb_half_extents(shape, params, cos_t, sin_t):
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
