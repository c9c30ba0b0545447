"""What z does not store: the editor's current latent decoded with several noise seeds, and where the images differ.

``Uncertainty`` needs the editor (the current latent) and the renderer (the steps and sampler of a quality). The map
is ``soda.api.uncertainty``: per pixel the standard deviation over K decodes that differ only in the starting noise.
Where it is dark, z fixes the image; where it is bright, the decoder invents detail that z does not pin down.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from soda import api

from .explorer_edit import Editor
from .explorer_render import REFERENCE, Renderer
from .loaded import check_seed, clip

DEFAULT_SEEDS = api.UNCERTAINTY_SEEDS  # K, decoded in one batch
MAX_SEEDS = 32
FULL_SCALE = 0.05  # a std of 5 % of the image range is drawn white: one scale for every image, maps compare
MEANING = (
    "Bright: where the decoder invents detail that z does not pin down (the same latent decoded with {k} noise seeds "
    "differs there); dark: what z stores. Per-pixel std {mean:.1%} on average, {top:.1%} at most (white: "
    f"{FULL_SCALE:.0%} of the range or more)."
)


def heat(v: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8: black, red, yellow, white as the value grows."""
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, 1.0)
    rgb = np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1)
    return (rgb * 255).round().astype(np.uint8)


class Uncertainty:
    """The uncertainty map of the editor's current edit."""

    def __init__(self, editor: Editor, renderer: Renderer, calls: Counter):
        self.editor = editor
        self.renderer = renderer
        self.calls = calls

    def steps(self, m, quality: str) -> int:
        """The steps of the map: the full-quality steps, or the reference's. Never the preview's: a one-step decode
        is the decoder's mean guess, whatever the noise (its map would be dark everywhere)."""
        return self.renderer.steps(m, REFERENCE if quality == REFERENCE else "full")

    def map(self, state: dict, k, seed, quality: str) -> tuple[np.ndarray, np.ndarray, str]:
        """-> (the heat map (H,W,3) uint8, the per-pixel std (H,W) float32 in units of the image range, one line
        saying what it means)."""
        m, z = self.editor.current(state)
        k = int(clip(k, 2, MAX_SEEDS, "noise seeds"))
        self.calls["uncertainty"] += 1
        std = api.uncertainty(
            m.model,
            z,
            k,
            steps=self.steps(m, quality),
            seed=check_seed(seed),
            camera=m.camera,
            sampler=self.renderer.sampler(m),
        ).numpy()
        text = MEANING.format(k=k, mean=float(std.mean()), top=float(std.max()))
        return heat(std / FULL_SCALE), std, text
