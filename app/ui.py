"""build_demo(explorer) -> gr.Blocks: the page layout and its event wiring. No tensors here.

Panels live in their own files (edit_panel, views_panel, map_panel, clip_panel, export_panel); this file holds the
header (checkpoint picker, model card, quality, seed), the tabs and the checkpoint switch that refreshes every panel.
"""

from __future__ import annotations

import gradio as gr

from . import clip_panel, edit_panel, export_panel, map_panel, views_panel
from .common import FOLLOW, PRIVATE, Ctx, guard, protect, quiet_user_errors
from .explorer import MAX_SEED, Explorer
from .explorer_render import QUALITIES
from .uploads import MAX_BYTES, UploadFilter

CONCURRENT_RENDERS = 2  # renders that run at once (plus up to two slider previews); more wait in the queue
CSS = """
.pix img, .pix canvas { image-rendering: pixelated; }
#input-img img, #recon img, #edited img, #novel-view img, #mixed img, .pix .image-frame img {
  width: 100% !important; height: 100% !important; object-fit: contain; }
.psnr { padding: 1px 8px; border-radius: 9px; font-weight: 600; color: white; }
.psnr-good { background: #1a7f37; } .psnr-fair { background: #9a6700; } .psnr-poor { background: #cf222e; }
.ood-flag { color: #cf222e; }
/* system fonts only (no web font, not the theme's own): the page looks the same offline */
:root, .gradio-container { --font: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans",
  "Liberation Sans", sans-serif; --font-mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono",
  "DejaVu Sans Mono", monospace; }
/* slider captions (what each slider measurably does): body text colour and size, not small light grey */
[id^="slider-"] .info-text { color: var(--body-text-color); font-size: var(--text-md); }
#map { min-height: 480px; }
/* before / after: the whole of both images, letterboxed (gradio's slider otherwise shows a zoomed crop) */
#before-after .slider-wrap .wrap, #before-after .slider-wrap .content { height: 100% !important; }
#before-after [data-testid=imageslider-image] { width: 100% !important; height: 100% !important;
  max-height: 100% !important; object-fit: contain !important; top: 0 !important; }
/* the upload box's floating label sits above its icon, not on it */
#upload .upload-container { padding-top: 34px; }
/* held-out examples: whole thumbnails, their captions below them (not over them), no empty space under the rows */
#examples .grid-wrap { min-height: 0 !important; max-height: none !important; height: auto !important; }
#examples .thumbnail-item { height: auto !important; aspect-ratio: auto !important; display: flex;
  flex-direction: column; }
#examples .thumbnail-item img { aspect-ratio: 1 / 1; height: auto !important; width: 100%; }
#examples .caption-label { position: static !important; white-space: normal; overflow-wrap: anywhere; max-width: 100%;
  transform: none !important; margin: 0; border: none; border-radius: 0; background: none; padding: 4px 6px;
  text-align: center; }
"""


def launch_options() -> dict:
    """Keyword arguments for ``demo.launch`` (gradio 6 takes css and theme there): uploads of at most MAX_BYTES
    ($SODA_MAX_UPLOAD_MB) and only of the types the app reads (app.uploads.UploadFilter)."""
    from starlette.middleware import Middleware

    return {
        "css": CSS,
        "max_file_size": MAX_BYTES,
        "show_error": False,
        "app_kwargs": {"middleware": [Middleware(UploadFilter)]},
    }


