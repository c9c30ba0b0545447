"""Prompt sliders as named directions: their names, their slots and the file that keeps them across restarts.

A prompt slider is a direction like the others, ``m.directions["clip.<prompt>#<digest>"]``, where the digest is of the
float32 vector itself: a name always means one exact direction. It takes a free slot of the named sliders (the
oldest prompt slider gives its slot up when none is free; its direction stays usable by name) and is written to
``clip/prompt_sliders.safetensors`` in the user cache (never into a checkpoint folder), so that recipes that use it
replay, without CLIP, after a restart. At most ``REGISTRY_MAX`` prompt directions are kept per checkpoint, in memory
and on disk (the oldest one not on a slider goes first).

Directions that a recipe carries are not registered here: they belong to the session that loaded the recipe
(``session_directions``: checked, bounded in number, name length and characters) and live in its state only.

``PromptSliders`` needs no other explorer service and no CLIP: it works on the ``Loaded`` it is given (recipes replay
prompt directions where CLIP was never loaded). ``clip_cache_dir`` is the one folder the CLIP results and this file
go to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from pathlib import Path

import torch

from soda import atomic, precompute

from .loaded import COMPONENTS, N_SLOTS, SECTION_SLOTS, ExplorerError, Loaded
from .text import excerpt

log = logging.getLogger("soda.app")

PROMPT_PREFIX = "clip."
MAX_PROMPT = 200  # characters
REGISTRY = "prompt_sliders.safetensors"
REGISTRY_MAX = 64  # prompt directions kept per checkpoint, in memory and on disk (the newest)
MAX_NAME = len(PROMPT_PREFIX) + 2 * MAX_PROMPT + len(" vs ") + 9  # 'clip.' prompt [' vs ' negative] '#' 8 hex digits
MAX_SESSION_DIRECTIONS = 16  # prompt directions one recipe (one session) may bring
PROMPT_PUNCTUATION = " .,;:!?'()-/&+_"
_DIGEST = re.compile(r"[0-9a-f]{8}")


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
    """A prompt typed by the user -> its words joined by single spaces (None when empty and not ``required``);
    ExplorerError when required and empty, longer than MAX_PROMPT characters, or holding '#'."""
    text = " ".join(str(text or "").split())
    if not text:
        if required:
            raise ExplorerError(f"type a {what}, e.g. 'a red object'")
        return None
    if len(text) > MAX_PROMPT:
        raise ExplorerError(f"the {what} is too long (over {MAX_PROMPT} characters)")
    if "#" in text:
        raise ExplorerError(f"the {what} may not contain '#'")
    if not all(c.isalnum() or c in PROMPT_PUNCTUATION for c in text):
        raise ExplorerError(f"the {what} may hold letters, digits, spaces and {PROMPT_PUNCTUATION.strip()} only")
    return text


def check_direction_name(name) -> str:
    """A prompt direction's name from outside (a recipe, the registry file) -> the name, or ExplorerError: at most
    MAX_NAME characters, 'clip.<prompt>#<8 hex digits>' where the prompt is what ``clean_prompt`` accepts (and
    optionally ' vs <negative prompt>')."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not name.startswith(PROMPT_PREFIX) or "#" not in name:
        raise ExplorerError(f"{excerpt(name)} is not a prompt direction name (clip.<prompt>#<digest>)")
    text, digest = name[len(PROMPT_PREFIX) :].rsplit("#", 1)
    try:
        ok = clean_prompt(text) == text and _DIGEST.fullmatch(digest) is not None
    except ExplorerError:
        ok = False
    if not ok:
        raise ExplorerError(
            f"{excerpt(name)} is not a prompt direction name (clip.<prompt>#<8 hex digits>; the prompt holds letters, "
            f"digits, spaces and {PROMPT_PUNCTUATION.strip()} only)"
        )
    return name


def clip_cache_dir(m: Loaded) -> Path | None:
    """``<user cache>/<weights fingerprint>/clip``: never the checkpoint's own folder (what visitors type is not
    written into a checkpoint, bundled or not); None when the cache is not writable (results are then only kept in
    memory)."""
    folder = precompute.cache_root() / (m.assets.fingerprint or "unsaved") / "clip"
    return folder if atomic.is_writable(folder) else None


