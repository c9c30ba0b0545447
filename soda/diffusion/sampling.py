"""Deterministic samplers. Every sampler has one signature and an optional ``callback(i, n, x0_hat)`` for progress.

``denoise(x_t, t) -> eps`` is a closure supplied by the caller (it holds z, the rays and the guidance).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .process import eps_to_x0, x0_to_eps
from .schedule import alpha_bar

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def time_grid(steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(steps + 1,) times from 1 (noise) down to 0 (data), uniformly spaced."""
    return torch.linspace(1.0, 0.0, steps + 1, device=device)


def _grid(ts: torch.Tensor | None, steps: int, device) -> torch.Tensor:
    if ts is None:
        return time_grid(steps, device)
    ts = torch.as_tensor(ts, dtype=torch.float32, device=device)
    if ts.shape != (steps + 1,) or not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError(f"ts must be {steps + 1} strictly decreasing times, got shape {tuple(ts.shape)}")
    return ts


@torch.no_grad()
def ddim_sample(
    denoise: Denoiser,
    noise: torch.Tensor,
    steps: int,
    schedule: str,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    clip: bool = True,
    ts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Deterministic DDIM (eta = 0): noise (B,C,H,W) -> x0 (B,C,H,W) in [-1, 1] after ``steps`` network calls.
    ``ts`` (steps + 1,) decreasing times overrides the uniform grid (``time_grid``); the last entry is not visited:
    the last step returns the prediction x0-hat at ``ts[-2]``."""
    ts = _grid(ts, steps, noise.device)
    x = noise
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        tb = t.expand(x.shape[0])
        ab, ab_next = alpha_bar(t, schedule).to(x.device), alpha_bar(t_next, schedule).to(x.device)
        eps = denoise(x, tb)  # predicted noise at time t
        x0 = eps_to_x0(x, eps, ab.expand(x.shape[0]))  # predicted clean image
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = x0_to_eps(x, x0, ab.expand(x.shape[0]))  # keep eps consistent with the clipped x0
        if i == steps - 1:
            x = x0  # t_next = 0: the last step returns the clean prediction
        else:
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps  # DDIM update, eta = 0
        if callback is not None:
            callback(i + 1, steps, x0)
    return x


@torch.no_grad()
def dpmpp_2m_sample(
    denoise: Denoiser,
    noise: torch.Tensor,
    steps: int,
    schedule: str,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    clip: bool = True,
    ts: torch.Tensor | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022), data prediction, deterministic: a second-order multistep solver that
    needs fewer steps than DDIM for the same quality. Same signature as ``ddim_sample``."""
    ts = _grid(ts, steps, noise.device)
    ab = alpha_bar(ts, schedule).to(noise.device)
    alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
    lam = torch.log(alpha / sigma)  # half log-SNR, increasing as t -> 0
    x = noise
    x0_prev = None
    for i in range(steps):
        tb = ts[i].expand(x.shape[0])
        eps = denoise(x, tb)
        x0 = eps_to_x0(x, eps, ab[i].expand(x.shape[0]))
        if clip:
            x0 = x0.clamp(-1, 1)
        if i == steps - 1:
            x = x0
        else:
            h = lam[i + 1] - lam[i]
            if x0_prev is None:
                d = x0  # first step: DPM-Solver++(1) = DDIM
            else:
                h_last = lam[i] - lam[i - 1]
                r = h_last / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = (sigma[i + 1] / sigma[i]) * x - alpha[i + 1] * torch.expm1(-h) * d
        x0_prev = x0
        if callback is not None:
            callback(i + 1, steps, x0)
    return x


SAMPLERS = {"ddim": ddim_sample, "dpmpp_2m": dpmpp_2m_sample}
