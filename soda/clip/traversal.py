"""Traversals: a reference latent moved along slider directions and decoded with one fixed noise seed.

Shared by the CLIP naming and the factor-classifier measurement, so both look at exactly the same frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .. import api

Progress = Callable[[float, str], None]
DEFAULT_VALUES = (-2.0, -1.0, 0.0, 1.0, 2.0)


def as_directions(directions, z_dim: int | None = None) -> torch.Tensor:
    """A (K, z_dim) tensor, a (K, C, z_dim) tensor or a (nested) list of (z_dim,) tensors -> (K', z_dim) float32."""
    if isinstance(directions, torch.Tensor):
        d = directions.float()
    else:
        flat: list[torch.Tensor] = []

        def walk(x):
            if isinstance(x, torch.Tensor) and x.ndim == 1:
                flat.append(x.float())
            else:
                for y in x:
                    walk(y)

        walk(directions)
        d = torch.stack(flat) if flat else torch.zeros(0, z_dim or 0)
    d = d.reshape(-1, d.shape[-1])
    if z_dim is not None and d.shape[-1] != z_dim:
        raise ValueError(f"directions have {d.shape[-1]} dims, the model's z has {z_dim}")
    return d


def traversal_frames(
    model,
    directions,
    z_ref: torch.Tensor,
    values: Sequence[float] = DEFAULT_VALUES,
    decode_steps: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Decode every reference latent moved to each value (std) along each direction, with one fixed noise seed.
    directions (K, z_dim), z_ref (R, z_dim) or (z_dim,) -> frames (K, R, S, 3, H, W) in [-1, 1]."""
    d = as_directions(directions, model.z_dim)
    z_ref = z_ref.reshape(-1, model.z_dim).float()
    steps = decode_steps or model.cfg.diffusion.preview_steps
    lat = torch.stack([torch.stack([api.traverse(z, dk, values) for z in z_ref]) for dk in d])  # (K, R, S, z_dim)
    flat = lat.reshape(-1, model.z_dim)
    out = []
    for i in range(0, flat.shape[0], batch_size):
        out.append(api.decode(model, flat[i : i + batch_size], steps=steps, seed=seed))
        if progress:
            progress(min(1.0, (i + batch_size) / flat.shape[0]), "decoding traversals")
    frames = torch.cat(out) if out else torch.zeros(0, 3, model.res, model.res)
    return frames.reshape(*lat.shape[:3], *frames.shape[1:])
