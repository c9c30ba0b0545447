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


def t_from_alpha_bar(ab: torch.Tensor, schedule: str = "inverted_cosine") -> torch.Tensor:
    """Inverse of ``alpha_bar``: (...,) alpha_bar in (0, 1) -> (...,) t in [0, 1] (closed forms)."""
    ab = ab.double().clamp(AB_MIN, AB_MAX)
    if schedule == "inverted_cosine":
        t = (torch.cos(math.pi * ab) + 1) / 2
    elif schedule == "cosine":
        s = 0.008
        c = math.cos(s / (1 + s) * math.pi / 2)
        t = torch.arccos((ab * c**2).sqrt()) * 2 / math.pi * (1 + s) - s
    elif schedule == "linear":
        b0, b1 = 1e-4 * 1000, 0.02 * 1000
        a = 0.5 * (b1 - b0)
        t = (-b0 + (b0**2 - 4 * a * torch.log(ab)).sqrt()) / (2 * a)
    else:
        raise ValueError(f"unknown schedule '{schedule}' (choose from {', '.join(SCHEDULES)})")
    return t.clamp(0.0, 1.0).float()


T_SAMPLING = ("uniform", "low_snr")


def sample_t(
    n: int,
    schedule: str = "inverted_cosine",
    mode: str = "uniform",
    shift: float = 16.0,
    shift_share: float = 0.5,
    one_share: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Training times (n,) in [0, 1].

    ``uniform``: t ~ U[0, 1]. ``low_snr``: a share ``one_share`` of the examples sits exactly at t = 1 (where the
    sampler starts), a share ``shift_share`` of the rest is drawn with its SNR divided by ``shift`` (log-SNR shifted
    by -log(shift): ab_s = ab / (ab + shift (1 - ab)), mapped back to t), and the remainder is uniform. The high-noise
    region is where the decoder has to read the object from z; with t uniform on the inverted-cosine schedule
    P(alpha_bar < 0.05) is only 0.6%.
    """
    u = torch.rand(n, generator=generator)
    if mode == "uniform":
        return u
    if mode != "low_snr":
        raise ValueError(f"unknown time sampling '{mode}' (choose from {', '.join(T_SAMPLING)})")
    pick = torch.rand(n, generator=generator, dtype=torch.float64)
    u = u.double()
    ab = alpha_bar(u, schedule).double()
    ab_s = ab / (ab + shift * (1 - ab))
    t = torch.where(pick < shift_share + one_share, t_from_alpha_bar(ab_s, schedule).double(), u)
    t = torch.where(pick < one_share, torch.ones_like(t), t)
    return t.float()


def discrete_betas(schedule: str, n: int = 1000) -> torch.Tensor:
    """(n,) betas whose cumulative product follows alpha_bar at t = (i + 1) / n (for discrete-time solvers)."""
    ab = alpha_bar(torch.arange(1, n + 1, dtype=torch.float64) / n, schedule).double()
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    return (1 - ab / prev).clamp(0, 0.999).float()
