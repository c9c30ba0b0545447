"""DCI: exact scores on importance matrices with analytic answers, and the tree pipeline on synthetic codes."""

import numpy as np
import pytest

from soda.eval.dci import dci, dci_scores, importance_matrix

# ----------------------------------------------------------------------------------------------------------------------
# Scoring of given importance matrices: exact answers
# ----------------------------------------------------------------------------------------------------------------------


def test_identity_scores_one():
    scores = dci_scores(np.eye(5))
    assert scores["disentanglement"] == pytest.approx(1.0, abs=1e-12)
    assert scores["completeness"] == pytest.approx(1.0, abs=1e-12)


def test_permuted_scaled_identity_scores_one():
    R = np.eye(6)[np.random.default_rng(0).permutation(6)] * np.array([0.5, 1, 2, 3, 4, 5])
    scores = dci_scores(R)
    assert scores["disentanglement"] == pytest.approx(1.0, abs=1e-12)
    assert scores["completeness"] == pytest.approx(1.0, abs=1e-12)


def test_each_factor_duplicated_in_two_codes():
    # D = 2K codes, factor k read equally from codes k and K + k: every code is pure (D = 1), every factor is
    # spread uniformly over 2 of D codes: C = 1 - log 2 / log D (disentanglement_lib's duplicated-latent test).
    K = 5
    R = np.vstack([np.eye(K), np.eye(K)])
    scores = dci_scores(R)
    assert scores["disentanglement"] == pytest.approx(1.0, abs=1e-12)
    assert scores["completeness"] == pytest.approx(1.0 - np.log(2) / np.log(2 * K), abs=1e-12)


def test_one_factor_duplicated_weights_by_importance():
    # D = 4 codes, K = 3 factors; factor 0 read from codes 0 and 3 (importance 1 each), factors 1, 2 from one code each.
    # Completeness: factor 0 scores 1 - log 2 / log 4 = 1/2 with weight 2/4, the others 1 with weight 1/4 each -> 3/4.
    R = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    scores = dci_scores(R)
    assert scores["disentanglement"] == pytest.approx(1.0, abs=1e-12)
    assert scores["completeness"] == pytest.approx(0.75, abs=1e-12)


def test_one_code_shared_by_two_factors():
    # Code 0 serves factors 0 and 1 equally (1 - log 2 / log K per code), code 1 serves factor 2 only.
    K = 3
    R = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    scores = dci_scores(R)
    expected = 0.5 * (1 - np.log(2) / np.log(K)) + 0.5 * 1.0
    assert scores["disentanglement"] == pytest.approx(expected, abs=1e-12)
    assert scores["completeness"] == pytest.approx(1.0, abs=1e-12)


def test_uniform_scores_zero():
    scores = dci_scores(np.ones((8, 4)))
    assert scores["disentanglement"] == pytest.approx(0.0, abs=1e-12)
    assert scores["completeness"] == pytest.approx(0.0, abs=1e-12)


def test_zero_rows_and_columns_are_ignored():
    # Unused codes (zero rows) and unexplained factors (zero columns) get weight 0 and no NaNs.
    R = np.zeros((6, 4))
    R[0, 0] = R[2, 1] = R[4, 2] = 1.0
    scores = dci_scores(R)
    assert scores["disentanglement"] == pytest.approx(1.0, abs=1e-12)
    assert scores["completeness"] == pytest.approx(1.0, abs=1e-12)
    assert dci_scores(np.zeros((3, 2))) == {"disentanglement": 0.0, "completeness": 0.0}


def test_rejects_negative_importances():
    with pytest.raises(ValueError):
        dci_scores(-np.eye(3))


# ----------------------------------------------------------------------------------------------------------------------
# Gradient-boosted trees on synthetic codes: answers within a tolerance
# ----------------------------------------------------------------------------------------------------------------------

SIZES = (4, 3, 5)


def _factors(rng, n):
    return np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)  # (n, K)


def test_codes_equal_to_factors_plus_noise_are_disentangled():
    rng = np.random.default_rng(0)
    f_train, f_test = _factors(rng, 400), _factors(rng, 200)
    # Permuted and rescaled copies of the factors, plus small noise.
    perm, scale = [2, 0, 1], np.array([0.5, -2.0, 3.0])
    c_train = f_train[:, perm] * scale + 0.05 * rng.standard_normal(f_train.shape)
    c_test = f_test[:, perm] * scale + 0.05 * rng.standard_normal(f_test.shape)
    calls = []
    result = dci(c_train, f_train, c_test, f_test, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert result["disentanglement"] > 0.9
    assert result["completeness"] > 0.9
    assert result["informativeness_test"] > 0.95
    assert result["importance_matrix"].shape == (3, 3)
    assert np.argmax(result["importance_matrix"], axis=0).tolist() == [1, 2, 0]


def test_random_codes_are_not_disentangled():
    rng = np.random.default_rng(1)
    f_train, f_test = _factors(rng, 400), _factors(rng, 200)
    result = dci(rng.standard_normal((400, 3)), f_train, rng.standard_normal((200, 3)), f_test)
    assert result["disentanglement"] < 0.1
    assert result["completeness"] < 0.1
    assert result["informativeness_test"] < 0.5  # chance is about 0.3 here


def test_constant_factor_has_no_importance():
    rng = np.random.default_rng(2)
    f = np.stack([np.zeros(60, dtype=int), rng.integers(0, 2, 60)], axis=1)
    codes = np.stack([rng.standard_normal(60), f[:, 1] + 0.01 * rng.standard_normal(60)], axis=1)
    R, train_acc, test_acc = importance_matrix(codes[:40], f[:40], codes[40:], f[40:])
    assert np.all(R[:, 0] == 0)
    assert train_acc[0] == 1.0 and test_acc[0] == 1.0
    assert R[1, 1] > 0.9
