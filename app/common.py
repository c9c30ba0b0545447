"""What the panels share: the context of shared components, error guards, the checks at the one place where requests
enter (``protect``), small formatters. No torch here."""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import sys
import traceback
from dataclasses import dataclass, field

import gradio as gr

from .explorer import Explorer, ExplorerError
from .text import excerpt, log_safe

log = logging.getLogger("soda.app")
PRIVATE = {"api_visibility": "private"}
HEAVY = {"concurrency_id": "model"}  # every event that runs the network shares one bounded pool
# Jobs that may run for many seconds (refine, orbit, interpolate) have a pool of their own, one at a time: however
# many of them are queued, the "model" pool's slots stay free for everyone's quick renders.
LONG = {"concurrency_id": "long", "concurrency_limit": 1}
MAX_ABS = 1e4  # |numbers| a component does not bound itself (map coordinates, indices, event data)
MAX_TEXT = 65_536  # characters of one text value of a request
MAX_PENDING = int(os.environ.get("SODA_MAX_PENDING", "6"))  # jobs of one session queued or running at once
MAX_LONG_QUEUED = int(os.environ.get("SODA_MAX_LONG_QUEUED", "16"))  # long jobs waiting, all sessions together
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
        log.warning("%s refused: %s", where, log_safe(one_line(e.message)))
        e.print_exception = False
        return e
    if isinstance(e, (ExplorerError, ValueError)):
        log.warning("%s refused: %s", where, log_safe(one_line(e)))
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
            log.warning("request refused: %s", log_safe(one_line(e.message)))
        else:
            traceback.print_exc(*args, **kw)


def quiet_user_errors() -> None:
    """Install _OneLineForUserErrors in gradio.queueing (idempotent)."""
    import gradio.queueing as queueing

    if not isinstance(queueing.traceback, _OneLineForUserErrors):
        queueing.traceback = _OneLineForUserErrors()


# ------------------------------------------------------------------------------------------------------------
# The one place where requests enter
# ------------------------------------------------------------------------------------------------------------


class RequestRefused(gr.Error):
    """A request that the entry checks refuse (one log line, no traceback, the message shown as it is)."""

    def __init__(self, message: str):
        super().__init__(message, print_exception=False)


def _label(block, i: int) -> str:
    name = getattr(block, "label", None) or type(block).__name__
    return f"input {i + 1} ({name})"


def _check_tree(v, what: str, depth: int = 0, bound: float | None = None) -> None:
    """Every number under ``v`` finite (and within +-bound when given), every text at most MAX_TEXT characters."""
    if depth > 20:
        raise RequestRefused(f"{what} must not be nested more than 20 deep")
    if isinstance(v, bool) or v is None:
        return
    if isinstance(v, (int, float)):
        _check_number(v, what, bound)
    elif isinstance(v, str):
        if len(v) > MAX_TEXT:
            raise RequestRefused(f"{what} must be at most {MAX_TEXT} characters (got {len(v)})")
    elif isinstance(v, dict):
        for k, x in v.items():
            _check_tree(k, what, depth + 1, bound)
            _check_tree(x, what, depth + 1, bound)
    elif isinstance(v, (list, tuple)):
        for x in v:
            _check_tree(x, what, depth + 1, bound)


def _check_number(v, what: str, bound: float | None) -> float:
    try:
        f = float(v)
    except OverflowError:  # an integer of hundreds of digits
        f = math.inf
    if not math.isfinite(f) or (bound is not None and abs(f) > bound):
        rule = "a finite number" + (f" within +-{bound:g}" if bound is not None else "")
        raise RequestRefused(f"{what} must be {rule} (got {excerpt(v if math.isfinite(f) else str(v))})")
    return f


