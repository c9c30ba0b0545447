"""The trainer: overfitting one batch, exact resume, interruption, NaN handling, DDP, outputs on disk."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from soda.config import SODAConfig
from soda.data.streams import make_stream
from soda.train import TrainingDiverged, main, train
from soda.training.samples import held_out_loss

ROOT = Path(__file__).resolve().parents[1]


def _train_cmd(out_dir, *overrides) -> list[str]:
    """The CLI command that trains the tiny preset into ``out_dir`` (for subprocess tests)."""
    return [sys.executable, "-m", "soda.train", "--config", "tiny", f"--train.out_dir={out_dir}", *overrides]


def _cfg(tmp_path, *overrides):
    return SODAConfig.from_yaml("tiny", [f"--train.out_dir={tmp_path / 'run'}", *overrides])


def _losses(out_dir):
    lines = [json.loads(x) for x in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if "loss" in r]


def test_overfits_one_batch(tmp_path):
    cfg = _cfg(
        tmp_path,
        "--train.steps=150",
        "--train.lr=3e-3",
        "--train.warmup=1",
        "--train.ckpt_every=1000",
        "--model.latent.p_section=0",
        "--model.latent.p_drop=0",
        "--train.log_every=50",
    )
    batch = next(make_stream(cfg))
    batch = {k: v[:4] for k, v in batch.items()}
    from soda.model import SODA

    torch.manual_seed(cfg.train.seed)
    before = held_out_loss(SODA(cfg.model), batch)
    out = train(cfg, stream=itertools.repeat(batch), quiet=True)
    after = held_out_loss(out["model"], batch)
    assert after < before / 5, (before, after)


def test_resume_continues_bit_for_bit(tmp_path):
    full = train(_cfg(tmp_path / "a", "--train.steps=6", "--train.log_every=1", "--train.ckpt_every=3"), quiet=True)
    cfg_b = _cfg(tmp_path / "b", "--train.steps=6", "--train.log_every=1", "--train.ckpt_every=3")
    train(cfg_b, stop_at=3, quiet=True)  # interrupted after the checkpoint at step 3
    resumed = train(cfg_b, resume=True, quiet=True)
    assert resumed["step"] == full["step"] == 6
    assert _losses(tmp_path / "b" / "run") == _losses(tmp_path / "a" / "run")
    for (k, a), b in zip(full["ema"].state_dict().items(), resumed["ema"].state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_run_folder_contents_and_ctrl_c(tmp_path):
    cfg = _cfg(tmp_path, "--train.steps=100", "--train.ckpt_every=1000", "--train.sample_every=2")

    def interrupted_stream():
        inner = make_stream(cfg)
        for _ in range(2):
            yield next(inner)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, stream=interrupted_stream(), quiet=True)
    run = tmp_path / "run"
    assert json.loads((run / "latest.json").read_text())["step"] == 2
    assert (run / "checkpoints" / "step-00000002" / "state.safetensors").exists()
    assert (run / "ema" / "model.safetensors").exists() and (run / "config.yaml").exists()
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]


def test_sample_grid_written(tmp_path):
    from PIL import Image

    cfg = _cfg(tmp_path, "--train.steps=2", "--train.sample_every=2")
    train(cfg, quiet=True)
    img = Image.open(tmp_path / "run" / "samples" / "step-00000002.png")
    assert img.size == (3 * 16, 8 * 16)  # 8 rows of source | target | generated


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, "--train.steps=10", "--train.ckpt_every=2")

    def poisoned():
        inner = make_stream(cfg)
        for i in itertools.count():
            b = next(inner)
            if i == 3:
                b["tgt"] = b["tgt"] * float("nan")
            yield b

    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 4.*last good checkpoint: .*step-00000002"):
        train(cfg, stream=poisoned(), quiet=True)
    assert json.loads((tmp_path / "run" / "latest.json").read_text())["step"] == 2


def test_losses_are_read_back_at_log_steps_and_a_nan_names_its_step(tmp_path):
    """The loss stays on the device between log steps; when it is read back (step 5) a NaN of step 3 is reported as
    step 3, and nothing was saved from the poisoned weights."""
    cfg = _cfg(tmp_path, "--train.steps=10", "--train.log_every=5", "--train.ckpt_every=100")

    def poisoned():
        inner = make_stream(cfg)
        for i in itertools.count():
            b = next(inner)
            if i == 2:
                b["tgt"] = b["tgt"] * float("nan")
            yield b

    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 3: .*no checkpoint was written yet"):
        train(cfg, stream=poisoned(), quiet=True)
    assert not (tmp_path / "run" / "latest.json").exists()


def test_cli_reports_bad_config(tmp_path, capsys):
    assert main(["--config", "tiny", "--train.stpes=3"]) == 2
    assert "did you mean 'train.steps'" in capsys.readouterr().err
    assert main(["--config", "tiny", f"--train.out_dir={tmp_path}", "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_ddp_step(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29531",
        "-m",
        "soda.train",
        "--config",
        "tiny",
        f"--train.out_dir={tmp_path / 'ddp'}",
        "--train.steps=2",
        "--train.log_every=1",
        "--train.threads=1",
    ]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert steps[-1]["images_seen"] == 2 * 2 * 8  # two ranks x two steps x batch 8


def test_folder_preset_trains_on_a_folder_of_images(tmp_path):
    import numpy as np
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(imgs / f"{i}.png")
    cfg = SODAConfig.from_yaml(
        "folder",
        [
            f"--data.path={imgs}",
            f"--train.out_dir={tmp_path / 'run'}",
            "--train.steps=2",
            "--train.batch_size=4",
            "--model.res=16",
            "--data.res=16",
            "--model.unet.channel_mult=[1,2]",
            "--model.unet.attention_levels=[1]",
            "--model.latent.z_dim=20",
        ],
    )
    out = train(cfg, quiet=True)
    assert out["step"] == 2 and (tmp_path / "run" / "samples" / "step-00000002.png").exists()


OPTIONAL = [
    "PIL",
    "sklearn",
    "scipy",
    "gradio",
    "h5py",
    "matplotlib",
    "huggingface_hub",
    "open_clip",
    "plotly",
    "skimage",
    "torchvision",
    "imageio",
    "pandas",
]


def test_core_trainer_runs_with_only_core_dependencies(tmp_path):
    """torch, numpy, safetensors, tqdm and PyYAML are enough to train and checkpoint (a GPU box without network)."""
    shadow = tmp_path / "shadow"
    for name in OPTIONAL:  # packages that raise ImportError when imported, as if they were not installed
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed (test)')\n")
    env = dict(os.environ, PYTHONPATH=f"{shadow}{os.pathsep}{ROOT}")
    cmd = _train_cmd(tmp_path / "run", "--train.steps=2", "--train.sample_every=2")
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "run" / "ema" / "model.safetensors").exists()
    assert "Pillow is not installed" in res.stderr


def test_sigterm_writes_a_checkpoint_and_exits(tmp_path):
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = tmp_path / "run"
    cmd = _train_cmd(
        run, "--train.steps=100000", "--train.ckpt_every=100000", "--train.log_every=1", "--train.threads=1"
    )
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / "metrics.jsonl").exists():
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    step = json.loads((run / "latest.json").read_text())["step"]
    logged = max(json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines())
    assert step >= logged >= 1 and "interrupted: checkpoint saved" in err
