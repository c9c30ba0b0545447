"""soda.eval on image-folder checkpoints: held-out files only, references with known answers, probes against pixels
and an untrained encoder, the CLI and its report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import tiny_folder_cfg
from PIL import Image

from soda.data.formats.folder import ImageFolder
from soda.eval.folder import probe_targets, run_folder, untrained_like
from soda.eval.runner import EvalSizes
from soda.model import SODA


def _grey_checkpoint(tmp_path, n: int = 40):
    """Flat grey images labelled by brightness class (4 classes, so raw pixels separate them perfectly) with a split
    column; an untrained tiny SODA checkpoint trained 'on' them."""
    data = tmp_path / "data"
    data.mkdir()
    rows = ["filename,level,split"]
    for i in range(n):
        level = i % 4
        v = 30 + 60 * level + (i % 7)  # classes 0..3 are separated by brightness
        Image.fromarray(np.full((10, 10, 3), v, np.uint8)).save(data / f"g{i:02d}.png")
        rows.append(f"g{i:02d}.png,{'abcd'[level]},{'test' if i % 5 == 0 else 'train'}")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    cfg = tiny_folder_cfg(data)
    torch.manual_seed(0)
    SODA(cfg.model).save_pretrained(tmp_path / "ckpt", full_config=cfg)
    return data, tmp_path / "ckpt"


def test_probe_targets():
    y_tr, y_te = np.array([0, 1, 2, 5, 9]), np.array([3, 7])
    assert probe_targets("categorical", y_tr, y_te)[0].tolist() == [0, 1, 2, 5, 9]
    a, b, what = probe_targets("numeric", y_tr, y_te)  # median 2: above it or not
    assert a.tolist() == [0, 0, 0, 1, 1] and b.tolist() == [1, 1] and "median (2)" in what
    assert probe_targets("numeric", np.array([0, 1, 1]), np.array([1]))[2] == "classes"  # two values: as they are


def test_untrained_baseline_is_the_same_architecture_freshly_initialised(tmp_path):
    _, ckpt = _grey_checkpoint(tmp_path)
    from soda.model import load_pretrained

    model = load_pretrained(ckpt)
    fresh = untrained_like(model, seed=3)
    assert type(fresh) is type(model) and fresh.state_dict().keys() == model.state_dict().keys()
    assert all(a.shape == b.shape for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    again = untrained_like(model, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), again.state_dict().values()))


def test_run_folder_uses_held_out_files_and_known_references(tmp_path):
    data, ckpt = _grey_checkpoint(tmp_path)
    from soda.model import load_pretrained

    model = load_pretrained(ckpt)
    m = run_folder(model, EvalSizes(recon=6, steps=2, probe_train=100, probe_test=100))
    test = ImageFolder(data, res=16, split="test")
    assert m["held_out"] == {"n_test": 8, "n_train": 32, "split": "csv", "is_held_out": True}
    r = m["reconstruction"]
    assert r["n"] == 6 and {"psnr", "ssim", "psnr_shuffled_z", "gap_shuffled_z"} <= set(r)
    # the all-black reference has a closed form on flat images: PSNR = -20 log10(v / 255)
    v = np.array([float(test[i]["image"][0, 0, 0] + 1) / 2 for i in range(6)])
    assert r["psnr_black_image"] == pytest.approx(np.mean([-20 * math.log10(x) for x in v]), abs=1e-3)
    p = m["probes"]["level"]
    assert p["n_train"] == 32 and p["n_test"] == 8 and p["target"] == "classes"
    assert p["pixels"]["linear"] == 1.0  # brightness separates the classes linearly (kNN on L2-normalised flat
    assert 0 <= p["pixels"]["knn"] <= 1  # images cannot: they all normalise to the same vector)
    assert set(p) >= {"z (trained)", "untrained encoder", "pixels", "chance"}
    runs = p["untrained seeds"]  # several initialisations, each kept; the baseline is the best on the linear probe
    assert [r["seed"] for r in runs] == [0, 1, 2]
    assert p["untrained encoder"]["linear"] == max(r["linear"] for r in runs)
    assert "z_use_gap" in m and set(m["z_use_gap"]["t1"]) == {"psnr", "psnr_shuffled", "gap"}


def test_cli_on_a_folder_checkpoint(tmp_path, capsys):
    from soda.eval.__main__ import main

    _, ckpt = _grey_checkpoint(tmp_path)
    out = tmp_path / "eval"
    args = ["--checkpoint", str(ckpt), "--out", str(out), "--recon", "4", "--steps", "2"]
    assert main([*args, "--probe-train", "50", "--probe-test", "50"]) == 0
    printed = capsys.readouterr().out
    assert "held-out recon PSNR" in printed and "linear probe 'level'" in printed
    report = (out / "report.md").read_text()
    assert "**8 held-out files** (the `split` column of labels.csv; training read the other 32)" in report
    assert "| level | classes | 32 / 8 |" in report and (out / "reconstruction.png").exists()
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "folder"
