"""What the panels share: the context of shared components, error guards, small formatters. No torch here."""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import traceback
from dataclasses import dataclass, field

import gradio as gr

from .explorer import Explorer, ExplorerError

log = logging.getLogger("soda.app")
PRIVATE = {"api_visibility": "private"}
HEAVY = {"concurrency_id": "model"}  # every event that runs the network shares one bounded pool
# Every follow-up (.then) runs once more when it is triggered while it still runs, on the state it finds then: in
# gradio's default mode "once" the page *skips* it (two quick map clicks synced the star to the first click only).
FOLLOW = {"trigger_mode": "always_last"}


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
    current_pickers: list = field(default_factory=list)  # image choices that follow the editor (Interpolate/Mix A)
    after_load: list = field(default_factory=list)  # (fn, inputs, outputs) run after anything loads a new latent


def one_line(text) -> str:
    """The first line of a message, for the server log (a user error is one log line)."""
    lines = str(text).strip().splitlines()
    return (lines[0] + (" [...]" if len(lines) > 1 else "")) if lines else ""


def _user_error(e: Exception, where: str) -> gr.Error:
    """A readable gr.Error for the page. A user's mistake is logged as one line; anything else is a bug and gets its
    traceback in the log (once: gradio is told not to print it again)."""
    if isinstance(e, gr.Error):
        log.warning("%s refused: %s", where, one_line(e.message))
        e.print_exception = False
        return e
    if isinstance(e, (ExplorerError, ValueError)):
        log.warning("%s refused: %s", where, one_line(e))
        return gr.Error(str(e), print_exception=False)
    log.exception("unexpected error in %s", where)
    return gr.Error(f"Unexpected error ({type(e).__name__}); the details are in the server log.", print_exception=False)


def guard(fn):
    """Turn any exception of ``fn`` into a gr.Error with a readable message (never a traceback for a user error)."""
    where = fn.__name__
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args, **kw):
            try:
                yield from fn(*args, **kw)
            except Exception as e:  # noqa: BLE001 - everything becomes a message
                raise _user_error(e, where) from None

        return gen

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        try:
            return fn(*args, **kw)
        except Exception as e:  # noqa: BLE001
            raise _user_error(e, where) from None

    return wrapper


class _OneLineForUserErrors:
    """Stands in for the ``traceback`` module inside gradio.queueing: gradio prints a full traceback for every
    gr.Error that asks for one, including the ones it raises itself when a request fails its own input checks (a
    value not among a dropdown's choices, a number below its minimum). Those are the caller's mistakes: one log line
    each. Everything else is printed as before."""

    def __getattr__(self, name):
        return getattr(traceback, name)

    @staticmethod
    def print_exc(*args, **kw):
        e = sys.exc_info()[1]
        if isinstance(e, gr.Error):
            log.warning("request refused: %s", one_line(e.message))
        else:
            traceback.print_exc(*args, **kw)


def quiet_user_errors() -> None:
    """Install _OneLineForUserErrors in gradio.queueing (idempotent)."""
    import gradio.queueing as queueing

    if not isinstance(queueing.traceback, _OneLineForUserErrors):
        queueing.traceback = _OneLineForUserErrors()


def marker_update(xy: list[float] | None):
    """Update of the latent map's star only (an empty list hides it; None must not be sent as a prop)."""
    return gr.HTML(marker=list(xy) if xy else [])


def warn(notes) -> None:
    for n in notes or []:
        gr.Warning(n)


STATUS_TEMPLATE = """<div class='soda-status'>${(() => {
  const esc = s => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return String(value == null ? '' : value).split(' · ').map(part => {
    const grade = part.match(/^PSNR [0-9.]+ dB \\((good|fair|poor)\\)$/);
    if (grade) return "<span class='psnr psnr-" + grade[1] + "'>" + esc(part) + '</span>';
    if (part.startsWith('Source: ')) return '<b>Source:</b> ' + esc(part.slice(8));
    if (part.startsWith('out of distribution')) return "<b class='ood-flag'>" + esc(part) + '</b>';
    return esc(part);
  }).join(' · ');
})()}</div>"""
"""gr.HTML template of the editor's status: the value stays plain text (what API clients get); the page escapes it and
draws the PSNR badge. Handlebars runs over the template first, so it holds no double braces."""


def status_text(state: dict) -> str:
    """The editor's status line as plain text (no markup): source, PSNR and its grade, out-of-distribution score."""
    if not state or state.get("z0") is None:
        return "Pick an example or upload an image."
    parts = [f"Source: {state.get('source', '')}"]
    p = state.get("psnr")
    if p is not None:
        grade = "good" if p >= 25 else "fair" if p >= 18 else "poor"
        parts.append(f"PSNR {p:.1f} dB ({grade})")
    o = state.get("ood")
    if o:
        if o["flagged"]:
            parts.append(
                f"out of distribution: unlike the training data (score {o['score']:.2f} > {o['threshold']:.2f})"
            )
        else:
            parts.append(f"like the training data (out-of-distribution score {o['score']:.2f} <= {o['threshold']:.2f})")
    return " · ".join(parts)
