"""Latent map: a plotly scatter of held-out latents (PCA or cached t-SNE) that answers clicks.

Gradio's plot component has no click event, so the map is a ``gr.HTML`` that draws the figure with plotly.js (served
from the plotly Python package, so it works offline) and reports clicks through a custom ``map_click`` event: a click
on a point loads that latent into the editor; a click on empty space moves the current latent's two plotted PCA
coordinates there. The current image is a star that the editor moves by updating the ``marker`` prop.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from .common import FOLLOW, HEAVY, PRIVATE, Ctx, guard, marker_update, status_text

MAP_TEMPLATE = "<div class='soda-map' style='width:100%;height:480px'></div>"

# `element`, `props`, `trigger` and `watch` are provided by gr.HTML. A click is a press and release of the left button
# at (nearly) one place inside the plot area, seen by listeners of our own: plotly's click event names the point of
# the last *hover* (a quick move-and-click outruns it), and the click plotly dispatches itself goes to the element
# pressed, which a redraw (the star moving after the previous click) may have replaced. A click is classified where it
# lands: the points of trace 0 under it (the last drawn is on top), else the nearest within HIT_PX, else empty space.
MAP_JS = r"""
const div = element.querySelector('.soda-map');
const HIT_PX = 7, DOT_PX = 3.5, SLOP_PX = 4;
let parsedFrom = null, fig = null, down = null;
const classify = (cx, cy) => {
  const drag = div.querySelector('.nsewdrag');
  if (!drag || !fig) return;
  const r = drag.getBoundingClientRect();
  if (cx < r.left || cx > r.right || cy < r.top || cy > r.bottom) return;
  const L = div._fullLayout, px = cx - r.left, py = cy - r.top, t = fig.data[0];
  let top = -1, near = -1, nearD = HIT_PX * HIT_PX;
  for (let i = 0; i < t.x.length; i++) {
    const dx = L.xaxis.d2p(t.x[i]) - px, dy = L.yaxis.d2p(t.y[i]) - py, d = dx * dx + dy * dy;
    if (d <= DOT_PX * DOT_PX) top = i;
    if (d < nearD) { nearD = d; near = i; }
  }
  const i = top >= 0 ? top : near;
  if (i >= 0) trigger('map_click', {kind: 'point', index: i, x: t.x[i], y: t.y[i]});
  else trigger('map_click', {kind: 'empty', index: -1, x: L.xaxis.p2d(px), y: L.yaxis.p2d(py)});
};
const draw = () => {
  if (!window.Plotly || !props.value) return;
  if (parsedFrom !== props.value) { fig = JSON.parse(props.value); parsedFrom = props.value; }
  const data = fig.data.slice();
  if (props.marker && props.marker.length === 2) {
    data.push({type: 'scatter', mode: 'markers', x: [props.marker[0]], y: [props.marker[1]], hoverinfo: 'skip',
               marker: {size: 20, symbol: 'star', color: '#ff2d55', line: {width: 1.5, color: 'black'}}});
  }
  Plotly.react(div, data, fig.layout, {displayModeBar: false, responsive: true});
  if (!div._sodaBound) {
    div._sodaBound = true;
    div.addEventListener('mousedown', ev => { down = ev.button === 0 ? [ev.clientX, ev.clientY] : null; }, true);
    document.addEventListener('mouseup', ev => {
      const d = down;
      down = null;
      if (d && ev.button === 0 && Math.hypot(ev.clientX - d[0], ev.clientY - d[1]) <= SLOP_PX) classify(d[0], d[1]);
    }, true);
    new ResizeObserver(() => { if (div.offsetWidth) Plotly.Plots.resize(div); }).observe(div);
  }
};
const start = () => { if (window.Plotly) { draw(); } else { setTimeout(start, 100); } };
start();
watch(['value', 'marker'], draw);
"""


def plotly_src() -> str:
    """Path of plotly.min.js inside the installed plotly package (registered as the only static file we serve)."""
    import plotly

    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    gr.set_static_paths([str(js)])
    return f"/gradio_api/file={js}"


def color_choices(ex, key: str) -> list[str]:
    return list(ex.get(key).assets.factor_names) or ["none"]


def figure_json(ex, key: str, view: str, color_by: str, progress=None) -> str:
    return json.dumps(ex.map_figure(key, view, color_by, progress), separators=(",", ":"))


def build(ctx: Ctx) -> SimpleNamespace:
    ex = ctx.ex
    ns = SimpleNamespace()
    colors = color_choices(ex, ex.default_key)
    gr.Markdown(
        "Held-out latents projected to 2-D. **Click a point** to load it into the editor; **click empty "
        "space** (PCA) to move the current latent's two plotted coordinates there. The star is the current "
        "image and follows the sliders. t-SNE is computed on first use and cached."
    )
    with gr.Row():
        ctx.view = gr.Radio(["PCA", "t-SNE"], value="PCA", label="Projection", elem_id="map-view")
        ns.color = gr.Dropdown(colors, value=colors[0], label="Colour by", elem_id="map-color")
    ctx.map_html = gr.HTML(
        figure_json(ex, ex.default_key, "PCA", colors[0]),
        html_template=MAP_TEMPLATE,
        js_on_load=MAP_JS,
        head=f'<script src="{plotly_src()}"></script>',
        marker=[],
        elem_id="map",
        min_height=480,
        label="Latent map (plotly figure JSON)",
    )
    with gr.Row(equal_height=True):
        # what a click did, on this tab too (the editor's copy is on *Explore / edit*)
        ns.preview = gr.Image(
            label="Current image",
            interactive=False,
            height=140,
            width=140,
            scale=0,
            min_width=140,
            elem_id="map-preview",
            elem_classes="pix",
        )
        ns.status = gr.Markdown("Click a point or empty space.", elem_id="map-status")
    ns.api_kind = gr.Textbox("point", visible=False)
    ns.api_index = gr.Number(0, visible=False, precision=0)
    ns.api_x = gr.Number(0.0, visible=False)
    ns.api_y = gr.Number(0.0, visible=False)
    ns.api_click = gr.Button(visible=False)
    return ns


def click_feedback(state: dict) -> str:
    """The map tab's line after a click: what is now loaded, and where to edit it."""
    return f"{status_text(state)} · loaded into *Explore / edit*, where the sliders edit it"


