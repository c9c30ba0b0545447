"""The editor: a user's state (base latent, edits, undo history) and the operations on it.

Everything that belongs to one user lives in a plain ``state`` dict that the UI keeps in ``gr.State``:

    {"ckpt": key, "z_orig": [...], "z0": [...], "edits": {name: amount}, "history": [(z0, edits), ...],
     "source": "example 3: ...", "input": (H,W,3) uint8 or None}

(after a load also "recon" (H,W,3) uint8, "psnr" dB or None and, for uploads, "ood"; after a recipe with prompt
directions that the checkpoint lacks, "directions": {name: vector}: this session's own, never added to the shared
checkpoint). The edited latent is ``z0 + sum(amount * direction[name])``. ``Editor`` needs the checkpoints (``get``),
the renderer (edits, latents, cached decode) and the shared call counter.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from soda import api

from . import media
from .explorer_checkpoints import CheckpointStore
from .explorer_render import Renderer
from .loaded import HISTORY, ExplorerError, Loaded, check_seed, clip, psnr
from .text import excerpt, parse_json
from .uploads import UploadError, read_image

REFINE_STEPS = 200  # the page's refine slider stops here
REFINE_SECONDS = float(os.environ.get("SODA_REFINE_SECONDS", "30"))  # a refine stops (keeping its result) after this


def known_names(m: Loaded, limit: int = 40) -> str:
    """The edit names of ``m`` for a message: at most ``limit``, each escaped and cut short."""
    names = list(m.directions)
    text = ", ".join(excerpt(n) for n in names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


class Editor:
    """Load a latent (example, upload, map), edit it with sliders, undo, traverse, refine."""

    def __init__(self, checkpoints: CheckpointStore, renderer: Renderer, calls: Counter):
        self.checkpoints = checkpoints
        self.renderer = renderer
        self.calls = calls  # operation -> how often it ran (tests check that drags do not flood)

    def new_state(self, key: str | None = None) -> dict:
        """An empty editor state on checkpoint ``key`` (the default one when None)."""
        return {
            "ckpt": key or self.checkpoints.default_key,
            "z_orig": None,
            "z0": None,
            "edits": {},
            "history": [],
            "source": "",
            "input": None,
        }

    @staticmethod
    def session(m: Loaded, state: dict | None) -> Loaded:
        """Checkpoint ``m`` as this session sees it: its shared directions plus the session's own (a recipe's prompt
        directions, ``state["directions"]``). The shared ``m`` is never changed."""
        extra = (state or {}).get("directions")
        if not extra:
            return m
        own = {k: torch.tensor(v, dtype=torch.float32) for k, v in extra.items() if k not in m.directions}
        return dataclasses.replace(m, directions={**m.directions, **own})

    def require(self, state: dict) -> Loaded:
        """The state's checkpoint (with the session's own directions); ExplorerError before anything is loaded."""
        if not state or state.get("z0") is None:
            raise ExplorerError("pick an example or upload an image first")
        return self.session(self.checkpoints.get(state["ckpt"]), state)

    def current(self, state: dict) -> tuple[Loaded, torch.Tensor]:
        """The editor's checkpoint and its edited latent (1, z_dim) with the committed edits."""
        m = self.require(state)
        return m, self.renderer.latent(m, state["z0"], state["edits"])

    # ---------------------------------------------------------------------------------------------------------
    # Explore / edit
    # ---------------------------------------------------------------------------------------------------------
    def start(
        self, state: dict, m: Loaded, z: torch.Tensor, source: str, image: np.ndarray | None, seed, quality: str
    ) -> dict:
        """Make z the new base latent of the editor (edits cleared) and render its reconstruction."""
        z0 = z.reshape(-1).tolist()
        new = {**self.new_state(m.key), "z_orig": z0, "z0": z0, "source": source, "input": image}
        recon = self.renderer.images(m, z.reshape(1, -1), quality, seed)[0]
        new["psnr"] = psnr(image, recon) if image is not None else None
        new["recon"] = recon
        return new

    def load_example(self, state: dict, index, seed, quality: str) -> dict:
        m = self.checkpoints.get(state["ckpt"])
        n = len(m.assets.example_captions)
        if index is None or not 0 <= int(index) < n:
            raise ExplorerError(f"example index must be in 0..{n - 1}")
        i = int(index)
        img = m.assets.examples[i]
        z = m.assets.example_latents[i : i + 1]
        return self.start(state, m, z, f"example {i}: {m.assets.example_captions[i]}", img, seed, quality)

    def load_upload(self, state: dict, path, seed, quality: str) -> tuple[dict, list[str]]:
        """Uploaded file -> new editor state and warnings (out-of-distribution, default camera)."""
        m = self.checkpoints.get(state["ckpt"])
        if not path:
            raise ExplorerError("no file was uploaded")
        try:
            img = read_image(path, m.model.res)
        except UploadError as e:
            raise ExplorerError(str(e)) from None
        self.calls["encode"] += 1
        z = self.renderer.encode(m, img)
        new = self.start(state, m, z, f"upload: {Path(str(path)).name}", img, seed, quality)
        notes = []
        det = m.assets.ood
        if det is not None:  # soda.ood: latent distance, reconstruction and pixel signals, calibrated per checkpoint
            recon = self.renderer.decode(m, z, det.steps, det.seed)  # the detector's fixed reconstruction (cached)
            v = det.verdicts(det.raw(api.from_uint8(img[None]), z, api.from_uint8(recon)))[0]
            new["ood"] = {"score": v.score, "threshold": v.threshold, "flagged": v.flagged, "reasons": v.reasons}
            if v.flagged:
                notes.append(det.warning(v))
        return new, notes

    def preview(self, state: dict, values, seed) -> np.ndarray:
        """Fast decode (preview steps) of the edited latent while a slider moves."""
        m = self.require(state)
        self.calls["preview"] += 1
        z = self.renderer.latent(m, state["z0"], self.renderer.edits_from(m, values))
        return self.renderer.images(m, z, "preview", seed)[0]

    def render(self, state: dict, values, seed, quality: str) -> tuple[dict, np.ndarray]:
        """Full decode of the edited latent (slider released); the previous edits go on the undo stack."""
        m = self.require(state)
        self.calls["render"] += 1
        edits = self.renderer.edits_from(m, values)
        state = dict(state)
        if edits != state["edits"]:
            state["history"] = ([*state["history"], (state["z0"], state["edits"])])[-HISTORY:]
            state["edits"] = edits
        z = self.renderer.latent(m, state["z0"], edits)
        return state, self.renderer.images(m, z, quality, seed)[0]

    def apply_edits(self, state: dict, edits, seed, quality: str) -> tuple[dict, np.ndarray]:
        """Set the edits from a dict or JSON text {edit name: amount} and render (the API's slider-free edit)."""
        m = self.require(state)
        if isinstance(edits, str):
            edits = parse_json(edits or "{}", "edits (a JSON object of slider name -> amount)", ExplorerError)
        if not isinstance(edits, dict):
            raise ExplorerError("edits must be a JSON object of slider name -> amount")
        unknown = [k for k in edits if k not in m.directions]
        if unknown:
            more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
            raise ExplorerError(
                f"unknown sliders: {', '.join(excerpt(k) for k in unknown[:3])}{more}; this checkpoint has: "
                + known_names(m)
            )
        for k, v in edits.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > 100:
                raise ExplorerError(f"edit {excerpt(k)} must be a finite number within +-100")
        edits = {k: float(v) for k, v in edits.items() if v != 0}  # by name: a session direction has no slider
        self.calls["render"] += 1
        state = dict(state)
        if edits != state["edits"]:
            state["history"] = ([*state["history"], (state["z0"], state["edits"])])[-HISTORY:]
            state["edits"] = edits
        return state, self.renderer.images(m, self.renderer.latent(m, state["z0"], edits), quality, seed)[0]

    def reset(self, state: dict, seed, quality: str) -> tuple[dict, list[float], np.ndarray]:
        m = self.require(state)
        state = {
            **state,
            "history": [*state["history"], (state["z0"], state["edits"])][-HISTORY:],
            "z0": state["z_orig"],
            "edits": {},
        }
        z = self.renderer.latent(m, state["z0"], {})
        return state, self.renderer.slider_values(m, {}), self.renderer.images(m, z, quality, seed)[0]

    def undo(self, state: dict, seed, quality: str) -> tuple[dict, list[float], np.ndarray]:
        m = self.require(state)
        if not state["history"]:
            raise ExplorerError("nothing to undo")
        z0, edits = state["history"][-1]
        state = {**state, "history": state["history"][:-1], "z0": z0, "edits": dict(edits)}
        z = self.renderer.latent(m, z0, edits)
        return state, self.renderer.slider_values(m, edits), self.renderer.images(m, z, quality, seed)[0]

    def traversal(self, state: dict, slot_label: str, span, n, seed, quality: str) -> np.ndarray:
        """One slider (edit name or label) swept from -span to +span in n frames -> a strip image (H, n*W + gaps, 3)."""
        m = self.require(state)
        if slot_label in m.directions:
            name = slot_label
        elif slot_label in m.slot_labels and m.slots[m.slot_labels.index(slot_label)]:
            name = m.slots[m.slot_labels.index(slot_label)]
        else:
            raise ExplorerError(f"pick a slider to traverse (one of: {known_names(m)})")
        n = int(clip(n, 2, 16, "frames"))
        span = float(clip(span, 0.1, 10.0, "range"))
        edits = dict(state["edits"])
        edits.pop(name, None)
        z = self.renderer.latent(m, state["z0"], edits)
        zs = api.traverse(z, m.directions[name], np.linspace(-span, span, n).tolist())
        return media.strip(list(self.renderer.images(m, zs, quality, seed)))

    def refine(
        self, state: dict, steps, lr, seed, quality: str, every: int = 5, seconds: float | None = None
    ) -> Iterator[tuple]:
        """Optimise the base latent to reconstruct the input better. Yields (step, total, new state, recon) after
        every optimiser step; state and recon are None except every ``every`` steps and at the end. After
        ``seconds`` (default REFINE_SECONDS) it stops early: the last state is the one reached, with a "note"."""
        m = self.require(state)
        if state.get("input") is None:
            raise ExplorerError("refine needs an input image (pick an example or upload one)")
        steps = int(clip(steps, 1, REFINE_STEPS, "refine steps"))
        lr = float(clip(lr, 1e-4, 1.0, "learning rate"))
        budget = REFINE_SECONDS if seconds is None else float(seconds)
        deadline = time.monotonic() + budget
        x = api.from_uint8(np.asarray(state["input"], dtype=np.uint8)[None])
        z = torch.tensor(state["z0"], dtype=torch.float32).reshape(1, -1)
        self.calls["refine"] += 1
        for i, z_i, _ in api.refine_latent(m.model, x, z, steps=steps, lr=lr, seed=check_seed(seed), camera=m.camera):
            late = i != steps and time.monotonic() >= deadline
            if i % every and i != steps and not late:
                yield i, steps, None, None
                continue
            recon = self.renderer.images(m, z_i, quality, seed)[0]
            new = {
                **state,
                "z0": z_i.reshape(-1).tolist(),
                "recon": recon,
                "history": [*state["history"], (state["z0"], state["edits"])][-HISTORY:],
                "psnr": psnr(state["input"], recon),
            }
            new.pop("note", None)
            if late:
                new["note"] = f"refine stopped after {i} of {steps} steps (the server's time budget of {budget:g} s)"
                yield i, steps, new, recon
                return
            yield i, steps, new, recon

    def edited(self, state: dict, seed, quality: str) -> np.ndarray:
        """The committed edit at the chosen quality -> (H,W,3) uint8."""
        m, z = self.current(state)
        return self.renderer.images(m, z, quality, seed)[0]
