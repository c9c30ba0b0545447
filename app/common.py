"""What the panels share: the context of shared components, error guards, small formatters. No torch here."""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass, field

import gradio as gr

from .explorer import Explorer, ExplorerError

log = logging.getLogger("soda.app")
PRIVATE = {"api_visibility": "private"}
HEAVY = {"concurrency_id": "model"}  # every event that runs the network shares one bounded pool


@dataclass
class Ctx:
    """Components that several panels read or write."""

    ex: Explorer
    state: gr.State
    seed: gr.Number
    quality: gr.Radio
    sliders: list = field(default_factory=list)
    slider_titles: list = field(default_factory=list)
    view: gr.Radio | None = None
    map_html: gr.HTML | None = None
    editor_outputs: list = field(default_factory=list)  # [input, recon, edited, info]
    after_load: list = field(default_factory=list)  # (fn, inputs, outputs) run after anything loads a new latent


def _user_error(e: Exception) -> gr.Error:
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, (ExplorerError, ValueError)):
        return gr.Error(str(e))
    log.exception("unexpected error in a handler")
    return gr.Error(f"Unexpected error ({type(e).__name__}); the details are in the server log.")


def guard(fn):
    """Turn any exception of ``fn`` into a gr.Error with a readable message (never a traceback)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args, **kw):
            try:
                yield from fn(*args, **kw)
            except Exception as e:  # noqa: BLE001 - everything becomes a message
                raise _user_error(e) from None

        return gen

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        try:
            return fn(*args, **kw)
        except Exception as e:  # noqa: BLE001
            raise _user_error(e) from None

    return wrapper


def marker_update(xy: list[float] | None):
    """Update of the latent map's star only (an empty list hides it; None must not be sent as a prop)."""
    return gr.HTML(marker=list(xy) if xy else [])


def warn(notes) -> None:
    for n in notes or []:
        gr.Warning(n)


def info_md(state: dict, ood_threshold: float | None = None) -> str:
    """The editor's status line: source, PSNR badge, OOD distance."""
    if not state or state.get("z0") is None:
        return "Pick an example or upload an image."
    parts = [f"**Source:** {state.get('source', '')}"]
    p = state.get("psnr")
    if p is not None:
        grade = "good" if p >= 25 else "fair" if p >= 18 else "poor"
        parts.append(f"<span class='psnr psnr-{grade}'>PSNR {p:.1f} dB ({grade})</span>")
    d = state.get("ood")
    if d is not None and ood_threshold is not None:
        flag = " — **out of distribution**" if d > ood_threshold else ""
        parts.append(f"latent distance {d:.1f} (99% of data < {ood_threshold:.1f}){flag}")
    return " · ".join(parts)
