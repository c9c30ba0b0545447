"""Diffusion: schedules, the forward process and loss, deterministic samplers. Independent of soda.model."""

from .process import diffusion_loss, eps_to_x0, q_sample, to_eps, v_target, v_to_eps, x0_to_eps
from .sampling import SAMPLERS, ddim_sample, dpmpp_2m_sample
from .schedule import SCHEDULES, alpha_bar, discrete_betas

__all__ = [
    "SAMPLERS",
    "SCHEDULES",
    "alpha_bar",
    "ddim_sample",
    "diffusion_loss",
    "discrete_betas",
    "dpmpp_2m_sample",
    "eps_to_x0",
    "q_sample",
    "to_eps",
    "v_target",
    "v_to_eps",
    "x0_to_eps",
]
