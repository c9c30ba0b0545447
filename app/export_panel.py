"""Export / API: PNG, latent .npy and a JSON recipe of the current edit; load a recipe back and replay it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from . import recipes
from .common import HEAVY, Ctx, guard, status_text, warn


def build(ctx: Ctx) -> SimpleNamespace:
    ns = SimpleNamespace()
    gr.Markdown(
        "A recipe holds the checkpoint, base latent, edits, decoder seed, steps and camera: loading it back "
        "replays the identical image. Every panel is also an API endpoint (see *Use via API* at the bottom "
        "of the page), e.g. `Client(url).predict(0, api_name='/load_example')`."
    )
    ns.go = gr.Button("Export the current edit", variant="primary")
    with gr.Row():
        ns.png = gr.File(label="Image (PNG)")
        ns.npy = gr.File(label="Latent (.npy, float32, shape (1, z_dim))")
        ns.json = gr.File(label="Recipe (.json)")
    ns.preview = gr.Code(label="Recipe", language="json", interactive=False, max_lines=14)
    gr.Markdown("### Replay a recipe")
    with gr.Row():
        ns.recipe_in = gr.File(label="Recipe (.json)", file_types=[".json"], type="filepath", elem_id="recipe-in")
        ns.replay = gr.Button("Load and replay")
    return ns


def wire(ctx: Ctx, ns: SimpleNamespace) -> None:
    ex, st, seed_in, quality_in = ctx.ex, ctx.state, ctx.seed, ctx.quality

    @guard
    def export(state, seed, quality):
        png, npy, js = recipes.export(ex, state, seed, quality)
        d = json.loads(Path(js).read_text())
        shown = {**d, "latent": f"[{len(d['latent'])} numbers]", "z": f"[{len(d['z'])} numbers]"}
        return png, npy, js, json.dumps(shown, indent=1)

    ns.go.click(export, [st, seed_in, quality_in], [ns.png, ns.npy, ns.json, ns.preview], api_name="export", **HEAVY)

    @guard
    def replay(state, path):
        new, image, notes = recipes.load_into(ex, state, path)
        warn(notes)
        return new, None, new["recon"], image, status_text(new)

    ns.replay.click(replay, [st, ns.recipe_in], [st, *ctx.editor_outputs], api_name="load_recipe", **HEAVY).then(
        **ctx.after_load[0]
    )
