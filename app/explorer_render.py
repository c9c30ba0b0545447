"""Latents <-> images for the explorer: slider values -> edits -> latent, and a decode cache.

``Renderer`` needs nothing but a loaded checkpoint per call (``Loaded``): every other service that turns latents into
images goes through it, so that identical requests (a slider released where it was) cost nothing.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np
import torch

from soda import api
from soda import chosen_steps as decode_steps

from .loaded import N_SLOTS, ExplorerError, Loaded, check_seed

CACHE_IMAGES = 256  # decoded images kept (least recently used dropped first)
QUALITIES = ("preview", "full", "reference")  # the header's Quality choices
REFERENCE = "reference"  # the config's full steps (50): what the measured steps are compared with


class Renderer:
    """Edits, latents and the cached decoder; holds only the image cache."""

    def __init__(self, cache_images: int = CACHE_IMAGES):
        self.cache_images = cache_images
        self.cache: OrderedDict[tuple, np.ndarray] = OrderedDict()  # (key, z, steps, sampler, seed, camera) -> image
        self._lock = threading.Lock()

    @staticmethod
    def edits_from(m: Loaded, values) -> dict[str, float]:
        """Slider values (N_SLOTS numbers, in slot order) -> {edit name: amount} for the non-zero ones."""
        out = {}
        for name, v in zip(m.slots, list(values or [])[:N_SLOTS], strict=False):
            if name is None or v is None:
                continue
            v = float(v)
            if not math.isfinite(v):
                raise ExplorerError(f"slider '{name}' has a non-finite value")
            if v != 0.0:
                out[name] = v
        return out

    @staticmethod
    def slider_values(m: Loaded, edits: dict[str, float]) -> list[float]:
        """{edit name: amount} -> N_SLOTS slider values."""
        return [float(edits.get(name, 0.0)) if name else 0.0 for name in m.slots]

    @staticmethod
    def latent(m: Loaded, z0, edits: dict[str, float]) -> torch.Tensor:
        """Base latent (z_dim numbers) and edits -> (1, z_dim)."""
        z = torch.as_tensor(np.asarray(z0, dtype=np.float32)).reshape(1, -1)
        for name in sorted(edits):
            if name not in m.directions:
                raise ExplorerError(f"unknown edit '{name}' for this checkpoint")
            z = api.move_along(z, m.directions[name], float(edits[name]))
        return z

    @staticmethod
    def steps(m: Loaded, quality: str) -> int:
        """'preview' / 'full' -> the checkpoint's measured steps of that quality (soda.steps: chosen by
        ``python -m soda.precompute``; the config's preview / sample steps when not measured or overridden),
        'reference' -> the config's sample steps (the 50-step render the measurement compares with)."""
        if quality == REFERENCE:
            return int(m.model.cfg.diffusion.sample_steps)
        return decode_steps.steps_for(m.model, quality, m.assets)

    @staticmethod
    def steps_info(m: Loaded) -> str:
        """One line under the Quality control: the steps of each choice and where they come from."""
        c = decode_steps.choice(m.model, m.assets)
        why = {"measured": "measured", "config": "the checkpoint's config"}.get(c["source"], c["source"])
        ref = int(m.model.cfg.diffusion.sample_steps)
        return f"steps: {c['preview']} / {c['full']} / {ref} ({why}, {c['sampler']})"

    @staticmethod
    def sampler(m: Loaded) -> str:
        """The sampler of every render: the one the steps were measured for (soda.steps), else DDIM."""
        return decode_steps.choice(m.model, m.assets)["sampler"]

    def decode(self, m: Loaded, z: torch.Tensor, steps: int, seed, camera: api.Camera | None = None) -> np.ndarray:
        """(B, z_dim) -> (B,H,W,3) uint8, through a small cache (sliders often come back to the same values)."""
        seed = check_seed(seed)
        cam = camera if camera is not None else m.camera
        sampler = self.sampler(m)
        out = []
        todo = []
        for i in range(z.shape[0]):
            k = (m.key, z[i].numpy().tobytes(), int(steps), sampler, seed, cam)
            with self._lock:
                hit = self.cache.get(k)
                if hit is not None:
                    self.cache.move_to_end(k)
            out.append(hit)
            if hit is None:
                todo.append((i, k))
        if todo:
            idx = [i for i, _ in todo]
            imgs = api.to_uint8(api.decode(m.model, z[idx], camera=cam, steps=int(steps), seed=seed, sampler=sampler))
            with self._lock:
                for (i, k), img in zip(todo, imgs, strict=True):
                    out[i] = img
                    self.cache[k] = img
                while len(self.cache) > self.cache_images:
                    self.cache.popitem(last=False)
        return np.stack(out)

    def images(self, m: Loaded, z: torch.Tensor, quality: str, seed, camera: api.Camera | None = None) -> np.ndarray:
        """``decode`` at the steps of ``quality`` (``steps``): (B, z_dim) -> (B,H,W,3) uint8."""
        return self.decode(m, z, self.steps(m, quality), seed, camera=camera)

    @staticmethod
    def encode(m: Loaded, img: np.ndarray) -> torch.Tensor:
        """(H,W,3) uint8 -> (1, z_dim), seen from the editor's camera."""
        return api.encode(m.model, api.from_uint8(img[None]), camera=m.camera)