def star_args(ctx: Ctx) -> dict:
    """The follow-up of anything that redraws the map (a projection, a colouring, the CLIP map): the star goes back to
    the current latent (a new figure has none)."""
    ex = ctx.ex

    @guard
    def star(state, view):
        return marker_update(ex.map_marker(state, view))

    return {"fn": star, "inputs": [ctx.state, ctx.view], "outputs": ctx.map_html, "show_progress": "hidden"} | {
        **PRIVATE,
        **FOLLOW,
    }


def wire(ctx: Ctx, ns: SimpleNamespace) -> None:
    ex, st, seed_in, quality_in = ctx.ex, ctx.state, ctx.seed, ctx.quality

    @guard
    def latent_map(state, view, color_by, progress=gr.Progress()):
        key = state["ckpt"] if state else ex.default_key

        def say(f, msg):
            progress(None, desc=msg)  # sklearn's t-SNE reports no progress: an indeterminate bar

        return figure_json(ex, key, view, color_by, say)

    gr.on(
        [ctx.view.change, ns.color.change],
        latent_map,
        [st, ctx.view, ns.color],
        ctx.map_html,
        api_name="latent_map",
        **HEAVY,
    ).then(**star_args(ctx))

    @guard
    def click(state, view, kind, index, x, y, seed, quality):
        new = ex.map_click(state, view, kind, index, x, y, seed, quality)
        edited = ex.edited(new, seed, quality)
        if new.get("recon") is None:
            new["recon"] = edited
        return new, new.get("input"), new["recon"], edited, status_text(new)

    @guard
    def click_event(state, view, seed, quality, evt: gr.EventData):
        d = getattr(evt, "_data", None) or {}
        out = click(state, view, d.get("kind"), d.get("index"), d.get("x"), d.get("y"), seed, quality)
        return *out, out[3], click_feedback(out[0])

    outs = [st, *ctx.editor_outputs]
    after = ctx.after_load[0]
    # Every click counts, in order: "always_last" would defer a click made while the previous one runs, and gradio
    # then replays the *earlier* click's event data (a click on empty space right after a point click was lost).
    # One at a time: each click reads the session state the previous one left (gr.State lives on the server).
    ctx.map_html.map_click(
        click_event,
        [st, ctx.view, seed_in, quality_in],
        [*outs, ns.preview, ns.status],  # the page's click answers on this tab too; /map_click keeps its outputs
        trigger_mode="multiple",
        concurrency_id="map_click",
        concurrency_limit=1,
        **PRIVATE,
    ).then(**after)
    ns.api_click.click(
        click,
        [st, ctx.view, ns.api_kind, ns.api_index, ns.api_x, ns.api_y, seed_in, quality_in],
        outs,
        api_name="map_click",
        **HEAVY,
    ).then(**after)
