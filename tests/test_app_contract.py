"""The explorer's API keeps its word (issue 11): arguments in the form view_api() documents are accepted, CLIP
endpoints answer without weights, outputs are plain values with meaningful names, a refused request is one log
line, one refusal has one wording, and an upload unlike the data gets a calibrated, plain-words warning. Driven
through gradio_client on the shared in-process app of tests/helpers.py."""

from __future__ import annotations

import json
import logging
import re
import struct
import zlib

import numpy as np
import pytest
from helpers import app_error, app_server, read, upload
from PIL import Image


@pytest.fixture(scope="module")
def server():
    return app_server()


@pytest.fixture
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def api_info(client) -> dict:
    return client.view_api(return_format="dict", print_info=False)["named_endpoints"]


def test_sections_in_the_form_view_api_documents(client):
    info = api_info(client)
    for endpoint, name in (("/mix", "from_b"), ("/interpolate", "sections")):
        param = next(p for p in info[endpoint]["parameters"] if p["parameter_name"] == name)
        documented = param["type"]["items"]["enum"]  # what view_api tells a client to send
        assert documented and all(isinstance(v, str) for v in documented)
        assert "Literal['0', '1'" in param["python_type"]["type"]
    client.predict(0, api_name="/load_example", quality="preview")
    a, b, mixed = client.predict("example 1", "example 2", documented[:2], api_name="/mix", quality="preview")
    ints = client.predict("example 1", "example 2", [0, 1], api_name="/mix", quality="preview")[2]  # still accepted
    assert np.array_equal(read(mixed), read(ints)) and not np.array_equal(read(mixed), read(a))
    frames, _, _ = client.predict(
        "current edit", "example 3", 3, "lerp", documented[1:3], api_name="/interpolate", quality="preview"
    )
    assert len(frames) == 3
    with pytest.raises(app_error(), match="not in the list of choices"):
        client.predict("example 1", "example 2", ["99"], api_name="/mix")


def test_outputs_have_meaningful_names(client):
    for name, e in api_info(client).items():
        for r in e["returns"]:
            assert not re.fullmatch(r"value_\d+", r["label"] or ""), (name, r["label"])
            assert r["label"], name


def test_status_strings_are_plain_text(client, server):
    path = server[3] / "contract-flat.png"
    Image.fromarray(np.full((24, 24, 3), (40, 200, 90), np.uint8)).save(path)
    outs = [
        client.predict(3, api_name="/load_example", quality="preview")[3],
        client.predict(upload(path), api_name="/upload", quality="preview")[3],
        client.predict(5, 0.05, api_name="/refine", quality="preview")[1],
        client.predict("PCA", "point", 4, 0, 0, api_name="/map_click", quality="preview")[3],
    ]
    assert all("PSNR" in text and "dB (" in text for text in outs[:3])  # a map point has no input image
    assert "map point 4" in outs[3]
    for text in outs:
        assert not re.search(r"<[a-zA-Z/][^>]*>", text), text  # no tags (the page draws the badge itself)
        assert "**" not in text and "class=" not in text


def test_clip_endpoints_answer_without_weights(client, monkeypatch):
    from soda import clip as sc

    monkeypatch.delenv(sc.ENV_VAR, raising=False)
    table, note = client.predict("", api_name="/name_sliders")
    assert table["headers"] == ["slider", "edit name", "label", "CLIP names (score)"] and table["data"] == []
    assert note.startswith("CLIP weights are not available") and "--clip" in note
    name, note = client.predict("a red object", "", api_name="/prompt_slider")
    assert name == "" and note.startswith("CLIP weights are not available")
    fig = json.loads(client.predict("a red object", "PCA", api_name="/map_prompt"))
    assert fig["meta"]["clip"] == "unavailable" and fig["meta"]["message"].startswith("CLIP weights are not available")
    assert len(fig["data"][0]["x"]) > 0 and "not coloured" in fig["layout"]["title"]["text"]


def test_the_clip_instructions_show_the_app_flag_first(client, monkeypatch):
    from soda import clip as sc

    monkeypatch.delenv(sc.ENV_VAR, raising=False)
    text = client.predict(api_name="/clip_status")
    first = re.search(r"python [^\n]*?--clip", text).group(0)  # the first command line that uses the flag
    assert first == "python app.py --clip", first


