"""Where the project keeps things: the cache of what it computes once and reuses (``$SODA_CACHE``, default
``~/.cache/soda``), and the folder of named checkpoints (``"world32"`` -> the bundled checkpoint)."""

from __future__ import annotations

import os
from pathlib import Path

BUNDLED_CHECKPOINT = "world32"  # soda.api.load_model() with no argument
CHECKPOINTS_ENV = "SODA_CHECKPOINTS_DIR"
_REPO = Path(__file__).resolve().parents[1]  # the checkout when soda/ sits beside assets/ (pip install -e ., a clone)


def cache_root() -> Path:
    """The cache folder: explorer assets by weights hash, factor classifiers, CLIP caches (it may not exist yet)."""
    return Path(os.environ.get("SODA_CACHE") or Path.home() / ".cache" / "soda")


def checkpoints_root() -> Path | None:
    """The folder where a checkpoint name (``"world32"``) is looked up: ``$SODA_CHECKPOINTS_DIR``, else the
    repository's ``assets/checkpoints`` found relative to this package (an editable install or a checkout keeps
    ``soda/`` beside ``assets/``). None for a non-editable install: a wheel holds the packages only, not assets/."""
    env = os.environ.get(CHECKPOINTS_ENV)
    if env:
        return Path(env).expanduser()
    if (_REPO / "pyproject.toml").is_file() and (_REPO / "assets").is_dir():
        return _REPO / "assets" / "checkpoints"
    return None


WEIGHTS_FILE = "model.safetensors"  # a checkpoint's weights (soda.model.io.WEIGHTS_NAME)
ASSETS_META = "assets.json"  # the explorer assets' metadata file (soda.precompute.META_NAME)


def weights_fingerprint(checkpoint_dir: str | os.PathLike) -> str:
    """sha256 (first 16 hex digits) of the checkpoint's model.safetensors: the key of its caches."""
    import hashlib

    h = hashlib.sha256()
    with open(Path(checkpoint_dir) / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def candidate_dirs(checkpoint_dir: str | os.PathLike | None, fingerprint: str) -> list[Path]:
    """Where explorer assets are looked for: beside the checkpoint first (``<checkpoint>/explorer``, shipped assets),
    then the user cache. Only ``python -m soda.precompute`` (``load_or_compute(beside=True)``) writes the first."""
    out = []
    if checkpoint_dir is not None:
        out.append(Path(checkpoint_dir) / "explorer")
    out.append(cache_root() / fingerprint)
    return out
