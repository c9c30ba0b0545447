"""soda.precompute: explorer assets are computed once, stored as safetensors + JSON (never pickled), found again by
the weights' hash, and hold directions and distances with the properties the explorer relies on."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from conftest import tiny_folder_cfg

from soda import api, latent_map, precompute
from soda.atomic import is_writable


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from helpers import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def test_compute_store_and_reload(ckpt, cache):
    model = api.load_model(str(ckpt))
    seen = []
    a = precompute.load_or_compute(model, n_examples=6, n_map=48, force=True, progress=lambda f, s: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    assert a.folder == cache / a.fingerprint  # the user cache: only `python -m soda.precompute` writes beside
    assert sorted(p.name for p in a.folder.iterdir()) == ["assets.json", "assets.safetensors", "ood.safetensors"]
    assert a.examples.shape == (6, 16, 16, 3) and a.examples.dtype.name == "uint8"
    assert a.example_latents.shape == (6, model.z_dim) and len(a.example_captions) == 6
    assert a.map_latents.shape == (48, model.z_dim) and a.map_factors.shape == (48, 6)
    assert a.section_dirs.shape == (model.n_sections, 3, model.z_dim)
    n_free = a.free_dirs.shape[0]  # the label-free sliders (soda.sliders.labelfree) and where each acts
    assert 1 <= n_free <= 21 and a.free_dirs.shape[1] == model.z_dim and a.free_maps.shape == (n_free, 16, 16)
    assert len(a.free_sliders()) == n_free
    assert a.factor_names[0] == "floor_hue" and "shape: sphere" in a.named_labels
    b = precompute.load_or_compute(model, n_examples=6, n_map=48)  # found again, not recomputed
    for k in ("example_latents", "section_dirs", "free_dirs", "free_maps", "named_dirs", "map_latents", "pca_axes"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert (a.examples == b.examples).all() and b.example_captions == a.example_captions
    assert b.fingerprint == a.fingerprint == precompute.weights_fingerprint(ckpt)
    # examples are the checkpoint's own encodings of its held-out images
    x = api.from_uint8(a.examples[:2])
    assert torch.allclose(api.encode(model, x), a.example_latents[:2], atol=1e-3)


def test_other_weights_invalidate_the_cache(ckpt, cache, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(ckpt, base)
    model = api.load_model(str(base))
    precompute.load_or_compute(model, n_examples=4, n_map=32, beside=True)  # as the developer command does
    other = tmp_path / "other"
    shutil.copytree(base, other)
    m2 = api.load_model(str(other))
    with torch.no_grad():
        next(m2.parameters()).add_(0.01)
    m2.save_pretrained(other, full_config=m2.full_config)  # keeps explorer/ but with the old fingerprint
    m2 = api.load_model(str(other))
    assert precompute.load_assets(other / "explorer", precompute.weights_fingerprint(other)) is None
    fresh = precompute.load_or_compute(m2, n_examples=4, n_map=32)
    assert fresh.fingerprint == precompute.weights_fingerprint(other)


def test_read_only_checkpoint_uses_the_user_cache(ckpt, cache, tmp_path, monkeypatch):
    import shutil

    ro = tmp_path / "ro"
    shutil.copytree(ckpt, ro, ignore=shutil.ignore_patterns("explorer"))
    model = api.load_model(str(ro))
    writable = precompute.is_writable
    monkeypatch.setattr(precompute, "is_writable", lambda d: ro not in d.parents and d != ro and writable(d))
    a = precompute.load_or_compute(model, n_examples=4, n_map=32)
    assert a.folder == cache / a.fingerprint and not (ro / "explorer").exists()
    assert precompute.load_or_compute(model, n_examples=4, n_map=32).folder == a.folder
    os.chmod(ro, stat.S_IRUSR | stat.S_IXUSR)  # a truly read-only folder is refused without the patch
    try:
        assert os.access(ro, os.W_OK) or not writable(ro / "explorer")
    finally:
        os.chmod(ro, stat.S_IRWXU)


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_failure_during_the_folder_swap_keeps_the_previous_assets(ckpt, cache, monkeypatch, fail_at):
    """A failure at either rename of the swap (old folder aside, new folder in) leaves the previous assets folder in
    place, complete, with no hidden leftovers (the swap once lost the folder when the second rename failed)."""
    import errno

    model = api.load_model(str(ckpt))
    a = precompute.load_or_compute(model, n_examples=4, n_map=32)
    folder = a.folder
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real, calls = os.replace, []

    def replace(src, dst, *args, **kw):
        if os.path.basename(str(dst)) == folder.name or os.path.basename(str(src)) == folder.name:
            calls.append(dst)
            if len(calls) == fail_at:
                raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *args, **kw)

    monkeypatch.setattr(os, "replace", replace)
    a.named_labels = ["changed"] * len(a.named_labels)
    with pytest.raises(OSError):
        precompute.save_assets(a, folder, a.fingerprint)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}")]
    assert precompute.load_assets(folder, a.fingerprint) is not None


def test_hub_snapshots_are_never_written():
    from pathlib import Path

    snap = Path("/x/hub/models--a--b/snapshots/0123/explorer")
    assert not is_writable(snap)


def test_tsne_is_cached_beside_the_assets(ckpt, cache):
    model = api.load_model(str(ckpt))
    a = precompute.load_or_compute(model, n_examples=4, n_map=48)
    y = precompute.tsne_map(a)
    assert y.shape == (48, 2) and torch.isfinite(y).all()
    assert (a.folder / precompute.TSNE_NAME).exists()
    assert torch.equal(precompute.tsne_map(a), y)
    meta = json.loads((a.folder / precompute.META_NAME).read_text())
    assert meta["format"] == "soda-explorer" and meta["n_map"] == 48


def test_label_direction_finds_the_informative_axis():
    torch.manual_seed(0)
    Z = torch.randn(600, 5)
    y = Z[:, 3] > 0.2  # only axis 3 carries the label
    d = latent_map.label_direction(Z, y)
    assert d[3] > 0 and d[3].abs() / d.norm() > 0.95
    assert d.norm().item() == pytest.approx(1.0, rel=0.15)  # one std of Z along it


def test_named_directions_per_factor_and_per_shape_class():
    torch.manual_seed(1)
    Z = torch.randn(400, 6)
    f = torch.stack([(Z[:, 0] * 3 + 5).clamp(0, 9).round(), torch.randint(0, 4, (400,)).float()], 1).long()
    dirs, labels = latent_map.named_directions(Z, f, ["floor_hue", "shape"])
    assert labels == ["floor_hue +", "shape: cube", "shape: cylinder", "shape: sphere", "shape: capsule"]
    assert dirs.shape == (5, 6) and dirs[0, 0] / dirs[0].norm() > 0.9


def test_ood_distance_separates_far_latents():
    torch.manual_seed(2)
    Z = torch.randn(500, 8) * torch.linspace(0.1, 2.0, 8)
    mean, prec, dist = latent_map.ood_model(Z)
    thr = torch.quantile(dist, 0.99)
    assert (dist <= thr).float().mean() >= 0.99
    far = mean + torch.full((8,), 10.0)
    d = (((far - mean) @ prec) * (far - mean)).sum().sqrt()
    assert d > 3 * thr


def test_principal_axes_are_orthonormal_with_fixed_signs():
    torch.manual_seed(3)
    Z = torch.randn(300, 6) @ torch.randn(6, 6)
    mean, axes = latent_map.principal_axes(Z, 4)
    assert torch.allclose(axes @ axes.T, torch.eye(4), atol=1e-5)
    assert (axes.gather(1, axes.abs().argmax(1, keepdim=True)) > 0).all()
    _, again = latent_map.principal_axes(Z.flip(0), 4)
    assert torch.allclose(axes, again, atol=1e-4)


def test_cli(ckpt, cache, capsys):
    assert precompute.main([str(ckpt), "--n-map", "32", "--n-examples", "4", "--no-measure"]) == 0
    assert f"explorer assets in {ckpt / 'explorer'}" in capsys.readouterr().out  # beside: the developer's command
    assert precompute.main([str(ckpt.parent / "missing")]) == 2


def test_a_folder_checkpoint_without_cameras(tmp_path, cache):
    """Image-folder data (labels from a CSV, no cameras): examples and map from the held-out files only, one label
    direction per class of a categorical column; the explorer works without cameras."""
    import numpy as np
    from PIL import Image

    from app.explorer import Explorer, ExplorerError
    from soda.model import SODA

    data = tmp_path / "images"
    data.mkdir()
    rows = ["filename,bright,animal,split"]
    held = set()
    for i in range(24):
        v = 40 + 8 * i
        Image.fromarray(np.full((20, 24, 3), v, np.uint8)).save(data / f"{i:02d}.png")
        split = "train" if i % 3 == 0 else "test"
        if split == "test":
            held.add(f"{i:02d}.png")
        rows.append(f"{i:02d}.png,{int(v > 130)},{['cat', 'dog', 'emu', 'fox'][i % 4]},{split}")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    cfg = tiny_folder_cfg(data)
    SODA(cfg.model).save_pretrained(tmp_path / "ckpt", full_config=cfg)
    ex = Explorer(str(tmp_path / "ckpt"), n_map=40, n_examples=4)
    m = ex.get()
    assert m.assets.map_latents.shape == (16, 20) and m.assets.camera is None and m.camera is None  # 16 held out
    assert m.assets.meta["held_out"] is True
    assert {c.split(" ")[0] for c in m.assets.example_captions} <= held
    assert m.assets.factor_names == ["bright", "animal"]
    assert m.assets.named_labels == ["bright +", "animal: cat", "animal: dog", "animal: emu", "animal: fox"]
    # the map is exactly the held-out images: encoding them again gives the map latents (as a set)
    from soda.data.formats.folder import ImageFolder

    test = ImageFolder(data, res=16, split="test")
    z = api.encode(m.model, torch.stack([test[i]["image"] for i in range(len(test))]))
    assert torch.cdist(m.assets.map_latents, z).min(1).values.max() < 1e-4
    state = ex.load_example(ex.new_state(), 0, 0, "preview")
    assert ex.edited(state, 0, "preview").shape == (16, 16, 3)
    fig = ex.map_figure(m.key, "PCA", "bright")
    assert len(fig["data"][0]["x"]) == 16 and fig["layout"]["title"]["text"].startswith("16 held-out latents")
    with pytest.raises(ExplorerError, match="without cameras"):
        ex.novel_view(state, 0, 20, 4, 0, "preview")
