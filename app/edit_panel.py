"""Explore / edit: examples, upload, reconstruction + PSNR + OOD warning, refine, sliders, undo/reset, traversal."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from .common import FOLLOW, HEAVY, LONG, PRIVATE, STATUS_TEMPLATE, Ctx, guard, marker_update, status_text, warn
from .explorer import COMPONENTS, N_SLOTS, SECTION_SLOTS, SLIDER_SPAN, Loaded, change_map_image
from .explorer_uncertainty import DEFAULT_SEEDS, MAX_SEEDS

CURRENT = "current edit"  # the editor's image among the image choices of Interpolate and Mix


def camera_note(m: Loaded) -> str:
    if not m.model.uses_cameras:
        return ""
    c = m.camera
    return (
        f"This checkpoint is camera-conditioned: examples and uploads are assumed to be seen from the default "
        f"camera (azimuth {c.azimuth:g}°, elevation {c.elevation:g}°, radius {c.radius:g}). "
        "Use *Novel views* to look from elsewhere."
    )


def gallery_items(m: Loaded) -> list:
    """(image, caption) of every held-out example; the captions are the assets' readable descriptions."""
    return list(zip(m.assets.examples, m.assets.example_captions, strict=True))


def slider_updates(m: Loaded, values: list[float]) -> list:
    """Labels, visibility and values of the fixed slider slots for checkpoint ``m``."""
    return [
        gr.Slider(label=m.slot_labels[i], info=slot_info(m, i), visible=m.slots[i] is not None, value=values[i])
        for i in range(N_SLOTS)
    ]


def slot_info(m: Loaded, i: int) -> str:
    """The line under slider i: what it measurably does on decoded images ('' when not measured)."""
    return m.infos.get(m.slots[i] or "", "")


def section_titles(m: Loaded) -> list[tuple[str, bool]]:
    """(markdown, visible) of each row's heading above its label-free sliders."""
    out = []
    for k in range(SECTION_SLOTS):
        shown = k < len(m.group_titles) and m.slots[k * COMPONENTS] is not None
        out.append((f"**{m.group_titles[k]}**" if shown else "", shown))
    return out


def title_updates(m: Loaded) -> list:
    """The rows' headings and the change-map strip, for a newly opened checkpoint (ctx.slider_titles' order)."""
    maps = gr.update(value=change_map_image(m), visible=m.assets.free_maps is not None)
    return [gr.update(value=t, visible=v) for t, v in section_titles(m)] + [maps]


def traversal_choices(m: Loaded) -> list[tuple[str, str]]:
    """(label, edit name) of every slider in use."""
    return [(lab, s) for lab, s in zip(m.slot_labels, m.slots, strict=True) if s]


