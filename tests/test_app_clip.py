"""The Directions (CLIP) tab through the API, and the CLIP section of the evaluation report.

Two in-process servers on tiny random checkpoints (see tests/helpers.py): the shared one without CLIP weights (offline,
no spec: the status explains what to provide and everything else works), and one given a tiny randomly initialised
open_clip model saved as a state dict and passed as ``soda-tiny-clip:PATH``. Its names are meaningless: the tests check
mechanics (every slider gets a label, a prompt slider edits the image and replays from the recipe, the map gets a
colour scale), never what CLIP says.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import N_EXAMPLES, N_MAP, app_error, app_server, make_tiny_checkpoint, read, upload

CLIP_ENDPOINTS = {"/clip_status", "/name_sliders", "/prompt_slider", "/map_prompt"}
VOCAB = "object colour: a red object | a blue object\nobject size: a small object | a large object\nlight: a dark scene"


def save_tiny_clip(folder: Path) -> str:
    """The tiny random open_clip model as a safetensors state dict -> its spec."""
    from safetensors.torch import save_file

    from soda import clip as sc
    from soda.clip.loading import TINY_NAME

    model = sc.tiny_clip(seed=0).model
    path = folder / "tiny-clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return f"{TINY_NAME}:{path}"


@functools.lru_cache(maxsize=1)
def clip_server():
    """-> (url, explorer, checkpoint folder, spec): a second server whose explorer has a CLIP spec (--clip)."""
    import atexit

    from app.explorer import Explorer
    from app.ui import build_demo, launch_options

    work = Path(tempfile.mkdtemp(prefix="soda-app-clip-test-"))
    os.environ.setdefault("SODA_CACHE", str(work / "cache"))  # CLIP results go to the user cache: keep it private
    ckpt = make_tiny_checkpoint(work / "tiny-clip-ckpt", seed=2)
    spec = save_tiny_clip(work)
    ex = Explorer(str(ckpt), n_map=N_MAP, n_examples=N_EXAMPLES, clip_spec=spec)
    ex.get()
    demo = build_demo(ex)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options())
    atexit.register(demo.close)
    return demo.local_url, ex, ckpt, spec


@pytest.fixture
def no_clip_env(monkeypatch):
    from soda import clip as sc

    monkeypatch.delenv(sc.ENV_VAR, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def with_clip():
    return clip_server()


def client_for(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def clip_calls(ex) -> dict:
    return {k: v for k, v in ex.calls.items() if k.startswith("clip")}


# ------------------------------------------------------------------------------------------------------------
# Without weights
# ------------------------------------------------------------------------------------------------------------


def test_without_weights_the_status_explains_and_the_app_works(no_clip_env, no_network):
    url, ex, _, _ = app_server()
    c = client_for(url)
    names = set(c.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert CLIP_ENDPOINTS <= names
    assert not [n for n in names if "show_sliders" in n or "follow" in n or "star" in n], names
    text = c.predict(api_name="/clip_status")
    assert no_network == []  # answered without trying the network (a wall-clock bound would depend on the machine)
    for needle in ("CLIP weights are not available", "--clip", "SODA_CLIP", "README.md", "ARCH:PATH", "offline"):
        assert needle in text, needle
    table, note = c.predict(VOCAB, api_name="/name_sliders")  # answers (docs/APP.md), never an error
    assert table["data"] == [] and "SODA_CLIP" in note
    name, note = c.predict("a red object", "", api_name="/prompt_slider")
    assert name == "" and "SODA_CLIP" in note
    fig = json.loads(c.predict("a red object", "PCA", api_name="/map_prompt"))
    assert fig["meta"]["clip"] == "unavailable" and "SODA_CLIP" in fig["meta"]["message"]
    assert ex.calls["clip_load"] == 0  # nothing was loaded
    _, recon, _, info = c.predict(2, api_name="/load_example", quality="preview")
    assert "example 2" in info
    edited = read(c.predict('{"section1.pc1": 2.0}', api_name="/edit", quality="preview"))
    assert edited.shape == (16, 16, 3) and not np.array_equal(edited, read(recon))
    assert len(json.loads(c.predict("PCA", "shape", api_name="/latent_map"))["data"][0]["x"]) == N_MAP


# ------------------------------------------------------------------------------------------------------------
# With the tiny CLIP
# ------------------------------------------------------------------------------------------------------------


def test_status_reports_the_loaded_model(with_clip):
    url, ex, _, spec = with_clip
    text = client_for(url).predict(api_name="/clip_status")  # follows the background load to its end
    assert text.startswith("CLIP ready") and spec in text and "embedding 64" in text
    assert ex.calls["clip_load"] == 1


def test_naming_labels_every_section_slider_and_is_cached(with_clip, monkeypatch):
    from app.clip_panel import session_labels
    from app.explorer import COMPONENTS, SECTION_SLOTS
    from app.explorer_prompts import clip_cache_dir

    url, ex, ckpt, _ = with_clip
    c = client_for(url)
    table, note = c.predict(VOCAB, api_name="/name_sliders")
    m = ex.get()
    section = [(i, s) for i, s in enumerate(m.slots[: SECTION_SLOTS * COMPONENTS]) if s]
    rows = table["data"]
    assert len(rows) == len(section) > 0 and f"Named {len(section)} sliders" in note
    for (i, edit), (raw, name, label, names) in zip(section, rows, strict=True):
        assert name == edit and raw == m.slot_labels[i]
        assert label.startswith(f"{raw} · ") and label.count(" · ") == 2  # raw name, then the two best names
        assert len(names.split("), ")) == 3 and names.split(" (")[0] in VOCAB
    cached = sorted(clip_cache_dir(m).glob("names-*.json"))  # the user cache, never the checkpoint's folder
    assert len(cached) == 1
    recomputed = []
    with monkeypatch.context() as mp:  # a cache hit: nothing is decoded or scored again
        mp.setattr("soda.clip.naming.traversal_frames", lambda *a, **k: recomputed.append(1) or 1 / 0)
        again, _ = c.predict(VOCAB, api_name="/name_sliders")
    assert again["data"] == rows and not recomputed
    assert sorted(clip_cache_dir(m).glob("names-*.json")) == cached  # a cache hit, nothing new
    assert not (ckpt / "explorer" / "clip").exists()
    labels = session_labels(m, {"ckpt": m.key, "labels": {section[0][0]: rows[0][2]}})
    assert labels[section[0][0]] == rows[0][2] and labels[section[1][0]] == m.slot_labels[section[1][0]]
    with pytest.raises(app_error(), match="vocabulary line 1"):
        c.predict("just a name:", api_name="/name_sliders")


def test_prompt_slider_edits_the_image_and_replays_from_the_recipe(with_clip):
    from app import recipes
    from app.explorer import Explorer

    url, ex, ckpt, _ = with_clip
    c = client_for(url)
    _, recon, _, _ = c.predict(3, api_name="/load_example", quality="preview")
    name, note = c.predict("a red object", "", api_name="/prompt_slider")
    assert name.startswith("clip.a red object#") and "New slider **CLIP: a red object**" in note
    m = ex.get()
    assert name in m.slots and m.slot_labels[m.slots.index(name)] == "CLIP: a red object"  # a slider in the editor
    assert c.predict("a red object", "", api_name="/prompt_slider")[0] == name  # same prompt, same slider
    before = clip_calls(ex)
    edited = read(c.predict(json.dumps({name: 2.5}), api_name="/edit"))
    assert not np.array_equal(edited, read(recon))
    assert read(c.predict(name, 2.0, 3, api_name="/traverse")).shape == (16, 3 * 16 + 2, 3)
    assert clip_calls(ex) == before  # CLIP never runs when the slider moves
    png, _, js, _ = c.predict(api_name="/export")
    recipe = json.loads(Path(js).read_text())
    assert recipe["edits"] == {name: 2.5}
    _, _, same, _ = client_for(url).predict(upload(js), api_name="/load_recipe")  # another session
    assert np.array_equal(read(same), read(png))
    # a restarted app, without CLIP: the direction comes back from clip/prompt_sliders.safetensors
    fresh = Explorer(str(ckpt), n_map=N_MAP, n_examples=N_EXAMPLES)
    image, _, _ = recipes.replay(fresh, recipes.read_recipe(js))
    assert np.array_equal(image, read(png))
    assert torch.equal(fresh.get().directions[name], m.directions[name]) and name not in fresh.get().slots


def test_prompt_directions_are_checked_and_exportable(with_clip):
    from app.explorer import ExplorerError

    _, ex, _, _ = with_clip
    name = ex.prompt_slider(None, "a blue object")["name"]
    m = ex.get()
    carried = ex.prompt_directions(m, {name: 1.0, "section0.pc1": 1.0})
    assert list(carried) == [name] and len(carried[name]) == m.model.z_dim
    assert torch.equal(ex.check_prompt_direction(m, name, carried[name]), m.directions[name])
    with pytest.raises(ExplorerError, match="digest"):
        ex.check_prompt_direction(m, name, [v + 1e-3 for v in carried[name]])
    with pytest.raises(ExplorerError, match="finite"):
        ex.check_prompt_direction(m, name, [float("nan")] * m.model.z_dim)


def test_map_colouring_by_a_prompt(with_clip):
    url, ex, _, _ = with_clip
    c = client_for(url)
    fig = json.loads(c.predict("a large sphere", "PCA", api_name="/map_prompt"))
    trace = fig["data"][0]
    assert len(trace["x"]) == N_MAP and len(trace["marker"]["color"]) == N_MAP
    assert trace["marker"]["showscale"] and trace["marker"]["colorscale"] == "Viridis"
    assert "a large sphere" in trace["marker"]["colorbar"]["title"]["text"]
    assert all(isinstance(v, float) for v in trace["marker"]["color"])  # all 64 map points were read by CLIP
    assert trace["marker"]["cmin"] < trace["marker"]["cmax"]
    plain = json.loads(c.predict("PCA", "shape", api_name="/latent_map"))["data"][0]
    assert plain["x"] == trace["x"]  # the same points in the same order: clicks still load the right latent
    *_, info = c.predict("PCA", "point", 5, 0, 0, api_name="/map_click")
    assert "map point 5" in info
    with pytest.raises(app_error(), match="type a prompt"):
        c.predict("  ", "PCA", api_name="/map_prompt")


# ------------------------------------------------------------------------------------------------------------
# Evaluation report
# ------------------------------------------------------------------------------------------------------------


def test_report_clip_section_done_and_skipped(with_clip, tmp_path, no_clip_env):
    from soda import api
    from soda import clip as sc
    from soda.eval.report import clip_section, clip_validation

    _, _, ckpt, spec = with_clip
    model = api.load_model(str(ckpt))
    clf = sc.train_factor_classifiers(16, n_train=96, n_test=32, steps=4, batch_size=32)
    done = clip_validation(model, spec, tmp_path, n_data=24, classifiers=clf)
    assert done["status"] == "done" and 0 <= done["agreement"] <= 1
    text = "\n".join(clip_section(done))
    assert "## CLIP-named directions" in text and "| s0.c0 |" in text and "agree" in text
    assert (tmp_path / "clip_validation.md").is_file() and (tmp_path / "clip_validation.json").is_file()
    missing = clip_validation(model, f"ViT-B-32:{tmp_path / 'nope.safetensors'}", tmp_path)
    assert missing["status"] == "skipped" and "does not exist" in missing["reason"]
    assert "CLIP validation was skipped: the CLIP weights did not load" in "\n".join(clip_section(missing))
    none = clip_validation(model, None, tmp_path)
    assert none["status"] == "skipped" and "no CLIP spec" in "\n".join(clip_section(none))
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_a_recipe_carrying_its_prompt_direction_replays_anywhere(with_clip, tmp_path, monkeypatch):
    """With app/recipes.py writing "directions" (see docs/CLIP.md), a recipe replays on a copy of the checkpoint
    that never saw the prompt (no registry file), without CLIP."""
    import shutil

    from app import recipes
    from app.explorer import Explorer

    _, ex, ckpt, _ = with_clip
    name = ex.prompt_slider(None, "a green floor")["name"]
    state = ex.load_example(ex.new_state(), 1, 0, "preview")
    state, image = ex.apply_edits(state, {name: -2.0}, 0, "preview")
    recipe = recipes.make_recipe(ex, state, 0, "preview")
    assert list(recipe["directions"]) == [name]

    def elsewhere(folder: Path) -> Explorer:
        folder.mkdir()
        for f in ("model.safetensors", "config.json"):
            shutil.copy(ckpt / f, folder / f)
        return Explorer(str(folder), n_map=N_MAP, n_examples=N_EXAMPLES)

    monkeypatch.setenv("SODA_CACHE", str(tmp_path / "elsewhere-cache"))  # another machine: no registry file
    other = elsewhere(tmp_path / "copy")
    assert name not in other.get().directions
    again, _, _ = recipes.replay(other, recipes.read_recipe(json.dumps(recipe)))
    assert np.array_equal(again, image)
    tampered = {**recipe, "directions": {name: [v * 1.01 for v in recipe["directions"][name]]}}
    with pytest.raises(recipes.ExplorerError, match="digest"):
        recipes.replay(elsewhere(tmp_path / "copy2"), recipes.read_recipe(tampered))
