"""Reproducible streams: batch ``s`` of a stream is a pure function of (seed, stream, s).

``stream_seed`` mixes the three into one generator seed, so the same seed gives an identical stream, different
streams (ranks, evaluation sets) never share a generator state, and a stream resumes exactly at any step.
``worker_steps`` splits the steps among DataLoader workers so that the delivered stream is the same for any
``num_workers``. Used by the training streams (``soda.data.views``, ``soda.data.augment``) and the evaluation sets
(``soda.data.evalsets``).
"""

from __future__ import annotations

from torch.utils.data import get_worker_info

_MASK64 = (1 << 64) - 1


def stream_seed(seed: int, stream: int, step: int) -> int:
    """(seed, stream, step) -> a well-mixed 63-bit generator seed (splitmix64 finaliser)."""
    x = (seed * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9 + step * 0x94D049BB133111EB + 1) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) >> 1


def worker_steps(start_step: int):
    """Steps this process yields: all of them, or every k-th from start + w in DataLoader worker w of k, so that the
    DataLoader's round-robin delivers steps start, start + 1, ... exactly as with num_workers = 0."""
    info = get_worker_info()
    w, k = (0, 1) if info is None else (info.id, info.num_workers)
    step = start_step + w
    while True:
        yield step
        step += k
