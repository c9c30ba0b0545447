"""The explorer: widget values in, images / figures / files out. Calls soda.api and soda.precompute; builds no widgets.

One ``Explorer`` per process holds the models (shared, read-only, at most ``max_loaded`` at once) and their cached
assets. Everything that belongs to one user lives in a plain ``state`` dict that the UI keeps in ``gr.State``:

    {"ckpt": key, "z_orig": [...], "z0": [...], "edits": {name: amount}, "history": [(z0, edits), ...],
     "source": "example 3: ...", "input": (H,W,3) uint8 or None}

The edited latent is ``z0 + sum(amount * direction[name])``: directions are per-section principal directions
(``section{k}.pc{c}``) and label directions (``label.<name>``), both in units of the data's std along them.
Errors meant for the user are raised as ``ExplorerError``; warnings are returned as lists of strings. The
interpolate / mix / novel-view operations live in explorer_views.py, the latent map in explorer_map.py and the CLIP
operations (slider names, prompt sliders, map colouring; loaded lazily) in explorer_clip.py (mixins).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from soda import api, precompute
from soda.config import ConfigError

from . import media
from .explorer_clip import ClipMixin
from .explorer_map import MapMixin
from .explorer_views import ViewsMixin
from .loaded import (  # noqa: F401 - re-exported for the panels
    COMPONENTS,
    HISTORY,
    MAX_SEED,
    N_SLOTS,
    NAMED_SLOTS,
    SECTION_SLOTS,
    SLIDER_SPAN,
    ExplorerError,
    Loaded,
    Progress,
    check_seed,
    clip,
    make_loaded,
    psnr,
)
from .uploads import UploadError, read_image

HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
HUB_MAX_MB = 200.0  # default download limit for a hub checkpoint opened from the page (SODA_HUB_MAX_MB)


def discover_checkpoints(root: str | Path = "assets/checkpoints") -> list[str]:
    """Checkpoint folders under ``root`` (those with a config.json), as paths relative to the working directory."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(str(p.parent) for p in root.glob("*/config.json"))


