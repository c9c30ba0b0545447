"""The forward process and the training loss. The network is an argument: this module never imports soda.model."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .schedule import alpha_bar, sample_t

PREDICTIONS = ("eps", "v")  # what the network predicts: the noise, or v = sqrt(ab) eps - sqrt(1 - ab) x0


def q_sample(x0: torch.Tensor, ab: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x0 (B,C,H,W), ab (B,), noise like x0 -> x_t = sqrt(ab) x0 + sqrt(1 - ab) noise."""
    ab = ab.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def _bc(ab: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return ab.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def eps_to_x0(x_t: torch.Tensor, eps: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    a = _bc(ab, x_t)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def x0_to_eps(x_t: torch.Tensor, x0: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    a = _bc(ab, x_t)
    return (x_t - a.sqrt() * x0) / (1 - a).sqrt()


def v_target(x0: torch.Tensor, noise: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho)."""
    a = _bc(ab, x0)
    return a.sqrt() * noise - (1 - a).sqrt() * x0


def v_to_eps(x_t: torch.Tensor, v: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    a = _bc(ab, x_t)
    return a.sqrt() * v + (1 - a).sqrt() * x_t


def to_eps(out: torch.Tensor, x_t: torch.Tensor, ab: torch.Tensor, prediction: str) -> torch.Tensor:
    """Network output (eps or v) -> eps."""
    return out if prediction == "eps" else v_to_eps(x_t, out, ab)


def to_x0(out: torch.Tensor, x_t: torch.Tensor, ab: torch.Tensor, prediction: str) -> torch.Tensor:
    """Network output (eps or v) -> predicted clean image. v uses x0 = sqrt(ab) x_t - sqrt(1 - ab) v directly, which
    stays exact at alpha_bar -> 0 where going through eps divides by sqrt(alpha_bar)."""
    if prediction == "eps":
        return eps_to_x0(x_t, out, ab)
    a = _bc(ab, x_t)
    return a.sqrt() * x_t - (1 - a).sqrt() * out


def diffusion_loss(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    schedule: str,
    prediction: str = "eps",
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    t_sampling: dict | None = None,
) -> torch.Tensor:
    """Mean-squared error of ``denoise(x_t, t)`` against eps (or v) -> scalar. Unless ``t`` is given it is drawn by
    ``sample_t(schedule=schedule, **t_sampling)`` (t ~ U[0, 1] when ``t_sampling`` is None)."""
    b = x0.shape[0]
    if t is None:
        t = sample_t(b, schedule, generator=generator, **(t_sampling or {})).to(x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device="cpu").to(x0.device, x0.dtype)
    ab = alpha_bar(t, schedule).to(x0.device)
    x_t = q_sample(x0, ab, noise)
    target = noise if prediction == "eps" else v_target(x0, noise, ab)
    out = denoise(x_t, t)
    return (out.float() - target.float()).pow(2).mean()
