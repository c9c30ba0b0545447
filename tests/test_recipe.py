"""The training recipe's switches: low-SNR time sampling, the z-pathway learning rate, the masking warm-up, and
the held-out measurements that show whether z is used (object-pixel PSNR, z-use gap)."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from soda.config import ConfigError, SODAConfig
from soda.diffusion import SCHEDULES, alpha_bar, sample_t, t_from_alpha_bar
from soda.eval.zuse import masked_psnr, object_masks, z_use_gap


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_t_from_alpha_bar_inverts_the_schedule(schedule):
    t = torch.linspace(0.02, 0.85, 40)
    assert torch.allclose(t_from_alpha_bar(alpha_bar(t, schedule), schedule), t, atol=1e-4)


def test_uniform_time_sampling_is_the_old_stream():
    a = sample_t(1000, generator=torch.Generator().manual_seed(3))
    b = torch.rand(1000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)  # same generator draws: runs with t_sampling=uniform are unchanged


def test_low_snr_sampling_divides_the_snr_and_puts_mass_at_t1():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    t = sample_t(n, "inverted_cosine", "low_snr", shift=16.0, shift_share=1.0, one_share=0.0, generator=g)
    u = torch.rand(n, generator=torch.Generator().manual_seed(0)).double()
    # with shift_share = 1 every draw is the uniform one with its SNR divided by 16
    ab_u = alpha_bar(u, "inverted_cosine").double()
    ab_t = alpha_bar(t.double(), "inverted_cosine").double()
    snr_ratio = (ab_u / (1 - ab_u)) / (ab_t / (1 - ab_t))
    inner = (ab_u > 0.02) & (ab_u < 0.98)  # away from the clip and from float32 rounding of t near 0 and 1
    assert torch.allclose(snr_ratio[inner], torch.full_like(snr_ratio[inner], 16.0), rtol=1e-2)
    mixed = sample_t(n, "inverted_cosine", "low_snr", 16.0, 0.5, 0.05, generator=torch.Generator().manual_seed(1))
    assert abs(float((mixed == 1).double().mean()) - 0.05) < 0.005
    low = float((alpha_bar(mixed) < 0.05).double().mean())
    uni = float((alpha_bar(torch.rand(n)) < 0.05).double().mean())
    assert uni < 0.01 and low > 0.2  # 0.6% -> about 27% of the examples at alpha_bar < 0.05


def test_unknown_time_sampling_is_refused():
    with pytest.raises(ValueError, match="unknown time sampling"):
        sample_t(4, mode="logit")
    with pytest.raises(ConfigError, match="t_sampling"):
        SODAConfig.from_yaml("tiny", ["--model.diffusion.t_sampling=logit"])


def test_mask_rate_schedule_known_answers():
    cfg = SODAConfig.from_yaml("tiny", ["--train.mask_warmup=100", "--train.mask_ramp=50"])
    assert [cfg.mask_rate(n) for n in (0, 99, 100, 125, 150, 10_000)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert SODAConfig.from_yaml("tiny").mask_rate(0) == 1.0  # the paper: full masking from the start


def test_mask_rate_scales_the_masking(tiny_cfg):
    from soda.model import SODA

    m = SODA(tiny_cfg.model).train()
    zs = torch.randn(4000, m.n_sections, m.section_dim)
    m.mask_rate = 0.0
    assert torch.equal(m.mask_sections(zs, torch.Generator().manual_seed(0)), zs)
    m.mask_rate = 1.0
    masked = (m.mask_sections(zs, torch.Generator().manual_seed(0)) != zs).any(-1).double().mean()
    p = tiny_cfg.model.latent
    expected = 1 - (1 - p.p_section) * (1 - p.p_drop)  # a section is masked alone or with the whole z
    assert abs(float(masked) - expected) < 0.02


def test_string_overrides_keep_words_yaml_reads_as_booleans():
    assert SODAConfig.from_yaml("tiny", ["--train.amp=off"]).train.amp == "off"
    assert SODAConfig.from_yaml("tiny", ["--train.compile=on"]).train.compile is True
    assert SODAConfig.from_yaml("tiny", ["--train.compile=false"]).train.compile is False


def test_z_parameters_are_the_z_pathway(tiny_cfg):
    from soda.model import SODA

    m = SODA(tiny_cfg.model)
    ids = {id(p) for p in m.z_parameters()}
    names = {n for n, p in m.named_parameters() if id(p) in ids}
    assert all(n.startswith("encoder.") or ".z_mod." in n or n == "null" for n in names)
    assert any(".z_mod." in n for n in names) and "null" in names
    assert not any(".t_mod." in n for n in names)
    assert {n for n, _ in m.named_parameters() if n.startswith("encoder.")} <= names


def test_trainer_applies_the_lr_multiplier_and_logs_held_out_metrics(tmp_path):
    from soda.train import train

    cfg = SODAConfig.from_yaml(
        "tiny",
        [
            f"--train.out_dir={tmp_path / 'run'}",
            "--train.steps=4",
            "--train.ckpt_every=4",
            "--train.z_lr_mult=3",
            "--train.warmup=1",
            "--train.eval_scenes=8",
            "--train.mask_warmup=100",
            "--model.diffusion.t_sampling=low_snr",
        ],
    )
    train(cfg, quiet=True)
    state = json.loads(next((tmp_path / "run" / "checkpoints").glob("step-*/state.json")).read_text())
    lrs = sorted(g["lr"] for g in state["param_groups"])
    assert lrs == pytest.approx([cfg.train.lr, 3 * cfg.train.lr])
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["mask_rate"] for r in recs if "mask_rate" in r][0] == 0.0
    held = [r for r in recs if "recon_psnr" in r][-1]
    for k in ("recon_psnr", "recon_psnr_object", "zgap_t1", "zgap_t1_object", "zgap_ab0.1", "zgap_ab0.1_object"):
        assert math.isfinite(held[k]), k


def test_a_folder_run_logs_recon_and_z_gap_on_held_out_files(tmp_path):
    """Folder data: the checkpoint metrics come from the held-out files (no object masks, so no object entries)."""
    import numpy as np
    from conftest import tiny_folder_cfg
    from PIL import Image

    from soda.eval.zuse import held_out_files
    from soda.train import train

    data = tmp_path / "data"
    data.mkdir()
    rows = ["filename,split"]
    for i in range(12):
        Image.fromarray(np.full((10, 10, 3), 20 * i, np.uint8)).save(data / f"g{i:02d}.png")
        rows.append(f"g{i:02d}.png,{'test' if i % 3 == 0 else 'train'}")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    cfg = tiny_folder_cfg(
        data, f"--train.out_dir={tmp_path / 'run'}", "--train.steps=2", "--train.ckpt_every=2", "--train.eval_scenes=8"
    )
    held = held_out_files(cfg, 8)
    assert held["images"].shape[0] == 4 and held["mask"] is None  # only the 4 test files, never a training file
    values = sorted(round(float(x.mean()), 4) for x in held["images"])
    assert values == sorted(round(20 * i / 127.5 - 1, 4) for i in (0, 3, 6, 9))
    train(cfg, quiet=True)
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in recs if "recon_psnr" in r][-1]
    assert math.isfinite(last["recon_psnr"]) and math.isfinite(last["zgap_t1"]) and math.isfinite(last["zgap_ab0.1"])
    assert not any(k.endswith("_object") for k in last)


# ---------------------------------------------------------------------------------------------------------------
# The measurements, on known answers
# ---------------------------------------------------------------------------------------------------------------


def test_masked_psnr_known_answers():
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[:, :, :2] = 0.2  # error 0.1 on the [0,1] scale in the top half
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, :2] = True
    assert masked_psnr(a, b, mask).tolist() == pytest.approx([20.0, 20.0])
    assert masked_psnr(a, b).tolist() == pytest.approx([10 * math.log10(1 / 0.005)] * 2)
    assert math.isnan(float(masked_psnr(a, b, torch.zeros_like(mask))[0]))


def test_object_masks_cover_the_object_only():
    from soda.data import world

    K, c2w = world.default_camera(32, 2)
    f = torch.tensor([[0, 0, 0, 0, 2, 7], [0, 0, 0, 7, 0, 7]])  # small sphere, large cube
    m = object_masks(f, K, c2w, 32)
    assert m.shape == (2, 1, 32, 32) and m.dtype == torch.bool
    small, large = m.flatten(1).sum(1).tolist()
    assert 10 < small < large < 32 * 32 / 2
    # changing the object's hue changes exactly the masked pixels (up to antialiased edges)
    g = f.clone()
    g[:, 2] = 5
    diff = (world.render(f, K, c2w, 32) - world.render(g, K, c2w, 32)).abs().amax(1, keepdim=True) > 0.05
    assert (diff & ~m).sum() <= 0.1 * m.sum()  # hue changes outside the mask: only edge pixels
    assert (m & ~diff).sum() == 0


class _Oracle(torch.nn.Module):
    """x0-hat = the image z points to (z is the image index): a decoder that reads everything from z; with
    ``ignore_z`` it predicts the batch mean whatever z is."""

    def __init__(self, images, ignore_z=False):
        super().__init__()
        self.images, self.ignore_z = images, ignore_z
        self.cfg = SimpleNamespace(diffusion=SimpleNamespace(schedule="inverted_cosine", prediction="v"))

    def encode(self, x, rays=None):
        return torch.arange(x.shape[0], dtype=torch.float32)[:, None]

    def sections(self, z):
        return z[:, None, :]

    def denoise(self, x_t, t, zs, rays=None):
        x0 = self.images.mean(0, keepdim=True).expand_as(x_t) if self.ignore_z else self.images[zs[:, 0, 0].long()]
        ab = alpha_bar(t).view(-1, 1, 1, 1)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return ab.sqrt() * eps - (1 - ab).sqrt() * x0  # v


def test_z_use_gap_is_large_for_a_decoder_that_reads_z_and_zero_for_one_that_does_not():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 8, 8, generator=g) * 2 - 1
    mask = torch.zeros(6, 1, 8, 8, dtype=torch.bool)
    mask[..., 2:6, 2:6] = True
    reads = z_use_gap(_Oracle(images), images, None, mask)
    blind = z_use_gap(_Oracle(images, ignore_z=True), images, None, mask)
    for where in ("t1", "ab0.1"):
        assert reads[where]["gap"] > 30 and reads[where]["gap_object"] > 30  # exact recall vs another image
        assert blind[where]["gap"] == pytest.approx(0.0, abs=1e-6)
        assert blind[where]["gap_object"] == pytest.approx(0.0, abs=1e-6)


def test_amp_auto_is_a_fixed_rule_per_machine(monkeypatch):
    import soda.training.setup as tr

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert tr.resolve_amp("off", cuda) is False and tr.resolve_amp("bf16", cpu) is True
    assert tr.resolve_amp("auto", cuda) is True
    monkeypatch.setattr(tr, "cpu_has_amx_bf16", lambda: False)
    assert tr.resolve_amp("auto", cpu) is False  # AVX512-BF16 alone or no bf16: fp32
    monkeypatch.setattr(tr, "cpu_has_amx_bf16", lambda: True)
    assert tr.resolve_amp("auto", cpu) is True


def test_soda_eval_names_stay_functions_after_submodule_imports():
    import importlib

    import soda.eval as ev

    importlib.import_module("soda.eval.dci")
    importlib.import_module("soda.eval.mig")
    assert callable(ev.dci) and callable(ev.mig)  # the functions, not the modules of the same name


def test_learning_rate_schedule():
    """Warm-up, then constant (the default) or a cosine to lr * lr_final exactly at train.steps."""
    c = SODAConfig.from_yaml("tiny", ["--train.lr=1e-3", "--train.warmup=10", "--train.steps=110"])
    assert c.lr_at(0) == pytest.approx(1e-4) and c.lr_at(9) == pytest.approx(1e-3)
    assert c.lr_at(50) == c.lr_at(109) == pytest.approx(1e-3)
    c = SODAConfig.from_yaml(
        "tiny", ["--train.lr=1e-3", "--train.warmup=10", "--train.steps=110", "--train.lr_decay=cosine"]
    )
    assert c.lr_at(4) == pytest.approx(5e-4) and c.lr_at(10) == pytest.approx(1e-3)
    assert c.lr_at(60) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # half way: the mean of the two ends
    assert c.lr_at(110) == pytest.approx(1e-4) and c.lr_at(500) == pytest.approx(1e-4)
    lrs = [c.lr_at(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    with pytest.raises(ConfigError, match="lr_decay"):
        SODAConfig.from_yaml("tiny", ["--train.lr_decay=linear"])
