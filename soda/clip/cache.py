"""Result caches for the CLIP tools: one JSON file (plus a safetensors file for tensors) per result, named by a hash
of everything the result depends on (SODA weights, CLIP weights, vocabulary or prompt, traversal settings, inputs).

    cache = ResultCache("runs/clip-cache")
    hit = cache.get("names", key)          # (meta dict, {name: tensor}) or None
    cache.put("names", key, meta, tensors)

Writes are atomic (temp file + rename), so a cache folder can be shared by several processes. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..atomic import write_file

CACHE_VERSION = 1


def tensor_digest(t: torch.Tensor) -> str:
    """sha256 (16 hex digits) of a tensor's shape, dtype and float32 contents."""
    x = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(x.shape)}|{x.dtype}".encode())
    h.update(x.float().numpy().tobytes() if x.is_floating_point() else x.numpy().tobytes())
    return h.hexdigest()[:16]


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 (16 hex digits) of a module's state dict (about 30 ms for the bundled 1.5M-parameter checkpoint)."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor_digest(value).encode())
    return h.hexdigest()[:16]


def key_digest(key: dict) -> str:
    """A JSON-able key -> sha256 (20 hex digits) of its canonical form."""
    text = json.dumps({"v": CACHE_VERSION, **key}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class ResultCache:
    """A folder of cached results (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def _paths(self, kind: str, key: dict) -> tuple[Path, Path]:
        stem = f"{kind}-{key_digest(key)}"
        return self.folder / f"{stem}.json", self.folder / f"{stem}.safetensors"

    def get(self, kind: str, key: dict) -> tuple[dict, dict[str, torch.Tensor]] | None:
        """The stored (meta, tensors) for this key, or None (missing, unreadable, or another key's file)."""
        meta_path, tensor_path = self._paths(kind, key)
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("key_digest") != key_digest(key):
                return None
            tensors = {}
            if meta.get("has_tensors"):
                from safetensors.torch import load_file

                tensors = load_file(str(tensor_path))
        except (OSError, ValueError, json.JSONDecodeError, RuntimeError):
            return None
        return meta.get("result", {}), tensors

    def put(self, kind: str, key: dict, result: dict, tensors: dict[str, torch.Tensor] | None = None) -> Path:
        """Store a JSON-able result (and tensors) under this key; returns the JSON path."""
        meta_path, tensor_path = self._paths(kind, key)
        if tensors:
            from safetensors.torch import save_file

            clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
            write_file(tensor_path, lambda p: save_file(clean, str(p)))
        meta = {"kind": kind, "key_digest": key_digest(key), "key": key, "has_tensors": bool(tensors), "result": result}
        write_file(meta_path, lambda p: Path(p).write_text(json.dumps(meta, indent=1, default=str)))
        return meta_path


def as_cache(cache: ResultCache | str | os.PathLike | None) -> ResultCache | None:
    """None, a folder or a ResultCache -> ResultCache or None."""
    if cache is None or isinstance(cache, ResultCache):
        return cache
    return ResultCache(cache)
