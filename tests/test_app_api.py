"""The explorer through its API: the app is launched in-process on a tiny random checkpoint and driven with
gradio_client. Every endpoint returns the right type and shape, recipes replay to the identical image, and bad input
gets a clear error while the server keeps answering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import N_MAP, app_error, app_server, read, upload
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server():
    return app_server()


@pytest.fixture
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


# ------------------------------------------------------------------------------------------------------------
# Endpoints
# ------------------------------------------------------------------------------------------------------------

PUBLIC = {
    "/open_checkpoint",
    "/load_example",
    "/upload",
    "/edit",
    "/reset",
    "/undo",
    "/refine",
    "/traverse",
    "/interpolate",
    "/mix",
    "/novel_view",
    "/orbit",
    "/latent_map",
    "/map_click",
    "/export",
    "/load_recipe",
}


def test_every_panel_is_a_named_endpoint_and_helpers_are_hidden(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert PUBLIC <= names
    assert not [n for n in names if "preview" in n or "render" in n or "sync" in n or "refresh" in n], names


def test_load_example_edit_undo_reset(client, server):
    res = 16
    inp, recon, edited, info = client.predict(2, api_name="/load_example")
    assert read(inp).shape == read(recon).shape == (res, res, 3)
    assert "example 2" in info and "PSNR" in info
    assert np.array_equal(read(recon), read(edited))  # no edits yet
    out = read(client.predict('{"section1.pc1": 2.5, "label.scale +": -1.0}', api_name="/edit"))
    assert out.shape == (res, res, 3) and not np.array_equal(out, read(recon))
    again = read(client.predict('{"section0.pc2": 1.0}', api_name="/edit"))
    assert np.array_equal(read(client.predict(api_name="/undo")), out)
    assert not np.array_equal(again, out)
    assert np.array_equal(read(client.predict(api_name="/reset")), read(recon))


def test_sliders_say_what_they_measurably_do(server):
    """Captions measured at precompute time (soda.sliders): every named slider has one; a label-free slider is
    labelled by the factor it moves most (a toy model's figures mean nothing; the mechanics do)."""
    m = server[1].get()
    named = [s for s in m.slots if s and s.startswith("label.")]
    assert len(named) == 9 and all("moves it in" in m.infos[s] and "keeps the rest" in m.infos[s] for s in named)
    shown = [m.slot_labels[i] for i, s in enumerate(m.slots) if s in named]
    assert "floor hue +" in shown and not any("_" in lab for lab in shown)  # labels read as the captions do
    effects = m.assets.meta["slider_effects"]
    for i, s in enumerate(m.slots):
        if s and s.startswith("free"):
            got = effects["free"][s]
            assert m.infos[s] == got["caption"]
            factor = (got["factor"] or "").replace("_", " ")
            assert m.slot_labels[i] == f"D{s[4:]}" + (f" · {factor}" if factor else "")
    assert sum(1 for s in m.slots if s and s.startswith("free")) == m.assets.free_dirs.shape[0]


def test_traverse_interpolate_mix(client):
    client.predict(0, api_name="/load_example")
    strip = read(client.predict("section2.pc1", 2.0, 5, api_name="/traverse"))
    assert strip.shape == (16, 5 * 16 + 4, 3)
    gallery, gif, mp4 = client.predict("current edit", "example 3", 6, "slerp", [1, 2], api_name="/interpolate")
    assert len(gallery) == 6 and read(gallery[0]["image"]).shape == (16, 16, 3)
    with Image.open(gif) as g:
        assert g.n_frames == 2 * 6 - 2  # there and back
    assert mp4 is None or Path(mp4).stat().st_size > 0
    a, b, mixed = client.predict("example 1", "example 2", [0, 1], api_name="/mix")
    assert all(read(x).shape == (16, 16, 3) for x in (a, b, mixed))
    none = client.predict("example 1", "example 2", [], api_name="/mix")[2]
    # nothing taken from B: the mixed latent has A's bytes, so the decode cache serves A's image (exact; decoded afresh
    # as the third row of a batch it could differ in the last bits, see test_determinism.py)
    assert np.array_equal(read(none), read(a))


def test_novel_view_and_orbit(client, server):
    client.predict(1, api_name="/load_example")
    v1 = read(client.predict(-50, 20, 4.0, api_name="/novel_view"))
    v2 = read(client.predict(50, 20, 4.0, api_name="/novel_view"))
    assert v1.shape == (16, 16, 3) and not np.array_equal(v1, v2)
    gif, status = client.predict(6, 20, 4.0, 4, api_name="/orbit")
    with Image.open(gif) as g:
        assert g.n_frames == 6
    assert "6 frames" in status


def test_a_long_orbit_can_be_cancelled(client, server):
    import time

    ex = server[1]
    client.predict(1, api_name="/load_example")
    start = ex.calls["orbit_frames"]
    job = client.submit(48, 20, 4.0, 10, api_name="/orbit")
    end = time.time() + 60
    while ex.calls["orbit_frames"] == start and time.time() < end:
        time.sleep(0.05)
    job.cancel()
    time.sleep(3)
    done = ex.calls["orbit_frames"] - start
    assert 0 < done < 48, f"{done} frames rendered after cancelling"
    assert client.predict(0, api_name="/load_example", quality="preview")[3]  # and the app answers


def test_refine_returns_a_reconstruction(client):
    client.predict(4, api_name="/load_example")
    recon, info = client.predict(5, 0.05, api_name="/refine")
    assert read(recon).shape == (16, 16, 3) and "PSNR" in info


def test_latent_map_and_clicks(client, server):
    _, ex, _, _ = server
    fig = json.loads(client.predict("PCA", "shape", api_name="/latent_map"))
    assert len(fig["data"][0]["x"]) == N_MAP and fig["data"][0]["marker"]["colorbar"]["title"]["text"] == "shape"
    tsne = json.loads(client.predict("t-SNE", "scale", api_name="/latent_map"))
    assert len(tsne["data"][0]["x"]) == N_MAP
    *_, info = client.predict("PCA", "point", 7, 0, 0, api_name="/map_click")
    assert "map point 7" in info
    *_, info = client.predict("PCA", "empty", -1, 0.05, -0.02, api_name="/map_click")
    assert "moved on the map" in info
    files = client.predict(api_name="/export")
    recipe = json.loads(Path(files[2]).read_text())
    m = ex.get()
    xy = m.assets.pca(torch.tensor(recipe["z"])[None])[0]
    assert torch.allclose(xy, torch.tensor([0.05, -0.02]), atol=1e-4)  # the two plotted coordinates moved there


def test_recipe_replays_to_the_identical_image(server):
    from gradio_client import Client

    a = Client(server[0], verbose=False)
    a.predict(5, api_name="/load_example")
    a.predict('{"section3.pc1": 1.5, "section0.pc1": -0.7}', api_name="/edit")
    png, npy, js, _ = a.predict(api_name="/export")
    recipe = json.loads(Path(js).read_text())
    assert {"checkpoint", "latent", "edits", "seed", "steps", "camera"} <= set(recipe)
    z = np.load(npy, allow_pickle=False)
    assert z.shape == (1, 20) and z.dtype == np.float32
    b = Client(server[0], verbose=False)  # another session
    _, _, edited, _ = b.predict(upload(js), api_name="/load_recipe")
    assert np.array_equal(read(edited), read(png))
    assert np.array_equal(read(b.predict(api_name="/export")[0]), read(png))  # and it exports the same again


def test_uploads_of_every_mode_are_accepted(client, tmp_path):
    rgb = (np.random.default_rng(0).random((40, 64, 3)) * 255).astype(np.uint8)
    files = {
        "rgba.png": Image.fromarray(rgb).convert("RGBA"),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "gray.jpg": Image.fromarray(rgb).convert("L"),
        "sixteen.png": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
    }
    for name, im in files.items():
        im.save(tmp_path / name)
    frames = [Image.fromarray(np.full((20, 20, 3), c, np.uint8)) for c in (10, 240)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    for name in [*files, "anim.gif"]:
        inp, recon, edited, info = client.predict(upload(tmp_path / name), api_name="/upload", quality="preview")
        assert read(inp).shape == (16, 16, 3), name
        assert f"upload: {name}" in info
    assert read(client.predict(upload(tmp_path / "anim.gif"), api_name="/upload")[0]).max() <= 11  # first frame


def test_ood_warning_and_default_camera_note(server):
    from app.edit_panel import camera_note

    _, ex, _, _ = server
    m = ex.get()
    img = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    path = server[3] / "black.png"
    img.save(path)
    state, notes = ex.load_upload(ex.new_state(), str(path), 0, "preview")
    assert state["ood"]["flagged"] and state["ood"]["threshold"] == m.assets.ood.threshold  # calibrated, stored
    assert notes and "does not look like what this checkpoint was trained on" in notes[0]
    assert "default camera" in camera_note(m)


# ------------------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------------------


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, expected words in the error)."""
    good = folder / "good.png"
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(good)
    out = {}
    (folder / "empty.png").write_bytes(b"")
    out["empty"] = (folder / "empty.png", "empty")
    (folder / "text.png").write_text("this is not an image\n")
    out["text"] = (folder / "text.png", "not an image")
    data = good.read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    out["truncated"] = (folder / "truncated.png", "corrupt")
    Image.new("L", (9000, 8000)).save(folder / "huge.png", compress_level=1)
    out["huge"] = (folder / "huge.png", "megapixels")
    return out


def bad_recipes(folder: Path, good: dict) -> dict[str, tuple[Path, str]]:
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "latent"}, "missing latent"),
        "nan": ({**good, "latent": [float("nan")] + good["latent"][1:]}, "NaN"),
        "short": ({**good, "latent": good["latent"][:5]}, "5 numbers"),
        "unknown_edit": ({**good, "edits": {"section99.pc1": 1.0}}, "unknown"),
        "steps": ({**good, "steps": 0}, "steps"),
        "not_json": ("{this is not json", "not valid JSON"),
    }
    out = {}
    for name, (d, words) in cases.items():
        p = folder / f"{name}.json"
        p.write_text(d if isinstance(d, str) else json.dumps(d, allow_nan=True))
        out[name] = (p, words)
    return out


def test_bad_uploads_give_clear_errors_and_the_server_stays_up(client, tmp_path):
    for name, (path, words) in bad_files(tmp_path).items():
        with pytest.raises(app_error(), match=words):
            client.predict(upload(path), api_name="/upload")
        inp, *_ = client.predict(upload(tmp_path / "good.png"), api_name="/upload", quality="preview")  # still up
        assert read(inp).shape == (16, 16, 3), name


def test_an_8000px_image_is_downscaled(client, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (8000, 8000), (200, 30, 30)).save(big, compress_level=1)
    inp, *_ = client.predict(upload(big), api_name="/upload")
    assert read(inp).shape == (16, 16, 3) and tuple(read(inp)[8, 8]) == (200, 30, 30)


def test_bad_recipes_give_clear_errors(client, tmp_path):
    client.predict(0, api_name="/load_example")
    good = json.loads(Path(client.predict(api_name="/export")[2]).read_text())
    for name, (path, words) in bad_recipes(tmp_path, good).items():
        with pytest.raises(app_error(), match=words):
            client.predict(upload(path), api_name="/load_recipe")
        assert client.predict(0, api_name="/load_example", quality="preview")[3], name


def test_bad_values_and_checkpoints(client, server):
    _, _, _, work = server
    with pytest.raises(app_error(), match="first"):
        client.predict('{"section0.pc1": 1}', api_name="/edit")  # nothing loaded yet in this session
    client.predict(0, api_name="/load_example")
    with pytest.raises(app_error(), match="unknown sliders"):
        client.predict('{"nope": 1}', api_name="/edit")
    with pytest.raises(app_error(), match="finite"):
        client.predict('{"section0.pc1": NaN}', api_name="/edit")
    with pytest.raises(app_error(), match="minimum value 0"):
        client.predict(0, api_name="/load_example", seed=-3)
    with pytest.raises(app_error(), match="command line"):
        client.predict("/etc", api_name="/open_checkpoint")
    with pytest.raises(app_error(), match="command line"):
        client.predict(str(work / "tiny" / ".."), api_name="/open_checkpoint")
    with pytest.raises(app_error(), match="not allowed on this server"):  # hub ids are off unless allow-listed
        client.predict("nobody/no-such-soda-model", api_name="/open_checkpoint")
    with pytest.raises(app_error(), match="not a SODA checkpoint"):
        client.predict(str(work / "foreign"), api_name="/open_checkpoint")
    assert client.predict(3, api_name="/load_example")[3]  # the server is fine


def test_switching_checkpoints(client, server):
    _, ex, _, work = server
    first = read(client.predict(1, api_name="/load_example", quality="preview")[2])
    card = client.predict(str(work / "tiny2"), api_name="/open_checkpoint")
    assert "tiny2" in card and "5 sections" in card
    other = read(client.predict(1, api_name="/load_example", quality="preview")[2])
    assert not np.array_equal(first, other)  # other weights, other image
    recipe = json.loads(Path(client.predict(api_name="/export")[2]).read_text())
    assert recipe["checkpoint"] == str(work / "tiny2")
    assert ex.default_key in ex._loaded  # the default checkpoint stays loaded


# ------------------------------------------------------------------------------------------------------------
# Launcher
# ------------------------------------------------------------------------------------------------------------


def _run_app(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_launcher_explains_a_missing_checkpoint(tmp_path):
    r = _run_app([], tmp_path)  # no assets/checkpoints/world32 here
    assert r.returncode == 2 and "python -m soda.train" in r.stderr and "--checkpoint" in r.stderr
    r = _run_app(["--checkpoint", str(tmp_path / "nope")], tmp_path)
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_importing_the_app_package_loads_nothing_heavy():
    code = "import sys, app; assert 'torch' not in sys.modules and 'gradio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
