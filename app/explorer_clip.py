"""CLIP in the explorer: slider names, prompt sliders and map colouring (soda.clip), loaded lazily and cached.

The weights come from ``ClipModels`` (explorer_clip_load.py: the spec per checkpoint, a background load, ClipMissing
with soda.clip's instructions when there are none; the panel turns that into a structured answer). Nothing else in the
explorer depends on CLIP.

CLIP never runs while a slider moves. Names, the embeddings of the held-out images and prompt directions are computed
once per button press and cached on disk in the ``clip/`` folder beside the explorer assets (soda.clip.ResultCache:
keyed by the SODA weights, the CLIP weights, the vocabulary or prompt and the inputs). A prompt slider becomes a named
direction through ``PromptSliders`` (explorer_prompts.py), which also keeps it across restarts.

``ClipTools`` needs the checkpoints (``get``), the CLIP weights, the prompt sliders, the latent map (the figure it
colours) and the shared call counter.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter

import torch

from soda import api, precompute
from soda import clip as sc
from soda.clip.cache import tensor_digest

from .explorer_checkpoints import CheckpointStore
from .explorer_clip_load import ClipMissing, ClipModels  # noqa: F401 - ClipMissing is caught by the panel
from .explorer_map import LatentMap
from .explorer_prompts import (
    PromptSliders,
    clean_prompt,
    clip_cache_dir,
    prompt_direction_name,
    prompt_label,
)
from .loaded import COMPONENTS, SECTION_SLOTS, ExplorerError, Loaded, Progress

log = logging.getLogger("soda.app")

CLIP_IMAGES = 512  # held-out images (the first map points) embedded for prompt sliders and map colouring
NAME_REFS = 2  # reference latents (the first examples) per naming traversal
NAME_STEPS = 5  # frames per naming traversal (-2..2 std)
LABEL_NAMES = 2  # names shown in a slider's label (the table shows soda.clip's top 3)
NOT_EMBEDDED = "#d0d0d0"  # map colour of the points CLIP did not read


class ClipTools:
    """The three CLIP operations of the Directions (CLIP) tab, with their in-memory and on-disk caches."""

    def __init__(
        self,
        checkpoints: CheckpointStore,
        models: ClipModels,
        prompts: PromptSliders,
        latent_map: LatentMap,
        calls: Counter,
    ):
        self.checkpoints = checkpoints
        self.models = models
        self.prompts = prompts
        self.latent_map = latent_map
        self.calls = calls
        self._lock = threading.Lock()
        self._embeddings: dict[tuple, tuple] = {}  # (checkpoint, assets, clip, n) -> embeddings(m) result

    def status(self, key: str | None = None) -> tuple[str, str]:
        """('ready' | 'loading' | 'unavailable', text to show) for checkpoint ``key`` (ClipModels.status)."""
        return self.models.status(self.checkpoints.get(key))

    @staticmethod
    def _store(m: Loaded) -> sc.ResultCache | None:
        folder = clip_cache_dir(m)
        return sc.ResultCache(folder) if folder is not None else None

    # ---------------------------------------------------------------------------------------------------------
    # Embeddings of the map points
    # ---------------------------------------------------------------------------------------------------------
    def embeddings(
        self, m: Loaded, clip: sc.ClipModel, progress: Progress | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, str]:
        """CLIP embeddings of the first ``CLIP_IMAGES`` map points -> (embeddings (n, D), their latents (n, z_dim),
        where the images came from). The images are the checkpoint's held-out data that the map latents were
        encoded from (soda.precompute.held_out_data, same seed); when that data is not on this machine (or does not
        match), the map latents decoded at preview steps. Cached in memory and on disk."""
        say = progress or (lambda f, s: None)
        n = min(CLIP_IMAGES, int(m.assets.map_latents.shape[0]))
        Z = m.assets.map_latents[:n]
        mem_key = (m.key, m.assets.fingerprint, clip.key, n)
        with self._lock:
            hit = self._embeddings.get(mem_key)
        if hit is not None:
            return hit
        seed = int(m.assets.meta.get("seed", 0))
        store = self._store(m)
        key = {
            "kind": "explorer_map_embeddings",
            "assets": m.assets.fingerprint,
            "clip": clip.key,
            "z": tensor_digest(Z),
            "seed": seed,
        }
        got = store.get("map-embeddings", key) if store else None
        if got is not None and "embeddings" in got[1]:
            emb, source = got[1]["embeddings"], str(got[0].get("source", "held-out"))
        else:
            images, source = self._images(m, Z, seed, say)
            self.calls["clip_embed"] += 1
            parts, bs = [], 32
            for i in range(0, n, bs):
                say(0.3 + 0.7 * i / n, f"CLIP reads {n} {source} images (once; cached)")
                parts.append(clip.encode_images(images[i : i + bs]))
            emb = torch.cat(parts)
            if store:
                store.put("map-embeddings", key, {"n": n, "source": source}, {"embeddings": emb})
        out = (emb, Z, source)
        with self._lock:
            self._embeddings[mem_key] = out
        return out

    def _images(self, m: Loaded, Z: torch.Tensor, seed: int, say: Progress) -> tuple[torch.Tensor, str]:
        n = Z.shape[0]
        say(0.0, f"rendering {n} held-out images")
        try:
            images = precompute.held_out_data(m.model, n, seed + 1)[0]  # the map's own data (compute_assets)
            k = min(4, n)
            if images.shape[0] == n and torch.allclose(api.encode(m.model, images[:k]), Z[:k], atol=1e-3, rtol=1e-3):
                return images, "held-out"
            log.warning("the held-out images do not match the map latents; CLIP reads decoded map latents instead")
        except Exception as e:  # noqa: BLE001 - the data may not be on this machine: decode instead
            log.info("held-out data unavailable for CLIP (%s); decoding the map latents", e)
        steps = int(m.model.cfg.diffusion.preview_steps)
        out = []
        for i in range(0, n, 64):
            say(0.3 * i / n, f"decoding {n} map latents for CLIP (the held-out data is not available)")
            out.append(api.decode(m.model, Z[i : i + 64], camera=m.camera, steps=steps, seed=0))
        return torch.cat(out), "decoded"

    # ---------------------------------------------------------------------------------------------------------
    # 1. Slider names
    # ---------------------------------------------------------------------------------------------------------
    def name_sliders(self, key: str | None, vocabulary: str | None, progress: Progress | None = None) -> list[dict]:
        """Name every section slider: [{"slot", "edit", "raw", "label", "names": [(attribute, score)] * 3}] in slot
        order. ``vocabulary`` is the editable text form (empty: soda.clip.DEFAULT_VOCABULARY). Cached per
        checkpoint, CLIP weights and vocabulary."""
        m = self.checkpoints.get(key)
        text = str(vocabulary or "")
        vocab = sc.parse_vocabulary(text) if text.strip() else sc.DEFAULT_VOCABULARY
        clip = self.models.model(m, progress)
        slots = [(i, name) for i, name in enumerate(m.slots[: SECTION_SLOTS * COMPONENTS]) if name]
        if not slots:
            raise ExplorerError("this checkpoint has no section sliders to name")
        self.calls["clip_names"] += 1
        D = torch.stack([m.directions[name] for _, name in slots])
        names = sc.name_directions(
            m.model,
            clip,
            D,
            m.assets.example_latents[:NAME_REFS],
            vocabulary=vocab,
            steps=NAME_STEPS,
            cache=self._store(m),
            progress=progress,
        )
        rows = []
        for (i, name), top in zip(slots, names, strict=True):
            raw = m.slot_labels[i]
            rows.append(
                {
                    "slot": i,
                    "edit": name,
                    "raw": raw,
                    "label": f"{raw} · {sc.slider_label(top[:LABEL_NAMES])}",
                    "names": [(a, float(s)) for a, s in top],
                }
            )
        return rows

    # ---------------------------------------------------------------------------------------------------------
    # 2. Prompt -> slider
    # ---------------------------------------------------------------------------------------------------------
    def prompt_slider(self, key: str | None, prompt, negative=None, progress: Progress | None = None) -> dict:
        """A prompt (optionally against a second one) -> a new slider: {"name", "label", "slot" (None when no slot
        is free), "info" (soda.clip.prompt_direction's diagnostics, without the index lists), "source"}."""
        m = self.checkpoints.get(key)
        prompt = clean_prompt(prompt)
        negative = clean_prompt(negative, "negative prompt", required=False)
        clip = self.models.model(m, progress)
        emb, Z, source = self.embeddings(m, clip, progress)
        if progress:
            progress(None, f"fitting a direction for '{prompt}'")
        self.calls["clip_prompt"] += 1
        d, info = sc.prompt_direction(clip, prompt, Z, embeddings=emb, negative=negative, cache=self._store(m))
        name = prompt_direction_name(prompt, negative, d)
        slot = self.prompts.add(m, name, d)
        info = {k: v for k, v in info.items() if not k.endswith("_index")}
        return {"name": name, "label": prompt_label(name), "slot": slot, "info": info, "source": source, "n": len(Z)}

    # ---------------------------------------------------------------------------------------------------------
    # 3. Map colouring
    # ---------------------------------------------------------------------------------------------------------
    def map_prompt_figure(
        self, key: str | None, view: str, prompt, negative=None, progress: Progress | None = None
    ) -> dict:
        """The latent map coloured by CLIP similarity to a prompt (minus the similarity to ``negative``): trace 0
        holds every map point in order (clicks work as on the plain map); the points CLIP did not read are grey."""
        m = self.checkpoints.get(key)
        prompt = clean_prompt(prompt)
        negative = clean_prompt(negative, "negative prompt", required=False)
        clip = self.models.model(m, progress)
        emb, _, source = self.embeddings(m, clip, progress)
        self.calls["clip_map"] += 1
        s = sc.prompt_scores(clip, prompt, embeddings=emb, negative=negative)
        base = self.latent_map.map_figure(m.key, view, "none", progress)
        trace = dict(base["data"][0])
        total, n = len(trace["x"]), int(s.shape[0])
        vals = [round(float(v), 4) for v in s]
        lo, hi = min(vals), max(vals)
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            hi = lo + 1e-3
        text = prompt + (f" − {negative}" if negative else "")
        short = text if len(text) <= 28 else text[:27] + "…"
        trace["marker"] = {
            "size": 5,
            "opacity": 0.8,
            "color": vals + [NOT_EMBEDDED] * (total - n),
            "colorscale": "Viridis",
            "cmin": lo,
            "cmax": hi,
            "showscale": True,
            "colorbar": {"title": {"text": f"CLIP: {short}"}, "thickness": 12},
        }
        trace["text"] = [f"CLIP similarity {v:.3f}" for v in vals] + ["not read by CLIP"] * (total - n)
        trace["hovertemplate"] = trace["hovertemplate"].replace("<extra></extra>", "<br>%{text}<extra></extra>")
        title = f"{total} held-out latents, {view}; colour: CLIP similarity to '{text}'"
        if n < total:
            title += f" (first {n} points; grey: not read)"
        layout = {**base["layout"], "title": {"text": title, "font": {"size": 13}}}
        return {"data": [trace], "layout": layout, "meta": {"prompt": prompt, "negative": negative, "source": source}}
