"""PSNR and SSIM: known answers and agreement with scikit-image."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from soda.eval.image_metrics import psnr, ssim


def _images(seed=0, n=3, size=16):
    return np.random.default_rng(seed).uniform(0, 1, size=(n, size, size, 3))


def test_identical_images():
    a = _images()
    assert np.all(np.isinf(psnr(a, a)["per_image"]))
    assert psnr(a, a)["mean"] == np.inf
    assert ssim(a, a)["per_image"] == pytest.approx(np.ones(3), abs=1e-12)


@pytest.mark.parametrize("e", [0.5, 0.1, 0.01])
def test_constant_error_psnr(e):
    a = np.zeros((2, 8, 8, 3))
    result = psnr(a, a + e)
    assert result["per_image"] == pytest.approx(np.full(2, -10 * np.log10(e**2)), rel=1e-12)
    assert result["mean"] == pytest.approx(-20 * np.log10(e), rel=1e-12)


def test_psnr_matches_skimage_per_image():
    a, b = _images(0), np.clip(_images(0) + 0.05 * np.random.default_rng(1).standard_normal((3, 16, 16, 3)), 0, 1)
    result = psnr(a, b)
    expected = [peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(a, b)]
    assert result["per_image"] == pytest.approx(expected, rel=1e-12)
    assert result["mean"] == pytest.approx(np.mean(expected), rel=1e-12)


def test_psnr_data_range():
    a = np.zeros((1, 8, 8, 3))
    assert psnr(a, a + 25.5, data_range=255.0)["mean"] == pytest.approx(20.0, rel=1e-12)


def test_ssim_matches_skimage_defaults():
    a, b = _images(2), _images(3)
    expected = [structural_similarity(x, y, channel_axis=-1, data_range=1.0) for x, y in zip(a, b)]
    assert ssim(a, b)["per_image"] == pytest.approx(expected, rel=1e-12)


def test_layouts_and_torch_inputs_agree():
    a, b = _images(4), _images(5)
    reference_psnr, reference_ssim = psnr(a, b)["per_image"], ssim(a, b)["per_image"]
    a_t, b_t = torch.from_numpy(a).permute(0, 3, 1, 2), torch.from_numpy(b).permute(0, 3, 1, 2)  # (N, 3, H, W)
    assert psnr(a_t, b_t)["per_image"] == pytest.approx(reference_psnr, rel=1e-6)
    assert ssim(a_t, b_t)["per_image"] == pytest.approx(reference_ssim, abs=1e-6)
    assert psnr(a.transpose(0, 3, 1, 2), b.transpose(0, 3, 1, 2))["per_image"] == pytest.approx(reference_psnr)


def test_rejects_wrong_range_and_ambiguous_layout():
    a = _images()
    with pytest.raises(ValueError, match="outside"):
        psnr(2 * a - 1, a)  # [-1, 1] images passed by mistake
    with pytest.raises(ValueError, match="channel axis"):
        psnr(np.zeros((2, 3, 8, 3)), np.zeros((2, 3, 8, 3)))
    assert psnr(np.zeros((2, 3, 8, 3)), np.zeros((2, 3, 8, 3)) + 0.1, channels_last=False)["mean"] == pytest.approx(20)
