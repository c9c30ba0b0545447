"""Latent sections reduced to one number each, so DCI and MIG can be reported per section as well as per dimension.

SODA splits z into sections (one per group of UNet stages). To score a section as a unit, each section is replaced by
its first principal component, fit on the codes given. The component's sign is fixed deterministically: its loading
of largest magnitude is made positive (ties: the first such dimension), so the result does not depend on the SVD
solver's sign convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np


def section_slices(z_dim: int, n_sections: int | Sequence[int]) -> list[slice]:
    """z_dim, n_sections (equal split) or a list of section sizes -> one slice of z per section."""
    if isinstance(n_sections, int):
        if n_sections < 1 or z_dim % n_sections:
            raise ValueError(f"cannot split {z_dim} dims into {n_sections} equal sections; pass the section sizes")
        sizes = [z_dim // n_sections] * n_sections
    else:
        sizes = [int(s) for s in n_sections]
        if any(s < 1 for s in sizes) or sum(sizes) != z_dim:
            raise ValueError(f"section sizes {sizes} must be positive and sum to {z_dim}")
    bounds = np.cumsum([0, *sizes])
    return [slice(int(a), int(b)) for a, b in pairwise(bounds)]


def components(x: np.ndarray, k: int) -> np.ndarray:
    """(N, d) float -> (N, min(k, d)) projections on the top k principal components (centred, each sign-fixed as in
    ``first_component``)."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[: min(k, x.shape[1])]
    sign = np.where(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(1)] < 0, -1.0, 1.0)
    return centred @ (vt * sign[:, None]).T


def first_component(x: np.ndarray) -> np.ndarray:
    """(N, d) float -> (N,) projection on the first principal component (centred, sign-fixed)."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    if x.shape[1] == 1:
        return centred[:, 0]
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # vt (d, d), rows by decreasing singular value
    direction = vt[0]
    if direction[np.argmax(np.abs(direction))] < 0:
        direction = -direction
    return centred @ direction


def section_codes(codes: np.ndarray, n_sections: int | Sequence[int], k: int = 1) -> np.ndarray:
    """codes (N, D) float -> (N, n_sections * k): each section's first k principal components, section by section
    (k = 1: the first component, as disentanglement_lib reports sections; k > 1: FDAE's group-wise protocol)."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"expected codes (N, D), got shape {codes.shape}")
    slices = section_slices(codes.shape[1], n_sections)
    if k == 1:
        return np.stack([first_component(codes[:, s]) for s in slices], axis=1)
    if any(s.stop - s.start < k for s in slices):
        raise ValueError(f"a section has fewer than k = {k} dimensions")
    return np.concatenate([components(codes[:, s], k) for s in slices], axis=1)


def group_rows(R: np.ndarray, k: int) -> np.ndarray:
    """An importance matrix over section codes (n_sections * k, F) -> (n_sections, F): each section's k rows summed
    (the section is the unit that DCI's disentanglement then scores)."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape[0] % k:
        raise ValueError(f"{R.shape[0]} rows do not split into groups of {k}")
    return R.reshape(R.shape[0] // k, k, R.shape[1]).sum(1)