class PromptSliders:
    """Register, place, save and restore prompt directions on loaded checkpoints."""

    def __init__(self):
        self._lock = threading.Lock()
        self._slots: dict[str, list[int]] = {}  # checkpoint -> slots given to prompt sliders, oldest first

    @staticmethod
    def check(m: Loaded, name: str, vector) -> torch.Tensor:
        """A (name, vector) pair from outside (the registry file, a recipe) -> the vector as a (z_dim,) tensor, or
        ExplorerError: the name must be a prompt direction (``check_direction_name``) whose digest is of exactly this
        vector."""
        check_direction_name(name)
        if isinstance(vector, (list, tuple)) and len(vector) != m.model.z_dim:
            raise ExplorerError(f"direction {excerpt(name)} must be {m.model.z_dim} finite numbers")
        try:
            v = torch.as_tensor(vector, dtype=torch.float32).reshape(-1)
        except (TypeError, ValueError, RuntimeError, OverflowError):
            raise ExplorerError(f"direction {excerpt(name)} must be a list of numbers") from None
        if v.numel() != m.model.z_dim or not bool(torch.isfinite(v).all()):
            raise ExplorerError(f"direction {excerpt(name)} must be {m.model.z_dim} finite numbers")
        if name.rsplit("#", 1)[1] != direction_digest(v):
            raise ExplorerError(f"direction {excerpt(name)} does not match its digest (the numbers were changed)")
        return v

    def session_directions(self, m: Loaded, directions) -> dict[str, list[float]]:
        """A recipe's ``directions`` ({name: vector}) -> the checked ones this checkpoint lacks, {name: list of
        float32 values}, for the session's state only (nothing is registered or written). At most
        MAX_SESSION_DIRECTIONS."""
        if not directions:
            return {}
        if not isinstance(directions, dict):
            raise ExplorerError("recipe 'directions' must map slider names to lists of numbers")
        if len(directions) > MAX_SESSION_DIRECTIONS:
            raise ExplorerError(
                f"a recipe may carry at most {MAX_SESSION_DIRECTIONS} prompt directions (it has {len(directions)})"
            )
        out = {}
        for name, vector in directions.items():
            v = self.check(m, name, vector)
            if name not in m.directions:
                out[name] = [float(x) for x in v]
        return out

    def add(self, m: Loaded, name: str, vector, slot: bool = True) -> int | None:
        """Register a prompt direction on checkpoint ``m`` (and, with ``slot``, show it on a named slider slot)
        -> the slot index, or None. The registry file on disk is updated."""
        v = self.check(m, name, vector)
        with self._lock:
            if name not in m.directions:
                m.directions = {**m.directions, name: v}  # swapped, never mutated: readers keep a consistent dict
            index = self._place(m, name) if slot else None
            self._trim(m)
            self._save(m)
        return index

    @staticmethod
    def _trim(m: Loaded) -> None:
        """Keep at most REGISTRY_MAX prompt directions on ``m``: the oldest ones not on a slider go first."""
        prompts = [n for n in m.directions if n.startswith(PROMPT_PREFIX)]
        extra = len(prompts) - REGISTRY_MAX
        if extra <= 0:
            return
        drop = set([n for n in prompts if n not in m.slots][:extra])
        m.directions = {k: v for k, v in m.directions.items() if k not in drop}

    def _place(self, m: Loaded, name: str) -> int | None:
        """Put ``name`` on a named slot: its own if it has one, else a free one, else the oldest prompt slider's."""
        order = self._slots.setdefault(m.key, [])
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

    @staticmethod
    def _path(m: Loaded) -> Path | None:
        folder = clip_cache_dir(m)
        return folder / REGISTRY if folder is not None else None

    def _save(self, m: Loaded) -> None:
        from safetensors.torch import save_file

        path = self._path(m)
        if path is None:
            return
        names = [n for n in m.directions if n.startswith(PROMPT_PREFIX)][-REGISTRY_MAX:]
        tensors = {f"d{i}": m.directions[n].float().contiguous() for i, n in enumerate(names)}
        meta = {"fingerprint": m.assets.fingerprint, "names": json.dumps(names)}
        try:
            atomic.write_file(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
        except OSError as e:
            log.warning("could not save the prompt sliders to %s: %s", path, e)

    def restore(self, m: Loaded) -> None:
        """Register the prompt directions saved for this checkpoint (by name only: no slider slots), so that recipes
        using them replay after a restart. A damaged file is ignored."""
        self._slots[m.key] = []
        path = self._path(m)
        if path is None or not path.is_file():
            return
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("fingerprint") != m.assets.fingerprint:
                    return
                names = json.loads(meta.get("names", "[]"))
                if not isinstance(names, list):
                    raise ValueError("the list of names is not a list")
                found = {}
                for i, name in list(enumerate(names))[-REGISTRY_MAX:]:
                    try:
                        found[name] = self.check(m, name, f.get_tensor(f"d{i}"))
                    except ExplorerError as e:
                        log.warning("ignoring a saved prompt slider: %s", e)
        except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as e:
            log.warning("could not read the saved prompt sliders %s: %s", path, e)
            return
        m.directions = {**m.directions, **{k: v for k, v in found.items() if k not in m.directions}}

    @staticmethod
    def used_by(m: Loaded, edits) -> dict[str, list[float]]:
        """The prompt directions used by ``edits`` -> {name: vector as a list} (what a recipe needs to carry so that
        it replays where the direction was never made)."""
        return {
            k: [float(x) for x in m.directions[k]]
            for k in sorted(edits or {})
            if k.startswith(PROMPT_PREFIX) and k in m.directions
        }