class Explorer(ViewsMixin, MapMixin, ClipMixin):
    """Models, assets and the operations of every panel (see the module docstring)."""

    def __init__(
        self,
        checkpoint: str,
        allowed: list[str] | None = None,
        hub_ids: list[str] | None = None,
        hub_max_mb: float = HUB_MAX_MB,
        n_map: int = 4000,
        n_examples: int = 16,
        device: str = "cpu",
        max_loaded: int = 2,
        clip_spec: str | None = None,
    ):
        self.default_key = str(checkpoint)
        # hub ids the page may open: none by default; "*" (local use) allows any; each within hub_max_mb
        self.any_hub = "*" in (hub_ids or [])
        self.hub_max_mb = hub_max_mb
        hub = [h for h in (hub_ids or []) if h != "*"]
        self.allowed = list(dict.fromkeys([self.default_key, *(allowed or []), *hub]))
        self.n_map, self.n_examples, self.device, self.max_loaded = n_map, n_examples, device, max_loaded
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._load_lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.calls: Counter = Counter()  # how often each operation ran (tests check that drags do not flood)
        self._init_clip(clip_spec)  # CLIP spec (python app.py --clip); nothing is loaded until first use

    # ---------------------------------------------------------------------------------------------------------
    # Checkpoints
    # ---------------------------------------------------------------------------------------------------------
    def check_choice(self, key: str) -> str:
        """A checkpoint the browser may open: an allow-listed entry (the command line's, the listed folders, the hub
        ids of SODA_HUB_CHECKPOINTS / --allow-hub) or, with "*" among those, any hub id; never an arbitrary local
        path."""
        key = (key or "").strip()
        if key in self.allowed:
            return key
        if HUB_ID.fullmatch(key) and ".." not in key and not Path(key).exists():
            if self.any_hub:
                return key
            raise ExplorerError(
                f"hub checkpoint '{key}' is not allowed on this server (not in SODA_HUB_CHECKPOINTS or --allow-hub)"
            )
        raise ExplorerError(
            f"'{key}' is not one of the listed checkpoints or a hub id (owner/name). Local folders can only be "
            "opened from the command line: python app.py --checkpoint PATH"
        )

    def get(self, key: str | None = None, progress: Progress | None = None) -> Loaded:
        """The loaded checkpoint ``key`` (loading it, and computing its assets on first use). Loading one checkpoint
        never blocks requests on the others; the default checkpoint is never evicted."""
        key = key or self.default_key
        with self._load_lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one loader per checkpoint; others wait here, not on the whole explorer
            with self._load_lock:
                if key in self._loaded:
                    return self._loaded[key]
            try:  # the command line's checkpoint is free; one opened from the page is size-checked before download
                limit = None if key == self.default_key else self.hub_max_mb
                model = api.load_model(key, self.device, max_download_mb=limit)
            except ConfigError as e:
                raise ExplorerError(str(e)) from None
            if not hasattr(model, "uses_cameras"):
                raise ExplorerError(f"'{key}' is not a SODA checkpoint (the explorer needs a SODA model)")
            try:
                assets = precompute.load_or_compute(model, self.n_examples, self.n_map, COMPONENTS, progress=progress)
            except (FileNotFoundError, ValueError) as e:
                raise ExplorerError(str(e)) from None
            loaded = make_loaded(key, model, assets)
            self._restore_prompt_directions(loaded)  # prompt sliders saved beside the assets (recipes replay)
            with self._load_lock:
                self._loaded[key] = loaded
                others = [k for k in self._loaded if k != self.default_key]
                while len(self._loaded) > self.max_loaded and others:
                    self._loaded.pop(others.pop(0))
            return loaded

    def card(self, key: str) -> str:
        """Markdown model card: a summary of the config and the checkpoint's README (front matter removed)."""
        m = self.get(key)
        model, cfg = m.model, m.model.cfg
        full = getattr(model, "full_config", None)
        n_params = sum(p.numel() for p in model.parameters())
        data = f"{full.data.dataset} ({full.data.mode}, {cfg.res} px)" if full is not None else f"{cfg.res} px"
        cams = "yes (azimuth / elevation / radius)" if model.uses_cameras else "no"
        lines = [
            f"**{Path(key).name or key}** · data: {data} · z: {model.z_dim} = {model.n_sections} sections x "
            f"{model.section_dim} · cameras: {cams} · {n_params / 1e6:.2f} M parameters · steps: "
            f"{cfg.diffusion.sample_steps} full / {cfg.diffusion.preview_steps} preview · device: {self.device}, "
            f"{torch.get_num_threads()} threads",
        ]
        try:
            meta = json.loads((Path(model.checkpoint_dir) / "config.json").read_text())
        except (OSError, ValueError):
            meta = {}
        train = meta.get("train") if isinstance(meta.get("train"), dict) else {}
        facts = [
            f"{k.replace('_', ' ')}: {v:.4g}" if isinstance(v, float) else f"{k.replace('_', ' ')}: {v}"
            for k, v in train.items()
            if isinstance(v, (int, float, str))
        ][:8]
        if facts:
            lines.append("Training: " + " · ".join(facts))
        readme = Path(model.checkpoint_dir) / "README.md"
        if readme.is_file():
            text = readme.read_text(errors="replace")
            if text.startswith("---"):
                end = text.find("\n---", 3)
                text = text[end + 4 :] if end > 0 else text
            lines.append(text.strip())
        else:
            lines.append("_This checkpoint has no README.md model card._")
        return "\n\n".join(lines)

    # ---------------------------------------------------------------------------------------------------------
    # State and latents
    # ---------------------------------------------------------------------------------------------------------
    def new_state(self, key: str | None = None) -> dict:
        return {
            "ckpt": key or self.default_key,
            "z_orig": None,
            "z0": None,
            "edits": {},
            "history": [],
            "source": "",
            "input": None,
        }

    def _require(self, state: dict) -> Loaded:
        if not state or state.get("z0") is None:
            raise ExplorerError("pick an example or upload an image first")
        return self.get(state["ckpt"])

    def edits_from(self, m: Loaded, values) -> dict[str, float]:
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

    def slider_values(self, m: Loaded, edits: dict[str, float]) -> list[float]:
        """{edit name: amount} -> N_SLOTS slider values."""
        return [float(edits.get(name, 0.0)) if name else 0.0 for name in m.slots]

    def latent(self, m: Loaded, z0, edits: dict[str, float]) -> torch.Tensor:
        """Base latent and edits -> (1, z_dim)."""
        z = torch.as_tensor(np.asarray(z0, dtype=np.float32)).reshape(1, -1)
        for name in sorted(edits):
            if name not in m.directions:
                raise ExplorerError(f"unknown edit '{name}' for this checkpoint")
            z = api.move_along(z, m.directions[name], float(edits[name]))
        return z

    def steps(self, m: Loaded, quality: str) -> int:
        d = m.model.cfg.diffusion
        return int(d.preview_steps if quality == "preview" else d.sample_steps)

    def decode(self, m: Loaded, z: torch.Tensor, steps: int, seed, camera: api.Camera | None = None) -> np.ndarray:
        """(B, z_dim) -> (B,H,W,3) uint8, through a small cache (sliders often come back to the same values)."""
        seed = check_seed(seed)
        cam = camera if camera is not None else m.camera
        out = []
        todo = []
        for i in range(z.shape[0]):
            k = (m.key, z[i].numpy().tobytes(), int(steps), seed, cam)
            with self._cache_lock:
                hit = self._cache.get(k)
                if hit is not None:
                    self._cache.move_to_end(k)
            out.append(hit)
            if hit is None:
                todo.append((i, k))
        if todo:
            idx = [i for i, _ in todo]
            imgs = api.to_uint8(api.decode(m.model, z[idx], camera=cam, steps=int(steps), seed=seed))
            with self._cache_lock:
                for (i, k), img in zip(todo, imgs, strict=True):
                    out[i] = img
                    self._cache[k] = img
                while len(self._cache) > 256:
                    self._cache.popitem(last=False)
        return np.stack(out)

    def _encode(self, m: Loaded, img: np.ndarray) -> torch.Tensor:
        return api.encode(m.model, api.from_uint8(img[None]), camera=m.camera)

    # ---------------------------------------------------------------------------------------------------------
    # Explore / edit
    # ---------------------------------------------------------------------------------------------------------
    def _start(
        self, state: dict, m: Loaded, z: torch.Tensor, source: str, image: np.ndarray | None, seed, quality: str
    ) -> dict:
        """Make z the new base latent of the editor (edits cleared) and render its reconstruction."""
        z0 = z.reshape(-1).tolist()
        new = {**self.new_state(m.key), "z_orig": z0, "z0": z0, "source": source, "input": image}
        recon = self.decode(m, z.reshape(1, -1), self.steps(m, quality), seed)[0]
        new["psnr"] = psnr(image, recon) if image is not None else None
        new["recon"] = recon
        return new

    def load_example(self, state: dict, index, seed, quality: str) -> dict:
        m = self.get(state["ckpt"])
        n = len(m.assets.example_captions)
        if index is None or not 0 <= int(index) < n:
            raise ExplorerError(f"example index must be in 0..{n - 1}")
        i = int(index)
        img = m.assets.examples[i]
        z = m.assets.example_latents[i : i + 1]
        return self._start(state, m, z, f"example {i}: {m.assets.example_captions[i]}", img, seed, quality)

    def load_upload(self, state: dict, path, seed, quality: str) -> tuple[dict, list[str]]:
        """Uploaded file -> new editor state and warnings (out-of-distribution, default camera)."""
        m = self.get(state["ckpt"])
        if not path:
            raise ExplorerError("no file was uploaded")
        try:
            img = read_image(path, m.model.res)
        except UploadError as e:
            raise ExplorerError(str(e)) from None
        self.calls["encode"] += 1
        z = self._encode(m, img)
        new = self._start(state, m, z, f"upload: {Path(str(path)).name}", img, seed, quality)
        notes = []
        det = m.assets.ood
        if det is not None:  # soda.ood: latent distance, reconstruction and pixel signals, calibrated per checkpoint
            recon = self.decode(m, z, det.steps, det.seed)  # the detector's fixed reconstruction (cached)
            v = det.verdicts(det.raw(api.from_uint8(img[None]), z, api.from_uint8(recon)))[0]
            new["ood"] = {"score": v.score, "threshold": v.threshold, "flagged": v.flagged, "reasons": v.reasons}
            if v.flagged:
                notes.append(det.warning(v))
        return new, notes

    def preview(self, state: dict, values, seed) -> np.ndarray:
        """Fast decode (preview steps) of the edited latent while a slider moves."""
        m = self._require(state)
        self.calls["preview"] += 1
        z = self.latent(m, state["z0"], self.edits_from(m, values))
        return self.decode(m, z, self.steps(m, "preview"), seed)[0]

    def render(self, state: dict, values, seed, quality: str) -> tuple[dict, np.ndarray]:
        """Full decode of the edited latent (slider released); the previous edits go on the undo stack."""
        m = self._require(state)
        self.calls["render"] += 1
        edits = self.edits_from(m, values)
        state = dict(state)
        if edits != state["edits"]:
            state["history"] = ([*state["history"], (state["z0"], state["edits"])])[-HISTORY:]
            state["edits"] = edits
        z = self.latent(m, state["z0"], edits)
        return state, self.decode(m, z, self.steps(m, quality), seed)[0]

    def apply_edits(self, state: dict, edits, seed, quality: str) -> tuple[dict, np.ndarray]:
        """Set the edits from a dict or JSON text {edit name: amount} and render (the API's slider-free edit)."""
        m = self._require(state)
        if isinstance(edits, str):
            try:
                edits = json.loads(edits or "{}")
            except ValueError as e:
                raise ExplorerError(f"edits must be a JSON object of slider name -> amount ({e})") from None
        if not isinstance(edits, dict):
            raise ExplorerError("edits must be a JSON object of slider name -> amount")
        unknown = [k for k in edits if k not in m.directions]
        if unknown:
            raise ExplorerError(f"unknown sliders {unknown[:5]}; this checkpoint has: {', '.join(m.directions)}")
        for k, v in edits.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > 100:
                raise ExplorerError(f"edit '{k}' must be a finite number within +-100")
        return self.render(state, self.slider_values(m, edits), seed, quality)

    def reset(self, state: dict, seed, quality: str) -> tuple[dict, list[float], np.ndarray]:
        m = self._require(state)
        state = {
            **state,
            "history": [*state["history"], (state["z0"], state["edits"])][-HISTORY:],
            "z0": state["z_orig"],
            "edits": {},
        }
        z = self.latent(m, state["z0"], {})
        return state, self.slider_values(m, {}), self.decode(m, z, self.steps(m, quality), seed)[0]

    def undo(self, state: dict, seed, quality: str) -> tuple[dict, list[float], np.ndarray]:
        m = self._require(state)
        if not state["history"]:
            raise ExplorerError("nothing to undo")
        z0, edits = state["history"][-1]
        state = {**state, "history": state["history"][:-1], "z0": z0, "edits": dict(edits)}
        z = self.latent(m, z0, edits)
        return state, self.slider_values(m, edits), self.decode(m, z, self.steps(m, quality), seed)[0]

    def traversal(self, state: dict, slot_label: str, span, n, seed, quality: str) -> np.ndarray:
        """One slider (edit name or label) swept from -span to +span in n frames -> a strip image (H, n*W + gaps, 3)."""
        m = self._require(state)
        if slot_label in m.directions:
            name = slot_label
        elif slot_label in m.slot_labels and m.slots[m.slot_labels.index(slot_label)]:
            name = m.slots[m.slot_labels.index(slot_label)]
        else:
            raise ExplorerError(f"pick a slider to traverse (one of: {', '.join(m.directions)})")
        n = int(clip(n, 2, 16, "frames"))
        span = float(clip(span, 0.1, 10.0, "range"))
        edits = dict(state["edits"])
        edits.pop(name, None)
        z = self.latent(m, state["z0"], edits)
        zs = api.traverse(z, m.directions[name], np.linspace(-span, span, n).tolist())
        return media.strip(list(self.decode(m, zs, self.steps(m, quality), seed)))

    def refine(self, state: dict, steps, lr, seed, quality: str, every: int = 5) -> Iterator[tuple]:
        """Optimise the base latent to reconstruct the input better. Yields (step, total, new state, recon) after
        every optimiser step; state and recon are None except every ``every`` steps and at the end."""
        m = self._require(state)
        if state.get("input") is None:
            raise ExplorerError("refine needs an input image (pick an example or upload one)")
        steps = int(clip(steps, 1, 500, "refine steps"))
        lr = float(clip(lr, 1e-4, 1.0, "learning rate"))
        x = api.from_uint8(np.asarray(state["input"], dtype=np.uint8)[None])
        z = torch.tensor(state["z0"], dtype=torch.float32).reshape(1, -1)
        self.calls["refine"] += 1
        for i, z_i, _ in api.refine_latent(m.model, x, z, steps=steps, lr=lr, seed=check_seed(seed), camera=m.camera):
            if i % every and i != steps:
                yield i, steps, None, None
                continue
            recon = self.decode(m, z_i, self.steps(m, quality), seed)[0]
            new = {
                **state,
                "z0": z_i.reshape(-1).tolist(),
                "recon": recon,
                "history": [*state["history"], (state["z0"], state["edits"])][-HISTORY:],
                "psnr": psnr(state["input"], recon),
            }
            yield i, steps, new, recon

    def edited(self, state: dict, seed, quality: str) -> np.ndarray:
        """The committed edit at the chosen quality -> (H,W,3) uint8."""
        m, z = self.current(state)
        return self.decode(m, z, self.steps(m, quality), seed)[0]
