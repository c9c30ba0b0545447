"""MIG and latent sections: inputs with analytic answers."""

import itertools

import numpy as np
import pytest

from soda.eval.mig import discretize, mig
from soda.eval.sections import section_codes


def _grid(*sizes):
    """Every combination of the factor values once: (prod(sizes), K); factors are exactly independent."""
    return np.array(list(itertools.product(*[range(s) for s in sizes])))


def test_discretize_equal_width_bins():
    codes = np.array([[0.0, 5.0], [0.49, 5.0], [0.5, 5.0], [1.0, 5.0]])
    bins = discretize(codes, n_bins=2)
    assert bins[:, 0].tolist() == [0, 0, 1, 1]  # edges 0, 0.5, 1; the maximum belongs to the last bin
    assert len(np.unique(bins[:, 1])) == 1  # a constant code falls in one bin
    assert discretize(np.linspace(0, 1, 101)[:, None], n_bins=20).max() == 19


def test_identity_codes_score_one():
    factors = _grid(4, 3, 5, 2)
    result = mig(factors.astype(float), factors)
    assert result["mig"] == pytest.approx(1.0, abs=1e-10)
    assert result["per_factor"] == pytest.approx(np.ones(4), abs=1e-10)


def test_duplicated_code_scores_zero():
    factors = _grid(4, 3, 5)
    codes = factors[:, [0, 0, 1, 1, 2, 2]].astype(float) * np.array([1, 2, 1, -1, 3, 0.5])
    assert mig(codes, factors)["mig"] == pytest.approx(0.0, abs=1e-10)


def test_code_holding_half_the_factor_bits():
    # One uniform 4-class factor; code 0 keeps its high bit (log 2 nats of log 4), code 1 is constant: gap = 1/2.
    factors = np.repeat(np.arange(4), 25)[:, None]
    codes = np.stack([factors[:, 0] // 2, np.zeros(100)], axis=1).astype(float)
    assert mig(codes, factors)["mig"] == pytest.approx(0.5, abs=1e-12)


def test_independent_random_codes_score_near_zero():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 5, size=(5000, 3))
    assert mig(rng.standard_normal((5000, 6)), factors)["mig"] < 0.03


def test_constant_factor_is_left_out():
    factors = np.stack([np.zeros(30, dtype=int), np.arange(30) % 3], axis=1)
    result = mig(factors.astype(float), factors)
    assert np.isnan(result["per_factor"][0])
    assert result["mig"] == pytest.approx(1.0, abs=1e-10)


def test_section_of_scaled_factor_copies_gives_that_factor():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 6, size=500).astype(float)
    noise = rng.standard_normal((500, 3))
    codes = np.concatenate([np.outer(f, [2.0, -3.0, 0.5]), noise], axis=1)  # section 0 = f scaled, section 1 = noise
    z = section_codes(codes, 2)
    assert z.shape == (500, 2)
    # The largest loading (-3) is made positive, so the component is a negative multiple of f, exactly.
    assert np.corrcoef(z[:, 0], f)[0, 1] == pytest.approx(-1.0, abs=1e-12)
    assert abs(np.corrcoef(z[:, 1], f)[0, 1]) < 0.15
    # Deterministic sign: the component points along the dim of largest loading, whatever the row order.
    assert np.corrcoef(z[:, 0], codes[:, 1])[0, 1] == pytest.approx(1.0, abs=1e-12)
    order = rng.permutation(500)
    assert section_codes(codes[order], 2) == pytest.approx(z[order], abs=1e-9)


def test_section_sizes_and_scores():
    factors = _grid(4, 5)
    codes = np.concatenate([np.outer(factors[:, 0], [1.0, 1.0]), np.outer(factors[:, 1], [1.0, 2.0, 3.0])], axis=1)
    z = section_codes(codes, [2, 3])
    assert mig(z, factors)["mig"] == pytest.approx(1.0, abs=1e-10)
    with pytest.raises(ValueError):
        section_codes(codes, 2)  # 5 dims do not split into 2 equal sections
