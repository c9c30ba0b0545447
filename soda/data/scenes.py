"""Scenes of the procedural world: six integer factors on the Shapes3D grid, their names, the held-out split, and
the surface colours they stand for.

A scene is ``FACTOR_NAMES`` / ``FACTOR_SIZES``: floor, wall and object hue (i/10 of the colour circle), scale
(0.75..1.25), shape (cube, cylinder, sphere, capsule) and orientation (-30..30 degrees about the vertical axis). Factors
are (n,6) long tensors; ``ravel_factors`` numbers the 480000 combinations in Shapes3D's row-major order, and a fixed
hash of that number puts ``TEST_PERCENT`` % of them in the held-out test split (never rendered for training).
Renders are made by ``soda.data.world`` (which re-exports every name here).
"""

from __future__ import annotations

import colorsys
import math
from functools import lru_cache

import torch

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
