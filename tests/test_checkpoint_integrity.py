"""A checkpoint's weights are checked against the sha256 recorded in its config.json, and the explorer assets shipped
with a checkpoint are never rewritten by the app (issue 25 item 4): what is recomputed goes to the user cache."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from helpers import make_tiny_checkpoint

from soda import api, precompute
from soda.config import ConfigError
from soda.model.io import HASH_KEY, file_sha256, load_weights

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("integrity") / "tiny")


def flip_a_weight_byte(folder: Path) -> None:
    """Flip every bit of one byte inside the tensor data (past the safetensors header): a file that still parses."""
    f = folder / "model.safetensors"
    data = bytearray(f.read_bytes())
    at = 8 + int.from_bytes(data[:8], "little") + 1000
    data[at] ^= 0xFF
    f.write_bytes(bytes(data))


def test_save_pretrained_records_the_hash_of_the_weights(ckpt):
    meta = json.loads((ckpt / "config.json").read_text())
    assert meta[HASH_KEY] == file_sha256(ckpt / "model.safetensors")
    assert api.load_model(str(ckpt)).weights_sha256 == meta[HASH_KEY]


def test_one_flipped_byte_is_refused_with_a_message(ckpt, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(ckpt, bad)
    flip_a_weight_byte(bad)
    for load in (lambda: api.load_model(str(bad)), lambda: load_weights(api.load_model(str(ckpt)), bad)):
        with pytest.raises(ConfigError) as e:
            load()
        msg = str(e.value)
        assert str(bad / "model.safetensors") in msg and "damaged or changed since it was saved" in msg
        assert "Copy or download the checkpoint again" in msg and "save_pretrained" in msg
        assert "Traceback" not in msg and "\n" not in msg


def test_the_explorer_refuses_a_damaged_checkpoint(ckpt, tmp_path, cache):
    from app.explorer import Explorer, ExplorerError

    bad = tmp_path / "bad"
    shutil.copytree(ckpt, bad)
    flip_a_weight_byte(bad)
    with pytest.raises(ExplorerError, match="damaged or changed since it was saved"):
        Explorer(str(bad), n_map=32, n_examples=4).get()
    assert not cache.exists() or not any(cache.iterdir())  # nothing computed for it


def test_a_checkpoint_without_a_recorded_hash_still_loads_unchecked(ckpt, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(ckpt, old)
    meta = json.loads((old / "config.json").read_text())
    del meta[HASH_KEY]
    (old / "config.json").write_text(json.dumps(meta))
    assert api.load_model(str(old)).weights_sha256 is None
    flip_a_weight_byte(old)  # nothing to check it against: it loads (what saving it again fixes)
    m = api.load_model(str(old))
    m.save_pretrained(old, full_config=m.full_config)
    assert json.loads((old / "config.json").read_text())[HASH_KEY] == file_sha256(old / "model.safetensors")
    meta[HASH_KEY] = "not a hash"
    (old / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="must be 64 lowercase hex digits"):
        api.load_model(str(old))


def test_the_bundled_checkpoint_records_its_hash():
    folder = ROOT / "assets" / "checkpoints" / "world32"
    meta = json.loads((folder / "config.json").read_text())
    assert meta[HASH_KEY] == file_sha256(folder / "model.safetensors")
    shipped = json.loads((folder / "explorer" / "assets.json").read_text())
    assert shipped["fingerprint"] == meta[HASH_KEY][:16]  # its shipped assets belong to these weights


def files_of(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under ``folder`` -> (bytes, or b'' for a folder; permission bits)."""
    out = {".": (b"", stat.S_IMODE(folder.stat().st_mode))}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = (b"" if p.is_dir() else p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
    return out


def shipped_checkpoint(ckpt: Path, where: Path) -> Path:
    """A copy of ``ckpt`` with assets made as the developer command makes them (``beside=True``, what
    ``python -m soda.precompute`` passes; t-SNE included), as a bundled one has."""
    shutil.copytree(ckpt, where)
    made = precompute.load_or_compute(api.load_model(str(where)), n_examples=4, n_map=32, beside=True)
    precompute.tsne_map(made)
    assert sorted(p.name for p in (where / "explorer").iterdir()) == [
        "assets.json",
        "assets.safetensors",
        "ood.safetensors",
        "tsne.safetensors",
    ]
    return where


@pytest.mark.parametrize("read_only", [False, True])
def test_stale_shipped_assets_are_recomputed_into_the_cache_and_left_untouched(ckpt, tmp_path, cache, read_only):
    """The checkpoint's weights change after its assets were made (a bundled checkpoint whose assets are stale): the
    explorer starts, recomputes into the user cache, draws a t-SNE; every shipped file keeps its bytes and mode."""
    from app.explorer import Explorer

    folder = shipped_checkpoint(ckpt, tmp_path / "bundled")
    m = api.load_model(str(folder))
    with torch.no_grad():
        next(m.parameters()).add_(0.01)
    m.save_pretrained(folder, full_config=m.full_config)  # new weights (and hash); explorer/ is kept, now stale
    if read_only:  # as a read-only install has them (the tests may run as root, who could write anyway)
        for p in [*folder.rglob("*"), folder]:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
    before = files_of(folder)
    try:
        loaded = Explorer(str(folder), n_map=32, n_examples=4).get()
        fp = precompute.weights_fingerprint(folder)
        assert loaded.assets.fingerprint == fp and loaded.assets.folder == cache / fp and not loaded.assets.shipped
        assert precompute.tsne_map(loaded.assets).shape == (32, 2)
        assert sorted(p.name for p in (cache / fp).iterdir()) == [
            "assets.json",
            "assets.safetensors",
            "ood.safetensors",
            "tsne.safetensors",
        ]
        assert files_of(folder) == before
    finally:
        for p in [folder, *folder.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)


def test_matching_shipped_assets_are_read_and_what_is_added_goes_to_the_cache(ckpt, tmp_path, cache):
    """Shipped assets of these weights are used as they are; one without a detector gets one in a cache copy (the
    t-SNE comes along), a measurement is persisted there too; the shipped folder is never written."""
    folder = shipped_checkpoint(ckpt, tmp_path / "bundled")
    model = api.load_model(str(folder))
    a = precompute.load_or_compute(model, n_examples=4, n_map=32)
    assert a.shipped and a.folder == folder / "explorer" and a.ood is not None
    assert not (cache / a.fingerprint).exists()
    (folder / "explorer" / "ood.safetensors").unlink()  # shipped before the detector existed
    before = files_of(folder)
    b = precompute.load_or_compute(model, n_examples=4, n_map=32)
    fp = b.fingerprint
    assert b.ood is not None and b.folder == cache / fp and not b.shipped
    assert sorted(p.name for p in b.folder.iterdir()) == [
        "assets.json",
        "assets.safetensors",
        "ood.safetensors",
        "tsne.safetensors",
    ]
    c = precompute.load_or_compute(model, n_examples=4, n_map=32)  # the complete copy is found, not recalibrated
    assert c.folder == cache / fp and c.ood.threshold == b.ood.threshold
    shipped = precompute.load_assets(folder / "explorer", fp)
    shipped.shipped = True
    shipped.meta["slider_effects"] = {"note": "measured"}
    precompute.persist_measurement(shipped, directions_changed=False)
    assert shipped.folder == cache / fp
    assert json.loads((cache / fp / "assets.json").read_text())["slider_effects"] == {"note": "measured"}
    assert files_of(folder) == before


def test_the_developer_command_still_writes_beside_the_checkpoint(ckpt, tmp_path, cache):
    folder = tmp_path / "dev"
    shutil.copytree(ckpt, folder)
    a = precompute.load_or_compute(api.load_model(str(folder)), n_examples=4, n_map=32, beside=True)
    assert a.folder == folder / "explorer" and not a.shipped
    assert not (cache / a.fingerprint).exists()
