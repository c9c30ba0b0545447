"""Safety: checkpoints are never unpickled, checkpoint ids and paths from the browser are validated, uploads stay in
Gradio's temp area, and the running server serves no file from disk but its own outputs (requests made with urllib
to 127.0.0.1, as an attacker would, not through gradio_client).
"""

from __future__ import annotations

import ast
import functools
import json
import pickle
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import torch
from helpers import (
    app_error,
    assert_clear_refusal,
    corpus,
    new_client,
    read,
    server,
    still_answering,
    upload,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def srv():
    return server()


@pytest.fixture(scope="module")
def client(srv, tmp_path_factory):
    return new_client(srv[0], tmp_path_factory.mktemp("safety-downloads"))


def http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ------------------------------------------------------------------------------------------------------------
# Checkpoints are never unpickled
# ------------------------------------------------------------------------------------------------------------

SOURCES = [*(p for d in ("soda", "app", "scripts") for p in sorted((ROOT / d).rglob("*.py"))), ROOT / "app.py"]


def _const(kw: dict, key: str):
    v = kw.get(key)
    return v.value if isinstance(v, ast.Constant) else None


def _unsafe_loads(path: Path, root: Path = ROOT) -> list[str]:
    """Calls that can unpickle: pickle / dill / joblib / cloudpickle loads, torch.load without weights_only=True,
    np.load without allow_pickle=False, numpy allow_pickle=True anywhere."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        kw = {k.arg: k.value for k in node.keywords}
        const = functools.partial(_const, kw)

        where = f"{path.relative_to(root)}:{node.lineno}"
        if owner in ("pickle", "dill", "joblib", "cloudpickle", "cPickle") and name in ("load", "loads", "Unpickler"):
            bad.append(f"{where} {owner}.{name}")
        elif owner == "torch" and name == "load" and const("weights_only") is not True:
            bad.append(f"{where} torch.load without weights_only=True")
        elif owner in ("np", "numpy") and name == "load" and const("allow_pickle") is not False:
            bad.append(f"{where} np.load without allow_pickle=False")
        elif const("allow_pickle") is True:
            bad.append(f"{where} allow_pickle=True")
    return bad


def test_no_code_path_can_unpickle():
    """Every loader in soda/ and app/ reads safetensors, JSON or weights_only / allow_pickle=False files."""
    assert len(SOURCES) > 20
    bad = [b for p in SOURCES for b in _unsafe_loads(p)]
    assert not bad, bad


def test_the_scan_would_see_an_unpickling_call(tmp_path):
    p = tmp_path / "x.py"
    p.write_text(
        "import torch, numpy as np, pickle\ntorch.load(f)\nnp.load(f)\npickle.loads(b)\nx(allow_pickle=True)\n"
    )
    assert len(_unsafe_loads(p, tmp_path)) == 4


def test_loading_a_checkpoint_and_its_explorer_assets_unpickles_nothing(srv, monkeypatch):
    """With every unpickler replaced by a trap, a checkpoint and its cached explorer assets still load."""
    from app.explorer import Explorer
    from soda import api
    from soda.model import load_pretrained

    def trap(*a, **k):
        raise AssertionError("something tried to unpickle")

    class TrapUnpickler(pickle.Unpickler):
        def __init__(self, *a, **k):
            trap()

    monkeypatch.setattr(pickle, "load", trap)
    monkeypatch.setattr(pickle, "loads", trap)
    monkeypatch.setattr(pickle, "Unpickler", TrapUnpickler)
    monkeypatch.setattr(torch, "load", trap)
    _, ex, _, work = srv
    assert load_pretrained(work / "tiny").z_dim == 20
    assert api.load_model(str(work / "tiny")).z_dim == 20
    fresh = Explorer(str(work / "tiny"), n_map=ex.n_map, n_examples=ex.n_examples)
    assert len(fresh.get().assets.example_captions) == ex.n_examples  # read back from explorer/assets.*


def test_a_pickle_named_model_safetensors_is_refused():
    """FOLDER/model.safetensors is a torch.save pickle whose unpickling would create a file: refused as unreadable,
    and the file never appears (the page and ``app.py --checkpoint`` get the same: test_reliability_inputs.py)."""
    from soda.config import ConfigError
    from soda.model import load_pretrained

    _, sentinel, paths = corpus()
    with pytest.raises(ConfigError, match="not a readable safetensors file"):
        load_pretrained(paths["checkpoint/pickle_as_safetensors"])
    with pytest.raises(ConfigError, match="has no model.safetensors"):
        load_pretrained(paths["checkpoint/pickle_only"])  # a pytorch_model.bin beside config.json is not looked at
    assert not sentinel.exists()


# ------------------------------------------------------------------------------------------------------------
# Checkpoint ids and paths from the browser
# ------------------------------------------------------------------------------------------------------------

HOSTILE_KEYS = [
    "..",
    "../..",
    "../../../../etc",
    "/etc",
    "/etc/passwd",
    "/",
    "~/.ssh",
    "file:///etc/passwd",
    "http://127.0.0.1:1/owner/name",
    "https://huggingface.co/owner/name",
    "owner/../../etc",
    "owner/name/../../x",
    "./owner/name",
    "..\\..\\windows\\system32",
    "C:\\Windows",
    "\\\\server\\share\\x",
    "owner/name\n/etc",
    "owner/name;rm -rf ~",
    "a" * 300 + "/b",
    "",
    "tests",
    "assets/checkpoints",
    "soda/configs",
]


def test_hostile_checkpoint_ids_are_refused_by_the_page(srv, client):
    _, ex, _, work = srv
    loaded = set(ex._loaded)
    keys = [*HOSTILE_KEYS, str(work), str(work / "tiny" / ".."), str(work / "tiny") + "/"]
    for key in keys:
        with pytest.raises(app_error()) as err:
            client.predict(key, api_name="/open_checkpoint")
        assert_clear_refusal(err.value, "not one of the listed checkpoints|command line")
    assert set(ex._loaded) == loaded  # nothing was opened
    still_answering(client)


@pytest.mark.parametrize("key", [k for k in HOSTILE_KEYS if k not in ("tests", "assets/checkpoints", "soda/configs")])
def test_hostile_ids_are_refused_by_the_library(key):
    from soda.config import ConfigError
    from soda.model import resolve_checkpoint

    if key in ("..", "../..", "/", "/etc"):  # existing folders: refused as folders without a config.json
        words = "not a SODA checkpoint folder"
    elif key == "/etc/passwd":
        words = "got a file"
    else:
        words = "not a valid hub id|not a SODA checkpoint folder"
    with pytest.raises(ConfigError, match=words):
        resolve_checkpoint(key)


# ------------------------------------------------------------------------------------------------------------
# Uploads stay in the temp area
# ------------------------------------------------------------------------------------------------------------


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_an_upload_cannot_escape_the_temp_area(srv):
    url, _, demo, _ = srv
    cache = Path(demo.GRADIO_CACHE).resolve()
    token = uuid.uuid4().hex
    escapes = [f"../../../../tmp/escape-{token}.png", f"/tmp/escape-abs-{token}.png", f"..%2f..%2fescape-{token}.png"]
    for name in escapes:
        body, ctype = _multipart(name, b"\x89PNG not really")
        status, text = http(url + "gradio_api/upload", body, {"Content-Type": ctype})
        assert status == 200, text
        (stored,) = json.loads(text)
        assert Path(stored).resolve().is_relative_to(cache), stored
    assert not list(Path("/tmp").glob(f"escape*{token}*")) and not list(cache.parent.glob(f"escape*{token}*"))


def test_an_upload_larger_than_the_limit_is_refused(srv):
    from app.uploads import MAX_BYTES

    body, ctype = _multipart("big.png", b"\0" * (MAX_BYTES + 1024))
    status, text = http(srv[0] + "gradio_api/upload", body, {"Content-Type": ctype})
    assert status == 413, (status, text[:200])


def test_a_server_path_cannot_be_passed_off_as_an_upload(srv, tmp_path):
    """The API takes uploads as {"path": ...}: a path on the server that was not uploaded (a private image, the
    weights, /etc/passwd) must be refused, not read. Sent raw, since gradio_client would upload a local file."""
    url, _, _, work = srv
    from PIL import Image

    private = work / f"private-{uuid.uuid4().hex}.png"
    Image.new("RGB", (20, 20), (1, 2, 3)).save(private)
    for path in (str(private), "/etc/passwd", str(work / "tiny" / "model.safetensors")):
        payload = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, 0, "preview"]}
        status, text = http(
            url + "gradio_api/call/upload", json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )
        assert status == 200, text
        event = json.loads(text)["event_id"]
        status, stream = http(url + f"gradio_api/call/upload/{event}")
        events = stream.decode()
        assert "event: error" in events and "event: complete" not in events, events[:500]
        assert "root:" not in events
    private.unlink()


# ------------------------------------------------------------------------------------------------------------
# The server serves no file from disk
# ------------------------------------------------------------------------------------------------------------


def gr_file() -> str:
    import gradio

    return gradio.__file__


def test_the_launch_options_allow_no_extra_paths(srv):
    from gradio.data_classes import _StaticFiles

    from app.ui import launch_options

    _, _, demo, _ = srv
    opts = launch_options()
    assert not opts.get("allowed_paths") and not demo.allowed_paths
    site = Path(gr_file()).parents[1]  # site-packages
    for p in map(Path, _StaticFiles.all_paths):  # gr.set_static_paths: single files of installed packages only
        assert p.is_file() and p.resolve().is_relative_to(site), p  # (Gradio's icons, plotly.min.js for the map)
    assert opts.get("show_error") is False  # only messages raised as gr.Error reach the browser


def test_the_server_refuses_files_outside_its_cache(srv, client, tmp_path):
    url, _, demo, work = srv
    cache = Path(demo.GRADIO_CACHE).resolve()
    secret = work / f"secret-{uuid.uuid4().hex}.txt"
    secret.write_text(f"SECRET-{uuid.uuid4().hex}")
    link = cache / f"link-{uuid.uuid4().hex}.txt"
    link.symlink_to(secret)  # a symlink planted inside the cache still points outside it
    port = urllib.parse.urlparse(url).port
    targets = [
        "/etc/passwd",
        str(secret),
        str(work / "tiny" / "model.safetensors"),
        str(work / "tiny" / "config.json"),
        str(ROOT / "app.py"),
        "app.py",
        "pyproject.toml",
        str(cache / ".." / ".." / "etc" / "passwd"),
        f"{cache}/../{secret.relative_to(secret.parent.parent)}",
        str(link),
        "../../../../../../etc/passwd",
        "file:///etc/passwd",
        f"http://127.0.0.1:{port}/gradio_api/info",  # the file route must not fetch from loopback (SSRF)
        "http://localhost:22/",
    ]
    quoted = [urllib.parse.quote(t, safe="/:") for t in targets] + [
        "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2f..%2f..%2fetc%2fpasswd",
        "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    ]
    refused = []
    for t in quoted:
        for prefix in ("gradio_api/file=", "file=", "gradio_api/file/"):
            status, body = http(url + prefix + t)
            assert b"root:" not in body and secret.read_bytes() not in body, (prefix, t, status)
            assert status in (400, 403, 404, 405), (prefix, t, status, body[:200])
            refused.append(status)
    for t in ("/../../../etc/passwd", "/assets/../../../../etc/passwd", "/static/../../../../etc/passwd"):
        status, body = http(url.rstrip("/") + t)
        assert b"root:" not in body, t
    link.unlink()
    # the control: an output of this session is served (so the refusals above are not a broken client)
    inp, *_ = client.predict(0, api_name="/load_example", quality="preview")
    assert Path(inp).exists() and read(inp).shape == (16, 16, 3)
    outputs = [p for p in cache.rglob("*.png") if p.is_file()]
    assert outputs
    status, body = http(url + "gradio_api/file=" + urllib.parse.quote(str(outputs[0])))
    assert status == 200 and body[:4] == b"\x89PNG"
    print(f"\n{len(refused)} requests for files outside the cache refused: statuses {sorted(set(refused))}")


def test_bad_upload_with_a_wrong_extension_for_a_recipe(client, srv):
    """The recipe input takes .json only: the corpus pickle (evil.pt) is refused by the upload route itself (415,
    app.uploads.UploadFilter), before any event sees it."""
    import httpx

    _, sentinel, paths = corpus()
    with pytest.raises(httpx.HTTPStatusError) as err:
        client.predict(upload(paths["pickle/evil"]), api_name="/load_recipe")
    assert err.value.response.status_code == 415
    assert not sentinel.exists()
