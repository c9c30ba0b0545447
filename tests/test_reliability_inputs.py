"""Every case of the bad-input corpus (scripts/make_bad_inputs.py, generated into a temp folder) goes through the
running app: images through /upload, recipes through /load_recipe, checkpoint folders through
soda.model.load_pretrained, soda.api.load_model, the page's /open_checkpoint and ``app.py --checkpoint``.

Each refusal must be a clear message (the expected words, no traceback), the server must keep answering, and the app
must leave nothing behind in its folders (Gradio's upload cache, the explorer's download folder, the asset cache, the
checkpoint folders) apart from the uploaded file itself. Accepted odd images must come out right (colours, first
frame, EXIF rotation). The pickle in the corpus creates a sentinel file when unpickled: it must never appear.

The helpers it shares with test_reliability_load.py and test_safety.py (the one app server of a test session, the
corpus, the folder snapshots) live in tests/helpers.py.
"""

from __future__ import annotations

import importlib.util
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    app_dirs,
    app_error,
    assert_clear_refusal,
    corpus,
    corpus_script,
    leftovers,
    new_client,
    read,
    server,
    snapshot,
    still_answering,
    upload,
)
from PIL import Image

from app.uploads import UPLOAD_TYPES

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv():
    return server()


@pytest.fixture(scope="module")
def bad():
    return corpus()


@pytest.fixture(scope="module")
def client(srv, tmp_path_factory):
    return new_client(srv[0], tmp_path_factory.mktemp("client-downloads"))


def cases(kind: str) -> list[str]:
    return [name for name, c in corpus_script().CASES.items() if c.kind == kind]


# ------------------------------------------------------------------------------------------------------------
# The corpus itself
# ------------------------------------------------------------------------------------------------------------


def test_the_corpus_script_writes_every_case_and_its_manifest(tmp_path):
    import json

    mod = corpus_script()
    paths = mod.make_corpus(tmp_path, tmp_path / "S")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {c["name"] for c in manifest["cases"]} == set(mod.CASES) == set(paths)
    assert all(p.exists() for p in paths.values())
    kinds = {c.kind for c in mod.CASES.values()}
    assert kinds == {"image", "recipe", "checkpoint", "pickle"}
    assert len(mod.CASES) >= 55
    assert (tmp_path / "images" / "huge_8000.png").stat().st_size < 1_000_000  # 8000 x 8000, cheap
    with Image.open(tmp_path / "images" / "huge_8000.png") as im:
        assert im.size == (8000, 8000)
    head = (tmp_path / "images" / "bomb.png").read_bytes()
    assert struct.unpack(">II", head[16:24]) == (100_000, 100_000)  # 10 Gpx announced in 69 bytes
    assert not (tmp_path / "S").exists()


def test_the_pickle_payload_is_live(tmp_path):
    """The control: the corpus pickle does run code when unpickled the unsafe way (so the sentinel checks mean
    something). Loaded here with weights_only=False on a copy whose sentinel is elsewhere."""
    import torch

    control = tmp_path / "control-sentinel"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(corpus_script().evil_pickle_bytes(control))
    with pytest.raises(Exception, match="(?i)weights.only|unsupported global"):
        torch.load(evil, weights_only=True)  # torch's safe loader refuses it
    assert not control.exists()
    torch.load(evil, weights_only=False)
    assert control.exists()


# ------------------------------------------------------------------------------------------------------------
# Images through /upload
# ------------------------------------------------------------------------------------------------------------


def _check_accepted_image(name: str, img: np.ndarray) -> None:
    """What each odd-but-valid image must look like at the model's size (16 px)."""
    i = img.astype(int)
    if name == "huge_8000":
        assert (abs(i - (200, 30, 30)) <= 1).all()
    elif name == "one_pixel":
        assert (abs(i - (10, 200, 60)) <= 1).all()
    elif name == "rgba":  # transparent left half composited on white, opaque blue right half
        assert (i[:, :6] >= 250).all() and (abs(i[:, 10:] - (0, 0, 255)) <= 2).all()
    elif name == "gray_alpha":
        assert (i >= 250).all()
    elif name in ("sixteen_bit", "float_tiff"):  # a black-to-white ramp, full range, gray
        assert i[:, 0].max() < 20 and i[:, -1].min() > 235 and (i[..., 0] == i[..., 2]).all()
    elif name in ("grayscale", "one_bit"):
        assert (i[..., 0] == i[..., 1]).all() and (i[..., 1] == i[..., 2]).all()
    elif name == "animated_gif":  # the first frame (near black), not the later white / red ones
        assert i.max() <= 10
    elif name == "exif_rotated":  # shown upright: left half blue, right half red
        left, right = i[:, :6].mean((0, 1)), i[:, 10:].mean((0, 1))
        assert left[2] > 180 and left[0] < 60 and right[0] > 180 and right[2] < 60, (left, right)
    elif name in ("cmyk_jpeg", "palette", "jpeg_named_png"):
        assert i.std() > 5  # the noise survived the conversion


