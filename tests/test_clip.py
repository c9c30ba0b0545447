"""soda.clip: loading rules and offline errors, naming, prompt directions, caches, factor classifiers, validation.

Everything runs with a tiny randomly initialised open_clip model built offline (names are meaningless, mechanics are
checked) and the tiny SODA preset with random output/modulation weights so that z changes the decoded image.
"""

import json
import math
import os
import re

import pytest
import torch
from conftest import tiny_model_with_visible_z

from soda import api
from soda import clip as sc
from soda.clip import factors as fmod
from soda.clip import loading
from soda.data import world
from soda.data.views import world_eval_set

TINY_CLS = {"n_train": 1200, "n_test": 400, "steps": 200, "batch_size": 32}


@pytest.fixture(scope="module")
def soda_model():
    return tiny_model_with_visible_z()


@pytest.fixture(scope="module")
def clip():
    return sc.tiny_clip(seed=0)


@pytest.fixture(scope="module")
def held_out(soda_model):
    data = world_eval_set(60, soda_model.res, split="test", seed=0)
    return data["images"], api.encode(soda_model, data["images"])


@pytest.fixture(scope="module")
def classifiers():
    return sc.train_factor_classifiers(16, **TINY_CLS)


@pytest.fixture
def no_spec(monkeypatch):
    monkeypatch.delenv(sc.ENV_VAR, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# ------------------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------------------


def test_no_weights_offline_fails_fast_with_instructions(no_spec, no_network):
    with pytest.raises(sc.ClipUnavailable) as e:
        sc.load_clip()
    assert no_network == []  # fails without trying the network (no timeout to wait for)
    msg = str(e.value)
    for needle in (
        "--clip",
        "SODA_CLIP",
        "README.md",
        "ARCH:PATH",
        ".safetensors",
        "weights_only=True",
        "offline",
        "ViT-B-32:/models/",
    ):
        assert needle in msg, needle


def test_bad_specs_say_what_is_wrong(no_spec, no_network, tmp_path):
    cases = {
        "ViT-B-32:/no/such/clip.safetensors": "does not exist",
        "hf-hub:nobody/not-a-cached-repo": "not in the Hugging Face cache",
        "not a spec at all": "neither an existing file",
        str(tmp_path): "no open_clip_config.json",
    }
    stray = tmp_path / "w.safetensors"
    stray.write_bytes(b"")
    cases[str(stray)] = "names no architecture"
    for spec, needle in cases.items():
        with pytest.raises(sc.ClipUnavailable, match=needle):
            sc.load_clip(spec)
        assert no_network == [], spec  # no network attempt, so no network wait


def test_local_weights_load_from_file_folder_and_model_card(clip, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in clip.model.state_dict().items()}
    save_file(sd, str(tmp_path / "clip.safetensors"))
    torch.save(sd, tmp_path / "clip.pt")
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    want = clip.encode_images(images)

    def same(c):
        return torch.allclose(c.encode_images(images), want, atol=1e-5)

    assert same(sc.load_clip(f"{loading.TINY_NAME}:{tmp_path / 'clip.safetensors'}"))
    assert same(sc.load_clip(f"{loading.TINY_NAME}:{tmp_path / 'clip.pt'}"))  # torch.load(weights_only=True)
    folder = tmp_path / "hub-layout"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": loading.TINY_CONFIG}))
    save_file(sd, str(folder / "open_clip_model.safetensors"))
    assert same(sc.load_clip(f"local-dir:{folder}"))

    # where the spec comes from: the flag, else $SODA_CLIP, else the model card (relative to the checkpoint)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "README.md").write_text(f"---\nclip: {loading.TINY_NAME}:../clip.safetensors\n---\n# card\n")
    card = f"{loading.TINY_NAME}:{(tmp_path / 'clip.safetensors').resolve()}"
    assert sc.card_spec(ckpt) == card and sc.resolve_spec(None, ckpt) == card
    monkeypatch.setenv(sc.ENV_VAR, "ENV")
    assert sc.resolve_spec(None, ckpt) == "ENV" and sc.resolve_spec("FLAG", ckpt) == "FLAG"

    sd["visual.proj"] = torch.zeros(3, 3)
    save_file(sd, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(sc.ClipUnavailable, match="does not fit"):
        sc.load_clip(f"{loading.TINY_NAME}:{tmp_path / 'wrong.safetensors'}")


def test_clip_cli_check_without_spec_exits_2(no_spec, capsys):
    from soda.clip.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["check"])
    assert e.value.code == 2 and "SODA_CLIP" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------
# Naming
# ------------------------------------------------------------------------------------------------------------


def test_vocabulary_text_round_trip_and_errors():
    assert sc.parse_vocabulary(sc.format_vocabulary()) == sc.DEFAULT_VOCABULARY
    v = sc.parse_vocabulary("# comment\nsize: a small object | a large object\na shiny object\n")
    assert v == {"size": ("a small object", "a large object"), "a shiny object": ("a shiny object",)}
    for bad in ("", "size:", "a: x\na: y"):
        with pytest.raises(ValueError):
            sc.parse_vocabulary(bad)


def test_static_frames_score_zero_and_scores_are_bounded(clip):
    x = torch.rand(1, 1, 1, 3, 16, 16) * 2 - 1
    static = sc.attribute_scores(clip, x.expand(2, 2, 4, -1, -1, -1))
    assert static.scores.shape == (2, len(sc.DEFAULT_VOCABULARY)) and static.scores.abs().max() < 1e-5
    moving = sc.attribute_scores(clip, torch.rand(2, 1, 4, 3, 16, 16) * 2 - 1, ["a red object"])
    assert moving.scores.shape == (2, 1) and (moving.scores >= 0).all() and (moving.scores <= 3).all()


def test_name_directions_top_k_from_vocabulary_and_cached(soda_model, clip, held_out, tmp_path, monkeypatch):
    _, Z = held_out
    dirs = api.section_directions(soda_model, Z, 1)
    names = sc.name_directions(soda_model, clip, dirs, Z[:2], steps=4, top_k=3, cache=tmp_path)
    assert len(names) == soda_model.n_sections
    for row in names:
        assert len(row) == 3 and all(p in sc.DEFAULT_VOCABULARY for p, _ in row)
        scores = [s for _, s in row]
        assert all(math.isfinite(s) and s >= 0 for s in scores) and scores == sorted(scores, reverse=True)
    assert any(s > 0 for row in names for _, s in row)  # z moves the decoded image, so CLIP sees some change
    monkeypatch.setattr(sc.naming, "traversal_frames", lambda *a, **k: pytest.fail("decoded despite the cache"))
    assert sc.name_directions(soda_model, clip, dirs, Z[:2], steps=4, top_k=3, cache=tmp_path) == names
    assert "object" in sc.slider_label(names[0], "s0.c0") and "(s0.c0)" in sc.slider_label(names[0], "s0.c0")


# ------------------------------------------------------------------------------------------------------------
# Prompts
# ------------------------------------------------------------------------------------------------------------


def test_fit_direction_recovers_the_separating_axis():
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(400, 6, generator=g) * torch.tensor([2.0, 1, 1, 1, 1, 1])
    unit, acc = sc.fit_direction(Z, (Z[:, 0] > 0).float())
    assert acc > 0.95 and unit[0] > 0.95 and unit.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_prompt_scores_and_direction(clip, held_out, tmp_path, monkeypatch):
    images, Z = held_out
    emb = sc.image_embeddings(clip, images, cache=tmp_path)
    s = sc.prompt_scores(clip, "a red object", embeddings=emb)
    assert s.shape == (len(images),) and torch.isfinite(s).all() and s.abs().max() <= 1
    assert torch.allclose(s, sc.prompt_scores(clip, "a red object", images), atol=1e-5)
    diff = sc.prompt_scores(clip, "a red object", embeddings=emb, negative="a blue object")
    assert torch.allclose(diff, s - sc.prompt_scores(clip, "a blue object", embeddings=emb), atol=1e-5)

    d, info = sc.prompt_direction(clip, "a red object", Z, images, quantile=0.2, cache=tmp_path)
    m = round(0.2 * len(images))
    assert d.shape == (Z.shape[1],) and info["n_pos"] == info["n_neg"] == m
    assert len(info["pos_index"]) == len(info["neg_index"]) == m and not set(info["pos_index"]) & set(info["neg_index"])
    assert s[info["pos_index"]].min() >= info["score_high"] >= info["score_low"] >= s[info["neg_index"]].max()
    proj = (Z - Z.mean(0)) @ (d / d.norm())
    assert proj.std().item() == pytest.approx(d.norm().item(), rel=1e-4)  # one std of the data along it
    assert 0 <= info["train_accuracy"] <= 1 and info["corr"] > 0  # points towards higher CLIP scores
    monkeypatch.setattr(sc.prompts, "prompt_scores", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    d2, info2 = sc.prompt_direction(clip, "a red object", Z, images, quantile=0.2, cache=tmp_path)
    assert torch.equal(d, d2) and info2 == info
    with pytest.raises(ValueError, match="fewer than 2"):
        sc.prompt_direction(clip, "a red object", Z[:5], images[:5])


def test_result_cache_round_trip(tmp_path):
    cache = sc.ResultCache(tmp_path)
    key = {"soda": "abc", "vocabulary": {"size": ["a small object"]}, "values": [-1.0, 1.0]}
    cache.put("names", key, {"scores": [[0.5]]}, {"t": torch.arange(6.0).reshape(2, 3)})
    meta, tensors = cache.get("names", key)
    assert meta == {"scores": [[0.5]]} and torch.equal(tensors["t"], torch.arange(6.0).reshape(2, 3))
    assert cache.get("names", {**key, "soda": "abd"}) is None
    for f in tmp_path.glob("*.json"):
        f.write_text("{broken")
    assert cache.get("names", key) is None


# ------------------------------------------------------------------------------------------------------------
# Factor classifiers and validation
# ------------------------------------------------------------------------------------------------------------


def test_factor_classifiers_are_accurate_and_cacheable(classifiers, tmp_path):
    acc = classifiers.accuracy
    assert acc["shape"] > 0.9 and acc["object_hue"] > 0.9 and acc["floor_hue"] > 0.9 and acc["wall_hue"] > 0.9
    info, tensors = classifiers.state()
    back = sc.FactorClassifiers.from_state(info, tensors)
    x = world_eval_set(8, 16, split="test", seed=5)["images"]
    assert torch.equal(back.predict(x), classifiers.predict(x)) and back.accuracy == acc


def test_factor_changes_find_the_factor_that_moves(classifiers):
    base = torch.tensor([[2, 5, 0, 4, 0, 7]]).repeat(5, 1)  # cube
    hue = base.clone()
    hue[:, 2] = torch.tensor([0, 2, 4, 6, 8])
    shape = base.clone()
    shape[:, 4] = torch.tensor([0, 1, 2, 3, 0])
    render = world.FixedCameraRenderer(16)
    frames = torch.stack([render(f) * 2 - 1 for f in (hue, shape)])[:, None]  # (2, 1, 5, 3, 16, 16)
    change = fmod.factor_changes(classifiers, frames, anchor=2)
    names = list(world.FACTOR_NAMES)
    assert change[0, names.index("object_hue")] == 1.0 and change[0].argmax() == names.index("object_hue")
    assert change[1, names.index("shape")] >= 0.75 and change[1].argmax() == names.index("shape")
    assert change[0, names.index("floor_hue")] == 0 and change[1, names.index("wall_hue")] == 0


def test_validate_names_one_row_per_section(soda_model, clip, classifiers, tmp_path):
    res = sc.validate_names(
        soda_model, clip, n_components=1, n_refs=1, n_data=40, classifiers=classifiers, cache=tmp_path
    )
    assert len(res.rows) == soda_model.n_sections and res.with_clip
    assert all(r["factor"] in (*world.FACTOR_NAMES, "none") and len(r["clip_names"]) == 3 for r in res.rows)
    table = res.markdown().splitlines()
    assert sum(re.match(r"\| s\d+\.c0 \|", line) is not None for line in table) == soda_model.n_sections
    assert "agree" in table[0]
    assert res.agreement is None or 0 <= res.agreement <= 1
    plain = sc.validate_names(soda_model, None, n_components=1, n_refs=1, n_data=40, classifiers=classifiers)
    assert not plain.with_clip and "CLIP" not in plain.markdown().splitlines()[0]
    assert [r["changes"] for r in plain.rows] == [r["changes"] for r in res.rows]


def test_soda_clip_imports_neither_gradio_nor_open_clip_at_import():
    import pathlib

    src = pathlib.Path(sc.__file__).parent
    for f in src.glob("*.py"):
        text = f.read_text()
        assert "import gradio" not in text and "from gradio" not in text, f
        assert "\nimport open_clip" not in text.split('"""', 2)[-1].split("\ndef ")[0], f  # no top-level import
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # the suite never touches the network


def test_validate_cli_writes_the_table(soda_model, clip, classifiers, tmp_path, monkeypatch, capsys):
    from safetensors.torch import save_file

    from soda.clip.__main__ import main

    ckpt = soda_model.save_pretrained(tmp_path / "ckpt")
    save_file({k: v.contiguous() for k, v in clip.model.state_dict().items()}, str(tmp_path / "clip.safetensors"))
    monkeypatch.setattr(sc.validate, "load_or_train_factor_classifiers", lambda *a, **k: classifiers)
    spec = f"{loading.TINY_NAME}:{tmp_path / 'clip.safetensors'}"
    out = tmp_path / "out"
    assert main(["validate", "--checkpoint", str(ckpt), "--clip", spec, "--out", str(out), "--data", "40"]) == 0
    md = (out / "clip_validation.md").read_text()
    assert sum(re.match(r"\| s\d+\.c0 \|", line) is not None for line in md.splitlines()) == soda_model.n_sections
    assert json.loads((out / "clip_validation.json").read_text())["with_clip"] is True
