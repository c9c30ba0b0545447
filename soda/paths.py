"""Where the project keeps what it computes once and reuses: ``$SODA_CACHE`` (default ``~/.cache/soda``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder: explorer assets by weights hash, factor classifiers, CLIP caches (it may not exist yet)."""
    return Path(os.environ.get("SODA_CACHE") or Path.home() / ".cache" / "soda")