@pytest.mark.parametrize("name", [n.split("/", 1)[1] for n in cases("image")])
def test_image_through_upload(name, srv, bad, client):
    case = corpus_script().CASES[f"image/{name}"]
    path = bad[2][f"image/{name}"]
    dirs = app_dirs(srv)
    before = snapshot(dirs)
    if case.expect == "refuse" and path.suffix not in UPLOAD_TYPES:  # refused by the upload route: 415, not kept
        import httpx

        with pytest.raises(httpx.HTTPStatusError) as err:
            client.predict(upload(path), api_name="/upload", quality="preview")
        assert err.value.response.status_code == 415
        assert not leftovers(before, dirs, [])
        still_answering(client)
    elif case.expect == "refuse":
        with pytest.raises(app_error()) as err:
            client.predict(upload(path), api_name="/upload", quality="preview")
        assert_clear_refusal(err.value, f"{case.words}|Invalid file type")
        assert not leftovers(before, dirs, [path])
        still_answering(client)
    else:
        inp, recon, edited, info = client.predict(upload(path), api_name="/upload", quality="preview")
        img = read(inp)
        assert img.shape == (16, 16, 3) and read(recon).shape == (16, 16, 3)
        assert f"upload: {path.name}" in info
        _check_accepted_image(name, img)
        new = snapshot(dirs).keys() - before.keys()
        assert all(p.is_relative_to(dirs["gradio"]) for p in new), new  # outputs live in Gradio's cache only
    assert not bad[1].exists()


# ------------------------------------------------------------------------------------------------------------
# Recipes through /load_recipe
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n.split("/", 1)[1] for n in cases("recipe")])
def test_recipe_through_load_recipe(name, srv, bad, client):
    case = corpus_script().CASES[f"recipe/{name}"]
    path = bad[2][f"recipe/{name}"]
    dirs = app_dirs(srv)
    before = snapshot(dirs)
    if case.expect == "refuse":
        with pytest.raises(app_error()) as err:
            client.predict(upload(path), api_name="/load_recipe")
        assert_clear_refusal(err.value, case.words)
        assert not leftovers(before, dirs, [path])  # (the next request, and the last test, show the server is up)
    else:
        _, recon, edited, info = client.predict(upload(path), api_name="/load_recipe")
        assert read(edited).shape == (16, 16, 3) and "recipe" in info
        assert not [p for p in snapshot(dirs).keys() - before.keys() if not p.is_relative_to(dirs["gradio"])]
        if name == "path_checkpoint":  # the recipe's '../../etc' was not opened: replayed on the session's own
            assert not any(k.endswith("etc") for k in srv[1]._loaded)


def test_the_same_recipe_replays_to_the_same_image_in_two_sessions(srv, bad, tmp_path):
    a = new_client(srv[0], tmp_path / "a")
    b = new_client(srv[0], tmp_path / "b")
    path = bad[2]["recipe/good"]
    ia = read(a.predict(upload(path), api_name="/load_recipe")[2])
    ib = read(b.predict(upload(path), api_name="/load_recipe")[2])
    assert np.array_equal(ia, ib)


# ------------------------------------------------------------------------------------------------------------
# Checkpoints: the library, the page and the launcher
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n.split("/", 1)[1] for n in cases("checkpoint")])
def test_checkpoint_through_the_library(name, bad):
    from soda import api
    from soda.config import ConfigError
    from soda.model import load_pretrained

    case = corpus_script().CASES[f"checkpoint/{name}"]
    path = bad[2][f"checkpoint/{name}"]
    if case.expect == "accept":
        assert load_pretrained(path).z_dim == 20 and api.load_model(str(path)).z_dim == 20
        return
    for load in (load_pretrained, api.load_model):
        with pytest.raises(ConfigError) as err:
            load(str(path))
        assert_clear_refusal(err.value, case.words)
        assert str(path) in str(err.value)  # the message names the file or folder
    assert not bad[1].exists()


def test_bad_checkpoints_through_the_page(srv, bad, client):
    """An operator lists broken checkpoints (assets/checkpoints/* with a config.json): opening one from the page is a
    clear error, writes nothing into it or the asset cache, and leaves the server answering."""
    _, ex, _, _ = srv
    dirs = app_dirs(srv)
    names = [n for n in cases("checkpoint") if corpus_script().CASES[n].expect == "refuse"]
    for name in names:
        path = str(bad[2][name])
        case = corpus_script().CASES[name]
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        inside = {p: p.stat().st_size for p in folder.rglob("*")}
        before = snapshot(dirs)
        ex.allowed.append(path)
        try:
            with pytest.raises(app_error()) as err:
                client.predict(path, api_name="/open_checkpoint")
        finally:
            ex.allowed.remove(path)
        assert_clear_refusal(err.value, case.words)
        assert {p: p.stat().st_size for p in folder.rglob("*")} == inside, name
        assert not leftovers(before, dirs, []), name
        assert path not in ex._loaded
    still_answering(client)
    assert not bad[1].exists()


def test_bad_checkpoints_through_the_launcher(bad, capsys):
    """``python app.py --checkpoint BAD`` (in-process main(): the same code path as the command) exits with 2 and
    a one-paragraph error, never a traceback, before serving anything."""
    import torch

    spec = importlib.util.spec_from_file_location("soda_app_launcher", ROOT / "app.py")
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    threads = torch.get_num_threads()
    try:
        for name in cases("checkpoint"):
            case = corpus_script().CASES[name]
            if case.expect != "refuse":
                continue
            rc = launcher.main(["--checkpoint", str(bad[2][name]), "--port", "1"])
            err = capsys.readouterr().err
            assert rc == 2, (name, err)
            assert err.startswith("error: ") and "Traceback" not in err, err
            assert re.search(case.words, err), (name, err)
    finally:
        torch.set_num_threads(threads)
    assert not bad[1].exists()


def test_after_the_whole_corpus_the_server_answers_and_nothing_was_unpickled(bad, client):
    still_answering(client)
    assert not bad[1].exists()
