"""Schedules, the forward process, the loss and the deterministic samplers."""

import math

import pytest
import torch

from soda.diffusion import (
    SAMPLERS,
    alpha_bar,
    ddim_sample,
    diffusion_loss,
    discrete_betas,
    eps_to_x0,
    q_sample,
    v_target,
    v_to_eps,
)
from soda.diffusion.schedule import AB_MAX, AB_MIN


@pytest.mark.parametrize("schedule", ["inverted_cosine", "cosine", "linear"])
def test_alpha_bar_monotone_and_bounded(schedule):
    ab = alpha_bar(torch.linspace(0, 1, 1001), schedule)
    assert (ab[1:] <= ab[:-1]).all() and (ab[1:] < ab[:-1]).float().mean() > 0.9
    assert ab.min() >= AB_MIN and ab.max() <= AB_MAX


def test_inverted_cosine_matches_formula():
    t = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], dtype=torch.float64)
    expected = torch.arccos(2 * t - 1) / math.pi
    assert torch.allclose(alpha_bar(t, "inverted_cosine").double(), expected, atol=1e-7)
    assert alpha_bar(torch.tensor(0.5), "inverted_cosine").item() == pytest.approx(0.5)


def test_discrete_betas_reproduce_alpha_bar():
    betas = discrete_betas("inverted_cosine", 1000)
    ab = torch.cumprod(1 - betas.double(), 0)
    ref = alpha_bar(torch.arange(1, 1001) / 1000, "inverted_cosine").double()
    assert torch.allclose(ab, ref, rtol=1e-4, atol=1e-6)


def test_q_sample_alpha_bar_one_returns_x0():
    x0, noise = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8)
    assert torch.equal(q_sample(x0, torch.ones(3), noise), x0)
    assert torch.equal(q_sample(x0, torch.zeros(3), noise), noise)


def test_eps_and_v_conversions_round_trip():
    x0, eps = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    ab = torch.tensor([0.3, 0.8])
    x_t = q_sample(x0, ab, eps)
    assert torch.allclose(eps_to_x0(x_t, eps, ab), x0, atol=1e-5)
    assert torch.allclose(v_to_eps(x_t, v_target(x0, eps, ab), ab), eps, atol=1e-5)


def test_loss_of_the_perfect_denoiser_is_zero():
    x0 = torch.randn(4, 3, 8, 8)
    noise = torch.randn_like(x0)
    loss = diffusion_loss(lambda x_t, t: noise, x0, "inverted_cosine", noise=noise)
    assert loss.item() == 0.0


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_samplers_deterministic_and_exact_for_a_known_image(sampler):
    target = torch.rand(2, 3, 8, 8) * 1.6 - 0.8

    def oracle(x_t, t):  # the eps that points exactly at `target`
        ab = alpha_bar(t, "inverted_cosine")
        a = ab.view(-1, 1, 1, 1)
        return (x_t - a.sqrt() * target) / (1 - a).sqrt()

    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a = SAMPLERS[sampler](oracle, noise, 10, "inverted_cosine")
    b = SAMPLERS[sampler](oracle, noise.clone(), 10, "inverted_cosine")
    assert torch.equal(a, b)
    assert torch.allclose(a, target, atol=1e-4)


def test_ddim_callback_reports_progress():
    seen = []
    ddim_sample(
        lambda x, t: torch.zeros_like(x),
        torch.randn(1, 3, 4, 4),
        5,
        "cosine",
        callback=lambda i, n, x0: seen.append((i, n)),
    )
    assert seen == [(i, 5) for i in range(1, 6)]
