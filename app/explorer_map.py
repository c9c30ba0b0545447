"""The latent map: figure of the held-out latents (PCA or cached t-SNE), the current latent's marker, clicks.

``LatentMap`` needs the checkpoints (``get``), the renderer (edits -> latent) and the editor (a click loads a latent
into it) and counts its work in the shared call counter."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch

from soda import precompute

from .explorer_checkpoints import CheckpointStore
from .explorer_edit import Editor
from .explorer_render import Renderer
from .loaded import ExplorerError, Loaded, Progress, factors_text


class LatentMap:
    """The map figure per checkpoint, view and colouring (cached on the ``Loaded``), markers and clicks."""

    def __init__(self, checkpoints: CheckpointStore, renderer: Renderer, editor: Editor, calls: Counter):
        self.checkpoints = checkpoints
        self.renderer = renderer
        self.editor = editor
        self.calls = calls

    def map_coords(self, m: Loaded, view: str, progress: Progress | None = None) -> torch.Tensor:
        """The map's 2-D coordinates (n_map, 2): the PCA projection, or the t-SNE embedding (computed once)."""
        if view == "t-SNE":
            with m.lock:
                if m.tsne is None:
                    if progress:
                        progress(0.0, f"t-SNE of {m.assets.map_latents.shape[0]} latents (cached after this)")
                    m.tsne = precompute.tsne_map(m.assets)
            return m.tsne
        return m.assets.map_pca

    def map_figure(self, key: str, view: str, color_by: str, progress: Progress | None = None) -> dict:
        """Plotly figure (as a dict) of the map latents, coloured by a factor; trace 0 holds the points."""
        m = self.checkpoints.get(key)
        fk = (view, color_by)
        if fk in m.figures:
            return m.figures[fk]
        self.calls["map"] += 1
        xy = self.map_coords(m, view, progress).numpy().astype(np.float64)
        a = m.assets
        which = "held-out" if a.meta.get("held_out", True) else "training"  # soda.precompute says which
        marker: dict = {"size": 5, "opacity": 0.75}
        hover = "#%{pointIndex}"
        custom = None
        if a.map_factors is not None:
            custom = a.map_factors.numpy().tolist()
            hover += "".join(f"<br>{n}=%{{customdata[{j}]}}" for j, n in enumerate(a.factor_names))
            if color_by in a.factor_names:
                j = a.factor_names.index(color_by)
                marker |= {
                    "color": a.map_factors[:, j].tolist(),
                    "colorscale": "Viridis",
                    "showscale": True,
                    "colorbar": {"title": {"text": color_by}, "thickness": 12},
                }
        trace = {
            "type": "scatter",
            "mode": "markers",
            "x": np.round(xy[:, 0], 4).tolist(),
            "y": np.round(xy[:, 1], 4).tolist(),
            "marker": marker,
            "hovertemplate": hover + "<extra></extra>",
            "name": f"{which} latents",
        }
        if custom is not None:
            trace["customdata"] = custom
        axis = "PC" if view == "PCA" else "t-SNE "
        fig = {
            "data": [trace],
            "layout": {
                "height": 480,
                "margin": {"l": 50, "r": 10, "t": 30, "b": 45},
                "showlegend": False,
                "clickmode": "event",
                "dragmode": "pan",
                "hovermode": "closest",
                "title": {"text": f"{len(xy)} {which} latents, {view}", "font": {"size": 13}},
                "xaxis": {"title": {"text": f"{axis}1"}, "zeroline": False},
                "yaxis": {"title": {"text": f"{axis}2"}, "zeroline": False},
            },
        }
        m.figures[fk] = fig
        return fig

    def map_marker(self, state: dict, view: str, values=None) -> list[float] | None:
        """Where the edited latent (slider ``values`` when given, else the committed edits) sits on the map -> [x, y]
        (None before anything is loaded)."""
        if not state or state.get("z0") is None:
            return None
        m = self.editor.session(self.checkpoints.get(state["ckpt"]), state)  # with the session's own directions
        edits = self.renderer.edits_from(m, values) if values is not None else state["edits"]
        z = self.renderer.latent(m, state["z0"], edits)
        if view == "t-SNE":
            if m.tsne is None:
                return None
            d = torch.cdist(z, m.assets.map_latents)[0]
            near = d.topk(min(5, d.numel()), largest=False)
            w = 1.0 / (near.values + 1e-6)
            xy = (m.tsne[near.indices] * w[:, None]).sum(0) / w.sum()
        else:
            xy = m.assets.pca(z)[0]
        return [round(float(xy[0]), 4), round(float(xy[1]), 4)]

    def map_click(self, state: dict, view: str, kind: str, index, x, y, seed, quality: str) -> dict:
        """A click on the map: a point loads that latent; empty space moves the current latent there (PCA) or
        loads the nearest point (t-SNE, which has no inverse)."""
        m = self.checkpoints.get(state["ckpt"])
        self.calls["map_click"] += 1
        n = m.assets.map_latents.shape[0]
        if kind == "point":
            if index is None or not 0 <= int(index) < n:
                raise ExplorerError(f"map point index must be in 0..{n - 1}")
            i = int(index)
            return self.editor.start(
                state, m, m.assets.map_latents[i : i + 1], f"map point {i}{factors_text(m, i)}", None, seed, quality
            )
        if x is None or y is None or not (math.isfinite(float(x)) and math.isfinite(float(y))):
            raise ExplorerError("map click needs finite x and y")
        if view == "t-SNE":
            d = (self.map_coords(m, view) - torch.tensor([float(x), float(y)])).norm(dim=1)
            i = int(d.argmin())
            return self.editor.start(
                state, m, m.assets.map_latents[i : i + 1], f"map point {i}{factors_text(m, i)}", None, seed, quality
            )
        _, z = self.editor.current(state)
        delta = (torch.tensor([float(x), float(y)]) - m.assets.pca(z)[0]) @ m.assets.pca_axes[:2]  # (z_dim,)
        z0 = (torch.tensor(state["z0"], dtype=torch.float32) + delta).tolist()
        new = {
            **state,
            "z0": z0,
            "history": [*state["history"], (state["z0"], state["edits"])],
            "source": f"{state['source'].split(' -> ')[0]} -> moved on the map to PC ({float(x):.2f}, {float(y):.2f})",
        }
        new["recon"] = state.get("recon")
        return new