def build_demo(ex: Explorer) -> gr.Blocks:
    """The whole explorer page for ``ex`` (its default checkpoint must load)."""
    from .media import make_gradio_image_cache_atomic

    make_gradio_image_cache_atomic()  # concurrent users rendering the same image must never read a half-written file
    quiet_user_errors()  # a refused request is one log line, not a traceback
    m = ex.get()
    with gr.Blocks(title="SODA latent explorer", delete_cache=(1800, 3600)) as demo:
        st = gr.State(ex.new_state())
        gr.Markdown(
            "# SODA latent explorer\nEdit images through the sections of a bottleneck diffusion model's "
            "latent, interpolate, mix sections, change the camera and browse the latent space."
        )
        with gr.Row(equal_height=True):
            ckpt = gr.Dropdown(
                ex.allowed,
                value=ex.default_key,
                allow_custom_value=True,
                label="Checkpoint",
                info="listed folders or a hub id (owner/name)" if ex.any_hub else "the listed checkpoints",
                scale=3,
                elem_id="ckpt",
            )
            open_btn = gr.Button("Open", scale=0, min_width=80)
            quality = gr.Radio(
                list(QUALITIES),
                value="full",
                label="Quality",
                info=ex.renderer.steps_info(m),
                scale=2,
                elem_id="quality",
            )
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Decoder seed", scale=1, elem_id="seed")
        with gr.Accordion("Model card", open=False):
            card = gr.Markdown(ex.card(ex.default_key), label="Model card", elem_id="card")
        ctx = Ctx(ex=ex, state=st, seed=seed, quality=quality)
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Explore / edit", id="edit"):
                ed = edit_panel.build(ctx)
            with gr.Tab("Interpolate", id="interpolate"):
                ip = views_panel.build_interpolate(ctx)
            with gr.Tab("Mix sections", id="mix"):
                mx = views_panel.build_mix(ctx)
            with gr.Tab("Novel views", id="views"):
                nv = views_panel.build_views(ctx)
            with gr.Tab("Latent map", id="map-tab"):
                mp = map_panel.build(ctx)
                cm = clip_panel.build_map(ctx)
            with gr.Tab("Directions (CLIP)", id="clip") as clip_tab:
                cp = clip_panel.build(ctx)
            with gr.Tab("Export / API", id="export"):
                xp = export_panel.build(ctx)
        edit_panel.wire(ctx, ed)
        views_panel.wire(ctx, ip, mx, nv)
        map_panel.wire(ctx, mp)
        export_panel.wire(ctx, xp)
        # prompt sliders are added while the page is open (API clients never see the picker's new choices);
        # Explorer.traversal checks every name itself
        ed.trav_slider.allow_custom_value = True
        clip_status = clip_panel.wire(ctx, cp, cm, clip_tab, ed.trav_slider)
        demo.load(**clip_status, concurrency_limit=None)  # starts loading CLIP in the background (never blocks)

        @guard
        def open_checkpoint(state, key, progress=gr.Progress()):
            key = ex.check_choice(key)
            progress(0, desc=f"loading {key}")
            ex.get(key, progress=lambda f, msg: progress(f, desc=msg))
            return ex.new_state(key), ex.card(key)

        @guard
        def refresh(state, view):
            """Every panel follows the newly opened checkpoint."""
            m = ex.get(state["ckpt"])
            choices = ex.pick_choices(m)
            pick_a, pick_b = (
                gr.Dropdown(choices=choices, value=choices[1]),
                gr.Dropdown(choices=choices, value=choices[min(2, len(choices) - 1)]),
            )
            secs = gr.update(choices=views_panel.section_choices(m), value=[])
            colors = map_panel.color_choices(ex, m.key)
            zeros = ex.slider_values(m, {})
            return [
                edit_panel.gallery_items(m),
                edit_panel.camera_note(m),
                None,
                None,
                None,
                "Pick an example or upload an image.",
                None,
                gr.Dropdown(choices=edit_panel.traversal_choices(m), value=None),
                *edit_panel.slider_updates(m, zeros),
                *edit_panel.title_updates(m),
                pick_a,
                pick_b,
                secs,
                pick_a,
                pick_b,
                views_panel.take_update(m),
                gr.update(choices=views_panel.mix_choices(m), value=[]),
                views_panel.views_note(m),
                gr.Dropdown(choices=colors, value=colors[0]),
                gr.HTML(value=map_panel.figure_json(ex, m.key, "PCA", colors[0]), marker=[]),
                "PCA",
                gr.Radio(info=ex.renderer.steps_info(m)),
            ]

        refresh_out = [
            ed.gallery,
            ed.camera_note,
            ed.input_img,
            ed.recon,
            ed.edited,
            ed.info,
            ed.before_after,
            ed.trav_slider,
            *ctx.sliders,
            *ctx.slider_titles,
            ip.a,
            ip.b,
            ip.sections,
            mx.a,
            mx.b,
            mx.take,
            mx.from_b,
            nv.note,
            mp.color,
            ctx.map_html,
            ctx.view,
            quality,
        ]
        open_btn.click(
            open_checkpoint,
            [st, ckpt],
            [st, card],
            api_name="open_checkpoint",
            concurrency_id="load",
            concurrency_limit=1,
        ).then(refresh, [st, ctx.view], refresh_out, **PRIVATE, **FOLLOW).then(
            **clip_status, concurrency_limit=None, **FOLLOW
        )
    demo.queue(default_concurrency_limit=CONCURRENT_RENDERS, max_size=64)
    return protect(demo)  # the entry checks of every request, a per-session job limit
