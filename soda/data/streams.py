"""Training streams for the trainer, built from the config: infinite iterators of batch dicts where batch s depends
only on (seed, rank, s) (see soda.data.views), so ``--resume`` is exact without saving any data-loader state and every
DDP rank reads its own stream. Batches hold ``src``/``tgt`` (B,3,H,W) in [-1,1] and, for camera data,
``src_rays``/``tgt_rays`` (B,R,H,W).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..config import SODAConfig
from .errors import EmptySplitError

__all__ = ["EmptySplitError", "held_out", "image_source", "make_stream"]


def make_stream(
    cfg: SODAConfig, rank: int = 0, world_size: int = 1, start_step: int = 0, split: str = "train"
) -> Iterator[dict]:
    """Infinite iterator of training batches for ``cfg.data`` starting at ``start_step``. ``split="test"`` gives
    batches of held-out data (procedural test-split scenes; the held-out files of a folder) from another seed."""
    from .views import AugmentPairs, WorldPairs

    d, t = cfg.data, cfg.train
    if d.dataset == "world":
        mode = "identity" if d.mode == "identity" else "multiview"
        seed = t.seed if split == "train" else t.seed + 7919  # the sample-grid batch differs from training batches
        return iter(
            WorldPairs(
                d.res,
                t.batch_size,
                mode,
                split,
                seed,
                rank,
                world_size,
                d.p_identity,
                n_fourier=d.n_fourier,
                start_step=start_step,
            )
        )
    images = image_source(cfg, split)
    seed = t.seed if split == "train" else t.seed + 7919
    if d.mode == "augment":
        lo, hi = d.crop_scale
        return iter(
            AugmentPairs(
                images,
                d.res,
                t.batch_size,
                seed=seed,
                scale=(lo, hi),
                flip=d.flip,
                rank=rank,
                world_size=world_size,
                start_step=start_step,
                p_identity=d.p_identity,
            )
        )
    return _identity(
        iter(
            AugmentPairs(
                images,
                d.res,
                t.batch_size,
                seed=seed,
                scale=(1.0, 1.0),
                ratio=(1.0, 1.0),
                flip=False,
                rank=rank,
                world_size=world_size,
                start_step=start_step,
            )
        )
    )


def _identity(pairs: Iterator[dict]) -> Iterator[dict]:
    for b in pairs:
        yield {"src": b["src"], "tgt": b["src"]}


def image_source(cfg: SODAConfig, split: str = "all"):
    """An indexable dataset of dicts with 'image' (3,H,W) in [-1,1] at cfg.data.res.

    ``split``: ``all``, ``train`` or ``test``. Folder data has a real held-out split (soda.data.formats.folder: a
    stable hash of each file's relative path, or the ``split`` column of labels.csv); an empty split raises
    ``EmptySplitError``. Shapes3D files have no split: every split is the whole file (``held_out(source)`` is False).
    """
    d = cfg.data
    if d.dataset == "folder":
        from .formats.folder import ImageFolder

        return ImageFolder(d.path, res=d.res, split=split, test_fraction=d.test_fraction)
    if d.dataset == "shapes3d":
        from .formats.shapes3d import Shapes3D

        return Shapes3D(d.path, res=d.res)
    raise ValueError(f"unknown dataset '{d.dataset}'")


def held_out(source) -> bool:
    """True when ``source`` (from ``image_source(cfg, "test")``) holds only images that training never reads."""
    return getattr(source, "split", None) == "test"
