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


# ---------------------------------------------------------------------------------------------------------------
# Samplers on Gaussian data, where the exact answer is known
# ---------------------------------------------------------------------------------------------------------------
MU, S = 0.3, 0.2  # data: every pixel ~ N(MU, S^2), independent


def _gaussian_eps(x_t, t):
    """The exact (Bayes-optimal) eps for Gaussian data: E[x0 | x_t] in closed form, converted to eps."""
    a = alpha_bar(t, "inverted_cosine").view(-1, 1, 1, 1).double()
    x_t = x_t.double()
    x0 = MU + S**2 * a.sqrt() / (a * S**2 + 1 - a) * (x_t - a.sqrt() * MU)
    return ((x_t - a.sqrt() * x0) / (1 - a).sqrt()).float()


def _gaussian_exact(noise, ts):
    """The probability-flow ODE keeps (x_t - sqrt(ab) MU) / sqrt(ab S^2 + 1 - ab) constant; the samplers follow it
    from ts[0] to ts[-2] and return E[x0 | x] there."""
    a0, al = (alpha_bar(torch.tensor(float(t)), "inverted_cosine").double() for t in (ts[0], ts[-2]))
    z = (noise.double() - a0.sqrt() * MU) / (a0 * S**2 + 1 - a0).sqrt()
    return (MU + S**2 * al.sqrt() * z / (al * S**2 + 1 - al).sqrt()).float()


def _logsnr_grid(steps):
    """Times uniform in log-SNR from t = 0.999 to t = 0.02 (then 0): what the Gaussian test integrates over."""
    from soda.diffusion import t_from_alpha_bar

    lam = torch.linspace(-6.0, 2.0, steps).double()
    t = t_from_alpha_bar(torch.sigmoid(lam), "inverted_cosine")
    return torch.cat([t, torch.zeros(1)])


def _gaussian_error(sampler, steps):
    noise = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ts = _logsnr_grid(steps)
    out = sampler(_gaussian_eps, noise, steps, "inverted_cosine", clip=False, ts=ts)
    return float((out - _gaussian_exact(noise, ts)).abs().max())


@pytest.mark.parametrize(("name", "order"), [("ddim", 1), ("dpmpp_2m", 2)])
def test_samplers_solve_the_gaussian_flow_at_their_order(name, order):
    e20, e40, e80 = (_gaussian_error(SAMPLERS[name], n) for n in (20, 40, 80))
    assert e80 < 2e-3  # close to the exact flow
    # doubling the steps divides the error by 2^order (measured: DDIM 2.04, 2.02; DPM-Solver++(2M) 4.2, 4.1)
    for ratio in (e20 / e40, e40 / e80):
        assert 0.8 * 2**order < ratio < 1.25 * 2**order, (e20, e40, e80)


def _dpm_variant(bad: str):
    """DPM-Solver++(2M) with one deliberately wrong update rule (the three that the old oracle test let through)."""
    import soda.diffusion.sampling as smp

    def sample(denoise, noise, steps, schedule, clip=True, ts=None):
        ts = smp._grid(ts, steps, noise.device)
        ab = alpha_bar(ts, schedule)
        alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
        lam = torch.log(alpha / sigma)
        x, x0_prev = noise, None
        for i in range(steps):
            x0 = smp.eps_to_x0(x, denoise(x, ts[i].expand(x.shape[0])), ab[i].expand(x.shape[0]))
            if i == steps - 1:
                return x0
            h = lam[i + 1] - lam[i]
            d = (
                x0
                if x0_prev is None
                else (1 + 1 / (2 * (lam[i] - lam[i - 1]) / h)) * x0 - x0_prev / (2 * (lam[i] - lam[i - 1]) / h)
            )
            step = (sigma[i + 1] / sigma[i]) * x - alpha[i + 1] * torch.expm1(-h) * d
            x = {
                "unchanged": x,
                "half": 0.5 * step,
                "sign": (sigma[i + 1] / sigma[i]) * x + alpha[i + 1] * torch.expm1(-h) * d,
            }[bad]
            x0_prev = x0
        return x

    return sample


@pytest.mark.parametrize("bad", ["unchanged", "half", "sign"])
def test_a_wrong_solver_update_fails_the_gaussian_test(bad):
    assert _gaussian_error(_dpm_variant(bad), 80) > 0.05  # the correct solver is within 2e-3 (test above)


def test_samplers_refuse_a_bad_time_grid():
    with pytest.raises(ValueError, match="strictly decreasing"):
        ddim_sample(_gaussian_eps, torch.zeros(1, 3, 4, 4), 2, "inverted_cosine", ts=torch.tensor([0.0, 0.5, 1.0]))
