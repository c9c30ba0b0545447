"""Live drag editing in a real browser: previews per second while a slider is dragged, and the time from release to
the final image (issue 22; Debian's chromium through Playwright, never `playwright install`).

    python bench/drag_browser.py [--checkpoint assets/checkpoints/world32] [--drags 3] [--seconds 2]
    SODA_DECODE_STEPS=config python bench/drag_browser.py     # the config's steps (8 preview / 50 full), to compare

Launches the app in-process (the app's thread setting: cores / 2), opens the page in headless chromium, loads an
example and drags one slider: press, move in small steps over ``--seconds``, release. The page records every change of
the edited image's source with its time (a MutationObserver), so what is counted is what the browser received: images
per second during the drag, and the time from the release to the last image (the full render). Prints the figures per
drag, their medians and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
WATCH = """(() => {
  window.__changes = [];
  if (window.__watching) return;
  window.__watching = true;
  const box = document.querySelector('#edited');
  const seen = () => { const i = box.querySelector('img'); return i ? i.src : null; };
  let last = seen();
  const note = () => { const s = seen(); if (s && s !== last) { last = s; window.__changes.push(performance.now()); } };
  new MutationObserver(note).observe(box, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
})()"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="assets/checkpoints/world32")
    ap.add_argument("--drags", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="how long each drag moves")
    ap.add_argument("--slider", type=int, default=3, help="the slider slot to drag")
    a = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"error: Debian chromium is not installed at {CHROMIUM}", file=sys.stderr)
        return 2

    import torch
    from playwright.sync_api import sync_playwright

    from app.explorer import Explorer
    from app.ui import CONCURRENT_RENDERS, build_demo, launch_options

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // CONCURRENT_RENDERS))
    load_before = os.getloadavg()
    ex = Explorer(a.checkpoint)
    m = ex.get()
    demo = build_demo(ex)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options())
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.goto(demo.local_url)
            pg.wait_for_selector("#examples img", timeout=60_000)
            pg.locator("#examples img").nth(2).click()
            pg.wait_for_function("document.querySelector('#edited img') !== null", timeout=60_000)
            time.sleep(1.0)
            slider = pg.locator(f"#slider-{a.slider} input[type=range]")
            slider.scroll_into_view_if_needed()
            box = slider.bounding_box()
            y = box["y"] + box["height"] / 2
            for d in range(a.drags):
                pg.evaluate(WATCH)
                before = dict(ex.calls)
                x0, x1 = box["x"] + box["width"] * (0.2 if d % 2 == 0 else 0.8), box["x"] + box["width"] * 0.5
                pg.mouse.move(x0, y)
                pg.mouse.down()
                t0 = pg.evaluate("performance.now()")
                start = time.perf_counter()
                while (f := (time.perf_counter() - start) / a.seconds) < 1:  # small steps, as fast as they go
                    pg.mouse.move(x0 + (x1 - x0) * f, y)
                    time.sleep(0.01)
                pg.mouse.move(x1, y)
                t_up = pg.evaluate("performance.now()")
                pg.mouse.up()
                quiet = time.time()
                n = 0
                while time.time() - quiet < 1.5:  # until no new image for 1.5 s
                    time.sleep(0.05)
                    k = pg.evaluate("window.__changes.length")
                    if k != n:
                        n, quiet = k, time.time()
                ch = pg.evaluate("window.__changes")
                during = [t for t in ch if t0 <= t <= t_up]
                after = [t for t in ch if t > t_up]
                calls = {k: ex.calls.get(k, 0) - before.get(k, 0) for k in ("preview", "render")}
                rows.append(
                    {
                        "per_s": len(during) / ((t_up - t0) / 1000),
                        "final_ms": (max(after) - t_up) if after else float("nan"),
                        "images": len(ch),
                        **calls,
                    }
                )
                r = rows[-1]
                print(
                    f"drag {d + 1}: {len(during)} images in {(t_up - t0) / 1000:.2f} s of drag = {r['per_s']:.1f}/s; "
                    f"last image {r['final_ms']:.0f} ms after release; previews {calls['preview']}, "
                    f"renders {calls['render']}"
                )
                time.sleep(0.5)
            browser.close()
    finally:
        demo.close()
    load_after = os.getloadavg()
    steps = {q: ex.steps(m, q) for q in ("preview", "full")}
    print(
        f"\ncheckpoint {a.checkpoint}: steps {steps['preview']} preview / {steps['full']} full; "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} cores; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (1-minute)"
    )
    print(
        f"median over {len(rows)} drags: {statistics.median(r['per_s'] for r in rows):.1f} preview images per second "
        f"(bar >= 10), final image {statistics.median(r['final_ms'] for r in rows):.0f} ms after release (bar <= 300)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
