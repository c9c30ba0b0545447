"""The one guided denoiser: a conditional network output (eps or v) -> the eps a sampler steps with, with latent
classifier-free guidance. Used by every decode (soda.model.SODA.decode: the API, the app, the trainer's sample grids
and the evaluation).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .process import to_eps
from .sampling import Denoiser
from .schedule import alpha_bar

Network = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def guided_denoiser(
    net: Network,
    zs: torch.Tensor,
    null: torch.Tensor,
    rays: torch.Tensor | None,
    guidance: float,
    schedule: str,
    prediction: str,
) -> Denoiser:
    """-> ``denoise(x_t (B,C,H,W), t (B,)) -> eps (B,C,H,W)`` for the samplers.

    ``net(x_t, t, zs, rays)`` is the network (its output is eps or v per ``prediction``); ``zs`` (B,K,d) the
    conditioning sections, ``null`` (B,K,d) the unconditional ones, ``rays`` (B,R,H,W) or None. With guidance
    w != 0 the result is eps_c + w * (eps_c - eps_u) (w = 0: the conditional eps alone), the conditional and the
    unconditional outputs computed in one batched call."""

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = alpha_bar(t, schedule).to(x_t.device)
        if not guidance:
            return to_eps(net(x_t, t, zs, rays), x_t, ab, prediction)
        both = net(
            torch.cat([x_t, x_t]),
            torch.cat([t, t]),
            torch.cat([zs, null]),
            None if rays is None else torch.cat([rays, rays]),
        )
        e_c, e_u = to_eps(both, torch.cat([x_t, x_t]), torch.cat([ab, ab]), prediction).chunk(2)
        return e_c + guidance * (e_c - e_u)

    return denoise
