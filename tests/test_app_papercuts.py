"""Issue 23's papercuts, on the shared in-process app (tests/helpers.py: a tiny checkpoint, no CLIP weights): the
Latent map tab answers a click on its own tab, and the CLIP buttons are disabled while no CLIP model is there."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from helpers import app_server


@pytest.fixture(scope="module")
def server():
    return app_server()


def _event(demo, elem_id: str, trigger: str):
    """The page's (private) event that ``trigger``s on the component ``elem_id``."""
    for f in demo.fns.values():
        for block_id, event in f.targets:
            if event == trigger and getattr(demo.blocks.get(block_id), "elem_id", None) == elem_id:
                return f
    raise AssertionError(f"no {trigger} event on #{elem_id}")


def _ids(blocks) -> list:
    return [getattr(b, "elem_id", None) for b in blocks]


def test_a_click_on_the_latent_map_answers_on_the_map_tab(server):
    _, ex, demo, _ = server
    f = _event(demo, "map", "map_click")
    assert _ids(f.outputs)[-2:] == ["map-preview", "map-status"]  # besides the editor's outputs on Explore / edit
    evt = SimpleNamespace(_data={"kind": "point", "index": 3, "x": 0.0, "y": 0.0})
    *editor, preview, status = f.fn(ex.new_state(), "PCA", 0, "preview", evt)
    assert "map point 3" in status and "Explore / edit" in status
    assert np.array_equal(np.asarray(preview), np.asarray(editor[3]))  # the edited image, shown here too


def test_the_clip_buttons_are_disabled_without_clip_weights(server):
    _, ex, demo, _ = server
    buttons = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None) in ("clip-name", "clip-make")}
    assert len(buttons) == 2 and not any(b.interactive for b in buttons.values())  # until the status says ready
    f = _event(demo, "clip-check", "click")  # "Check again", the tab's select and the page load run the same
    assert _ids(f.outputs) == ["clip-status", "clip-name", "clip-make"]
    *_, (text, name, make) = list(f.fn(ex.new_state()))
    assert "CLIP weights are not available" in text
    assert name.interactive is False and make.interactive is False


def test_the_page_uses_system_fonts_and_readable_slider_captions():
    import re

    from app.ui import launch_options

    css = launch_options()["css"]
    fonts = re.search(r"--font:([^;]*);", css).group(1)
    assert "system-ui" in fonts and "sans-serif" in fonts and "url(" not in css and "@import" not in css
    assert re.search(r"--font-mono:[^;]*monospace;", css)
    assert re.search(r'\[id\^="slider-"\] \.info-text \{ color: var\(--body-text-color\)', css)
