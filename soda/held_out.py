"""Held-out data of a checkpoint: images the checkpoint never trained on, from its own data set (the procedural world
renders held-out scenes from the default camera; an image folder gives its held-out files), for the explorer's
examples and map, the OOD detector's calibration and the CLIP checks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from . import api

__all__ = ["held_out", "held_out_data", "image_keys"]


def held_out_data(model, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None, list[str], dict | None, list]:
    """n held-out images of the checkpoint's data -> (images (n,3,H,W) in [-1,1], factors (n,F) or None, captions,
    camera, factor names). World data is rendered from the test split and the default camera (the camera uploads are
    assumed to have); an image folder gives a seeded random subset of its held-out files (``split="test"``, which
    training never reads), other file datasets of all their images. ``held_out_info`` says which."""
    d = held_out(model, n, seed)
    return d["images"], d["factors"], d["captions"], d["camera"], d["names"]


def held_out(model, n: int, seed: int) -> dict:
    """held_out_data's values as a dict, plus 'classes' ({factor: {value: class name}} for categorical factors) and
    'held_out' (False when the images are not held out: a folder without held-out files, a checkpoint trained before
    folders had a split, or a data set without a split)."""
    cfg = model.full_config
    dataset = cfg.data.dataset if cfg is not None else "world"
    if dataset == "world":
        from .data import world

        g = torch.Generator().manual_seed(seed)
        factors = world.sample_factors(n, g, split="test")
        cam = dict(world.DEFAULT_CAMERA)
        images = world.FixedCameraRenderer(model.res, cam)(factors) * 2 - 1
        return {
            "images": images,
            "factors": factors,
            "captions": [world.caption(f) for f in factors],
            "camera": cam if model.uses_cameras else None,
            "names": list(world.FACTOR_NAMES),
            "classes": {"shape": dict(enumerate(world.SHAPE_NAMES))},
            "held_out": True,
        }
    from .data.streams import EmptySplitError, image_source
    from .data.streams import held_out as is_held_out

    try:
        try:
            source = image_source(cfg, "test")
            honest = is_held_out(source) and _trained_with_split(model)
        except EmptySplitError:
            source, honest = image_source(cfg, "all"), False
        total = len(source)
    except Exception as e:  # the data is not on this machine
        raise FileNotFoundError(
            f"this checkpoint has no explorer assets and its training data ({dataset}: '{cfg.data.path}') "
            f"is not available to compute them ({type(e).__name__}: {e})"
        ) from None
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(total, generator=g)[: min(n, total)].tolist()
    items = [source[i] for i in idx]
    images = torch.stack([it["image"] for it in items])
    key = "factors" if "factors" in items[0] else "labels" if "labels" in items[0] else None
    factors = torch.stack([torch.as_tensor(it[key]).long().reshape(-1) for it in items]) if key else None
    names = []
    if factors is not None:
        for attr in ("factor_names", "label_names", "attribute_names", "names"):
            got = getattr(source, attr, None)
            if got is not None and len(got) == factors.shape[1]:
                names = [str(x) for x in got]
                break
        names = names or [f"factor_{i}" for i in range(factors.shape[1])]
    rel = getattr(source, "relpaths", None)
    captions = [rel[i] if rel is not None else f"#{i}" for i in idx]
    if factors is not None and rel is not None:
        captions = [
            f"{c} ({', '.join(f'{k}={_value_name(source, k, int(v))}' for k, v in zip(names, f.tolist()))})"
            for c, f in zip(captions, factors, strict=True)
        ]
    classes = {}
    for j, name in enumerate(names):
        if getattr(source, "label_kinds", {}).get(name) == "categorical":
            values = sorted(set(source.labels[:, j].tolist())) if source.labels is not None else []
            classes[name] = {v: _value_name(source, name, v) for v in values}
    return {
        "images": images,
        "factors": factors,
        "captions": captions,
        "camera": None,
        "names": names,
        "classes": classes,
        "held_out": honest,
    }


def _value_name(source, name: str, v: int) -> str:
    """A label value's name: the class name of a mapped CSV column, else the integer itself."""
    cls = getattr(source, "label_classes", {}).get(name)
    return str(cls[v]) if cls is not None and 0 <= v < len(cls) else str(v)


def _trained_with_split(model) -> bool:
    """Whether the checkpoint was trained with folder splits (its config records data.test_fraction); earlier
    folder checkpoints trained on every file, so none of their files is held out."""
    folder = model.checkpoint_dir
    if folder is None:
        return True
    try:
        meta = json.loads((Path(folder) / "config.json").read_text())
        return "test_fraction" in meta["config"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return True


def image_keys(images: torch.Tensor) -> list[bytes]:
    """(B,3,H,W) in [-1,1] -> one sha1 digest per image (of its uint8 pixels): which images two sets share."""
    return [hashlib.sha1(api.to_uint8(images[i : i + 1]).tobytes()).digest() for i in range(images.shape[0])]
