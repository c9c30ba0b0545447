"""A public Space that no visitor can break (issue 25): what a request sends does not outlive it or reach other
sessions, no request holds the workers, numbers the page cannot send are refused where requests enter, and uploads are
limited to the size and types the app reads. Against the shared in-process app (tests/helpers.py), through
gradio_client and raw HTTP as a hostile visitor would send them.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import app_error, assert_clear_refusal, new_client, read, server, still_answering, upload

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def srv():
    return server()


@pytest.fixture(scope="module")
def client(srv, tmp_path_factory):
    return new_client(srv[0], tmp_path_factory.mktemp("space-downloads"))


def http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def raw_call(url: str, api: str, body: str) -> str:
    """POST a raw JSON body (text: NaN and short lists allowed) to /gradio_api/call/<api> -> the event stream."""
    status, text = http(url + f"gradio_api/call/{api}", body.encode(), {"Content-Type": "application/json"})
    assert status == 200, text
    event = json.loads(text)["event_id"]
    return http(url + f"gradio_api/call/{api}/{event}")[1].decode()


def prompt_direction(z_dim: int, text: str, seed: int = 0) -> tuple[str, list[float]]:
    """A well-formed prompt direction (the digest is of the vector) named after ``text``."""
    from app.explorer_prompts import direction_digest

    v = torch.randn(z_dim, generator=torch.Generator().manual_seed(seed))
    return f"clip.{text}#{direction_digest(v)}", [float(x) for x in v]


def recipe_with(srv, directions: dict, edits: dict | None = None, **kw) -> dict:
    _, ex, _, _ = srv
    m = ex.get()
    z = m.assets.example_latents[0].tolist()
    return {"format": "soda-recipe", "version": 1, "latent": z, "edits": edits or {}, "seed": 0, "steps": 4} | {
        "directions": directions,
        **kw,
    }


def write(tmp_path: Path, recipe: dict) -> Path:
    p = tmp_path / f"recipe-{uuid.uuid4().hex[:8]}.json"
    p.write_text(json.dumps(recipe))
    return p


def files_under(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------------------------------
# 1. A recipe's directions belong to its session; nothing a request sends reaches a checkpoint folder
# ------------------------------------------------------------------------------------------------------------


def test_a_recipes_directions_stay_in_its_session(srv, tmp_path):
    url, ex, _, work = srv
    m = ex.get()
    name, vec = prompt_direction(m.model.z_dim, "a session only slider")
    before = files_under(work / "tiny")
    # typed prompts of other tests may be cached (in the user cache): a recipe must not add to or change them
    sliders_before = {p: p.read_bytes() for p in work.rglob("prompt_sliders.safetensors")}
    a, b = new_client(url, tmp_path / "a"), new_client(url, tmp_path / "b")
    path = write(tmp_path, recipe_with(srv, {name: vec}, {name: 1.5}))
    _, _, edited, _ = a.predict(upload(path), api_name="/load_recipe")
    assert name not in ex.get().directions  # not added to the shared checkpoint
    assert files_under(work / "tiny") == before  # nothing written into the checkpoint folder
    assert {p: p.read_bytes() for p in work.rglob("prompt_sliders.safetensors")} == sliders_before
    # the session that loaded it edits and exports with it ...
    again = read(a.predict(json.dumps({name: 1.5}), api_name="/edit", quality="preview"))  # the recipe's 4 steps
    assert np.array_equal(again, read(edited))
    _, _, js, _ = a.predict(api_name="/export")
    assert list(json.loads(Path(js).read_text())["directions"]) == [name]
    # ... another session never sees it
    b.predict(0, api_name="/load_example", quality="preview")
    with pytest.raises(app_error()) as err:
        b.predict(json.dumps({name: 1.0}), api_name="/edit")
    assert_clear_refusal(err.value, "unknown slider")


@pytest.mark.parametrize(
    "case",
    ["long_name", "markup", "nul", "too_many", "bad_digest_form"],
)
def test_hostile_recipe_directions_are_refused_with_a_short_escaped_message(srv, client, tmp_path, case):
    _, ex, _, work = srv
    z_dim = ex.get().model.z_dim
    if case == "long_name":
        dirs = dict([prompt_direction(z_dim, "x" * 1_000_000)])
    elif case == "markup":
        dirs = dict([prompt_direction(z_dim, HOSTILE)])
    elif case == "nul":
        dirs = dict([prompt_direction(z_dim, "a\x00b\nc")])
    elif case == "too_many":
        dirs = dict(prompt_direction(z_dim, f"slider {i}", seed=i) for i in range(17))
    else:
        dirs = {"clip.a red object#XYZ": [0.0] * z_dim}
    before = files_under(work)
    with pytest.raises(app_error()) as err:
        client.predict(upload(write(tmp_path, recipe_with(srv, dirs))), api_name="/load_recipe")
    msg = assert_clear_refusal(err.value, "prompt direction")
    assert len(msg) < 400 and "<img" not in msg and "\x00" not in msg and "\n" not in msg, msg[:500]
    assert not any(n.startswith("clip.") for n in ex.get().directions if n in dirs)
    new = set(files_under(work)) - set(before)
    assert not [p for p in new if "prompt_sliders" in p.name]


def test_an_unknown_slider_is_quoted_short_and_escaped(client):
    client.predict(0, api_name="/load_example", quality="preview")
    with pytest.raises(app_error()) as err:
        client.predict(json.dumps({HOSTILE + "y" * 20_000: 1.0}), api_name="/edit")
    msg = assert_clear_refusal(err.value, "unknown slider")
    assert len(msg) < 3000 and "<img" not in msg and "&lt;img" in msg, msg[:300]


def test_typed_prompt_sliders_are_kept_in_the_user_cache_not_in_the_checkpoint(srv):
    from app.explorer_prompts import clip_cache_dir
    from soda.paths import cache_root

    _, ex, _, work = srv
    folder = clip_cache_dir(ex.get())
    assert folder is not None and folder.is_relative_to(cache_root())
    assert not folder.is_relative_to(work / "tiny")


def test_prompt_direction_names_are_bounded(srv):
    from app.explorer import ExplorerError
    from app.explorer_prompts import MAX_NAME, check_direction_name, clean_prompt

    assert check_direction_name("clip.a red object vs a blue object#0123abcd")
    for bad in ("clip." + "x" * MAX_NAME + "#0123abcd", f"clip.{HOSTILE}#0123abcd", "clip.a\x00b#0123abcd"):
        with pytest.raises(ExplorerError):
            check_direction_name(bad)
    with pytest.raises(ExplorerError, match="letters, digits"):
        clean_prompt(HOSTILE)


# ------------------------------------------------------------------------------------------------------------
# 2. No request holds the workers
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [11, 1000])
def test_recipe_steps_are_bounded_by_what_the_page_offers(srv, client, tmp_path, steps):
    path = write(tmp_path, recipe_with(srv, {}, steps=steps))
    t = time.monotonic()
    with pytest.raises(app_error()) as err:
        client.predict(upload(path), api_name="/load_recipe")
    assert_clear_refusal(err.value, r"'steps' must be an integer in 1\.\.(10|200)")
    assert time.monotonic() - t < 30


def test_long_jobs_have_a_pool_of_their_own(srv):
    _, _, demo, _ = srv
    pools = {fn.api_name: (fn.concurrency_id, fn.concurrency_limit) for fn in demo.fns.values() if fn.api_name}
    for name in ("refine", "orbit", "interpolate"):
        assert pools[name] == ("long", 1), (name, pools[name])
    assert pools["load_example"][0] == "model" and pools["load_recipe"][0] == "model"


def test_one_session_cannot_queue_more_than_its_share(srv, client):
    from app.common import MAX_PENDING

    jobs = [client.submit(0, api_name="/load_example", quality="full") for _ in range(3 * MAX_PENDING)]
    outcomes = []
    for j in jobs:
        try:
            j.result()
            outcomes.append("ok")
        except Exception as e:  # noqa: BLE001 - a refusal at the queue's door is an HTTP 400
            outcomes.append(type(e).__name__)
    assert "ok" in outcomes and any(o != "ok" for o in outcomes), outcomes
    still_answering(client)


def test_refine_stops_at_its_time_budget_and_keeps_its_result(srv):
    _, ex, _, _ = srv
    state = ex.load_example(ex.new_state(), 1, 0, "preview")
    out = list(ex.refine(state, 200, 0.05, 0, "preview", seconds=0.0))
    i, total, new, recon = out[-1]
    assert total == 200 and i < 200 and new is not None and recon is not None
    assert "time budget" in new["note"]


def test_an_orbit_stops_at_its_time_budget_with_the_frames_done(srv, client, monkeypatch):
    from app import views_panel

    monkeypatch.setattr(views_panel, "ORBIT_SECONDS", 0.0)
    client.predict(0, api_name="/load_example", quality="preview")
    gif, status = client.predict(48, 20.0, 4.0, 10, api_name="/orbit")
    assert "time budget" in status and Path(gif).is_file(), status


# ------------------------------------------------------------------------------------------------------------
# 6. Numbers the page cannot send, refused where requests enter; one log line per user error
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "camera",
    [{"azimuth": 0, "elevation": 20, "radius": 0}, {"azimuth": 0, "elevation": 20, "radius": -4}, {"azimuth": 1e300}],
)
def test_a_recipe_camera_outside_what_the_page_offers_is_refused(srv, client, tmp_path, camera):
    cam = {"azimuth": 0.0, "elevation": 20.0, "radius": 4.0} | camera
    with pytest.raises(app_error()) as err:
        client.predict(upload(write(tmp_path, recipe_with(srv, {}, camera=cam))), api_name="/load_recipe")
    assert_clear_refusal(err.value, "recipe 'camera' (radius|azimuth) must be within")


def test_a_map_click_far_outside_the_map_is_refused_and_exports_stay_valid_json(client):
    client.predict(0, api_name="/load_example", quality="preview")
    with pytest.raises(app_error()) as err:
        client.predict("PCA", "empty", 0, 1e39, 0.0, api_name="/map_click")
    assert_clear_refusal(err.value, r"must be a finite number within \+-10000")
    client.predict("PCA", "empty", 0, 3.0, -2.0, api_name="/map_click")
    _, _, js, _ = client.predict(api_name="/export")
    json.loads(Path(js).read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the export"))


def test_raw_requests_with_nan_or_too_few_values_are_one_line_refusals(srv, caplog, capfd):
    url = srv[0]
    caplog.set_level(logging.WARNING, logger="soda.app")
    cases = {
        "nan": ("map_click", '{"data": ["PCA", "empty", 0, NaN, 0, 0, "preview"]}', "finite number"),
        "inf": ("traverse", '{"data": ["section0.pc1", Infinity, 3, 0, "preview"]}', "finite number"),
        "short": ("map_click", '{"data": ["PCA"]}', "takes 7 values"),
        "text_for_number": ("traverse", '{"data": ["section0.pc1", "lots", 3, 0, "preview"]}', "finite number"),
    }
    for name, (api, body, words) in cases.items():
        caplog.clear()
        events = raw_call(url, api, body)
        assert "event: error" in events and words in events, (name, events[:400])
        lines = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(lines) == 1, (name, [r.getMessage() for r in caplog.records])
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]


def test_edit_with_deeply_nested_brackets_uses_the_parsers_guard(client):
    client.predict(0, api_name="/load_example", quality="preview")
    with pytest.raises(app_error()) as err:
        client.predict("[" * 20_000 + "]" * 20_000, api_name="/edit")
    assert_clear_refusal(err.value, "nested too deeply")


def test_a_nul_in_a_name_is_escaped_in_the_log(client, caplog):
    caplog.set_level(logging.WARNING, logger="soda.app")
    client.predict(0, api_name="/load_example", quality="preview")
    with pytest.raises(app_error()):
        client.predict(json.dumps({"evil\x00name\nsecond line": 1.0}), api_name="/edit")
    text = "\n".join(r.getMessage() for r in caplog.records if "refused" in r.getMessage())
    assert "\\x00" in text and "\x00" not in text and "second line" in text
    assert all("\n" not in r.getMessage() for r in caplog.records if "refused" in r.getMessage())


def test_the_excerpt_helper():
    from app.text import excerpt

    assert excerpt("abc") == "'abc'"
    long = excerpt("x" * 1_000_000)
    assert len(long) < 80 and "1000000 characters" in long
    assert excerpt("a\x00b") == "'a\\x00b'" and "&lt;img" in excerpt(HOSTILE)


# ------------------------------------------------------------------------------------------------------------
# 7. Uploads: size and types
# ------------------------------------------------------------------------------------------------------------


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_uploads_of_other_types_are_refused_and_not_kept(srv):
    url, _, demo, _ = srv
    cache = Path(demo.GRADIO_CACHE)
    token = uuid.uuid4().hex
    for name in (f"x-{token}.exe", f"y-{token}.pt", f"noext-{token}"):
        body, ctype = _multipart(name, b"MZ" + b"\0" * 4096)
        status, text = http(url + "gradio_api/upload", body, {"Content-Type": ctype})
        assert status == 415, (name, status, text[:200])
        assert not list(cache.rglob(f"*{token}*")), name
    body, ctype = _multipart(f"ok-{token}.png", b"\x89PNG")
    status, text = http(url + "gradio_api/upload", body, {"Content-Type": ctype})
    assert status == 200 and Path(json.loads(text)[0]).name == f"ok-{token}.png"


def test_the_upload_size_limit_is_what_the_app_needs(srv):
    from app.ui import launch_options
    from app.uploads import MAX_BYTES

    assert launch_options()["max_file_size"] == MAX_BYTES == 20 * 2**20
    body, ctype = _multipart("big.png", b"\0" * (MAX_BYTES + 1024))
    status, _ = http(srv[0] + "gradio_api/upload", body, {"Content-Type": ctype})
    assert status == 413


# ------------------------------------------------------------------------------------------------------------
# 2. Load: a hostile visitor beside normal ones
# ------------------------------------------------------------------------------------------------------------


def _normal_visitor(url: str, folder: Path, rounds: int, out: list[float]) -> None:
    c = new_client(url, folder)
    for r in range(rounds):
        for call in (
            lambda r=r: c.predict(r % 4, api_name="/load_example", quality="full"),
            lambda r=r: c.predict(json.dumps({"section0.pc1": 0.5 + r}), api_name="/edit"),
        ):
            t = time.monotonic()
            call()
            out.append(time.monotonic() - t)


def _hostile_visitor(url: str, folder: Path, recipe: Path, stop, counts: dict) -> None:
    """One session, four threads, sending the heaviest requests the API takes, again and again."""
    c = new_client(url, folder)
    c.predict(0, api_name="/load_example", quality="preview")

    def loop(k: int):
        calls = [
            lambda: c.predict(upload(recipe), api_name="/load_recipe"),
            lambda: c.predict(200, 0.05, api_name="/refine"),
            lambda: c.predict(48, 20.0, 4.0, 10, api_name="/orbit"),
        ]
        i = k
        while not stop():
            try:
                calls[i % len(calls)]()
                counts["done"] = counts.get("done", 0) + 1
            except Exception:  # noqa: BLE001 - refusals are what the server should answer
                counts["refused"] = counts.get("refused", 0) + 1
                time.sleep(0.05)
            i += 1

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(loop, range(4)))


@pytest.mark.slow
def test_normal_visitors_beside_a_hostile_one(srv, tmp_path):
    url = srv[0]
    recipe = write(tmp_path, recipe_with(srv, {}, steps=1000))  # 100 x the tiny checkpoint's full steps
    quiet: list[float] = []
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: _normal_visitor(url, tmp_path / f"q{k}", 4, quiet), range(4)))
    done = {"flag": False}
    counts: dict = {}
    loaded: list[float] = []
    with ThreadPoolExecutor(5) as pool:
        hostile = pool.submit(_hostile_visitor, url, tmp_path / "h", recipe, lambda: done["flag"], counts)
        time.sleep(3)  # the hostile visitor has filled what it can
        normal = [pool.submit(_normal_visitor, url, tmp_path / f"n{k}", 4, loaded) for k in range(4)]
        for f in normal:
            f.result()
        done["flag"] = True
        hostile.result()
    p95q, p95 = np.percentile(quiet, 95), np.percentile(loaded, 95)
    print(
        f"\nnormal visitors: p50 {np.median(quiet):.2f} s, p95 {p95q:.2f} s alone; p50 {np.median(loaded):.2f} s, "
        f"p95 {p95:.2f} s, max {max(loaded):.2f} s beside a hostile one ({len(loaded)} requests; hostile {counts})"
    )
    assert p95 < max(4 * p95q, p95q + 5.0), (p95q, p95)
