"""View-pair streams, evaluation sets and on-disk exports."""

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from soda.data import cameras, views, world
from soda.data.formats.shapes3d import Shapes3D


def _first(ds, n=1):
    return list(itertools.islice(iter(ds), n))


def test_world_pairs_batch_layout():
    b = _first(views.WorldPairs(res=16, batch_size=6, p_identity=0.0))[0]
    for key in ("src", "tgt"):
        assert b[key].shape == (6, 3, 16, 16) and b[key].dtype == torch.float32
        assert b[key].min() >= -1 and b[key].max() <= 1
    for key in ("src_rays", "tgt_rays"):
        assert b[key].shape == (6, 6, 16, 16)
    assert b["src_K"].shape == b["tgt_K"].shape == (6, 3, 3)
    assert b["src_c2w"].shape == b["tgt_c2w"].shape == (6, 4, 4)
    assert b["factors"].shape == (6, 6) and b["factors"].dtype == torch.long
    assert torch.allclose(b["src_rays"], cameras.ray_channels(b["src_K"], b["src_c2w"], 16, 16))
    assert torch.allclose(b["tgt_rays"], cameras.ray_channels(b["tgt_K"], b["tgt_c2w"], 16, 16))


def test_multiview_pairs_are_the_same_scene_from_another_camera():
    b = _first(views.WorldPairs(res=16, batch_size=8, p_identity=0.0, seed=3))[0]
    assert not torch.equal(b["src_c2w"], b["tgt_c2w"])
    assert ((b["src"] - b["tgt"]).flatten(1).abs().max(1).values > 0).all()
    # The target is exactly a render of the same factors from the target camera.
    tgt = world.render(b["factors"], b["tgt_K"], b["tgt_c2w"], 16) * 2 - 1
    assert torch.allclose(b["tgt"], tgt, atol=1e-6)


def test_p_identity_one_and_identity_mode_repeat_the_source():
    same_camera = views.WorldPairs(res=16, batch_size=4, p_identity=1.0)
    identity = views.WorldPairs(res=16, batch_size=4, mode="identity")
    for ds in (same_camera, identity):
        b = _first(ds)[0]
        assert torch.equal(b["src"], b["tgt"]) and torch.equal(b["src_c2w"], b["tgt_c2w"])
        assert torch.equal(b["src_rays"], b["tgt_rays"])


def test_fixed_camera_identity_stream():
    b = _first(views.WorldPairs(res=16, batch_size=4, mode="identity", camera="fixed"))[0]
    K, c2w = world.default_camera(16, 4)
    assert torch.allclose(b["src_c2w"], c2w) and torch.equal(b["src"], b["tgt"])
    with pytest.raises(ValueError, match="multiview"):
        views.WorldPairs(camera="fixed", mode="multiview")


def test_streams_are_deterministic_per_seed_and_distinct_per_rank():
    a = _first(views.WorldPairs(res=8, batch_size=4, seed=5), 2)
    b = _first(views.WorldPairs(res=8, batch_size=4, seed=5), 2)
    c = _first(views.WorldPairs(res=8, batch_size=4, seed=5, rank=1, world_size=2), 2)
    for x, y in zip(a, b):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert not torch.equal(a[0]["factors"], c[0]["factors"])
    assert not torch.equal(a[0]["factors"], a[1]["factors"])


def test_start_step_resumes_the_stream_exactly():
    full = _first(views.WorldPairs(res=8, batch_size=3, seed=1), 3)
    resumed = _first(views.WorldPairs(res=8, batch_size=3, seed=1, start_step=2))[0]
    assert all(torch.equal(full[2][k], resumed[k]) for k in resumed)


def test_training_stream_never_shows_held_out_scenes_and_test_stream_only_those():
    train = _first(views.WorldPairs(res=8, batch_size=64, mode="identity", supersample=1), 4)
    assert not any(world.in_test_split(b["factors"]).any() for b in train)
    test = _first(views.WorldPairs(res=8, batch_size=64, split="test", mode="identity", supersample=1))[0]
    assert world.in_test_split(test["factors"]).all()


def test_dataloader_workers_deliver_the_same_stream():
    direct = _first(views.WorldPairs(res=8, batch_size=2, seed=9, supersample=1), 4)
    loader = DataLoader(views.WorldPairs(res=8, batch_size=2, seed=9, supersample=1), batch_size=None, num_workers=2)
    via_workers = list(itertools.islice(iter(loader), 4))
    for a, b in zip(direct, via_workers):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_augment_pairs():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 20, 24, generator=g) * 2 - 1 for _ in range(5)]
    ds = views.AugmentPairs(images, res=12, batch_size=4, seed=2)
    a, b = _first(ds)[0], _first(views.AugmentPairs(images, res=12, batch_size=4, seed=2))[0]
    assert set(a) == {"src", "tgt"}
    assert a["src"].shape == a["tgt"].shape == (4, 3, 12, 12)
    assert torch.equal(a["src"], b["src"]) and torch.equal(a["tgt"], b["tgt"])
    assert not torch.equal(a["src"], a["tgt"])
    assert a["src"].min() >= -1 and a["src"].max() <= 1
    # No crop and no flip: both views are the plain resize of the source image.
    plain = views.AugmentPairs([{"image": images[0]}], res=12, batch_size=2, scale=(1, 1), ratio=(1.2, 1.2), flip=False)
    p = _first(plain)[0]
    ref = torch.nn.functional.interpolate(images[0][None], size=(12, 12), mode="bilinear", antialias=True)[0]
    assert torch.allclose(p["src"][0], ref, atol=1e-6) and torch.allclose(p["tgt"][1], ref, atol=1e-6)
    jitter = _first(views.AugmentPairs(images, res=12, batch_size=2, color_jitter=True))[0]
    assert jitter["src"].min() >= -1 and jitter["src"].max() <= 1


