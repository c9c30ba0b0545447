"""CLIP in the explorer: slider names, prompt sliders and map colouring (soda.clip), loaded lazily and cached.

The CLIP spec is resolved per checkpoint (the explorer's ``clip_spec``, i.e. ``python app.py --clip``, else
``$SODA_CLIP``, else the ``clip:`` entry of the checkpoint's model card). The weights are loaded in a background thread
on first use, so neither importing the app nor serving the page waits for them, and offline-ness is decided by
soda.clip before anything touches the network. Without usable weights every CLIP operation raises ClipMissing (an
ExplorerError) with soda.clip's instructions (``str(ClipUnavailable)``), which the panel turns into a structured
answer; nothing else in the explorer depends on CLIP.

CLIP never runs while a slider moves. Names, the embeddings of the held-out images and prompt directions are computed
once per button press and cached on disk in the ``clip/`` folder beside the explorer assets (soda.clip.ResultCache:
keyed by the SODA weights, the CLIP weights, the vocabulary or prompt and the inputs).

A prompt slider is a direction like the others, ``m.directions["clip.<prompt>#<digest>"]``, where the digest is of the
float32 vector itself: a name always means one exact direction. It takes a free slot of the named sliders (the
oldest prompt slider gives its slot up when none is free; its direction stays usable by name) and is written to
``clip/prompt_sliders.safetensors``, so that recipes that use it replay, without CLIP, after a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from pathlib import Path

import torch

from soda import api, precompute
from soda import clip as sc
from soda.clip.cache import tensor_digest

from .loaded import COMPONENTS, N_SLOTS, SECTION_SLOTS, ExplorerError, Loaded, Progress

log = logging.getLogger("soda.app")

CLIP_IMAGES = 512  # held-out images (the first map points) embedded for prompt sliders and map colouring
NAME_REFS = 2  # reference latents (the first examples) per naming traversal
NAME_STEPS = 5  # frames per naming traversal (-2..2 std)
LABEL_NAMES = 2  # names shown in a slider's label (the table shows soda.clip's top 3)
PROMPT_PREFIX = "clip."
MAX_PROMPT = 200  # characters
REGISTRY = "prompt_sliders.safetensors"
REGISTRY_MAX = 64  # prompt directions kept on disk per checkpoint (the newest)
NOT_EMBEDDED = "#d0d0d0"  # map colour of the points CLIP did not read
LOAD_TIMEOUT = 900.0  # seconds an operation waits for the background load


class ClipMissing(ExplorerError):
    """No usable CLIP weights for this checkpoint; the message says what to provide (soda.clip's instructions)."""


def direction_digest(vector: torch.Tensor) -> str:
    """8 hex digits of sha256 over the float32 bytes of a direction."""
    return hashlib.sha256(vector.detach().float().contiguous().numpy().tobytes()).hexdigest()[:8]


def prompt_direction_name(prompt: str, negative: str | None, vector: torch.Tensor) -> str:
    """'clip.a red object#1a2b3c4d' (or 'clip.a red object vs a blue object#...')."""
    text = prompt + (f" vs {negative}" if negative else "")
    return f"{PROMPT_PREFIX}{text}#{direction_digest(vector)}"


def prompt_label(name: str) -> str:
    """Slider label of a prompt direction: 'clip.a red object#1a2b3c4d' -> 'CLIP: a red object'."""
    return "CLIP: " + name[len(PROMPT_PREFIX) :].rsplit("#", 1)[0]


def clean_prompt(text, what: str = "prompt", required: bool = True) -> str | None:
    text = " ".join(str(text or "").split())
    if not text:
        if required:
            raise ExplorerError(f"type a {what}, e.g. 'a red object'")
        return None
    if len(text) > MAX_PROMPT:
        raise ExplorerError(f"the {what} is too long (over {MAX_PROMPT} characters)")
    if "#" in text:
        raise ExplorerError(f"the {what} may not contain '#'")
    return text


class _ClipJob:
    """One background load of a resolved spec: ``done`` is set when ``model`` or ``error`` is."""

    def __init__(self, spec: str, checkpoint_dir, device: str):
        self.spec = spec
        self.started = time.monotonic()
        self.done = threading.Event()
        self.model: sc.ClipModel | None = None
        self.error: str | None = None
        self.thread = threading.Thread(
            target=self._run, args=(checkpoint_dir, device), daemon=True, name="soda-clip-load"
        )
        self.thread.start()

    def _run(self, checkpoint_dir, device: str) -> None:
        try:
            self.model = sc.load_clip(self.spec, device, checkpoint_dir=checkpoint_dir)
        except sc.ClipUnavailable as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - a broken install or file must not take the app down
            log.exception("loading CLIP from %s failed", self.spec)
            self.error = f"CLIP weights '{self.spec}' failed to load ({type(e).__name__}: {e})"
        finally:
            self.done.set()


class ClipMixin:
    """Part of ``Explorer`` (uses its get / map_figure / calls / device)."""

    def _init_clip(self, clip_spec: str | None) -> None:
        self.clip_spec = clip_spec or None
        self._clip_lock = threading.Lock()
        self._clip_jobs: dict[str, _ClipJob] = {}
        self._clip_embeddings: dict[tuple, tuple] = {}
        self._prompt_slots: dict[str, list[int]] = {}  # checkpoint -> slots given to prompt sliders, oldest first

    # ---------------------------------------------------------------------------------------------------------
    # Loading
    # ---------------------------------------------------------------------------------------------------------
    @staticmethod
    def _ckpt_dir(m: Loaded):
        d = getattr(m.model, "checkpoint_dir", None)
        return str(d) if d is not None else None

    def clip_spec_for(self, m: Loaded) -> str | None:
        """The CLIP spec in force for checkpoint ``m``: --clip, else $SODA_CLIP, else its model card."""
        return sc.resolve_spec(self.clip_spec, self._ckpt_dir(m))

    def _clip_job(self, m: Loaded, spec: str) -> _ClipJob:
        with self._clip_lock:
            job = self._clip_jobs.get(spec)
            if job is None:
                self.calls["clip_load"] += 1
                job = self._clip_jobs[spec] = _ClipJob(spec, self._ckpt_dir(m), self.device)
            return job

    def _forget_failed(self, job: _ClipJob) -> None:
        """A failed load is reported once per request and retried by the next one (the user may fix the file)."""
        with self._clip_lock:
            if self._clip_jobs.get(job.spec) is job:
                del self._clip_jobs[job.spec]

    def _no_spec_message(self, m: Loaded) -> str:
        try:
            sc.load_clip(None, self.device, checkpoint_dir=self._ckpt_dir(m))  # raises at once with instructions
        except sc.ClipUnavailable as e:
            return str(e)
        return "a CLIP spec appeared while checking; try again"

    def clip_status(self, key: str | None = None) -> tuple[str, str]:
        """('ready' | 'loading' | 'unavailable', text to show) for checkpoint ``key``; starts loading the weights in
        the background when a spec is given and nothing is loaded yet. Never waits for the load."""
        m = self.get(key)
        spec = self.clip_spec_for(m)
        if spec is None:
            return "unavailable", self._no_spec_message(m)
        job = self._clip_job(m, spec)
        if not job.done.is_set():
            waited = time.monotonic() - job.started
            return "loading", f"Loading CLIP weights '{spec}' in the background ({waited:.0f} s)…"
        if job.error is not None:
            self._forget_failed(job)
            return "unavailable", job.error
        c = job.model
        return "ready", (
            f"CLIP ready: {c.spec} (embedding {c.embed_dim}, input {c.image_size[0]} px, on {c.device}). "
            "Name the sliders, turn a prompt into a slider, or colour the latent map by a prompt."
        )

    def clip_model(self, m: Loaded, progress: Progress | None = None) -> sc.ClipModel:
        """The CLIP model for checkpoint ``m``, waiting for its background load; ExplorerError with the instructions
        when there is none."""
        spec = self.clip_spec_for(m)
        if spec is None:
            raise ClipMissing(self._no_spec_message(m))
        job = self._clip_job(m, spec)
        while not job.done.wait(0.5):
            if progress:
                progress(None, f"loading CLIP weights '{spec}'")
            if time.monotonic() - job.started > LOAD_TIMEOUT:
                raise ExplorerError(f"CLIP weights '{spec}' are still loading after {LOAD_TIMEOUT:.0f} s")
        if job.error is not None:
            self._forget_failed(job)
            raise ClipMissing(job.error)
        return job.model

    # ---------------------------------------------------------------------------------------------------------
    # Caches
    # ---------------------------------------------------------------------------------------------------------
    def clip_cache_dir(self, m: Loaded) -> Path | None:
        """``<explorer assets>/clip`` (or the user cache's copy when that is read-only); None when nothing is
        writable (results are then only kept in memory)."""
        bases = [m.assets.folder] if m.assets.folder is not None else []
        bases.append(precompute.cache_root() / (m.assets.fingerprint or "unsaved"))
        for base in bases:
            folder = Path(base) / "clip"
            if precompute._writable(folder):
                return folder
        return None

    def _clip_store(self, m: Loaded) -> sc.ResultCache | None:
        folder = self.clip_cache_dir(m)
        return sc.ResultCache(folder) if folder is not None else None

    def clip_embeddings(
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
        with self._clip_lock:
            hit = self._clip_embeddings.get(mem_key)
        if hit is not None:
            return hit
        seed = int(m.assets.meta.get("seed", 0))
        store = self._clip_store(m)
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
            images, source = self._clip_images(m, Z, seed, say)
            self.calls["clip_embed"] += 1
            parts, bs = [], 32
            for i in range(0, n, bs):
                say(0.3 + 0.7 * i / n, f"CLIP reads {n} {source} images (once; cached)")
                parts.append(clip.encode_images(images[i : i + bs]))
            emb = torch.cat(parts)
            if store:
                store.put("map-embeddings", key, {"n": n, "source": source}, {"embeddings": emb})
        out = (emb, Z, source)
        with self._clip_lock:
            self._clip_embeddings[mem_key] = out
        return out

    def _clip_images(self, m: Loaded, Z: torch.Tensor, seed: int, say: Progress) -> tuple[torch.Tensor, str]:
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
        m = self.get(key)
        text = str(vocabulary or "")
        vocab = sc.parse_vocabulary(text) if text.strip() else sc.DEFAULT_VOCABULARY
        clip = self.clip_model(m, progress)
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
            cache=self._clip_store(m),
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
        m = self.get(key)
        prompt = clean_prompt(prompt)
        negative = clean_prompt(negative, "negative prompt", required=False)
        clip = self.clip_model(m, progress)
        emb, Z, source = self.clip_embeddings(m, clip, progress)
        if progress:
            progress(None, f"fitting a direction for '{prompt}'")
        self.calls["clip_prompt"] += 1
        d, info = sc.prompt_direction(clip, prompt, Z, embeddings=emb, negative=negative, cache=self._clip_store(m))
        name = prompt_direction_name(prompt, negative, d)
        slot = self.add_prompt_direction(m, name, d)
        info = {k: v for k, v in info.items() if not k.endswith("_index")}
        return {"name": name, "label": prompt_label(name), "slot": slot, "info": info, "source": source, "n": len(Z)}

    def check_prompt_direction(self, m: Loaded, name: str, vector) -> torch.Tensor:
        """A (name, vector) pair from outside (the registry file, a recipe) -> the vector as a (z_dim,) tensor, or
        ExplorerError: the name must be a prompt direction whose digest is of exactly this vector."""
        if not isinstance(name, str) or not name.startswith(PROMPT_PREFIX) or "#" not in name:
            raise ExplorerError(f"'{name}' is not a prompt direction name (clip.<prompt>#<digest>)")
        try:
            v = torch.as_tensor(vector, dtype=torch.float32).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise ExplorerError(f"direction '{name}' must be a list of numbers") from None
        if v.numel() != m.model.z_dim or not bool(torch.isfinite(v).all()):
            raise ExplorerError(f"direction '{name}' must be {m.model.z_dim} finite numbers")
        if name.rsplit("#", 1)[1] != direction_digest(v):
            raise ExplorerError(f"direction '{name}' does not match its digest (the numbers were changed)")
        return v

    def add_prompt_direction(self, m: Loaded, name: str, vector: torch.Tensor, slot: bool = True) -> int | None:
        """Register a prompt direction on checkpoint ``m`` (and, with ``slot``, show it on a named slider slot)
        -> the slot index, or None. The registry file on disk is updated."""
        v = self.check_prompt_direction(m, name, vector)
        with self._clip_lock:
            if name not in m.directions:
                m.directions = {**m.directions, name: v}  # swapped, never mutated: readers keep a consistent dict
            index = self._place(m, name) if slot else None
            self._save_registry(m)
        return index

    def _place(self, m: Loaded, name: str) -> int | None:
        """Put ``name`` on a named slot: its own if it has one, else a free one, else the oldest prompt slider's."""
        order = self._prompt_slots.setdefault(m.key, [])
        if name in m.slots:
            return m.slots.index(name)
        first = SECTION_SLOTS * COMPONENTS
        free = [i for i in range(first, N_SLOTS) if m.slots[i] is None]
        if free:
            i = free[0]
        else:
            order[:] = [i for i in order if (m.slots[i] or "").startswith(PROMPT_PREFIX)]
            if not order:
                return None  # every named slot holds a label slider: usable by name only
            i = order.pop(0)
        slots, labels = list(m.slots), list(m.slot_labels)
        slots[i], labels[i] = name, prompt_label(name)
        m.slot_labels, m.slots = labels, slots
        order.append(i)
        return i

    def _registry_path(self, m: Loaded) -> Path | None:
        folder = self.clip_cache_dir(m)
        return folder / REGISTRY if folder is not None else None

    def _save_registry(self, m: Loaded) -> None:
        from safetensors.torch import save_file

        path = self._registry_path(m)
        if path is None:
            return
        names = [n for n in m.directions if n.startswith(PROMPT_PREFIX)][-REGISTRY_MAX:]
        tensors = {f"d{i}": m.directions[n].float().contiguous() for i, n in enumerate(names)}
        meta = {"fingerprint": m.assets.fingerprint, "names": json.dumps(names)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            save_file(tensors, str(tmp), metadata=meta)
            os.replace(tmp, path)
        except OSError as e:
            log.warning("could not save the prompt sliders to %s: %s", path, e)
        finally:
            tmp.unlink(missing_ok=True)

    def _restore_prompt_directions(self, m: Loaded) -> None:
        """Register the prompt directions saved for this checkpoint (by name only: no slider slots), so that recipes
        using them replay after a restart. A damaged file is ignored."""
        self._prompt_slots[m.key] = []
        path = self._registry_path(m)
        if path is None or not path.is_file():
            return
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("fingerprint") != m.assets.fingerprint:
                    return
                names = json.loads(meta.get("names", "[]"))
                found = {}
                for i, name in enumerate(names):
                    try:
                        found[name] = self.check_prompt_direction(m, name, f.get_tensor(f"d{i}"))
                    except ExplorerError as e:
                        log.warning("ignoring a saved prompt slider: %s", e)
        except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as e:
            log.warning("could not read the saved prompt sliders %s: %s", path, e)
            return
        m.directions = {**m.directions, **{k: v for k, v in found.items() if k not in m.directions}}

    def prompt_directions(self, m: Loaded, edits) -> dict[str, list[float]]:
        """The prompt directions used by ``edits`` -> {name: vector as a list} (what a recipe needs to carry so that
        it replays where the direction was never made)."""
        return {
            k: [float(x) for x in m.directions[k]]
            for k in sorted(edits or {})
            if k.startswith(PROMPT_PREFIX) and k in m.directions
        }

    # ---------------------------------------------------------------------------------------------------------
    # 3. Map colouring
    # ---------------------------------------------------------------------------------------------------------
    def map_prompt_figure(
        self, key: str | None, view: str, prompt, negative=None, progress: Progress | None = None
    ) -> dict:
        """The latent map coloured by CLIP similarity to a prompt (minus the similarity to ``negative``): trace 0
        holds every map point in order (clicks work as on the plain map); the points CLIP did not read are grey."""
        m = self.get(key)
        prompt = clean_prompt(prompt)
        negative = clean_prompt(negative, "negative prompt", required=False)
        clip = self.clip_model(m, progress)
        emb, _, source = self.clip_embeddings(m, clip, progress)
        self.calls["clip_map"] += 1
        s = sc.prompt_scores(clip, prompt, embeddings=emb, negative=negative)
        base = self.map_figure(m.key, view, "none", progress)
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
