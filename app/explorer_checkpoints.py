"""Which checkpoints the page may open, and the loaded ones (model + explorer assets), at most ``max_loaded`` at once.

``CheckpointStore`` depends on nothing else in the explorer: it is given what to do with a freshly loaded checkpoint
(``on_load``, e.g. replay the prompt sliders saved beside its assets) instead of knowing who needs it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from soda import api, precompute
from soda import chosen_steps as decode_steps
from soda.config import ConfigError
from soda.model.io import HUB_ID

from .loaded import COMPONENTS, ExplorerError, Loaded, Progress, make_loaded

HUB_MAX_MB = 200.0  # default download limit for a hub checkpoint opened from the page (SODA_HUB_MAX_MB)


def discover_checkpoints(root: str | Path = "assets/checkpoints") -> list[str]:
    """Checkpoint folders under ``root`` (those with a config.json), as paths relative to the working directory."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(str(p.parent) for p in root.glob("*/config.json"))


class CheckpointStore:
    """The allow-list and the loaded checkpoints.

    ``checkpoint``: the command line's checkpoint (always allowed, never evicted, not size-checked); ``allowed``:
    further folders or hub ids; ``hub_ids``: hub ids the page may open ("*": any, local use only), each within
    ``hub_max_mb``; ``n_examples`` / ``n_map``: explorer assets computed on first load (soda.precompute);
    ``on_load(loaded)``: called once per freshly loaded checkpoint, before other requests can see it."""

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
        on_load: Callable[[Loaded], None] | None = None,
    ):
        self.default_key = str(checkpoint)
        self.any_hub = "*" in (hub_ids or [])
        self.hub_max_mb = hub_max_mb
        hub = [h for h in (hub_ids or []) if h != "*"]
        self.allowed = list(dict.fromkeys([self.default_key, *(allowed or []), *hub]))
        self.n_map, self.n_examples, self.device, self.max_loaded = n_map, n_examples, device, max_loaded
        self.on_load = on_load
        self.loaded: OrderedDict[str, Loaded] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

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
        with self._lock:
            if key in self.loaded:
                self.loaded.move_to_end(key)
                return self.loaded[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one loader per checkpoint; others wait here, not on the whole explorer
            with self._lock:
                if key in self.loaded:
                    return self.loaded[key]
            try:  # the command line's checkpoint is free; one opened from the page is size-checked before download
                limit = None if key == self.default_key else self.hub_max_mb
                model = api.load_model(key, self.device, max_download_mb=limit)  # a SODA model or ConfigError
            except ConfigError as e:
                raise ExplorerError(str(e)) from None
            try:
                assets = precompute.load_or_compute(model, self.n_examples, self.n_map, COMPONENTS, progress=progress)
            except (FileNotFoundError, ValueError) as e:
                raise ExplorerError(str(e)) from None
            loaded = make_loaded(key, model, assets)
            if self.on_load is not None:
                self.on_load(loaded)
            with self._lock:
                self.loaded[key] = loaded
                others = [k for k in self.loaded if k != self.default_key]
                while len(self.loaded) > self.max_loaded and others:
                    self.loaded.pop(others.pop(0))
            return loaded

    def card(self, key: str) -> str:
        """Markdown model card: a summary of the config and the checkpoint's README (front matter removed)."""
        m = self.get(key)
        model, cfg = m.model, m.model.cfg
        full = getattr(model, "full_config", None)
        n_params = sum(p.numel() for p in model.parameters())
        data = f"{full.data.dataset} ({full.data.mode}, {cfg.res} px)" if full is not None else f"{cfg.res} px"
        cams = "yes (azimuth / elevation / radius)" if model.uses_cameras else "no"
        steps = decode_steps.choice(model, m.assets)
        how = "measured" if steps["source"] == "measured" else f"from {steps['source']}"
        lines = [
            f"**{Path(key).name or key}** · data: {data} · z: {model.z_dim} = {model.n_sections} sections x "
            f"{model.section_dim} · cameras: {cams} · {n_params / 1e6:.2f} M parameters · steps: "
            f"{steps['full']} full / {steps['preview']} preview ({steps['sampler']}, {how}) · device: {self.device}, "
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