def test_world_eval_set():
    ev = views.world_eval_set(10, res=16, split="test", seed=4, camera="fixed")
    assert ev["images"].shape == (10, 3, 16, 16) and ev["rays"].shape == (10, 6, 16, 16)
    assert world.in_test_split(ev["factors"]).all()
    assert torch.equal(ev["c2w"], ev["c2w"][:1].expand(10, 4, 4))
    again = views.world_eval_set(10, res=16, split="test", seed=4, camera="fixed")
    assert torch.equal(ev["images"], again["images"])
    rnd = views.world_eval_set(6, res=16, split="train", seed=4, camera="random")
    assert not world.in_test_split(rnd["factors"]).any()
    assert torch.allclose(rnd["images"], world.render(rnd["factors"], rnd["K"], rnd["c2w"], 16) * 2 - 1, atol=1e-6)


def test_world_nvs_set():
    nvs = views.world_nvs_set(3, 4, res=16, seed=1)
    assert nvs["images"].shape == (3, 4, 3, 16, 16)
    assert nvs["K"].shape == (3, 4, 3, 3) and nvs["c2w"].shape == (3, 4, 4, 4)
    assert nvs["rays"].shape == (3, 4, 6, 16, 16) and nvs["factors"].shape == (3, 6)
    assert world.in_test_split(nvs["factors"]).all()
    scene = world.render(nvs["factors"][1:2].expand(4, 6), nvs["K"][1], nvs["c2w"][1], 16) * 2 - 1
    assert torch.allclose(nvs["images"][1], scene, atol=1e-6)


def test_export_world_round_trip(tmp_path):
    path = views.export_world(tmp_path / "w.npz", n=7, res=16, split="test", seed=2, camera="random", progress=False)
    data = views.load_exported(path)
    assert len(data) == 7 and isinstance(data.images, np.memmap)
    raw = np.load(path)
    assert raw["images"].dtype == np.uint8 and raw["images"].shape == (7, 16, 16, 3)
    ref = world.render(data.factors, data.K, data.c2w, 16)
    # exact: the export renders these 7 scenes as one slice, the same computation as `ref`
    assert np.array_equal(raw["images"], (ref * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    item = data[3]
    assert torch.allclose(item["image"], ref[3] * 2 - 1, atol=1 / 255 + 1e-6)
    assert torch.equal(item["factors"], data.factors[3])
    ev = data.as_eval_set()
    assert ev["images"].shape == (7, 3, 16, 16) and ev["rays"].shape == (7, 6, 16, 16)
    again = views.export_world(tmp_path / "w2.npz", n=7, res=16, split="test", seed=2, camera="random", progress=False)
    assert np.array_equal(np.load(again)["images"], raw["images"])


def test_shapes3d_layout_export_reads_back(tmp_path):
    path = views.export_shapes3d_h5(tmp_path / "3dshapes.h5", n=12, split="test", seed=0, progress=False)
    ds = Shapes3D(path)
    assert len(ds) == 12
    assert world.in_test_split(ds.factors).all()
    fixed = world.FixedCameraRenderer(64)
    item = ds[5]
    assert torch.allclose(item["image"], fixed(ds.factors[5:6])[0] * 2 - 1, atol=1 / 255 + 1e-6)
    assert torch.allclose(item["values"], world.factor_values(ds.factors[5:6])[0])


def test_a_failed_export_leaves_the_previous_file(tmp_path, monkeypatch):
    path = views.export_world(tmp_path / "w.npz", n=3, res=8, camera="random", progress=False)
    before = path.read_bytes()

    def broken(fh, **arrays):
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        views.export_world(path, n=3, res=8, seed=1, camera="random", progress=False)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]


def test_old_import_paths_name_the_same_objects():
    # world.py and views.py were split; code that imports from them must get the one implementation.
    from soda.data import augment, evalsets, scenes, seeds

    for name in ("world_eval_set", "world_nvs_set", "export_world", "load_exported", "export_shapes3d_h5"):
        assert getattr(views, name) is getattr(evalsets, name)
    assert views.AugmentPairs is augment.AugmentPairs and views.stream_seed is seeds.stream_seed
    for name in ("sample_factors", "FACTOR_NAMES", "split_indices", "caption", "scene_colours"):
        assert getattr(world, name) is getattr(scenes, name)
    for name in ("sample_cameras", "spherical_camera", "default_camera", "DEFAULT_CAMERA", "LOOK_AT", "AZIMUTH_RANGE"):
        assert getattr(world, name) is getattr(cameras, name)
