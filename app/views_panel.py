"""Interpolate, Mix sections and Novel views: panels that decode batches of latents made from the editor's."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import gradio as gr

from soda import api

from . import media
from .common import FOLLOW, HEAVY, LONG, PRIVATE, Ctx, guard, warn
from .explorer import Loaded

FOLLOWS = "becomes the editor's image (current edit) whenever one is loaded there"
ORBIT_STEPS = 20  # an orbit of 24 frames at 20 steps fits the 15 s budget on 2 CPU cores
ORBIT_SECONDS = float(os.environ.get("SODA_ORBIT_SECONDS", "30"))  # an orbit stops (keeping its frames) after this


def section_picker(choices, label: str, elem_id: str | None = None) -> gr.CheckboxGroup:
    """A checkbox group of latent sections. Its values are the section indices as strings ('0', '1', ...), the form
    the API description (view_api) gives; integers are accepted too (the instance's preprocess converts them first:
    a subclass would make gradio write a .pyi stub beside this file)."""
    group = gr.CheckboxGroup(choices, label=label, elem_id=elem_id)
    strict = group.preprocess

    def preprocess(payload):
        return strict([str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in payload or []])

    group.preprocess = preprocess
    return group


def section_choices(m: Loaded) -> list[tuple[str, str]]:
    """(label, value) pairs; the values are the section indices as strings ('0', '1', ...), the form gradio's API
    description gives for a checkbox group."""
    return [(t, str(k)) for k, t in enumerate(m.section_titles)]


FREE_MIX = "(tick the sections yourself)"


def mix_carriers(m: Loaded) -> dict[str, list[int]]:
    """factor -> the sections that carry it, chosen by ``soda.precompute`` on decoded mixes of held-out scene pairs
    (``soda.eval.edits.measure_carriers``); {} where nothing was measured (other data sets, --no-measure)."""
    mix = (m.assets.meta.get("slider_effects") or {}).get("mixing") or {}
    return {f: [int(k) for k in c] for f, c in (mix.get("carriers") or {}).items() if c}


def mix_choices(m: Loaded) -> list[tuple[str, str]]:
    """section_choices, each label followed by the factors whose measured carriers include that section."""
    carried = mix_carriers(m)
    out = []
    for label, value in section_choices(m):
        names = [f.replace("_", " ") for f, c in carried.items() if int(value) in c]
        out.append((label + (" · " + ", ".join(names) if names else ""), value))
    return out


def take_choices(m: Loaded) -> list[str]:
    return [FREE_MIX] + [f.replace("_", " ") for f in mix_carriers(m)]


def take_update(m: Loaded):
    """The 'take a factor from B' dropdown for checkpoint ``m`` (hidden when its carriers were not measured)."""
    return gr.Dropdown(choices=take_choices(m), value=FREE_MIX, visible=bool(mix_carriers(m)))


def views_note(m: Loaded) -> str:
    if m.model.uses_cameras:
        return (
            "Look at the current edit from another camera (the edits carry over). Ranges are those of "
            "training; the orbit sweeps azimuth across them and back."
        )
    return "**This checkpoint was trained without cameras: novel views are not available.**"


def build_interpolate(ctx: Ctx) -> SimpleNamespace:
    m = ctx.ex.get()
    ns = SimpleNamespace()
    choices = ctx.ex.pick_choices(m)
    with gr.Row():  # the pickers get a row of their own: an example's caption is long (it was cut off)
        ns.a = gr.Dropdown(
            choices, value=choices[1], label="Image A", info=FOLLOWS, allow_custom_value=True, elem_id="interp-a"
        )
        ns.b = gr.Dropdown(
            choices,
            value=choices[min(2, len(choices) - 1)],
            label="Image B",
            info="any example",
            allow_custom_value=True,
            elem_id="interp-b",
        )
    with gr.Row():
        ns.n = gr.Slider(2, 24, value=8, step=1, label="Frames")
        ns.method = gr.Radio(["lerp", "slerp"], value="slerp", label="Path")
    ns.sections = section_picker(section_choices(m), "Only move these sections (none = all)")
    ctx.current_pickers.append(ns.a)
    ns.go = gr.Button("Interpolate", variant="primary")
    ns.gallery = gr.Gallery(
        label="Frames",
        elem_id="interp-gallery",
        columns=8,
        height=180,
        format="png",
        elem_classes="pix",
        interactive=False,
    )
    with gr.Row():
        ns.gif = gr.File(label="GIF")
        ns.mp4 = gr.File(label="MP4")
    return ns


def build_mix(ctx: Ctx) -> SimpleNamespace:
    m = ctx.ex.get()
    ns = SimpleNamespace()
    choices = ctx.ex.pick_choices(m)
    gr.Markdown(
        "Each latent section comes from image A unless ticked, then from image B: for example the coarse "
        "sections of one image (layout) with the fine sections of another (colours and texture)."
    )
    with gr.Row():
        ns.a = gr.Dropdown(
            choices, value=choices[1], label="Image A", info=FOLLOWS, allow_custom_value=True, elem_id="mix-a"
        )
        ns.b = gr.Dropdown(choices, value=choices[min(2, len(choices) - 1)], label="Image B", allow_custom_value=True)
    ns.take = gr.Dropdown(
        take_choices(m),
        value=FREE_MIX,
        label="Take a factor from B",
        info="ticks the sections that carry it: those whose swap moved it on decoded held-out pairs",
        visible=bool(mix_carriers(m)),
        elem_id="mix-take",
    )
    ns.from_b = section_picker(mix_choices(m), "Sections taken from B", "mix-from-b")
    ctx.current_pickers.append(ns.a)
    ns.go = gr.Button("Mix", variant="primary")
    with gr.Row():
        ns.img_a = gr.Image(label="A", format="png", interactive=False, elem_classes="pix", height=200)
        ns.img_b = gr.Image(label="B", format="png", interactive=False, elem_classes="pix", height=200)
        ns.mixed = gr.Image(
            label="Mixed", format="png", interactive=False, elem_classes="pix", height=200, elem_id="mixed"
        )
    return ns


def orbit_steps_default(ex, m: Loaded) -> int:
    """The orbit's default steps: the full-quality render's (measured, soda.steps), at most ORBIT_STEPS, at least 2."""
    full = m.model.cfg.diffusion.sample_steps
    return max(2, min(ORBIT_STEPS, ex.steps(m, "full"), full))


def build_views(ctx: Ctx) -> SimpleNamespace:
    m = ctx.ex.get()
    ns = SimpleNamespace()
    lim, d = api.camera_limits(), api.default_camera()
    full = m.model.cfg.diffusion.sample_steps
    ns.note = gr.Markdown(views_note(m))
    with gr.Row():
        ns.az = gr.Slider(*lim["azimuth"], value=d.azimuth, step=1, label="Azimuth (°)")
        ns.el = gr.Slider(*lim["elevation"], value=d.elevation, step=1, label="Elevation (°)")
        ns.r = gr.Slider(*lim["radius"], value=d.radius, step=0.05, label="Radius")
    ns.render = gr.Button("Render view")
    with gr.Row():
        ns.view_img = gr.Image(
            label="View", format="png", interactive=False, elem_classes="pix", height=240, elem_id="novel-view"
        )
        with gr.Column():
            with gr.Row():
                ns.orbit_n = gr.Slider(4, 48, value=24, step=1, label="Orbit frames")
                ns.orbit_steps = gr.Slider(
                    2, full, value=orbit_steps_default(ctx.ex, m), step=1, label="Orbit steps", info="fewer = faster"
                )
            with gr.Row():
                ns.orbit_go = gr.Button("Orbit GIF", variant="primary")
                ns.orbit_cancel = gr.Button("Cancel", interactive=False, elem_id="orbit-cancel")  # while it runs
            ns.orbit_status = gr.Markdown("", label="Orbit status")
            ns.orbit_gif = gr.Image(label="Orbit", interactive=False, elem_classes="pix", height=240, type="filepath")
    return ns


def wire(ctx: Ctx, ip: SimpleNamespace, mx: SimpleNamespace, nv: SimpleNamespace) -> None:
    ex, st, seed_in, quality_in = ctx.ex, ctx.state, ctx.seed, ctx.quality

    @guard
    def interpolate(state, a, b, n, method, sections, seed, quality):
        frames, gif, mp4 = ex.interpolate(state, a, b, n, method, sections, seed, quality)
        if mp4 is None:
            gr.Warning("MP4 export needs ffmpeg (pip install imageio-ffmpeg); the GIF is ready.")
        return frames, gif, mp4

    ip.go.click(
        interpolate,
        [st, ip.a, ip.b, ip.n, ip.method, ip.sections, seed_in, quality_in],
        [ip.gallery, ip.gif, ip.mp4],
        api_name="interpolate",
        **LONG,
    )

    @guard
    def mix(state, a, b, from_b, seed, quality):
        return tuple(ex.mix(state, a, b, from_b, seed, quality))

    @guard
    def take(state, factor):
        """The carrying sections of ``factor`` ticked (nothing changes for the free choice)."""
        if factor == FREE_MIX or not state:
            return gr.skip()
        carried = mix_carriers(ex.get(state["ckpt"]))
        key = str(factor).replace(" ", "_")
        if key not in carried:
            return gr.skip()
        return [str(k) for k in carried[key]]

    mx.take.input(take, [st, mx.take], mx.from_b, show_progress="hidden", concurrency_limit=None, **PRIVATE)
    mx.go.click(
        mix, [st, mx.a, mx.b, mx.from_b, seed_in, quality_in], [mx.img_a, mx.img_b, mx.mixed], api_name="mix", **HEAVY
    )

    @guard
    def view(state, az, el, r, seed, quality):
        img, notes = ex.novel_view(state, az, el, r, seed, quality)
        warn(notes)
        return img

    inputs = [st, nv.az, nv.el, nv.r, seed_in, quality_in]
    nv.render.click(view, inputs, nv.view_img, api_name="novel_view", **HEAVY)
    gr.on(
        [nv.az.release, nv.el.release, nv.r.release],
        view,
        inputs,
        nv.view_img,
        trigger_mode="always_last",
        **PRIVATE,
        **HEAVY,
    )

    @guard
    def orbit(state, n, el, r, steps, seed, progress=gr.Progress()):
        progress(0, desc="rendering the orbit")
        deadline = time.monotonic() + ORBIT_SECONDS
        for done, total, frames, gif in ex.orbit(state, n, el, r, seed, steps):
            progress((done, total), desc=f"rendering the orbit ({done}/{total} frames)")
            if gif is None and done < total and time.monotonic() >= deadline:  # the time budget: keep what is done
                gif = media.write_gif(list(frames), "orbit", fps=12)
                yield gif, f"stopped at {done}/{total} frames (the server's time budget of {ORBIT_SECONDS:g} s)"
                return
            if gif is None:
                yield gr.skip(), f"{done}/{total} frames"
            else:
                yield gif, f"done: {total} frames"

    # "Cancel" is enabled only while an orbit runs (the enabling listener is registered first: the page runs one
    # click's listeners in order, each to its end)
    toggle = {"concurrency_limit": None, "show_progress": "hidden", **PRIVATE}
    nv.orbit_go.click(lambda: gr.Button(interactive=True), None, nv.orbit_cancel, **toggle)
    ev = nv.orbit_go.click(
        orbit,
        [st, nv.orbit_n, nv.el, nv.r, nv.orbit_steps, seed_in],
        [nv.orbit_gif, nv.orbit_status],
        api_name="orbit",
        **LONG,
    )
    ev.then(lambda: gr.Button(interactive=False), None, nv.orbit_cancel, **toggle, **FOLLOW)
    nv.orbit_cancel.click(
        lambda: ("cancelled", gr.Button(interactive=False)),
        None,
        [nv.orbit_status, nv.orbit_cancel],
        cancels=[ev],
        **toggle,
    )
