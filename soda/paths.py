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
