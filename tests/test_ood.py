"""soda.ood: the threshold logic on inputs with known answers, storage, and calibration per checkpoint through
soda.precompute (a new checkpoint gets its own detector; an old cache without one gets one)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from soda import api, ood, precompute
from soda.held_out import held_out


def toy_detector(threshold: float = 1.0) -> ood.OODDetector:
    """A detector over 2-d latents and 3-channel 2x2 images whose standardisation is the identity."""
    F = len(ood.FEATURES)
    return ood.OODDetector(
        latent_mean=torch.zeros(2, dtype=torch.float64),
        latent_precision=torch.eye(2, dtype=torch.float64),
        pixel_mean=torch.zeros(12, dtype=torch.float64),
        pixel_axes=torch.zeros(0, 12, dtype=torch.float64),
        center=torch.zeros(F, dtype=torch.float64),
        scale=torch.ones(F, dtype=torch.float64),
        threshold=threshold,
        steps=4,
        meta={"data_knows": "procedural rooms", "data_nearest": "room", "psnr_p50": 16.0},
    )


# ------------------------------------------------------------------------------------------------------------
# Threshold logic
# ------------------------------------------------------------------------------------------------------------


def test_standardisation_maps_median_to_0_and_the_quantile_to_1():
    calib = torch.stack([torch.arange(101.0), 10 * torch.arange(101.0) - 7, torch.full((101,), 3.0)], 1)
    center, scale = ood.fit_standardisation(calib, quantile=0.99)
    u = ood.standardise(calib, center, scale)
    assert torch.allclose(center, torch.tensor([50.0, 493.0, 3.0], dtype=torch.float64))
    assert torch.allclose(u[:, :2].median(0).values, torch.zeros(2, dtype=torch.float64))
    q = torch.quantile(u[:, :2], 0.99, dim=0)
    assert torch.allclose(q, torch.ones(2, dtype=torch.float64))
    assert torch.isfinite(scale).all() and (scale > 0).all()  # a constant signal does not divide by zero


@pytest.mark.parametrize("n", [10, 100, 477, 1000])
@pytest.mark.parametrize("false_alarm", [0.01, 0.05, 0.2])
def test_the_threshold_lets_through_at_most_the_target_share_of_calibration_images(n, false_alarm):
    s = torch.randn(n, generator=torch.Generator().manual_seed(n))
    th = ood.fit_threshold(s, false_alarm)
    above = int((s > th).sum())
    assert above <= math.floor(false_alarm * n)  # never more false alarms on the calibration set than the target
    assert above >= math.floor(false_alarm * n) - 1  # and not needlessly strict (ties aside)
    assert float(th) in s.double().tolist()  # one of the calibration scores


def test_flagged_exactly_when_a_signal_exceeds_the_threshold_and_the_reasons_say_which():
    det = toy_detector(threshold=1.0)
    raw = torch.tensor([[0.2, -1.5, 0.9], [1.2, -1.5, 0.3], [0.1, -0.5, 2.0], [1.0, -1.5, 1.0]], dtype=torch.float64)
    v = det.verdicts(raw)
    assert [x.flagged for x in v] == [False, True, True, False]  # strictly above: exactly at the threshold is fine
    assert v[1].reasons == ["latent"] and v[2].reasons == ["pixel"] and v[0].reasons == []
    assert v[2].score == pytest.approx(2.0) and v[1].psnr == pytest.approx(15.0)
    assert torch.equal(det.scores(raw), raw.max(1).values)


def test_the_signals_of_known_inputs():
    det = toy_detector()
    x = torch.zeros(2, 3, 2, 2)
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    recon = torch.stack([torch.zeros(3, 2, 2), torch.full((3, 2, 2), -1.0)])  # exact; off by 1 (0.5 in [0,1] units)
    raw = det.raw(x, z, recon)
    assert raw[0, 0] == pytest.approx(5.0) and raw[1, 0] == pytest.approx(0.0)  # Mahalanobis with identity precision
    assert raw[0, 1] == pytest.approx(-10.0) and raw[1, 1] == pytest.approx(math.log10(0.25))  # log10 MSE
    assert raw[0, 2] == pytest.approx(math.log10(0.25))  # mid grey is 0.5 from the zero pixel mean (no axes)


def test_the_warning_says_what_it_means_in_plain_words():
    det = toy_detector()
    v = det.verdicts(torch.tensor([[3.0, -0.9, 2.0]], dtype=torch.float64))[0]
    text = det.warning(v)
    assert "only knows procedural rooms" in text and "nearest room it can draw" in text
    assert "cannot reconstruct it" not in text  # recon was not a reason
    assert "latent code is far" in text and "pixels are unlike" in text and "9.0 dB" in text


def test_save_and_load_keep_every_decision(tmp_path):
    det = toy_detector(threshold=0.7)
    det.pixel_axes = torch.linalg.qr(torch.randn(12, 3, dtype=torch.float64))[0].T
    det.calib_raw = torch.randn(20, 3, dtype=torch.float64)
    path = det.save(tmp_path / ood.FILE_NAME, "abc")
    back = ood.OODDetector.load(path, "abc")
    raw = torch.randn(50, 3, dtype=torch.float64)
    x = torch.rand(4, 3, 2, 2) * 2 - 1
    assert [v.flagged for v in back.verdicts(raw)] == [v.flagged for v in det.verdicts(raw)]
    zz = torch.randn(4, 2)
    assert torch.allclose(back.raw(x, zz, x), det.raw(x, zz, x), atol=1e-5)  # the bulk is stored as float32
    assert back.threshold == det.threshold and back.meta["data_knows"] == "procedural rooms"
    assert ood.OODDetector.load(path, "other weights") is None
    path.write_bytes(b"damaged")
    assert ood.OODDetector.load(path) is None


# ------------------------------------------------------------------------------------------------------------
# Calibration per checkpoint (soda.precompute)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from helpers import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ood") / "tiny")


def test_precompute_calibrates_and_stores_a_detector_that_flags_non_scenes(ckpt, cache):
    model = api.load_model(str(ckpt))
    a = precompute.load_or_compute(model, n_examples=4, n_map=96, force=True)
    det = a.ood
    assert det is not None and (a.folder / ood.FILE_NAME).is_file()
    assert det.meta["n_calib"] >= 48 and det.meta["false_alarm"] == ood.FALSE_ALARM
    assert det.meta["calib_false_alarms"] <= ood.FALSE_ALARM + 1e-9
    assert "procedural rooms" in det.meta["data_knows"]
    # fresh held-out scenes pass; flat colour, noise and a checkerboard do not
    scenes = held_out(model, 8, 4321)["images"]
    assert sum(v.flagged for v in det.assess(model, scenes)) <= 2
    res = model.res
    yy, xx = np.mgrid[0:res, 0:res]
    odd = np.stack(
        [
            np.zeros((res, res, 3), np.uint8),
            np.random.default_rng(0).integers(0, 256, (res, res, 3), dtype=np.uint8),
            (((xx // 2 + yy // 2) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2),
        ]
    )
    assert all(v.flagged for v in det.assess(model, api.from_uint8(odd)))
    again = precompute.load_or_compute(model, n_examples=4, n_map=96)  # read back, not recalibrated
    assert again.ood.threshold == det.threshold and torch.equal(again.ood.center, det.center)


def test_a_new_checkpoint_gets_its_own_detector_and_an_old_cache_gets_one(ckpt, cache, tmp_path):
    import shutil

    model = api.load_model(str(ckpt))
    a = precompute.load_or_compute(model, n_examples=4, n_map=64)
    other = tmp_path / "other"
    shutil.copytree(ckpt, other)
    m2 = api.load_model(str(other))
    with torch.no_grad():
        for p in m2.encoder.parameters():
            p.mul_(1.5)
    m2.save_pretrained(other, full_config=m2.full_config)  # explorer/ (with a's detector) stays behind
    m2 = api.load_model(str(other))
    b = precompute.load_or_compute(m2, n_examples=4, n_map=64)
    assert b.ood is not None and b.fingerprint != a.fingerprint
    assert not torch.equal(b.ood.latent_mean, a.ood.latent_mean)  # fitted on the new encoder's latents
    stored = ood.OODDetector.load(b.folder / ood.FILE_NAME, b.fingerprint)
    assert stored is not None and stored.threshold == b.ood.threshold
    # a cache from before the detector existed: the assets are kept, a detector is added beside them
    (b.folder / ood.FILE_NAME).unlink()
    before = (b.folder / precompute.ASSETS_NAME).stat().st_mtime_ns
    c = precompute.load_or_compute(m2, n_examples=4, n_map=64)
    assert c.ood is not None and (b.folder / ood.FILE_NAME).is_file()
    assert (b.folder / precompute.ASSETS_NAME).stat().st_mtime_ns == before
    assert c.ood.threshold == pytest.approx(b.ood.threshold)  # the same held-out data gives the same calibration