def test_a_refused_request_is_one_log_line(client, server, capfd, caplog):
    bad = server[3] / "contract-not-an-image.png"
    bad.write_text("not an image")
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="soda.app"):
        for args, api, words in (
            ((upload(bad),), "/upload", "not an image"),
            (('{"no such slider": 1}',), "/edit", "unknown sliders"),
            (("example 1", "example 2", ["77"]), "/mix", "not in the list of choices"),  # gradio's own check
        ):
            if api == "/edit":
                client.predict(0, api_name="/load_example", quality="preview")
            with pytest.raises(app_error(), match=words):
                client.predict(*args, api_name=api)
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]
    lines = [r.getMessage() for r in caplog.records if r.name == "soda.app"]
    for words in ("not an image", "unknown sliders", "not in the list of choices"):
        hits = [line for line in lines if words in line]
        assert len(hits) == 1 and "\n" not in hits[0], (words, lines)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that announces width x height pixels in a few bytes (the IHDR is all PIL reads before refusing)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_one_refusal_one_wording(client, tmp_path):
    """An image over the pixel limit is refused in the same words whether PIL or the app notices first."""
    sizes = {"over.png": (9000, 8000), "bomb.png": (20000, 20000)}  # 72 Mpx (the app's check), 400 Mpx (PIL's)
    messages = []
    for name, (w, h) in sizes.items():
        (tmp_path / name).write_bytes(_png_header(w, h))
        with pytest.raises(app_error()) as e:
            client.predict(upload(tmp_path / name), api_name="/upload")
        messages.append(str(e.value))
    for msg, (w, h) in zip(messages, sizes.values(), strict=True):
        assert "the limit is 67 megapixels" in msg and f"{w * h / 1e6:.0f} megapixels" in msg, msg
        assert "Mpx" not in msg and "decode safely" not in msg


def test_an_upload_unlike_the_data_is_flagged_in_plain_words(server):
    """The warning comes from the checkpoint's calibrated detector (soda.ood), and says what it means."""
    from app.edit_panel import camera_note

    _, ex, _, work = server
    m = ex.get()
    det = m.assets.ood
    assert det is not None and det.meta["n_calib"] > 0
    yy, xx = np.mgrid[0:40, 0:40]
    board = (((xx // 5 + yy // 5) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2)
    Image.fromarray(board).save(work / "contract-board.png")
    state, notes = ex.load_upload(ex.new_state(), str(work / "contract-board.png"), 0, "preview")
    assert state["ood"]["flagged"] and state["ood"]["score"] > det.threshold == state["ood"]["threshold"]
    assert len(notes) == 1 and "only knows procedural rooms" in notes[0] and "nearest room it can draw" in notes[0]
    # a held-out scene saved as a file is not flagged: its verdict is the detector's own
    scene = m.assets.examples[0]
    Image.fromarray(scene).save(work / "contract-scene.png")
    state, notes = ex.load_upload(ex.new_state(), str(work / "contract-scene.png"), 0, "preview")
    x = m.assets.examples[:1]
    from soda import api

    z = api.encode(m.model, api.from_uint8(x), camera=m.camera)
    recon = api.decode(m.model, z, camera=m.camera, steps=det.steps, seed=det.seed)
    expected = det.verdicts(det.raw(api.from_uint8(x), z, recon))[0]
    assert state["ood"]["flagged"] == expected.flagged and abs(state["ood"]["score"] - expected.score) < 1e-3
    assert bool(notes) == expected.flagged
    assert "default camera" in camera_note(m)


def test_every_explorer_name_the_app_uses_exists():
    """The panels, recipes, app.py and the tests call the explorer by name (``ex.preview``, ``ex._loaded``); each
    name is one of its services' attributes (app/explorer.py), so a name left out would only fail when that button
    is pressed. Every ``ex.NAME`` read in app/, app.py and tests/ must exist on an explorer (nothing is loaded)."""
    import ast
    from pathlib import Path

    from app.explorer import Explorer

    root = Path(__file__).resolve().parents[1]
    used: dict[str, str] = {}
    for path in [root / "app.py", *sorted((root / "app").glob("*.py")), *sorted((root / "tests").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ex":
                used.setdefault(node.attr, path.name)
    ex = Explorer("no-such-checkpoint")
    missing = {name: where for name, where in used.items() if not hasattr(ex, name)}
    assert not missing, f"names used on the explorer that it lacks: {missing}"
    assert len(used) > 40  # the scan found the panels' calls


def test_no_follow_up_event_is_dropped_while_one_is_pending(server):
    """A follow-up (``.then``) in gradio's default trigger mode "once" is *skipped* by the page while the same follow-up
    still runs: two quick map clicks ran the star's sync once, for the first click, and the star stayed on the point
    while the status said it had moved (CI, stop 19). Every follow-up must run again, with the state it finds then."""
    config = server[2].get_config_file()
    names = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    follow_ups = [d for d in config["dependencies"] if d.get("trigger_after") is not None]
    assert len(follow_ups) >= 10  # the sync after every load, the star after a map redraw, the refine's tail, ...
    dropped = [
        (d["backend_fn"] and d.get("api_name"), [names.get(o) for o in d["outputs"]])
        for d in follow_ups
        if d["trigger_mode"] == "once"
    ]
    assert not dropped, f"follow-ups that a pending run of themselves would drop: {dropped}"
