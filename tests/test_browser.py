"""The explorer in a real browser (Debian chromium through Playwright): pick an example, drag a slider and see the
image change without flooding the queue, click the latent map (a point, then empty space), visit every tab.
Screenshots go to test-artifacts/.

The same tour makes the documentation's screenshots of a real checkpoint:

    python tests/test_browser.py --checkpoint assets/checkpoints/world32 --out assets/screenshots
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from test_app_api import app_server

    return app_server()


@pytest.fixture(scope="module")
def page(app):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(app[0])
        pg.wait_for_selector("#examples img", timeout=60_000)
        pg.errors = errors
        yield pg
        browser.close()


def src(pg, elem_id: str) -> str | None:
    return pg.evaluate(f"(() => {{ const i = document.querySelector('#{elem_id} img'); return i ? i.src : null }})()")


def wait_change(pg, elem_id: str, old: str | None, timeout: float = 30.0) -> str:
    end = time.time() + timeout
    while time.time() < end:
        now = src(pg, elem_id)
        if now and now != old:
            return now
        time.sleep(0.1)
    raise AssertionError(f"#{elem_id} did not change within {timeout:.0f} s")


def wait_idle(calls, keys=("preview", "render"), quiet: float = 2.0, timeout: float = 60.0) -> None:
    """Wait until the explorer's call counters have not moved for ``quiet`` seconds."""
    end = time.time() + timeout
    last, since = {k: calls[k] for k in keys}, time.time()
    while time.time() < end:
        time.sleep(0.2)
        now = {k: calls[k] for k in keys}
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            return
    raise AssertionError("the server kept working long after the drag: the queue was flooded")


def info(pg) -> str:
    return pg.evaluate("document.querySelector('#info').textContent")


def test_pick_an_example_and_drag_a_slider(page, app):
    ex = app[1]
    page.locator("#examples img").nth(2).click()
    first = wait_change(page, "edited", None)
    assert "example 2" in info(page)
    # every named slider says what it measurably does (captions measured at precompute time)
    m = ex.get()
    named = [i for i, s in enumerate(m.slots) if s and s.startswith("label.")]
    caption = m.infos[m.slots[named[0]]]
    assert page.locator(f"#slider-{named[0]}").get_by_text(caption).is_visible()
    page.screenshot(path=str(ARTIFACTS / "panel-explore.png"), full_page=True)

    slider = page.locator("#slider-3 input[type=range]")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    x0, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    before = dict(ex.calls)
    moves = 30
    page.mouse.move(x0, y)
    page.mouse.down()
    for i in range(1, moves + 1):
        page.mouse.move(x0 + i * box["width"] / 2 / moves, y)
        time.sleep(0.03)
    page.mouse.up()
    t_up = time.time()
    wait_idle(ex.calls)
    settled = time.time() - t_up
    after = dict(ex.calls)
    assert float(page.locator("#slider-3 input[type=number]").input_value()) > 1.0
    assert wait_change(page, "edited", first, timeout=10) != first
    renders = after.get("render", 0) - before.get("render", 0)
    previews = after.get("preview", 0) - before.get("preview", 0)
    assert renders == 1, f"one release should render once, rendered {renders} times"
    assert 1 <= previews <= moves, f"{previews} previews for {moves} mouse moves"
    assert settled < 15, f"the queue took {settled:.1f} s to drain after the drag"
    page.screenshot(path=str(ARTIFACTS / "panel-explore-edited.png"), full_page=True)


def test_click_the_latent_map(page, app):
    page.get_by_role("tab", name="Latent map").click()
    page.wait_for_selector("#map .soda-map .nsewdrag", timeout=30_000)
    points = page.locator("#map .scatterlayer .trace").first.locator(".point")
    assert points.count() == app[1].get().assets.map_latents.shape[0]
    before = src(page, "edited")
    box = points.nth(11).bounding_box()
    px, py = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(px, py)
    page.wait_for_function("/map point \\d+/.test(document.querySelector('#info').textContent)", timeout=30_000)
    picked = int(re.search(r"map point (\d+)", info(page)).group(1))
    # the loaded point is the one under the cursor (11, or a point drawn on top of it)
    where = points.nth(picked).bounding_box()
    assert abs(where["x"] + where["width"] / 2 - px) < 8 and abs(where["y"] + where["height"] / 2 - py) < 8
    page.wait_for_function("document.querySelector('#map .soda-map').data.length === 2", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "panel-map.png"), full_page=True)

    drag = page.locator("#map .nsewdrag").bounding_box()
    # an empty spot: of a grid over the plot area, the place farthest from every point (the map depends on the
    # checkpoint, so no fixed corner is guaranteed to be empty)
    ex, ey = page.evaluate(
        """(() => { const d = document.querySelector('#map .soda-map'), L = d._fullLayout, t = d.data[0];
        const px = t.x.map(v => L.xaxis.d2p(v)), py = t.y.map(v => L.yaxis.d2p(v));
        let best = [8, 8], far = -1;
        for (let gx = 8; gx < L.xaxis._length - 8; gx += 6) for (let gy = 8; gy < L.yaxis._length - 8; gy += 6) {
          let m = Infinity;
          for (let i = 0; i < px.length; i++) m = Math.min(m, (px[i] - gx) ** 2 + (py[i] - gy) ** 2);
          if (m > far) { far = m; best = [gx, gy]; }
        }
        return best; })()"""
    )
    cx, cy = drag["x"] + ex, drag["y"] + ey
    target = page.evaluate(
        f"""(() => {{ const d = document.querySelector('#map .soda-map'), L = d._fullLayout;
        return [L.xaxis.p2d({cx} - {drag["x"]}), L.yaxis.p2d({cy} - {drag["y"]})]; }})()"""
    )
    page.mouse.click(cx, cy)
    page.wait_for_function("document.querySelector('#info').textContent.includes('moved on the map')", timeout=30_000)
    page.wait_for_function(
        f"""(() => {{ const d = document.querySelector('#map .soda-map').data;
        return d.length === 2 && Math.abs(d[1].x[0] - {target[0]}) < 1e-3 * (1 + Math.abs({target[0]})); }})()""",
        timeout=30_000,
    )  # the star moved to where we clicked
    page.get_by_role("tab", name="Explore / edit").click()
    assert wait_change(page, "edited", before) != before


