"""Every case of the bad-input corpus (scripts/make_bad_inputs.py, generated into a temp folder) goes through the
running app: images through /upload, recipes through /load_recipe, checkpoint folders through
soda.model.load_pretrained, soda.api.load_model, the page's /open_checkpoint and ``app.py --checkpoint``.

Each refusal must be a clear message (the expected words, no traceback), the server must keep answering, and the app
must leave nothing behind in its folders (Gradio's upload cache, the explorer's download folder, the asset cache, the
checkpoint folders) apart from the uploaded file itself. Accepted odd images must come out right (colours, first
frame, EXIF rotation). The pickle in the corpus creates a sentinel file when unpickled: it must never appear.

This module also holds the helpers that test_reliability_load.py and test_safety.py share (the app server of
test_app_api.py is reused: one server per test session).
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import re
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# Gradio keeps uploads and outputs under GRADIO_TEMP_DIR (default /tmp/gradio, shared by every Gradio process on the
# machine). A private folder lets these tests see exactly what the app leaves behind. Set before any server starts.
if "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="soda-gradio-test-")
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], True)


# ------------------------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def corpus_script():
    """scripts/make_bad_inputs.py as a module."""
    spec = importlib.util.spec_from_file_location("make_bad_inputs", ROOT / "scripts" / "make_bad_inputs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_bad_inputs"] = mod
    spec.loader.exec_module(mod)
    return mod


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[Path, Path, dict[str, Path]]:
    """The corpus, generated once per session -> (folder, sentinel path, {case: path})."""
    folder = Path(tempfile.mkdtemp(prefix="soda-bad-inputs-"))
    atexit.register(shutil.rmtree, folder, True)
    sentinel = folder / "sentinel" / "UNPICKLED"  # created by the pickle payload if anything ever unpickles it
    sentinel.parent.mkdir()
    return folder, sentinel, corpus_script().make_corpus(folder / "corpus", sentinel)


def server():
    """(url, explorer, demo, workdir) of the shared in-process app (tests/test_app_api.py)."""
    from test_app_api import app_server

    return app_server()


def new_client(url: str, downloads: Path):
    """A gradio_client session whose downloads go to ``downloads`` (not into the server's cache folder). Its HTTP
    timeout is 2 minutes (httpx's default of 5 s is shorter than an upload waits on a busy 2-core machine)."""
    from gradio_client import Client

    downloads.mkdir(parents=True, exist_ok=True)
    return Client(
        url, verbose=False, download_files=str(downloads), analytics_enabled=False, httpx_kwargs={"timeout": 120}
    )


def upload(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def app_error():
    from gradio_client.exceptions import AppError

    return AppError


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def app_dirs(srv) -> dict[str, Path]:
    """The folders the app writes to: Gradio's cache, the explorer's downloads, the asset cache, the checkpoints."""
    from app import media

    _, ex, demo, work = srv
    return {
        "gradio": Path(demo.GRADIO_CACHE),
        "downloads": media.out_dir(),
        "assets": Path(os.environ.get("SODA_CACHE", work / "cache")),
        "checkpoints": work,
    }


def snapshot(dirs: dict[str, Path]) -> dict[Path, int]:
    files = {}
    for d in dirs.values():
        if d.is_dir():
            for p in d.rglob("*"):
                if p.is_file():
                    files[p] = p.stat().st_size
    return files


def gradio_stray_tmp(p: Path, dirs: dict[str, Path]) -> bool:
    """An empty ``tmpXXXXXXXX`` file directly in Gradio's cache: gr.File(type='filepath') preprocessing creates one
    per request with tempfile.NamedTemporaryFile(delete=False) and never removes it (gradio 6.31,
    components/file.py). Not written by this app; see docs/RELIABILITY.md."""
    return p.parent == dirs["gradio"] and p.name.startswith("tmp") and p.stat().st_size == 0


def leftovers(before: dict[Path, int], dirs: dict[str, Path], sent: list[Path]) -> list[Path]:
    """New files since ``before`` that are neither a copy of a file the client sent (Gradio keeps uploads in its
    cache, removed after an hour by delete_cache) nor Gradio's own stray temp file."""
    sent_bytes = {Path(s).read_bytes() for s in sent}
    out = []
    for p in snapshot(dirs).keys() - before.keys():
        if p.is_relative_to(dirs["gradio"]) and (p.read_bytes() in sent_bytes or gradio_stray_tmp(p, dirs)):
            continue
        out.append(p)
    return out


def assert_clear_refusal(err: Exception, words: str) -> str:
    msg = str(err)
    assert re.search(words, msg), f"message {msg!r} lacks {words!r}"
    assert "Traceback" not in msg and 'File "' not in msg and "Unexpected error" not in msg, msg
    return msg


def still_answering(client) -> None:
    info = client.predict(0, api_name="/load_example", quality="preview")[3]
    assert "example 0" in info


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
    if case.expect == "refuse":
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
