"""Image folders: a held-out split that training never reads, label kinds, and a trainer that tells the truth about
time limits and stops (progress bar, stop line, sample grids)."""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pytest
import torch
from conftest import tiny_folder_cfg
from PIL import Image

from soda.config import SODAConfig
from soda.data.formats import FormatError
from soda.data.formats.folder import ImageFolder, hash_unit, held_out_by_hash, read_labels_table
from soda.data.streams import EmptySplitError, make_stream

HELD_OUT_OF_200 = [12, 13, 25, 49, 58, 89, 96, 99, 102, 108, 110, 135, 145, 153, 166, 172, 198]


def _colour_folder(root, n: int, sub: str = "") -> dict[str, int]:
    """n flat images, each a distinct grey level -> {relative path: grey level}."""
    (root / sub).mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(n):
        v = 10 + (240 * i) // max(1, n - 1)
        rel = f"{sub}/img_{i:03d}.png" if sub else f"img_{i:03d}.png"
        Image.fromarray(np.full((12, 12, 3), v, np.uint8)).save(root / rel)
        out[rel] = v
    return out


def _folder_cfg(tmp_path, data, *more) -> SODAConfig:
    return tiny_folder_cfg(data, f"--train.out_dir={tmp_path / 'run'}", *more)


# --------------------------------------------------------------------------------------------------------------
# The split
# --------------------------------------------------------------------------------------------------------------
def test_hash_split_is_a_fixed_function_of_the_path():
    """SHA-256 of the POSIX relative path as a number in [0, 1): the known values, on any machine."""
    assert hash_unit("a.png") == int(hashlib.sha256(b"a.png").hexdigest()[:16], 16) / 2**64
    names = [f"img_{i:03d}.png" for i in range(200)]
    held = held_out_by_hash(names)
    assert [i for i, h in enumerate(held) if h] == HELD_OUT_OF_200  # ~10 %, fixed forever
    # a file's split does not depend on the other files
    assert held_out_by_hash(names[::-1])[::-1] == held and held_out_by_hash(names[:100]) == held[:100]
    # a handful of files: the smallest hash is held out; one file: nothing is
    assert held_out_by_hash(["a.png", "b.png", "c.png"]) == [False, False, True]
    assert held_out_by_hash(["a.png"]) == [False] and held_out_by_hash(names, 0.0) == [False] * 200


def test_folder_splits_are_disjoint_and_cover_the_folder(tmp_path):
    grey = _colour_folder(tmp_path, 60, sub="sub")
    every = ImageFolder(tmp_path, res=8)
    train, test = ImageFolder(tmp_path, res=8, split="train"), ImageFolder(tmp_path, res=8, split="test")
    assert len(every) == 60 and every.n_test == len(test) and len(train) + len(test) == 60
    assert not set(train.relpaths) & set(test.relpaths) and set(train.relpaths) | set(test.relpaths) == set(grey)
    assert test.relpaths == [r for r, h in zip(every.relpaths, held_out_by_hash(every.relpaths)) if h]
    assert test.split_source == "hash" and all(r.startswith("sub/") for r in test.relpaths)
    # adding files never moves an existing file between the splits
    _colour_folder(tmp_path, 90, sub="sub")
    assert set(test.relpaths) <= set(ImageFolder(tmp_path, res=8, split="test").relpaths)


def test_one_image_has_no_held_out_split(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "only.png")
    assert len(ImageFolder(tmp_path, res=8, split="train")) == 1
    with pytest.raises(EmptySplitError, match="no test images"):
        ImageFolder(tmp_path, res=8, split="test")


