"""Interpolate, mix sections and novel views: operations that decode batches built from the editor's latent."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import torch

from soda import api

from . import media
from .loaded import ExplorerError, Loaded, check_seed, clip, section_indices


class ViewsMixin:
    """Part of ``Explorer`` (uses its get / current / decode / steps)."""

    def pick_choices(self, m: Loaded) -> list[str]:
        return ["current edit"] + [f"example {i}: {c}" for i, c in enumerate(m.assets.example_captions)]

    def current(self, state: dict) -> tuple[Loaded, torch.Tensor]:
        """The editor's checkpoint and its edited latent (1, z_dim) with the committed edits."""
        m = self._require(state)
        return m, self.latent(m, state["z0"], state["edits"])

    def _pick(self, state: dict, m: Loaded, choice: str) -> torch.Tensor:
        if choice == "current edit" or not choice:
            return self.current(state)[1]
        hit = re.match(r"example (\d+)", str(choice))
        if not hit or int(hit.group(1)) >= len(m.assets.example_captions):
            raise ExplorerError(f"unknown image choice '{choice}'")
        i = int(hit.group(1))
        return m.assets.example_latents[i : i + 1]

    def interpolate(
        self, state: dict, a: str, b: str, n, method: str, sections, seed, quality: str
    ) -> tuple[list[np.ndarray], str, str | None]:
        """-> (frames, GIF path, MP4 path or None)."""
        m = self.get(state["ckpt"])
        n = int(clip(n, 2, 32, "frames"))
        secs = section_indices(sections, m.model.n_sections)
        za, zb = self._pick(state, m, a), self._pick(state, m, b)
        try:
            path = api.interpolate(m.model, za[0], zb[0], n, method, secs)
        except ValueError as e:
            raise ExplorerError(str(e)) from None
        frames = list(self.decode(m, path, self.steps(m, quality), seed))
        loop = frames + frames[-2:0:-1]  # there and back
        return frames, media.write_gif(loop, "interpolation"), media.write_mp4(loop, "interpolation")

    def mix(self, state: dict, a: str, b: str, from_b, seed, quality: str) -> list[np.ndarray]:
        """-> [A, B, A with the chosen sections from B] images."""
        m = self.get(state["ckpt"])
        secs = set(section_indices(from_b, m.model.n_sections) or [])
        za, zb = self._pick(state, m, a), self._pick(state, m, b)
        mixed = api.mix_sections(m.model, za[0], zb[0], [k in secs for k in range(m.model.n_sections)])
        return list(self.decode(m, torch.cat([za, zb, mixed[None]]), self.steps(m, quality), seed))

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
        m, z = self.current(state)
        cam, notes = self.check_camera(m, azimuth, elevation, radius)
        return self.decode(m, z, self.steps(m, quality), seed, camera=cam)[0], notes

    def orbit(self, state: dict, n, elevation, radius, seed, steps, batch: int = 4) -> Iterator:
        """An orbit of the current edit: yields (done, total, frames so far, None), then (n, n, frames, GIF path)."""
        m, z = self.current(state)
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