def test_every_tab(page):
    page.get_by_role("tab", name="Interpolate").click()
    page.get_by_role("button", name="Interpolate").click()
    page.wait_for_function(
        "(() => { const im = [...document.querySelectorAll('#interp-gallery img')];"
        " return im.length >= 8 && im.every(i => i.complete && i.naturalWidth > 0); })()",
        timeout=60_000,
    )
    page.screenshot(path=str(ARTIFACTS / "panel-interpolate.png"), full_page=True)

    page.get_by_role("tab", name="Mix sections").click()
    page.get_by_role("button", name="Mix", exact=True).click()
    wait_change(page, "mixed", None, timeout=60)
    page.screenshot(path=str(ARTIFACTS / "panel-mix.png"), full_page=True)

    page.get_by_role("tab", name="Novel views").click()
    page.get_by_role("button", name="Render view").click()
    wait_change(page, "novel-view", None, timeout=60)
    page.screenshot(path=str(ARTIFACTS / "panel-views.png"), full_page=True)

    page.get_by_role("tab", name="Directions (CLIP)").click()
    page.wait_for_function(  # the status: the loaded model, or what to provide (no CLIP weights in the tests)
        "(() => { const t = document.querySelector('#clip-status textarea');"
        " return t && /CLIP ready|CLIP weights are not available/.test(t.value); })()",
        timeout=30_000,
    )
    page.screenshot(path=str(ARTIFACTS / "panel-clip.png"), full_page=True)

    page.get_by_role("tab", name="Export / API").click()
    page.get_by_role("button", name="Export the current edit").click()
    page.get_by_text("soda-recipe", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "panel-export.png"), full_page=True)
    assert not page.errors, page.errors


def test_open_another_checkpoint(page, app):
    if app[3] is None:
        pytest.skip("only in the test session (it has a second checkpoint)")
    other = str(app[3] / "tiny2")
    page.get_by_role("tab", name="Explore / edit").click()
    box = page.locator("#ckpt input")
    box.click()
    box.fill(other)
    box.press("Enter")
    page.get_by_role("button", name="Open", exact=True).click()
    page.wait_for_function("document.querySelector('#info').textContent.includes('Pick an example')", timeout=60_000)
    assert other in app[1]._loaded
    before = src(page, "edited")
    page.locator("#examples img").nth(0).click()
    page.wait_for_function("document.querySelector('#info').textContent.includes('example 0')", timeout=30_000)
    wait_change(page, "edited", before)
    assert not page.errors, page.errors


def main(argv: list[str] | None = None) -> int:
    """Run the tour on any checkpoint and keep its screenshots (see the module docstring)."""
    import argparse
    import os
    import sys

    global ARTIFACTS
    ap = argparse.ArgumentParser(description="Screenshots of every panel of the explorer")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", default=str(ARTIFACTS))
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from playwright.sync_api import sync_playwright

    from app.explorer import Explorer
    from app.ui import build_demo, launch_options

    ARTIFACTS = Path(a.out)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ex = Explorer(a.checkpoint)
    ex.get()
    demo = build_demo(ex)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options())
    app = (demo.local_url, ex, demo, None)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.errors = []
        pg.goto(app[0])
        pg.wait_for_selector("#examples img", timeout=60_000)
        test_pick_an_example_and_drag_a_slider(pg, app)
        test_click_the_latent_map(pg, app)
        test_every_tab(pg)
        browser.close()
    demo.close()
    print(f"screenshots in {ARTIFACTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
