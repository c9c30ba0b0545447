"""The explorer in a real browser (Debian chromium through Playwright): pick an example, drag a slider and see the
image change without flooding the queue, click the latent map (a point, then empty space), visit every tab, and the
papercuts a newcomer met (issue 11: a cut-off gallery with cryptic captions, an upload label over its icon, a red
"Cancel refine" with nothing to cancel, a zoomed before/after, Interpolate's image A not following the editor, a
lost click on the map, the CLIP flag's example, two wordings of one refusal). Screenshots go to test-artifacts/.

The same tour makes the documentation's screenshots of a real checkpoint:

    python tests/test_browser.py --checkpoint assets/checkpoints/world32 --out assets/screenshots
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
    from helpers import app_server

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


def wait_for(pg, js: str, what: str, timeout: float = 60_000) -> None:
    """page.wait_for_function that says what it waited for and what the status line said instead."""
    try:
        pg.wait_for_function(js, timeout=timeout)
    except Exception as e:  # noqa: BLE001 - playwright's timeout: say what was seen
        raise AssertionError(f"{what}; the status says: {info(pg)!r}") from e


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


# ------------------------------------------------------------------------------------------------------------
# Papercuts a newcomer met (issue 11)
# ------------------------------------------------------------------------------------------------------------


def rect(pg, selector: str) -> dict:
    return pg.evaluate(
        f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
        " return {x: r.x, y: r.y, w: r.width, h: r.height, r: r.right, b: r.bottom}; })()"
    )


def fetch(pg, elem_id: str) -> np.ndarray:
    """The image an <img> inside #elem_id shows, as the server sent it -> (H, W, 3) uint8."""
    with urllib.request.urlopen(src(pg, elem_id), timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def test_the_gallery_is_whole_and_readable(page, app):
    m = app[1].get()
    page.wait_for_function(
        "[...document.querySelectorAll('#examples img')].every(i => i.complete && i.naturalWidth > 0)", timeout=30_000
    )
    gallery = rect(page, "#examples")
    boxes = page.evaluate(
        """[...document.querySelectorAll('#examples .thumbnail-item')].map(t => {
          const i = t.querySelector('img').getBoundingClientRect(), c = t.querySelector('.caption-label');
          const r = c.getBoundingClientRect(), b = t.getBoundingClientRect();
          return {right: b.right, bottom: b.bottom, img_bottom: i.bottom, cap_top: r.top, text: c.textContent.trim(),
                  clipped: c.scrollWidth > c.clientWidth + 1 || c.scrollHeight > c.clientHeight + 1}; })"""
    )
    assert len(boxes) == len(m.assets.example_captions)
    for b in boxes:  # every thumbnail inside the gallery: nothing cut off on the right, nothing scrolled away
        assert b["right"] <= gallery["r"] + 1 and b["bottom"] <= gallery["b"] + 1, (b, gallery)
        assert b["cap_top"] >= b["img_bottom"] - 1 and not b["clipped"], b  # the whole caption, under its image
    assert [b["text"] for b in boxes] == m.assets.example_captions
    for text in m.assets.example_captions:  # plain words, not factor codes ('0: F2 W1 O4 s0.75 ...')
        assert re.fullmatch(r"[a-z ]+ (cube|cylinder|sphere|capsule), [a-z ]+ floor, [a-z ]+ wall", text), text
    page.locator("#examples").screenshot(path=str(ARTIFACTS / "gallery.png"))


def test_the_upload_label_clears_its_icon(page):
    label = rect(page, "#upload label[data-testid=block-label]")
    icon = rect(page, "#upload [data-testid=upload-icon]")
    overlap = min(label["r"], icon["r"]) > max(label["x"], icon["x"]) and min(label["b"], icon["b"]) > max(
        label["y"], icon["y"]
    )
    assert not overlap, (label, icon)


def test_before_after_shows_both_whole_images(page, app):
    """Screenshot comparison: the picture the before/after slider draws is the whole reconstruction (left of the
    divider) and the whole edit (right of it), not a zoomed crop."""
    res = app[1].get().model.res
    if not page.locator("#before-after").is_visible():
        page.get_by_text("Refine settings / before-after").click()
    page.locator("#before-after").scroll_into_view_if_needed()
    page.wait_for_function(
        "(() => { const im = [...document.querySelectorAll('#before-after [data-testid=imageslider-image]')];"
        " return im.length === 2 && im.every(i => i.complete && i.naturalWidth > 0); })()",
        timeout=30_000,
    )
    time.sleep(0.5)
    recon, edited = fetch(page, "recon"), fetch(page, "edited")
    assert not np.array_equal(recon, edited)  # the drag above made an edit
    wrap = rect(page, "#before-after .slider-wrap")
    img = rect(page, "#before-after [data-testid=imageslider-image]")
    side = min(img["w"], img["h"])  # a square picture, object-fit: contain
    x0, y0 = img["x"] + (img["w"] - side) / 2, img["y"] + (img["h"] - side) / 2
    assert wrap["x"] - 1 <= x0 and x0 + side <= wrap["r"] + 1 and wrap["y"] - 1 <= y0 and y0 + side <= wrap["b"] + 1
    assert side >= 0.9 * min(wrap["w"], wrap["h"])  # and it uses the space it has
    shot = page.screenshot(clip={"x": x0, "y": y0, "width": side, "height": side})
    page.locator("#before-after").screenshot(path=str(ARTIFACTS / "before-after.png"))
    pic = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB").resize((res, res), Image.Resampling.BOX), float)
    left, right = slice(0, res // 2 - 2), slice(res // 2 + 2, res)  # the divider and its handle are in between
    assert np.abs(pic[:, left] - recon[:, left]).mean() < 12, "left of the divider is not the whole reconstruction"
    assert np.abs(pic[:, right] - edited[:, right]).mean() < 12, "right of the divider is not the whole edit"


def test_cancel_refine_is_enabled_only_while_a_refine_runs(page, app):
    cancel = page.locator("#refine-cancel")
    assert cancel.is_disabled() and "stop" not in (cancel.get_attribute("class") or "").split()
    steps = page.locator("#refine-steps input[type=number]")
    if not steps.is_visible():
        page.get_by_text("Refine settings / before-after").click()
    steps.fill("200")
    steps.press("Enter")
    before = app[1].calls["refine"]
    page.locator("#refine").click()
    page.wait_for_function("!document.querySelector('#refine-cancel').disabled", timeout=30_000)
    cancel.click()
    page.wait_for_function("document.querySelector('#refine-cancel').disabled", timeout=30_000)
    assert app[1].calls["refine"] == before + 1
    steps.fill("40")
    steps.press("Enter")
    page.get_by_role("tab", name="Novel views").click()  # the orbit's Cancel behaves the same
    orbit_cancel = page.locator("#orbit-cancel")
    assert orbit_cancel.is_disabled() and "stop" not in (orbit_cancel.get_attribute("class") or "").split()
    page.get_by_role("button", name="Orbit GIF").click()
    page.wait_for_function("!document.querySelector('#orbit-cancel').disabled", timeout=30_000)
    orbit_cancel.click()
    page.wait_for_function("document.querySelector('#orbit-cancel').disabled", timeout=30_000)
    page.get_by_role("tab", name="Explore / edit").click()


def test_interpolate_and_mix_start_from_the_editors_image(page):
    page.get_by_role("tab", name="Interpolate").click()
    assert page.locator("#interp-a input").input_value() == "current edit"
    # Image B shows an example's whole caption (it was cut off in a narrow picker)
    cut = "(() => { const i = document.querySelector('#interp-b input'); return i.scrollWidth - i.clientWidth; })()"
    assert page.locator("#interp-b input").input_value().startswith("example ")
    assert page.evaluate(cut) <= 1
    page.get_by_role("tab", name="Mix sections").click()
    assert page.locator("#mix-a input").input_value() == "current edit"
    page.get_by_role("tab", name="Explore / edit").click()


def test_take_a_factor_from_b_ticks_the_sections_measured_to_carry_it(page, app):
    """The Mix panel names, per section, the factors whose measured carriers include it (soda.precompute decodes
    mixes of held-out pairs), and 'Take a factor from B' ticks exactly those sections."""
    from helpers import KNOWN_CARRIERS

    from app.views_panel import mix_carriers

    # the fixture writes known carriers over the measured ones (a random tiny model's are a coin toss per processor)
    assert mix_carriers(app[1].get()) == KNOWN_CARRIERS
    factor, sections = "floor_hue", KNOWN_CARRIERS["floor_hue"]
    name = factor.replace("_", " ")
    page.get_by_role("tab", name="Mix sections").click()
    labels = page.locator("#mix-from-b label").all_inner_texts()
    assert [i for i, t in enumerate(labels) if name in t] == sections, labels
    page.locator("#mix-take input").click()
    page.get_by_role("option", name=name, exact=True).click()
    want = json.dumps(sections, separators=(",", ":"))
    ticked = (
        "JSON.stringify(Array.from(document.querySelectorAll('#mix-from-b input[type=checkbox]'))"
        ".flatMap((c, i) => c.checked ? [i] : []))"
    )
    wait_for(page, f"{ticked} === '{want}'", f"the sections of {name} ticked ({want})")
    page.get_by_role("tab", name="Explore / edit").click()


def png_header(width: int, height: int) -> bytes:
    """A PNG that announces width x height pixels in a few bytes (all that is read before it is refused)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_a_too_large_upload_is_refused_in_one_wording(page, tmp_path):
    texts = []
    for name, (w, h) in {"over.png": (9000, 8000), "bomb.png": (20000, 20000)}.items():
        (tmp_path / name).write_bytes(png_header(w, h))
        if page.locator("#upload input[type=file]").count() == 0:
            page.locator("#upload button[aria-label='Clear']").click()
        page.locator("#upload input[type=file]").set_input_files(str(tmp_path / name))
        toast = page.locator("[data-testid=toast-body]").filter(has_text=name)
        toast.first.wait_for(timeout=30_000)
        texts.append(toast.first.inner_text())
    for t in texts:
        assert "the limit is 67 megapixels" in t and "Mpx" not in t, texts
    if page.locator("#upload input[type=file]").count() == 0:
        page.locator("#upload button[aria-label='Clear']").click()


def _settled_map(page, tries: int = 40) -> None:
    """Wait until the map's plot area and axis ranges read the same twice 250 ms apart and every image has loaded
    (a late image or a redraw moves what the next clicks aim at)."""
    js = """(() => { const d = document.querySelector('#map .soda-map'), L = d._fullLayout;
      const r = d.querySelector('.nsewdrag').getBoundingClientRect();
      const busy = Array.from(document.images).some(i => !i.complete);
      return JSON.stringify([r.left, r.top, r.width, r.height, L.xaxis.range, L.yaxis.range, busy]); })()"""
    last = page.evaluate(js)
    for _ in range(tries):
        page.wait_for_timeout(250)
        now = page.evaluate(js)
        if now == last and not json.loads(now)[-1]:
            return
        last = now


def _settled_box(page, selector: str, tries: int = 20) -> dict:
    """The element's bounding box once two reads 250 ms apart agree (the page may still be reflowing under load)."""
    box = page.locator(selector).bounding_box()
    for _ in range(tries):
        page.wait_for_timeout(250)
        again = page.locator(selector).bounding_box()
        if again == box:
            return box
        box = again
    return box


def test_click_the_latent_map(page, app):
    page.get_by_role("tab", name="Latent map").click()
    page.wait_for_selector("#map .soda-map .nsewdrag", timeout=30_000)
    points = page.locator("#map .scatterlayer .trace").first.locator(".point")
    assert points.count() == app[1].get().assets.map_latents.shape[0]
    before = src(page, "edited")
    # every point's place on the page at the moment of the click (plot-area pixels from plotly's own axes, once the
    # layout has settled), so that a later reflow of the page cannot move the reference
    drag = _settled_box(page, "#map .nsewdrag")
    pts = page.evaluate(
        """(() => { const d = document.querySelector('#map .soda-map'), L = d._fullLayout, t = d.data[0];
        return t.x.map((v, i) => [L.xaxis.d2p(v), L.yaxis.d2p(t.y[i])]); })()"""
    )
    px, py = drag["x"] + pts[11][0], drag["y"] + pts[11][1]
    page.mouse.click(px, py)
    page.wait_for_function("/map point \\d+/.test(document.querySelector('#info').textContent)", timeout=30_000)
    picked = int(re.search(r"map point (\d+)", info(page)).group(1))
    # the loaded point is the one under the cursor (11, or a point drawn on top of it)
    qx, qy = drag["x"] + pts[picked][0], drag["y"] + pts[picked][1]
    assert abs(qx - px) < 8 and abs(qy - py) < 8, (picked, qx - px, qy - py)
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


def test_a_click_on_empty_space_right_after_a_point_click_counts(page, app):
    """A click on empty space made while the previous click on a point is still being processed moves *that* point's
    latent (it was lost: gradio replayed the earlier click's data for a deferred event, plotly's click reported the
    point of the last hover, and plotly's own click event went to an element the redraw had replaced)."""
    page.get_by_role("tab", name="Latent map").click()
    page.wait_for_selector("#map .soda-map .nsewdrag", timeout=30_000)
    for k in range(3):
        _settled_map(page)  # the previous round's answer (star, preview image, status) may still be reflowing
        aim = page.evaluate(  # one instant: where point j is drawn, and the emptiest spot of the plot area
            f"""(() => {{ const d = document.querySelector('#map .soda-map'), L = d._fullLayout, t = d.data[0];
            const r = d.querySelector('.nsewdrag').getBoundingClientRect(), j = {5 + 9 * k};
            const X = t.x.map(v => L.xaxis.d2p(v)), Y = t.y.map(v => L.yaxis.d2p(v));
            const px = Math.round(r.left + X[j]), py = Math.round(r.top + Y[j]);
            let ex = 8, ey = 8, far = -1;
            for (let gx = 8; gx < L.xaxis._length - 8; gx += 6) for (let gy = 8; gy < L.yaxis._length - 8; gy += 6) {{
              let m = Infinity;
              for (let i = 0; i < X.length; i++) m = Math.min(m, (X[i] - gx) ** 2 + (Y[i] - gy) ** 2);
              if (m > far) {{ far = m; ex = gx; ey = gy; }}
            }}
            const cx = Math.round(r.left + ex), cy = Math.round(r.top + ey);
            const near = X.map((x, i) => [i, Math.hypot(r.left + x - px, r.top + Y[i] - py)])
                          .filter(p => p[1] < 8).map(p => p[0]);
            return {{px, py, cx, cy, near, x: L.xaxis.p2d(cx - r.left), y: L.yaxis.p2d(cy - r.top),
                     tx: Math.abs(L.xaxis.p2d(3) - L.xaxis.p2d(0)), ty: Math.abs(L.yaxis.p2d(3) - L.yaxis.p2d(0))}};
            }})()"""
        )
        page.mouse.click(aim["px"], aim["py"])
        page.mouse.click(aim["cx"], aim["cy"])  # at once: the point is still loading
        wait_for(  # the point clicked first, then moved to where the second click was
            page,
            f"""(() => {{ const m = /map point (\\d+)[^]*?moved on the map to PC \\((-?[0-9.]+), (-?[0-9.]+)\\)/.exec(
                document.querySelector('#info').textContent);
            return m && {aim["near"]}.includes(Number(m[1])) && Math.abs(m[2] - {aim["x"]}) <= {aim["tx"]} + 0.006
                     && Math.abs(m[3] - {aim["y"]}) <= {aim["ty"]} + 0.006; }})()""",
            f"round {k}: aimed at {aim}",
        )
        picked = int(re.search(r"map point (\d+)", info(page)).group(1))  # the point that was clicked, then moved
        assert picked in aim["near"], (picked, aim)
        wait_for(  # the star follows (the map is redrawn) before the next round reads positions
            page,
            f"""(() => {{ const d = document.querySelector('#map .soda-map').data;
            return d.length === 2 && Math.abs(d[1].x[0] - {aim["x"]}) <= {aim["tx"]} + 0.006; }})()""",
            f"round {k}: the star did not move",
        )


def test_the_clip_panel_names_the_app_flag_first(page):
    page.get_by_role("tab", name="Directions (CLIP)").click()
    page.wait_for_function(
        "(() => { const t = document.querySelector('#clip-status textarea');"
        " return t && /CLIP weights are not available/.test(t.value); })()",
        timeout=30_000,
    )
    text = page.locator("#clip-status textarea").input_value()
    assert re.search(r"python [^\n]*?--clip", text).group(0) == "python app.py --clip", text
    page.get_by_role("tab", name="Explore / edit").click()


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
    take = page.locator("#mix-take input")
    if take.is_visible():  # measured carriers: take the first factor from B (the floor's hue on the bundled model)
        take.click()
        page.get_by_role("option").nth(1).click()
        page.wait_for_function("document.querySelectorAll('#mix-from-b input:checked').length > 0", timeout=30_000)
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
        test_the_gallery_is_whole_and_readable(pg, app)
        test_before_after_shows_both_whole_images(pg, app)
        test_click_the_latent_map(pg, app)
        test_every_tab(pg)
        browser.close()
    demo.close()
    print(f"screenshots in {ARTIFACTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
