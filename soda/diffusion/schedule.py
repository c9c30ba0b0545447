"""Noise schedules as pure functions of continuous time: t in [0, 1] -> alpha_bar(t) in (0, 1).

t = 0 is clean data (alpha_bar -> 1), t = 1 is pure noise (alpha_bar -> 0). Values are clipped to
[AB_MIN, AB_MAX] so that log-SNR stays finite at both ends.
"""

from __future__ import annotations

import math

import torch

AB_MIN = 1e-4
AB_MAX = 1.0 - 1e-4
SCHEDULES = ("inverted_cosine", "cosine", "linear")


def alpha_bar(t: torch.Tensor, schedule: str = "inverted_cosine") -> torch.Tensor:
    """(...,) t in [0, 1] -> (...,) alpha_bar, monotonically decreasing in t."""
    t = t.double().clamp(0.0, 1.0)
    if schedule == "inverted_cosine":  # SODA: arccos(2t - 1) / pi, concentrates on mid SNR
        ab = torch.arccos(2 * t - 1) / math.pi
    elif schedule == "cosine":  # Nichol & Dhariwal with s = 0.008
        s = 0.008
        ab = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    elif schedule == "linear":  # DDPM linear betas 1e-4..0.02 over 1000 steps, in continuous form
        b0, b1 = 1e-4 * 1000, 0.02 * 1000
        ab = torch.exp(-(b0 * t + 0.5 * (b1 - b0) * t**2))
    else:
        raise ValueError(f"unknown schedule '{schedule}' (choose from {', '.join(SCHEDULES)})")
    return ab.clamp(AB_MIN, AB_MAX).float()


def discrete_betas(schedule: str, n: int = 1000) -> torch.Tensor:
    """(n,) betas whose cumulative product follows alpha_bar at t = (i + 1) / n (for discrete-time solvers)."""
    ab = alpha_bar(torch.arange(1, n + 1, dtype=torch.float64) / n, schedule).double()
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    return (1 - ab / prev).clamp(0, 0.999).float()