def build(ctx: Ctx) -> SimpleNamespace:
    ex = ctx.ex
    m = ex.get()
    ns = SimpleNamespace()
    ns.gallery = gr.Gallery(  # the page's full width: every column fits and captions are readable
        gallery_items(m),
        label="Held-out examples (click one)",
        columns=8,
        height="auto",
        allow_preview=False,
        elem_id="examples",
        elem_classes="pix",
        interactive=False,
        format="png",
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            ns.upload = gr.File(
                label="…or upload any image (cropped to a square and resized)",
                file_types=["image"],
                type="filepath",
                elem_id="upload",
                height=150,
            )
            ns.camera_note = gr.Markdown(camera_note(m), elem_id="camera-note")
        with gr.Column(scale=3, min_width=420):
            with gr.Row():
                ns.input_img = gr.Image(
                    label="Input", format="png", interactive=False, elem_id="input-img", elem_classes="pix", height=200
                )
                ns.recon = gr.Image(
                    label="Reconstruction",
                    format="png",
                    interactive=False,
                    elem_id="recon",
                    elem_classes="pix",
                    height=200,
                )
                ns.edited = gr.Image(
                    label="Edited", format="png", interactive=False, elem_id="edited", elem_classes="pix", height=200
                )
                ns.unc_img = gr.Image(  # what z does not store (app/explorer_uncertainty.py), on request
                    label="What z does not store",
                    format="png",
                    interactive=False,
                    elem_id="uncertainty-map",
                    elem_classes="pix",
                    height=200,
                )
            ns.info = gr.HTML(  # plain text for API clients; the template draws the PSNR badge in the page
                status_text({}), html_template=STATUS_TEMPLATE, js_on_load=None, label="Status", elem_id="info"
            )
            with gr.Row():
                ns.undo = gr.Button("Undo", size="sm", elem_id="undo")
                ns.reset = gr.Button("Reset", size="sm", elem_id="reset")
                ns.refine = gr.Button("Refine reconstruction", size="sm", elem_id="refine")
                ns.refine_cancel = gr.Button(  # enabled only while a refine runs
                    "Cancel refine", size="sm", variant="secondary", interactive=False, elem_id="refine-cancel"
                )
                ns.unc_go = gr.Button("What z does not store", size="sm", elem_id="uncertainty")
            ns.unc_note = gr.Markdown("", label="What the map means", elem_id="uncertainty-note")
            with gr.Accordion("Refine settings / before-after", open=False):
                with gr.Row():
                    ns.refine_steps = gr.Slider(5, 200, value=40, step=5, label="Refine steps", elem_id="refine-steps")
                    ns.refine_lr = gr.Slider(0.005, 0.3, value=0.05, step=0.005, label="Learning rate")
                    ns.unc_k = gr.Slider(
                        2, MAX_SEEDS, value=DEFAULT_SEEDS, step=1, label="Noise seeds (what z does not store)"
                    )
                ns.before_after = gr.ImageSlider(
                    label="Before / after (drag the divider)",
                    type="numpy",
                    format="png",
                    interactive=False,
                    elem_id="before-after",
                    elem_classes="pix",
                    height=260,
                )
    gr.Markdown(
        "Sliders move the latent along directions found in held-out data, in units of its standard "
        "deviation; a named slider whose caption gives another unit ('one hue step per unit', 'one class per unit', "
        "'all the way at 1') moves each scene from where it is by that. Dragging shows a quick preview; releasing "
        "renders at the chosen quality."
    )
    sliders, titles = [], []

    def slider() -> gr.Slider:
        i = len(sliders)  # slot i (see app.loaded: sections x components, then the named slots)
        s = gr.Slider(
            -SLIDER_SPAN,
            SLIDER_SPAN,
            value=0.0,
            step=0.05,
            label=m.slot_labels[i],
            info=slot_info(m, i) or None,
            visible=m.slots[i] is not None,
            elem_id=f"slider-{i}",
            min_width=160,
        )
        sliders.append(s)
        return s

    with gr.Accordion(
        "Sliders found without labels (independent directions of the latents; the line under each says what it "
        "measurably does, the map where in the image it acts)",
        open=True,
    ):
        ctx.change_maps = gr.Image(
            value=change_map_image(m),
            label="Where each slider acts (mean change of the image at +-2 std, brighter = more)",
            elem_id="change-maps",
            interactive=False,
            visible=m.assets.free_maps is not None,
            height=150,
        )
        for text, shown in section_titles(m):
            titles.append(gr.Markdown(text, visible=shown))
            with gr.Row():
                for _ in range(COMPONENTS):
                    slider()
    with gr.Accordion(
        "Named sliders (directions of the data's labels; the line under a slider says what it measurably does)",
        open=True,
    ):
        named = N_SLOTS - SECTION_SLOTS * COMPONENTS
        for r in range(0, named, 4):
            with gr.Row():
                for _ in range(r, min(r + 4, named)):
                    slider()
    ctx.sliders, ctx.slider_titles = sliders, [*titles, ctx.change_maps]
    with gr.Accordion("Traversal grid", open=False):
        with gr.Row():
            ns.trav_slider = gr.Dropdown(traversal_choices(m), label="Slider", elem_id="trav-slider")
            ns.trav_span = gr.Slider(0.5, 5.0, value=2.5, step=0.5, label="Range (± std)")
            ns.trav_n = gr.Slider(3, 11, value=7, step=1, label="Frames")
            ns.trav_go = gr.Button("Traverse")
        ns.trav_img = gr.Image(label="Traversal", format="png", interactive=False, elem_classes="pix", height=140)
    # hidden inputs of the API-only endpoints
    ns.api_index = gr.Number(0, visible=False, precision=0)
    ns.api_edits = gr.Textbox("{}", visible=False)
    ns.api_example = gr.Button(visible=False)
    ns.api_edit = gr.Button(visible=False)
    ctx.editor_outputs = [ns.input_img, ns.recon, ns.edited, ns.info]
    return ns


def wire(ctx: Ctx, ns: SimpleNamespace) -> None:
    ex, st, seed_in, quality_in = ctx.ex, ctx.state, ctx.seed, ctx.quality
    sliders = ctx.sliders

    def loaded(state):
        return state, state.get("input"), state["recon"], state["recon"], status_text(state)

    @guard
    def load_example(state, index, seed, quality):
        return loaded(ex.load_example(state, index, seed, quality))

    @guard
    def pick_gallery(state, seed, quality, evt: gr.SelectData):
        return loaded(ex.load_example(state, evt.index, seed, quality))

    @guard
    def upload(state, path, seed, quality):
        new, notes = ex.load_upload(state, path, seed, quality)
        warn(notes)
        return loaded(new)

    @guard
    def sync(state, view):
        """After a new latent: sliders to its edits, before/after, map marker."""
        m = ex.get(state["ckpt"])
        vals = ex.slider_values(m, state.get("edits", {}))
        recon = state.get("recon")
        ba = (recon, recon) if recon is not None else None
        follow = [gr.Dropdown(value=CURRENT) for _ in ctx.current_pickers]  # image A of Interpolate / Mix
        return [*vals, ba, marker_update(ex.map_marker(state, view)), *follow]

    load_out = [st, *ctx.editor_outputs]
    sync_args = {
        "fn": sync,
        "inputs": [st, ctx.view],
        "outputs": [*sliders, ns.before_after, ctx.map_html, *ctx.current_pickers],
        "show_progress": "hidden",
        **PRIVATE,
        **FOLLOW,
    }
    ctx.after_load.append(sync_args)
    ns.api_example.click(
        load_example, [st, ns.api_index, seed_in, quality_in], load_out, api_name="load_example", **HEAVY
    ).then(**sync_args)
    ns.gallery.select(pick_gallery, [st, seed_in, quality_in], load_out, **PRIVATE, **HEAVY).then(**sync_args)
    ns.upload.upload(upload, [st, ns.upload, seed_in, quality_in], load_out, api_name="upload", **HEAVY).then(
        **sync_args
    )

    n = N_SLOTS

    @guard
    def preview(*args):
        state, values, seed, view = args[0], args[1 : 1 + n], args[1 + n], args[2 + n]
        if not state or state.get("z0") is None:
            return gr.skip(), gr.skip()
        img = ex.preview(state, values, seed)
        return img, marker_update(ex.map_marker(state, view, values))

    @guard
    def render(*args):
        state, values, seed, quality, view = args[0], args[1 : 1 + n], args[1 + n], args[2 + n], args[3 + n]
        if not state or state.get("z0") is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        state, img = ex.render(state, values, seed, quality)
        return state, img, (state.get("recon"), img), marker_update(ex.map_marker(state, view))

    gr.on(
        [s.input for s in sliders],
        preview,
        [st, *sliders, seed_in, ctx.view],
        [ns.edited, ctx.map_html],
        trigger_mode="always_last",
        show_progress="hidden",
        **PRIVATE,
        concurrency_id="preview",
        concurrency_limit=2,
    )
    render_args = {
        "fn": render,
        "inputs": [st, *sliders, seed_in, quality_in, ctx.view],
        "outputs": [st, ns.edited, ns.before_after, ctx.map_html],
        **PRIVATE,
        **HEAVY,
    }
    gr.on([s.release for s in sliders], trigger_mode="always_last", show_progress="minimal", **render_args)
    gr.on([seed_in.change, quality_in.change], show_progress="minimal", **render_args)

    @guard
    def api_edit(state, edits, seed, quality):
        state, img = ex.apply_edits(state, edits, seed, quality)
        return state, img

    ns.api_edit.click(
        api_edit, [st, ns.api_edits, seed_in, quality_in], [st, ns.edited], api_name="edit", **HEAVY
    ).then(**sync_args)

    @guard
    def reset(state, seed, quality):
        state, vals, img = ex.reset(state, seed, quality)
        return state, img

    @guard
    def undo(state, seed, quality):
        if state and state.get("z0") is not None and not state.get("history"):
            gr.Warning("Nothing to undo.")
            return state, gr.skip()
        state, vals, img = ex.undo(state, seed, quality)
        return state, img

    ns.reset.click(reset, [st, seed_in, quality_in], [st, ns.edited], api_name="reset", **HEAVY).then(**sync_args)
    ns.undo.click(undo, [st, seed_in, quality_in], [st, ns.edited], api_name="undo", **HEAVY).then(**sync_args)

    @guard
    def refine(state, steps, lr, seed, quality, progress=gr.Progress()):
        progress(0, desc="refining z")
        for i, total, new, recon in ex.refine(state, steps, lr, seed, quality):
            progress((i, total), desc="refining z (gradient descent on the denoising loss)")
            if new is not None:
                yield new, recon, status_text(new)

    # "Cancel refine" is enabled only while a refine runs. The page runs the listeners of one click in the order they
    # were registered, each to its end, so the one that enables the button comes before the refine itself.
    cancel_on, cancel_off = (lambda: gr.Button(interactive=True)), (lambda: gr.Button(interactive=False))
    toggle = {"concurrency_limit": None, "show_progress": "hidden", **PRIVATE}
    ns.refine.click(cancel_on, None, ns.refine_cancel, **toggle)
    ev = ns.refine.click(
        refine,
        [st, ns.refine_steps, ns.refine_lr, seed_in, quality_in],
        [st, ns.recon, ns.info],
        api_name="refine",
        **LONG,
    )
    ev.then(**render_args, show_progress="hidden", **FOLLOW)
    ev.then(cancel_off, None, ns.refine_cancel, **toggle, **FOLLOW)
    ns.refine_cancel.click(cancel_off, None, ns.refine_cancel, cancels=[ev], **toggle)

    @guard
    def uncertainty(state, k, seed, quality):
        heat, _, text = ex.uncertainty(state, k, seed, quality)
        return heat, text

    ns.unc_go.click(
        uncertainty,
        [st, ns.unc_k, seed_in, quality_in],
        [ns.unc_img, ns.unc_note],
        api_name="uncertainty",
        **HEAVY,
    )

    @guard
    def traverse(state, label, span, frames, seed, quality):
        return ex.traversal(state, label, span, frames, seed, quality)

    ns.trav_go.click(
        traverse,
        [st, ns.trav_slider, ns.trav_span, ns.trav_n, seed_in, quality_in],
        ns.trav_img,
        api_name="traverse",
        **HEAVY,
    )