def test_split_column_replaces_the_hash(tmp_path):
    _colour_folder(tmp_path, 6)
    rows = ["filename,label,split"] + [f"img_{i:03d}.png,{i % 2},{'test' if i >= 4 else 'train'}" for i in range(6)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    test = ImageFolder(tmp_path, res=8, split="test")
    assert test.split_source == "csv" and test.relpaths == ["img_004.png", "img_005.png"]
    assert test.label_names == ["label"] and test.labels.tolist() == [[0], [1]]  # 'split' is not a label
    (tmp_path / "labels.csv").write_text("filename,label,split\nimg_000.png,1,maybe\n")
    with pytest.raises(FormatError, match="line 2: split must be train or test"):
        ImageFolder(tmp_path, res=8)


def test_label_kinds(tmp_path):
    rows = ["filename,digit,smiling,size,animal,grade:categorical,code:numeric"]
    for i in range(12):
        rows.append(f"f{i}.png,{i % 10},{i % 2},{[9.25, 10.5, 2.0][i % 3]},{'cat' if i % 2 else 'dog'},{i % 2},{i % 5}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    t = read_labels_table(tmp_path / "labels.csv")
    assert t["names"] == ["digit", "smiling", "size", "animal", "grade", "code"]
    assert t["kinds"] == {
        "digit": "categorical",  # 10 integer classes
        "smiling": "numeric",  # two values: one direction
        "size": "numeric",  # real numbers: classes in numeric order, not string order
        "animal": "categorical",
        "grade": "categorical",  # forced by the header suffix
        "code": "numeric",
    }
    assert t["classes"]["size"] == ["2.0", "9.25", "10.5"] and t["labels"][:3, 2].tolist() == [1, 2, 0]
    assert t["labels"][:, 0].tolist() == [i % 10 for i in range(12)]  # integers keep their values


def test_streams_read_only_their_split(tmp_path):
    """Constant images: every crop of a file keeps its grey level, so each batch row names its file."""
    grey = _colour_folder(tmp_path, 40)
    cfg = _folder_cfg(tmp_path, tmp_path, "--train.batch_size=16")
    held = set(ImageFolder(tmp_path, res=16, split="test").relpaths)
    to_u8 = {v: r for r, v in grey.items()}

    def files(batch) -> set[str]:
        levels = ((batch["src"].mean(dim=(1, 2, 3)) + 1) * 127.5).round().int().tolist()
        return {to_u8[min(to_u8, key=lambda v: abs(v - x))] for x in levels}

    seen_train = set().union(*(files(b) for b in itertools.islice(make_stream(cfg), 12)))
    seen_test = set().union(*(files(b) for b in itertools.islice(make_stream(cfg, split="test"), 4)))
    assert seen_train and not seen_train & held  # training never reads a held-out file
    assert seen_test == held


def test_augment_identity_pairs(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):  # noise: two independent crops are never identical
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"n{i}.png")
    same = {}
    for p in (0.0, 0.5):
        cfg = _folder_cfg(tmp_path, tmp_path, "--train.batch_size=200", f"--data.p_identity={p}")
        b = next(make_stream(cfg))
        same[p] = float((b["src"] == b["tgt"]).flatten(1).all(1).float().mean())
    assert same[0.0] == 0.0 and 0.4 < same[0.5] < 0.6


# --------------------------------------------------------------------------------------------------------------
# The trainer: progress, stops, sample grids
# --------------------------------------------------------------------------------------------------------------
class _Bar:
    total, refreshed = 1000, 0

    def refresh(self):
        self.refreshed += 1


def test_progress_follows_the_time_limit():
    from soda.train import _follow_time_limit

    tc = SODAConfig.from_yaml("tiny", ["--train.steps=1000", "--train.max_minutes=1"]).train
    bar = _Bar()
    # 100 steps in the first 30 s (3.33 steps/s): 30 s are left, the run will stop near step 200, not 1000
    assert _follow_time_limit(bar, tc, 100, 0, eta=270.0, elapsed=30.0, session=30.0) == 30.0
    assert bar.total == 200 and bar.refreshed == 1
    bar = _Bar()  # the step budget ends first: nothing changes
    assert _follow_time_limit(bar, tc, 900, 0, eta=10.0, elapsed=30.0, session=30.0) == 10.0 and bar.total == 1000
    tc.max_minutes = 0
    assert _follow_time_limit(bar, tc, 100, 0, eta=270.0, elapsed=30.0, session=30.0) == 270.0


def test_time_limit_stop_says_so_and_writes_a_grid(tmp_path, capsys):
    from soda.train import train

    _colour_folder(tmp_path / "data", 30)
    cfg = _folder_cfg(tmp_path, tmp_path / "data", "--train.steps=500", "--train.max_minutes=0.0001")
    out = train(cfg)
    err = capsys.readouterr().err
    assert out["step"] < 500
    assert "time limit reached (train.max_minutes=0.0001): stopped at step" in err and "--resume" in err
    assert (tmp_path / "run" / "samples" / f"step-{out['step']:08d}.png").exists()
    val = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_loss" in r for r in val)


def test_sample_grids_every_n_minutes_and_at_the_end(tmp_path, capsys):
    from soda.train import train

    _colour_folder(tmp_path / "data", 30)
    cfg = _folder_cfg(tmp_path, tmp_path / "data", "--train.steps=3", "--train.sample_every=1000")
    cfg.train.sample_minutes = 1e-9  # every step is "N minutes later"
    train(cfg)
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png")) == [
        f"step-{s:08d}.png" for s in (1, 2, 3)
    ]
    assert "finished: step 3 of 3" in capsys.readouterr().err
    cfg.train.sample_minutes, cfg.train.out_dir = 0, str(tmp_path / "run2")
    train(cfg)  # no time cadence: only the end
    assert [p.name for p in (tmp_path / "run2" / "samples").glob("*.png")] == ["step-00000003.png"]


def test_interrupt_writes_a_checkpoint_and_a_grid(tmp_path, monkeypatch, capsys):
    import soda.train as tr

    _colour_folder(tmp_path / "data", 30)
    real = tr.make_stream

    def stream(cfg, *a, split="train", **k):
        inner = real(cfg, *a, split=split, **k)
        if split != "train":
            return inner

        def gen():
            for i, b in enumerate(inner):
                if i == 2:
                    raise KeyboardInterrupt  # what SIGTERM becomes in main()
                yield b

        return gen()

    monkeypatch.setattr(tr, "make_stream", stream)
    cfg = _folder_cfg(tmp_path, tmp_path / "data", "--train.steps=50", "--train.sample_every=1000")
    with pytest.raises(KeyboardInterrupt):
        tr.train(cfg)
    err = capsys.readouterr().err
    assert "interrupted: checkpoint saved at step 2" in err and "samples (source | target | generated)" in err
    assert (tmp_path / "run" / "samples" / "step-00000002.png").exists()


def test_held_out_batch_comes_from_held_out_files(tmp_path):
    from soda.train import _held_out_batch

    grey = _colour_folder(tmp_path / "data", 40)
    held = {grey[r] for r in ImageFolder(tmp_path / "data", res=16, split="test").relpaths}
    cfg = _folder_cfg(tmp_path, tmp_path / "data")
    b = _held_out_batch(cfg, torch.device("cpu"), quiet=True)
    levels = ((b["src"].mean(dim=(1, 2, 3)) + 1) * 127.5).tolist()
    assert all(min(abs(x - v) for v in held) < 1.0 for x in levels)
