"""The one-command evaluation report on a tiny checkpoint (mechanics; the numbers of a 2-step model mean nothing)."""

import json

import pytest

from soda.config import SODAConfig
from soda.eval.__main__ import main
from soda.train import train


@pytest.mark.slow
def test_eval_cli_writes_report_metrics_and_figures(tmp_path, quick_factor_classifiers):
    cfg = SODAConfig.from_yaml("tiny", [f"--train.out_dir={tmp_path / 'run'}", "--train.steps=2"])
    train(cfg, quiet=True)
    vae = SODAConfig.from_yaml("tiny", [f"--train.out_dir={tmp_path / 'vae'}", "--train.steps=2", "--model.kind=vae"])
    train(vae, quiet=True)
    out = tmp_path / "report"
    rc = main(
        [
            "--checkpoint",
            str(tmp_path / "run" / "ema"),
            "--out",
            str(out),
            "--dci-train",
            "60",
            "--dci-test",
            "30",
            "--probe-train",
            "60",
            "--probe-test",
            "30",
            "--recon",
            "8",
            "--nvs-scenes",
            "3",
            "--nvs-views",
            "2",
            "--steps",
            "2",
            "--edit-scenes",
            "2",
            "--view-scenes",
            "2",
            "--view-frames",
            "2",
            "--compare",
            str(tmp_path / "vae" / "ema"),
        ]
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert 0 <= m["dci"]["disentanglement"] <= 1 and 0 <= m["mig"] <= 1
    assert m["reconstruction"]["n"] == 8 and m["novel_view"]["n_targets"] == 3
    assert set(m["probes"]) == {"floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"}
    assert m["images_seen"] == 16 and m["sizes"]["dci_train"] == 60
    report = (out / "report.md").read_text()
    assert "held-out scenes" in report and "60 train / 30 test" in report and "## Comparison" in report
    assert "## Edits" in report and "slider effect: object_hue +" in report
    assert set(m["edits"]["sliders"]["sliders"]) == {
        "floor_hue +", "wall_hue +", "object_hue +", "scale +", "orientation +",
        "shape: cube", "shape: cylinder", "shape: sphere", "shape: capsule",
    }  # fmt: skip
    assert m["edits"]["views"]["n_scenes"] == 2 and "mixing" in m["edits"]
    for f in ["reconstruction", "novel_views", "traversals", "interpolation", "dci_importance", "pca_factors"]:
        assert (out / f"{f}.png").stat().st_size > 0
    for f in ["edits_matrix", "edits_examples", "edits_mixing", "edits_views"]:
        assert (out / f"{f}.png").stat().st_size > 0
    table = (out / "comparison.md").read_text()
    assert "| run |" in table and "| vae |" in table


def test_eval_cli_rejects_a_non_checkpoint(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a SODA checkpoint folder" in capsys.readouterr().err
