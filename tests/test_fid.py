"""FID/KID on features with analytic answers; weights load only from explicit local files."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from soda.eval.fid import (
    ALEXNET_FILE,
    INCEPTION_FILE,
    LPIPS,
    LPIPS_LIN_FILE,
    fid_from_features,
    frechet_distance,
    inception_features,
    kid,
    load_inception,
    load_lpips,
)


def _random_covariance(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_identical_gaussians_have_zero_distance():
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(16), _random_covariance(rng, 16)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_shifted_means_give_squared_distance():
    rng = np.random.default_rng(1)
    mu, sigma, d = rng.standard_normal(8), _random_covariance(rng, 8), rng.standard_normal(8)
    assert frechet_distance(mu, sigma, mu + d, sigma) == pytest.approx(d @ d, rel=1e-9)


def test_diagonal_covariances():
    # Commuting covariances: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + 3.0
    assert frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_matches_matrix_square_root_formula():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    s1, s2 = _random_covariance(rng, 10), _random_covariance(rng, 10)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_from_features_of_the_same_samples_is_zero():
    feats = np.random.default_rng(3).standard_normal((200, 5))
    assert fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-9)


def _naive_mmd2(x, y):
    m, d = x.shape

    def k(a, b):
        return (a @ b / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    return xx + yy - 2 * xy


def test_kid_matches_the_unbiased_estimator():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((12, 4)), rng.standard_normal((12, 4)) + 0.5
    result = kid(x, y, n_subsets=3, subset_size=50)  # subsets are the whole sets, reordered
    assert result["subset_size"] == 12
    assert result["mean"] == pytest.approx(_naive_mmd2(x, y), rel=1e-10)
    assert result["std"] == pytest.approx(0.0, abs=1e-12)


def test_kid_same_distribution_is_near_zero_and_shift_is_positive():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((1000, 16)), rng.standard_normal((1000, 16))
    same = kid(x, y, n_subsets=10, subset_size=500)
    shifted = kid(x, y + 1.0, n_subsets=10, subset_size=500)
    assert abs(same["mean"]) < 0.01
    assert shifted["mean"] > 0.5


# ----------------------------------------------------------------------------------------------------------------------
# Weights: only from explicit local files
# ----------------------------------------------------------------------------------------------------------------------


def test_missing_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=INCEPTION_FILE):
        load_inception(None)
    with pytest.raises(FileNotFoundError, match=INCEPTION_FILE):
        load_inception(tmp_path / "nothing.pth")
    with pytest.raises(FileNotFoundError, match=LPIPS_LIN_FILE):
        load_lpips(None)
    with pytest.raises(FileNotFoundError, match=LPIPS_LIN_FILE):
        load_lpips(tmp_path)  # an empty folder
    save_file({"lin0.model.1.weight": torch.ones(1, 64, 1, 1)}, str(tmp_path / "alex.safetensors"))
    with pytest.raises(FileNotFoundError, match=ALEXNET_FILE):
        load_lpips(tmp_path / "alex.safetensors")


def test_tf_fid_inception_port_is_refused(tmp_path):
    path = tmp_path / "pt_inception.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, path)
    with pytest.raises(ValueError, match="1008"):
        load_inception(path)


def test_inception_loads_a_local_state_dict(tmp_path):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    model = load_inception(path)
    images = torch.rand(2, 3, 32, 32)
    feats = inception_features(model, images, batch_size=1)
    assert feats.shape == (2, 2048)
    assert np.all(np.isfinite(feats))
    assert "torchvision" in model.note


def test_lpips_from_local_weights(tmp_path):
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.alexnet(weights=None).features
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / ALEXNET_FILE)
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPS.channels)}
    torch.save(lin, tmp_path / LPIPS_LIN_FILE)
    model = load_lpips(tmp_path)
    a, b = torch.rand(3, 3, 64, 64), torch.rand(3, 3, 64, 64)
    d_ab, d_ba, d_aa = model(a, b), model(b, a), model(a, a)
    assert d_ab.shape == (3,)
    assert torch.all(d_ab > 0)
    assert torch.allclose(d_ab, d_ba)
    assert torch.allclose(d_aa, torch.zeros(3))