def check_request(block_fn, inputs, event_data=None) -> None:
    """The checks every request passes before Gradio reads its values: as many values as the endpoint takes;
    numbers finite, within a component's own bounds where it has them (Gradio checks those next) and else within
    +-MAX_ABS; texts at most MAX_TEXT characters; the same for the event data (a map click's coordinates).
    RequestRefused names the input and the rule."""
    blocks = list(getattr(block_fn, "inputs", []) or [])
    inputs = list(inputs or [])
    if len(inputs) < len(blocks):
        hidden = sum(1 for b in blocks if getattr(b, "stateful", False))  # session state: not sent by API clients
        raise RequestRefused(
            f"this endpoint takes {len(blocks) - hidden} values; the request sent {max(0, len(inputs) - hidden)}"
        )
    for i, (block, v) in enumerate(zip(blocks, inputs, strict=False)):
        if getattr(block, "stateful", False):
            continue
        what = _label(block, i)
        if isinstance(block, (gr.Number, gr.Slider)):
            if v is None and isinstance(block, gr.Number):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise RequestRefused(f"{what} must be a finite number (got {excerpt(v)})")
            unbounded = getattr(block, "minimum", None) is None and getattr(block, "maximum", None) is None
            _check_number(v, what, MAX_ABS if unbounded else None)
        else:
            _check_tree(v, what)
    data = getattr(event_data, "_data", None)
    if data is not None:
        _check_tree(data, "the event's data", bound=MAX_ABS)


def _entry_checked(process_api):
    """``Blocks.process_api`` behind ``check_request``; a value Gradio itself cannot read (a wrong type for a
    component) is a one-line refusal too, never a traceback."""
    from gradio.exceptions import ComponentProcessingError
    from pydantic import ValidationError

    @functools.wraps(process_api)
    async def checked(block_fn, inputs, *args, **kw):
        where = getattr(block_fn, "api_name", None) or getattr(block_fn, "name", None) or "request"
        try:
            check_request(block_fn, inputs, kw.get("event_data"))
            return await process_api(block_fn, inputs, *args, **kw)
        except RequestRefused as e:
            log.warning("%s refused: %s", where, log_safe(e.message))
            raise
        except (ComponentProcessingError, ValidationError) as e:
            log.warning("%s refused: %s", where, log_safe(one_line(e)))
            raise RequestRefused("a value of this request could not be read (see the endpoint's API page)") from None

    return checked


def _session_limited(queue, blocks):
    """``Queue.push`` that refuses a job from a session that already has MAX_PENDING jobs waiting or running (in the
    pools with a concurrency limit), and a long job when MAX_LONG_QUEUED are waiting: one visitor cannot fill the
    queue, and long jobs cannot take the space of quick ones."""
    from gradio import route_utils

    push = queue.push

    @functools.wraps(push)
    async def limited(body, request, username):
        try:
            fn = route_utils.get_fn(blocks, None, body)
        except Exception:  # noqa: BLE001 - gradio answers these itself
            return await push(body, request, username)
        pools = queue.event_queue_per_concurrency_id
        pool = pools.get(fn.concurrency_id)
        if fn.concurrency_limit is not None and body.session_hash:
            running = [e for job in queue.active_jobs if job for e in job]
            waiting = [e for q in pools.values() for e in q.queue]
            mine = sum(
                1
                for e in running + waiting
                if e.session_hash == body.session_hash and e.fn.concurrency_limit is not None
            )
            if mine >= MAX_PENDING:
                log.warning("%s refused: session has %d jobs waiting or running", fn.api_name or fn.name, mine)
                return False, f"you already have {mine} jobs waiting or running; wait for one to finish", "error"
        if fn.concurrency_id == LONG["concurrency_id"] and pool is not None and len(pool.queue) >= MAX_LONG_QUEUED:
            log.warning("%s refused: %d long jobs waiting", fn.api_name or fn.name, len(pool.queue))
            return False, "the server is busy with long jobs; try again in a minute", "queue_full"
        return await push(body, request, username)

    return limited


def protect(demo: gr.Blocks) -> gr.Blocks:
    """Install the entry checks (``check_request``) and the per-session job limit on ``demo`` (after
    ``demo.queue()``); idempotent."""
    if not getattr(demo.process_api, "_soda_checked", False):
        demo.process_api = _entry_checked(demo.process_api)
        demo.process_api._soda_checked = True
    queue = getattr(demo, "_queue", None)
    if queue is not None and not getattr(queue.push, "_soda_limited", False):
        queue.push = _session_limited(queue, demo)
        queue.push._soda_limited = True
    return demo


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
    if state.get("note"):
        parts.append(str(state["note"]))
    return " · ".join(parts)
