"""Interpolate, mix sections and novel views: operations that decode batches built from the editor's latent.

``Views`` needs the checkpoints (``get``), the editor (its current latent) and the renderer (cached decode)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import numpy as np
import torch

from soda import api

from . import media
from .explorer_checkpoints import CheckpointStore
from .explorer_edit import Editor
from .explorer_render import Renderer
from .loaded import ExplorerError, Loaded, check_seed, clip, section_indices


class Views:
    """Interpolation, section mixing, novel views and orbits of the editor's latent."""

    def __init__(self, checkpoints: CheckpointStore, editor: Editor, renderer: Renderer, calls: Counter):
        self.checkpoints = checkpoints
        self.editor = editor
        self.renderer = renderer
        self.calls = calls

    @staticmethod
    def pick_choices(m: Loaded) -> list[str]:
        """The image choices of the Interpolate / Mix pickers: the current edit, then every example."""
        return ["current edit"] + [f"example {i}: {c}" for i, c in enumerate(m.assets.example_captions)]

    def _pick(self, state: dict, m: Loaded, choice: str) -> torch.Tensor:
        if choice == "current edit" or not choice:
            return self.editor.current(state)[1]
        hit = re.match(r"example (\d+)", str(choice))
        if not hit or int(hit.group(1)) >= len(m.assets.example_captions):
            raise ExplorerError(f"unknown image choice '{choice}'")
        i = int(hit.group(1))
        return m.assets.example_latents[i : i + 1]

    def interpolate(
        self, state: dict, a: str, b: str, n, method: str, sections, seed, quality: str
    ) -> tuple[list[np.ndarray], str, str | None]:
        """-> (frames, GIF path, MP4 path or None)."""
        m = self.checkpoints.get(state["ckpt"])
        n = int(clip(n, 2, 32, "frames"))
        secs = section_indices(sections, m.model.n_sections)
        za, zb = self._pick(state, m, a), self._pick(state, m, b)
        try:
            path = api.interpolate(m.model, za[0], zb[0], n, method, secs)
        except ValueError as e:
            raise ExplorerError(str(e)) from None
        frames = list(self.renderer.images(m, path, quality, seed))
        loop = frames + frames[-2:0:-1]  # there and back
        return frames, media.write_gif(loop, "interpolation"), media.write_mp4(loop, "interpolation")

    def mix(self, state: dict, a: str, b: str, from_b, seed, quality: str) -> list[np.ndarray]:
        """-> [A, B, A with the chosen sections from B] images."""
        m = self.checkpoints.get(state["ckpt"])
        secs = set(section_indices(from_b, m.model.n_sections) or [])
        za, zb = self._pick(state, m, a), self._pick(state, m, b)
        mixed = api.mix_sections(m.model, za[0], zb[0], [k in secs for k in range(m.model.n_sections)])
        return list(self.renderer.images(m, torch.cat([za, zb, mixed[None]]), quality, seed))

    def check_camera(self, m: Loaded, azimuth, elevation, radius) -> tuple[api.Camera, list[str]]:
        if not m.model.uses_cameras:
            raise ExplorerError("this checkpoint was trained without cameras: novel views are not available")
        try:
            cam = api.Camera.from_dict({"azimuth": azimuth, "elevation": elevation, "radius": radius})
        except ValueError as e:
            raise ExplorerError(str(e)) from None
        return cam, cam.outside_ranges()

    def novel_view(self, state: dict, azimuth, elevation, radius, seed, quality: str):
        """The current edit seen from another camera -> (image, warnings)."""
        m, z = self.editor.current(state)
        cam, notes = self.check_camera(m, azimuth, elevation, radius)
        return self.renderer.images(m, z, quality, seed, camera=cam)[0], notes

    def orbit(self, state: dict, n, elevation, radius, seed, steps, batch: int = 4) -> Iterator:
        """An orbit of the current edit: yields (done, total, frames so far, None), then (n, n, frames, GIF path)."""
        m, z = self.editor.current(state)
        cam, _ = self.check_camera(m, api.default_camera().azimuth, elevation, radius)
        n = int(clip(n, 2, 64, "frames"))
        self.calls["orbit"] += 1
        cams = api.orbit_cameras(n, elevation=cam.elevation, radius=cam.radius)
        frames: list[np.ndarray] = []
        steps = int(clip(steps, 1, 1000, "orbit steps"))
        for i in range(0, n, batch):
            chunk = cams[i : i + batch]
            rays = torch.cat([api.camera_rays(m.model, c) for c in chunk])
            imgs = api.to_uint8(
                api.decode(m.model, z.expand(len(chunk), -1), rays=rays, steps=steps, seed=check_seed(seed))
            )
            frames.extend(imgs)
            self.calls["orbit_frames"] += len(chunk)
            yield len(frames), n, frames, None
        yield n, n, frames, media.write_gif(frames, "orbit", fps=12)
