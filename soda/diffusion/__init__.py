"""Diffusion: schedules, the forward process and loss, deterministic samplers. Independent of soda.model."""

from .process import PREDICTIONS, diffusion_loss, eps_to_x0, q_sample, to_eps, to_x0, v_target, v_to_eps, x0_to_eps
from .sampling import SAMPLERS, ddim_sample, dpmpp_2m_sample
from .schedule import SCHEDULES, T_SAMPLING, alpha_bar, discrete_betas, sample_t, t_from_alpha_bar

__all__ = [
    "PREDICTIONS",
    "SAMPLERS",
    "SCHEDULES",
    "T_SAMPLING",
    "alpha_bar",
    "ddim_sample",
    "diffusion_loss",
    "discrete_betas",
    "dpmpp_2m_sample",
    "eps_to_x0",
    "q_sample",
    "sample_t",
    "t_from_alpha_bar",
    "to_eps",
    "to_x0",
    "v_target",
    "v_to_eps",
    "x0_to_eps",
]
