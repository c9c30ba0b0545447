"""MIG: mutual information gap (Chen et al., 2018), as google-research/disentanglement_lib computes it.

Each code is discretised into ``n_bins`` equal-width histogram bins over its observed range; the mutual information
between every (discretised code, factor) pair is ``sklearn.metrics.mutual_info_score`` (nats); for each factor the
gap between its largest and second-largest mutual information is divided by the factor's entropy; MIG is the mean
over factors. A factor with a single value (zero entropy) has no defined gap: its entry is NaN and it is left out of
the mean.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score


def discretize(codes: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """codes (N, D) float -> (N, D) int bin indices in [0, n_bins), equal-width bins per code."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"expected codes (N, D), got shape {codes.shape}")
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], bins=n_bins)  # (n_bins + 1,)
        # Interior edges only: the maximum falls in the last bin, as np.histogram counts it.
        out[:, j] = np.digitize(codes[:, j], edges[1:-1])
    return out


def mutual_information(codes_discrete: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """codes (N, D) int, factors (N, K) int -> mutual information (D, K) in nats."""
    n_codes, n_factors = codes_discrete.shape[1], factors.shape[1]
    m = np.zeros((n_codes, n_factors))
    for j in range(n_codes):
        for k in range(n_factors):
            m[j, k] = mutual_info_score(factors[:, k], codes_discrete[:, j])
    return m


def factor_entropy(factors: np.ndarray) -> np.ndarray:
    """factors (N, K) int -> entropy of each factor (K,) in nats."""
    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def mig(codes: np.ndarray, factors: np.ndarray, n_bins: int = 20) -> dict:
    """codes (N, D) float, factors (N, K) int -> {mig in [0, 1], per_factor (K,), mutual_information (D, K)}."""
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"expected codes (N, D) and factors (N, K), got {codes.shape} and {factors.shape}")
    m = mutual_information(discretize(codes, n_bins), factors)  # (D, K)
    entropy = factor_entropy(factors)  # (K,)
    top = -np.sort(-m, axis=0)  # (D, K), descending per factor
    second = top[1] if m.shape[0] > 1 else np.zeros(m.shape[1])
    gap = top[0] - second
    per_factor = np.divide(gap, entropy, out=np.full(gap.shape, np.nan), where=entropy > 0)
    score = float(np.nanmean(per_factor)) if np.any(entropy > 0) else float("nan")
    return {"mig": score, "per_factor": per_factor, "mutual_information": m}
