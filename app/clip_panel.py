"""Directions (CLIP): CLIP status, slider names, prompt -> slider; and the map's "colour by a prompt" row.

Every CLIP event runs in its own queue (``concurrency_id="clip"``, one at a time), never in the slider loop: the
names relabel this session's sliders, a prompt slider takes a named slot of the editor (see app/explorer_clip.py).
API endpoints: ``/clip_status``, ``/name_sliders``, ``/prompt_slider``, ``/map_prompt``; the UI follow-ups are private.
Without CLIP weights they answer rather than fail: an empty table or slider name with the instructions as the note,
and the uncoloured map whose ``meta`` says ``{"clip": "unavailable", "message": ...}``.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import gradio as gr

from soda.clip import format_vocabulary

from .common import FOLLOW, PRIVATE, Ctx, guard
from .explorer import N_SLOTS
from .explorer_clip import ClipMissing
from .map_panel import star_args

CLIP_QUEUE = {"concurrency_id": "clip", "concurrency_limit": 1}
STATUS_WAIT = 600.0  # seconds /clip_status follows a background load before answering "still loading"

TABLE_HEADERS = ["slider", "edit name", "label", "CLIP names (score)"]
INTRO = """### Directions (CLIP)
An [open_clip](https://github.com/mlfoundations/open_clip) model answers *what does this slider do?* and makes
sliders from text. **Name sliders** decodes a short traversal of every section slider, lets CLIP read the frames and
scores how much each attribute of the vocabulary changes (0 = no change, 1 = one complete change); the two best names
go into the slider labels beside the raw name. **Prompt → slider** scores held-out images with CLIP, takes the top and
bottom 20 % as pseudo-labels and fits a linear direction in z: a new slider under *Named sliders* (exported in
recipes by name). The *Latent map* tab can colour the map by a prompt. CLIP runs once per button (cached beside the
explorer assets), never while a slider moves. Weights: `python app.py --clip SPEC`, `SODA_CLIP=SPEC`, or a `clip:`
line in the checkpoint's model card (see docs/CLIP.md)."""


def _key(ex, state) -> str:
    return state["ckpt"] if state and state.get("ckpt") else ex.default_key


def session_labels(m, names: dict | None) -> list[str]:
    """Slider labels of this session: the CLIP names when they were made for this checkpoint, else the raw ones."""
    mine = (names or {}).get("labels", {}) if (names or {}).get("ckpt") == m.key else {}
    return [mine.get(i, m.slot_labels[i]) for i in range(N_SLOTS)]


def traversal_choices(m, names: dict | None) -> list[tuple[str, str]]:
    """(label, edit name) of every slider in use, with this session's labels."""
    return [(lab, s) for lab, s in zip(session_labels(m, names), m.slots, strict=True) if s]


def clip_buttons(kind: str) -> tuple:
    """Updates of "Name sliders" and "Make slider": usable only once CLIP weights are loaded (the status box says what
    to provide meanwhile; the API endpoints still answer with the instructions)."""
    return gr.Button(interactive=kind == "ready"), gr.Button(interactive=kind == "ready")


def build(ctx: Ctx) -> SimpleNamespace:
    ns = SimpleNamespace()
    gr.Markdown(INTRO)
    ns.status = gr.Textbox(
        "Checking for CLIP weights…",
        label="CLIP status",
        lines=2,
        max_lines=16,
        interactive=False,
        elem_id="clip-status",
    )
    ns.check = gr.Button("Check again", size="sm", elem_id="clip-check")
    ns.names = gr.State({})  # {"ckpt": key, "labels": {slot: label}}: this session's CLIP slider names
    with gr.Accordion("Name the sliders", open=True):
        ns.vocab = gr.Textbox(
            format_vocabulary(),
            label="Vocabulary (one attribute per line: name: prompt | prompt | …; empty = the default)",
            lines=6,
            max_lines=14,
            elem_id="clip-vocab",
        )
        with gr.Row():
            ns.name_go = gr.Button("Name sliders", variant="primary", interactive=False, elem_id="clip-name")
            ns.vocab_reset = gr.Button("Default vocabulary", size="sm")
        ns.table = gr.Dataframe(
            headers=TABLE_HEADERS,
            datatype=["str", "str", "str", "str"],
            interactive=False,
            wrap=True,
            label="Slider names",
            elem_id="clip-names",
        )
        ns.name_note = gr.Markdown("", label="Naming note", elem_id="clip-name-note")
    with gr.Accordion("Prompt → slider", open=True):
        with gr.Row():
            ns.prompt = gr.Textbox(label="Prompt", placeholder="a red object", scale=3, elem_id="clip-prompt")
            ns.negative = gr.Textbox(
                label="Against (optional)", placeholder="a blue object", scale=2, elem_id="clip-negative"
            )
            ns.prompt_go = gr.Button(
                "Make slider", variant="primary", interactive=False, scale=0, min_width=120, elem_id="clip-make"
            )
        ns.slider_name = gr.Textbox(
            label="Slider name (for /edit and recipes)", interactive=False, elem_id="clip-slider-name"
        )
        ns.prompt_note = gr.Markdown("", label="Prompt slider note", elem_id="clip-prompt-note")
    ns.api_status = gr.Button(visible=False)
    return ns


def build_map(ctx: Ctx) -> SimpleNamespace:
    """The row under the latent map: colour it by CLIP similarity to a prompt."""
    ns = SimpleNamespace()
    with gr.Row(equal_height=True):
        ns.prompt = gr.Textbox(
            label="Colour by CLIP similarity to a prompt",
            placeholder="a red object",
            scale=4,
            elem_id="map-clip-prompt",
        )
        ns.go = gr.Button("Colour by prompt", scale=0, min_width=140, elem_id="map-clip-go")
    return ns


def wire(ctx: Ctx, ns: SimpleNamespace, mp: SimpleNamespace, tab: gr.Tab, trav_slider: gr.Dropdown) -> dict:
    """Wire the CLIP tab and the map row; returns the keyword arguments of the (private) status refresh, which the
    page runs on load and after a checkpoint is opened."""
    ex, st = ctx.ex, ctx.state

    def follow(state):
        """Yield (kind, status text), following a background load until it ends (or STATUS_WAIT passes)."""
        key = _key(ex, state)
        kind, text = ex.clip_status(key)
        yield kind, text
        end = time.monotonic() + STATUS_WAIT
        while kind == "loading" and time.monotonic() < end:
            time.sleep(0.5)
            kind, new = ex.clip_status(key)
            if new != text or kind != "loading":
                text = new
                yield kind, text

    @guard
    def status(state):
        for _, text in follow(state):
            yield text

    @guard
    def status_and_buttons(state):
        for kind, text in follow(state):
            yield text, *clip_buttons(kind)

    status_args = {
        "fn": status_and_buttons,
        "inputs": [st],
        "outputs": [ns.status, ns.name_go, ns.prompt_go],
        "show_progress": "hidden",
        **PRIVATE,
    }
    ns.api_status.click(status, [st], ns.status, api_name="clip_status", concurrency_limit=None)
    ns.check.click(**status_args, concurrency_limit=None)
    tab.select(**status_args, concurrency_limit=None)

    @guard
    def show_sliders(state, names):
        """This session's sliders after naming or a new prompt slider: labels, visibility, committed values."""
        m = ex.get(_key(ex, state))
        labels = session_labels(m, names)
        vals = ex.slider_values(m, (state or {}).get("edits", {}))
        ups = [gr.Slider(label=labels[i], visible=m.slots[i] is not None, value=vals[i]) for i in range(N_SLOTS)]
        return [*ups, gr.Dropdown(choices=traversal_choices(m, names))]

    show_args = {
        "fn": show_sliders,
        "inputs": [st, ns.names],
        "outputs": [*ctx.sliders, trav_slider],
        "show_progress": "hidden",
        **PRIVATE,
    }

    @guard
    def name_sliders(state, vocabulary, progress=gr.Progress()):
        key = _key(ex, state)
        progress(0, desc="naming the sliders")
        try:
            rows = ex.name_sliders(key, vocabulary, progress=lambda f, msg: progress(f, desc=msg))
        except ClipMissing as e:  # an answer, not an error: no table, and what to provide
            import pandas as pd

            return pd.DataFrame(columns=TABLE_HEADERS), gr.skip(), str(e)
        table = [[r["raw"], r["edit"], r["label"], ", ".join(f"{n} ({s:.2f})" for n, s in r["names"])] for r in rows]
        names = {"ckpt": key, "labels": {r["slot"]: r["label"] for r in rows}}
        note = (
            f"Named {len(rows)} sliders: the labels in *Explore / edit* now show the two best names (score = how "
            "much CLIP's reading of the attribute changes over -2..2 std). Cached: naming again is instant."
        )
        return table, names, note

    ns.name_go.click(
        name_sliders, [st, ns.vocab], [ns.table, ns.names, ns.name_note], api_name="name_sliders", **CLIP_QUEUE
    ).then(**show_args, **FOLLOW)
    ns.vocab_reset.click(lambda: format_vocabulary(), None, ns.vocab, **PRIVATE)

    @guard
    def prompt_slider(state, prompt, negative, progress=gr.Progress()):
        progress(0, desc="prompt -> slider")
        key = _key(ex, state)
        try:
            r = ex.prompt_slider(key, prompt, negative, progress=lambda f, msg: progress(f, desc=msg))
        except ClipMissing as e:  # an answer, not an error: no slider, and what to provide
            return "", str(e)
        i = r["info"]
        where = (
            "under *Named sliders* in *Explore / edit*"
            if r["slot"] is not None
            else "by name only (every named slider slot holds a label slider)"
        )
        note = (
            f"New slider **{r['label']}**, {where}. CLIP read {r['n']} {r['source']} images; the top and bottom "
            f"{i['n_pos']} became pseudo-labels (training accuracy {i['train_accuracy']:.2f}); correlation of the "
            f"position along the direction with the CLIP score: {i['corr']:.2f}. One unit = one std of the data. "
            f'API: `/edit` with `{{"{r["name"]}": 1.5}}`.'
        )
        return r["name"], note

    ns.prompt_go.click(
        prompt_slider,
        [st, ns.prompt, ns.negative],
        [ns.slider_name, ns.prompt_note],
        api_name="prompt_slider",
        **CLIP_QUEUE,
    ).then(**show_args, **FOLLOW)

    @guard
    def map_prompt(state, prompt, view, progress=gr.Progress()):
        progress(0, desc="colouring the map")
        try:
            fig = ex.map_prompt_figure(_key(ex, state), view, prompt, progress=lambda f, msg: progress(f, desc=msg))
        except ClipMissing as e:  # the plain map, saying why it is not coloured
            gr.Warning(str(e).splitlines()[0])
            base = ex.map_figure(_key(ex, state), view, "none")
            reason = str(e).splitlines()[0]
            title = {"text": f"{base['layout']['title']['text']}: not coloured ({reason})", "font": {"size": 13}}
            fig = {**base, "layout": {**base["layout"], "title": title}}
            fig["meta"] = {"clip": "unavailable", "message": str(e)}
        return json.dumps(fig, separators=(",", ":"))

    gr.on(
        [mp.go.click, mp.prompt.submit],
        map_prompt,
        [st, mp.prompt, ctx.view],
        ctx.map_html,
        api_name="map_prompt",
        **CLIP_QUEUE,
    ).then(**star_args(ctx))
    return status_args
