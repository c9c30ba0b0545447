"""Explorer assets per checkpoint: example images and latents, section and named directions, the latent map.

``load_or_compute(model)`` returns an ``ExplorerAssets``. It is computed once from the checkpoint's own data (the
procedural world renders held-out scenes from the default camera, so no dataset is needed) and stored as
``assets.safetensors`` + ``assets.json`` in ``<checkpoint>/explorer/`` when that folder is writable, else in
``$SODA_CACHE`` (default ``~/.cache/soda``) under the weights' hash. A t-SNE of the map is computed on demand and cached
beside them (``tsne.safetensors``). The out-of-distribution detector (soda.ood) is calibrated on further held-out
images and stored beside them too (``ood.safetensors``); a cache without one (or with one of an older version) gets
one on first use. Nothing is pickled; a cache whose weights hash differs is recomputed.

    python -m soda.precompute assets/checkpoints/world32 [--n-map 4000] [--n-calib 512] [--force]
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import api
from .atomic import is_writable, replace_dir, write_file
from .ood import FILE_NAME as OOD_NAME
from .ood import OODDetector

ASSETS_VERSION = 1
ASSETS_NAME = "assets.safetensors"
META_NAME = "assets.json"
TSNE_NAME = "tsne.safetensors"
N_PCA = 8  # principal axes of the map kept for projection
SHRINK = 0.1  # covariance shrinkage towards a scaled identity for the OOD distance

Progress = Callable[[float, str], None]


@dataclass
class ExplorerAssets:
    """Everything the explorer needs from a checkpoint's data, as CPU tensors (see the module docstring)."""

    examples: np.ndarray  # (E,H,W,3) uint8 held-out images
    example_latents: torch.Tensor  # (E, z_dim)
    example_captions: list[str]
    section_dirs: torch.Tensor  # (K, C, z_dim): per section, principal directions scaled to one std
    named_dirs: torch.Tensor  # (N, z_dim): label directions scaled to one std of the data along them
    named_labels: list[str]
    map_latents: torch.Tensor  # (M, z_dim)
    map_factors: torch.Tensor | None  # (M, F) long, None without labels
    factor_names: list[str]
    pca_mean: torch.Tensor  # (z_dim,)
    pca_axes: torch.Tensor  # (P, z_dim) orthonormal rows
    map_pca: torch.Tensor  # (M, 2) map latents on the first two axes
    ood_mean: torch.Tensor  # (z_dim,)
    ood_precision: torch.Tensor  # (z_dim, z_dim) inverse of the shrunk covariance
    ood_threshold: float  # 99th percentile of the map latents' own distances
    ood_typical: float  # their median
    example_factors: torch.Tensor | None = None  # (E, F) long
    camera: dict | None = None  # the camera the data was rendered from (camera checkpoints)
    meta: dict = field(default_factory=dict)
    folder: Path | None = None  # where the cache lives (t-SNE goes there too)
    fingerprint: str = ""  # weights hash of the checkpoint the assets belong to
    ood: OODDetector | None = None  # the calibrated out-of-distribution detector (soda.ood)

    def pca(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) -> (B, 2) coordinates on the map's first two principal axes."""
        return (z.float() - self.pca_mean) @ self.pca_axes[:2].T

    def mahalanobis(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) -> (B,) distance to the map latents (shrunk covariance)."""
        d = z.double() - self.ood_mean.double()
        return ((d @ self.ood_precision.double()) * d).sum(1).clamp(min=0).sqrt().float()


# ------------------------------------------------------------------------------------------------------------
# Where the cache lives
# ------------------------------------------------------------------------------------------------------------


def weights_fingerprint(checkpoint_dir: Path) -> str:
    """sha256 (first 16 hex digits) of the checkpoint's model.safetensors."""
    h = hashlib.sha256()
    with open(Path(checkpoint_dir) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("SODA_CACHE") or Path.home() / ".cache" / "soda")


def candidate_dirs(checkpoint_dir: Path | None, fingerprint: str) -> list[Path]:
    """Beside the checkpoint first (when it is a plain, writable local folder), then the user cache."""
    out = []
    if checkpoint_dir is not None:
        out.append(Path(checkpoint_dir) / "explorer")
    out.append(cache_root() / fingerprint)
    return out


_writable = is_writable  # the name soda.sliders and app/ import


# ------------------------------------------------------------------------------------------------------------
# Held-out data of a checkpoint
# ------------------------------------------------------------------------------------------------------------


def held_out_data(model, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None, list[str], dict | None, list]:
    """n held-out images of the checkpoint's data -> (images (n,3,H,W) in [-1,1], factors (n,F) or None, captions,
    camera, factor names). World data is rendered from the test split and the default camera (the camera uploads are
    assumed to have); an image folder gives a seeded random subset of its held-out files (``split="test"``, which
    training never reads), other file datasets of all their images. ``held_out_info`` says which."""
    d = _held_out(model, n, seed)
    return d["images"], d["factors"], d["captions"], d["camera"], d["names"]


def _held_out(model, n: int, seed: int) -> dict:
    """held_out_data's values as a dict, plus 'classes' ({factor: {value: class name}} for categorical factors) and
    'held_out' (False when the images are not held out: a folder without held-out files, a checkpoint trained before
    folders had a split, or a data set without a split)."""
    cfg = getattr(model, "full_config", None)
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
    from .data.streams import EmptySplitError, held_out, image_source

    try:
        try:
            source = image_source(cfg, "test")
            honest = held_out(source) and _trained_with_split(model)
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
    folder = getattr(model, "checkpoint_dir", None)
    if folder is None:
        return True
    try:
        meta = json.loads((Path(folder) / "config.json").read_text())
        return "test_fraction" in meta["config"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return True


def _class_names(name: str) -> list[str] | None:
    if name == "shape":
        from .data.world import SHAPE_NAMES

        return list(SHAPE_NAMES)
    return None


# ------------------------------------------------------------------------------------------------------------
# Directions
# ------------------------------------------------------------------------------------------------------------


def label_direction(Z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Latents (N, z_dim) and binary labels (N,) -> the logistic-regression normal in z, scaled to one std of Z along
    it, pointing towards the positive class. (z_dim,)"""
    from sklearn.linear_model import LogisticRegression

    X = Z.double()
    mean, scale = X.mean(0), X.std(0).clamp(min=1e-8)
    clf = LogisticRegression(C=1.0, max_iter=500)
    clf.fit(((X - mean) / scale).numpy(), y.numpy().astype(int))
    w = torch.from_numpy(clf.coef_[0]) / scale  # normal in z units: w . (z - mean) / scale
    w = w / w.norm().clamp(min=1e-12)
    std = ((X - mean) @ w).std()
    return (w * std).float()


def named_directions(
    Z: torch.Tensor, factors: torch.Tensor, names: list[str], classes: dict[str, dict[int, str]] | None = None
) -> tuple[torch.Tensor, list[str]]:
    """One direction per ordered factor (upper half vs lower half of its values) and one per class of a categorical
    factor (that class vs the rest). ``classes``: {factor: {value: class name}} for the categorical factors (default:
    the procedural world's shape). -> ((N, z_dim), labels)."""
    dirs, labels = [], []
    for j, name in enumerate(names):
        f = factors[:, j]
        named = classes.get(name) if classes is not None else dict(enumerate(_class_names(name) or [])) or None
        if named is not None:
            for c, cname in named.items():
                y = f == c
                if 0 < int(y.sum()) < len(y):
                    dirs.append(label_direction(Z, y))
                    labels.append(f"{name}: {cname}")
            continue
        y = f > f.float().median()
        if not y.any():  # the median is the largest value (e.g. a 0/1 label with more ones)
            y = f >= f.float().median()
        if 0 < int(y.sum()) < len(y):
            dirs.append(label_direction(Z, y))
            labels.append(f"{name} +")
    if not dirs:
        return torch.zeros(0, Z.shape[1]), []
    return torch.stack(dirs), labels


def principal_axes(Z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) -> (mean (D,), k orthonormal rows (k, D)) with a deterministic sign (largest entry positive)."""
    mean = Z.double().mean(0)
    X = Z.double() - mean
    evals, evecs = torch.linalg.eigh(X.T @ X)  # (D, D): cheaper than an SVD of the tall (N, D) matrix
    Vh = evecs.flip(1).T[:k]  # rows, largest variance first
    sign = torch.sign(Vh.gather(1, Vh.abs().argmax(1, keepdim=True)))
    return mean.float(), (Vh * sign).float()


def ood_model(Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, D) -> (mean, precision of the shrunk covariance, each row's distance (N,))."""
    X = Z.double()
    mean = X.mean(0)
    C = torch.cov((X - mean).T).reshape(X.shape[1], X.shape[1])
    d = C.shape[0]
    C = (1 - SHRINK) * C + SHRINK * (torch.trace(C) / d).clamp(min=1e-8) * torch.eye(d, dtype=C.dtype)
    P = torch.linalg.inv(C)
    dist = (((X - mean) @ P) * (X - mean)).sum(1).clamp(min=0).sqrt()
    return mean.float(), P.float(), dist.float()


# ------------------------------------------------------------------------------------------------------------
# Compute / save / load
# ------------------------------------------------------------------------------------------------------------


def compute_assets(
    model,
    n_examples: int = 16,
    n_map: int = 4000,
    n_components: int = 3,
    seed: int = 0,
    progress: Progress | None = None,
) -> ExplorerAssets:
    """Encode held-out data of ``model``'s checkpoint and derive directions, the PCA map and the OOD model."""
    say = progress or (lambda f, s: None)
    cfg = getattr(model, "full_config", None)
    world = cfg is None or cfg.data.dataset == "world"
    say(0.0, "rendering held-out examples" if world else "reading example images")
    ex = _held_out(model, n_examples, seed)
    ex_img, ex_fac, ex_cap, camera, names = ex["images"], ex["factors"], ex["captions"], ex["camera"], ex["names"]
    say(0.05, "encoding examples")
    ex_z = api.encode(model, ex_img)
    say(0.1, f"rendering {n_map} held-out scenes for the map" if world else "reading the map's images")
    mp = _held_out(model, n_map, seed + 1)
    map_img, map_fac = mp["images"], mp["factors"]
    Z = []
    bs = 128
    for i in range(0, map_img.shape[0], bs):
        Z.append(api.encode(model, map_img[i : i + bs]))
        say(0.15 + 0.6 * min(1.0, (i + bs) / map_img.shape[0]), "encoding the map latents")
    Z = torch.cat(Z)
    say(0.8, "section directions")
    sec = api.section_directions(model, Z, n_components)
    sec_t = torch.stack([torch.stack(c + [torch.zeros(model.z_dim)] * (n_components - len(c))) for c in sec])
    say(0.85, "label directions")
    if map_fac is not None:
        nd, labels = named_directions(Z, map_fac, names, mp["classes"])
    else:
        nd, labels = torch.zeros(0, model.z_dim), []
    if map_fac is not None and world:  # the world's named sliders: the directions chosen by edit fidelity
        from .sliders import slider_directions

        nd, specs = slider_directions(model, Z, map_fac)
        labels = [s.label for s in specs]
    say(0.95, "map projection and OOD model")
    mean, axes = principal_axes(Z, min(N_PCA, Z.shape[1], Z.shape[0]))
    o_mean, o_prec, dist = ood_model(Z)
    return ExplorerAssets(
        examples=api.to_uint8(ex_img),
        example_latents=ex_z,
        example_captions=ex_cap,
        example_factors=ex_fac,
        section_dirs=sec_t,
        named_dirs=nd,
        named_labels=labels,
        map_latents=Z,
        map_factors=map_fac,
        factor_names=names,
        pca_mean=mean,
        pca_axes=axes,
        map_pca=(Z - mean) @ axes[:2].T,
        ood_mean=o_mean,
        ood_precision=o_prec,
        ood_threshold=float(torch.quantile(dist, 0.99)),
        ood_typical=float(dist.median()),
        camera=camera,
        meta={
            "n_map": int(Z.shape[0]),
            "n_examples": int(ex_z.shape[0]),
            "n_components": n_components,
            "seed": seed,
            "held_out": bool(ex["held_out"] and mp["held_out"]),
        },
    )


_TENSORS = (
    "example_latents",
    "section_dirs",
    "named_dirs",
    "map_latents",
    "pca_mean",
    "pca_axes",
    "map_pca",
    "ood_mean",
    "ood_precision",
)


def save_assets(assets: ExplorerAssets, folder: Path, fingerprint: str) -> Path:
    """Write assets.safetensors + assets.json into ``folder`` atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)

    def fill(tmp: Path) -> None:
        tensors = {k: getattr(assets, k).contiguous() for k in _TENSORS}
        tensors["examples"] = torch.from_numpy(np.ascontiguousarray(assets.examples))
        for k in ("map_factors", "example_factors"):
            if getattr(assets, k) is not None:
                tensors[k] = getattr(assets, k).long().contiguous()
        save_file(tensors, str(tmp / ASSETS_NAME))
        if assets.ood is not None:
            assets.ood.save(tmp / OOD_NAME, fingerprint)
        meta = {
            "format": "soda-explorer",
            "version": ASSETS_VERSION,
            "fingerprint": fingerprint,
            "example_captions": assets.example_captions,
            "named_labels": assets.named_labels,
            "factor_names": assets.factor_names,
            "ood_threshold": assets.ood_threshold,
            "ood_typical": assets.ood_typical,
            "camera": assets.camera,
            **assets.meta,
        }
        (tmp / META_NAME).write_text(json.dumps(meta, indent=1))
        tsne = folder / TSNE_NAME  # kept when it belongs to the same weights (copied: the old folder stays intact)
        if tsne.is_file() and _tsne_fingerprint(tsne) == fingerprint:
            shutil.copy2(tsne, tmp / TSNE_NAME)

    replace_dir(folder, fill)  # a failure anywhere, the swap included, leaves the previous folder as it was
    assets.folder = folder
    return folder


def load_assets(folder: Path, fingerprint: str | None = None) -> ExplorerAssets | None:
    """Read a cache folder; None when it is missing, of another version or of other weights."""
    from safetensors import safe_open

    folder = Path(folder)
    try:
        meta = json.loads((folder / META_NAME).read_text())
        if meta.get("format") != "soda-explorer" or meta.get("version") != ASSETS_VERSION:
            return None
        if fingerprint is not None and meta.get("fingerprint") != fingerprint:
            return None
        with safe_open(str(folder / ASSETS_NAME), framework="pt") as f:
            t = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError, KeyError, json.JSONDecodeError, RuntimeError):
        return None
    keys = (
        "example_captions",
        "named_labels",
        "factor_names",
        "ood_threshold",
        "ood_typical",
        "camera",
        "format",
        "version",
        "fingerprint",
    )
    return ExplorerAssets(
        examples=t["examples"].numpy(),
        **{k: t[k] for k in _TENSORS},
        map_factors=t.get("map_factors"),
        example_factors=t.get("example_factors"),
        example_captions=list(meta["example_captions"]),
        named_labels=list(meta["named_labels"]),
        factor_names=list(meta["factor_names"]),
        ood_threshold=float(meta["ood_threshold"]),
        ood_typical=float(meta["ood_typical"]),
        camera=meta.get("camera"),
        meta={k: v for k, v in meta.items() if k not in keys},
        folder=folder,
        fingerprint=str(meta["fingerprint"]),
        ood=OODDetector.load(folder / OOD_NAME, str(meta["fingerprint"])),
    )


def load_or_compute(
    model,
    n_examples: int = 16,
    n_map: int = 4000,
    n_components: int = 3,
    force: bool = False,
    progress: Progress | None = None,
    n_calib: int | None = None,
) -> ExplorerAssets:
    """The cached assets of ``model``'s checkpoint, computing and storing them on first use (the OOD detector is
    calibrated on ``n_calib`` held-out images, default min(512, n_map), when the cache has none)."""
    ckpt = getattr(model, "checkpoint_dir", None)
    fp = weights_fingerprint(ckpt) if ckpt is not None else "unsaved"
    dirs = candidate_dirs(ckpt, fp) if ckpt is not None else []
    if not force:
        for d in dirs:
            got = load_assets(d, fp)
            if got is not None:
                if got.ood is None:  # a cache from before the detector, or of an older detector: add one
                    got.ood = calibrate_ood(model, got, n_calib, progress)
                    if is_writable(d):
                        try:
                            got.ood.save(d / OOD_NAME, fp)
                        except OSError:
                            pass
                return got
    say = progress or (lambda f, s: None)
    assets = compute_assets(model, n_examples, n_map, n_components, progress=lambda f, s: say(0.75 * f, s))
    assets.fingerprint = fp
    assets.ood = calibrate_ood(model, assets, n_calib, lambda f, s: say(0.75 + 0.25 * f, s))
    for d in dirs:
        if is_writable(d):
            try:
                save_assets(assets, d, fp)
                break
            except OSError:
                continue
    if progress:
        progress(1.0, "done")
    return assets


def _image_keys(images: torch.Tensor) -> list[bytes]:
    return [hashlib.sha1(api.to_uint8(images[i : i + 1]).tobytes()).digest() for i in range(images.shape[0])]


def calibrate_ood(model, assets: ExplorerAssets, n_calib: int | None = None, progress: Progress | None = None):
    """Calibrate soda.ood's detector for ``model``: its latent and pixel statistics are fitted on the map's images
    (rendered again from the assets' seed), its threshold on ``n_calib`` other held-out images (any image that is
    also in the fit set is dropped; when too few remain, the pooled images are split in two)."""
    from . import ood

    say = progress or (lambda f, s: None)
    seed = int(assets.meta.get("seed", 0))
    n_fit = int(assets.meta.get("n_map", assets.map_latents.shape[0]))
    n_calib = int(n_calib or min(512, n_fit))
    say(0.0, "out-of-distribution detector: reading held-out images")
    fit = _held_out(model, n_fit, seed + 1)["images"]
    cal = _held_out(model, n_calib, seed + 2)["images"]
    seen = set(_image_keys(fit))
    cal = cal[[i for i, k in enumerate(_image_keys(cal)) if k not in seen]]
    if cal.shape[0] < min(n_calib, 48):  # a small data set: split what there is
        pool, first = torch.cat([fit, cal]), {}
        for i, k in enumerate(_image_keys(pool)):
            first.setdefault(k, i)
        pool = pool[sorted(first.values())]
        cut = max(1, (2 * pool.shape[0]) // 3)
        fit, cal = pool[:cut], pool[cut:]
    fit_z = api.encode(model, fit)
    det = ood.calibrate(model, fit, fit_z, cal, progress=lambda f, msg: say(f, msg))
    det.meta["held_out"] = bool(assets.meta.get("held_out", True))
    return det


# ------------------------------------------------------------------------------------------------------------
# t-SNE (on demand, cached)
# ------------------------------------------------------------------------------------------------------------


def _tsne_fingerprint(file: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            return (f.metadata() or {}).get("fingerprint")
    except (OSError, ValueError, RuntimeError):
        return None


def tsne_map(assets: ExplorerAssets, seed: int = 0) -> torch.Tensor:
    """(M, 2) t-SNE of the map latents (sklearn), read from the cache folder when present, else computed and stored."""
    from safetensors.torch import load_file, save_file

    fp = assets.fingerprint
    file = assets.folder / TSNE_NAME if assets.folder is not None else None
    if file is not None and file.exists():
        try:
            if _tsne_fingerprint(file) == fp:
                t = load_file(str(file))["tsne"]
                if t.shape[0] == assets.map_latents.shape[0]:
                    return t
        except (OSError, ValueError, RuntimeError):
            pass
    from sklearn.manifold import TSNE

    Z = assets.map_latents.double().numpy()
    perplexity = float(min(30.0, max(2.0, (Z.shape[0] - 1) / 3.5)))
    Y = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=1).fit_transform(Z)
    out = torch.from_numpy(Y).float()
    if file is not None and is_writable(file.parent):
        try:
            write_file(file, lambda tmp: save_file({"tsne": out.contiguous()}, str(tmp), metadata={"fingerprint": fp}))
        except OSError:
            pass  # a cache: computed again next time
    return out


# ------------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(description="Compute and cache the latent explorer's assets for a checkpoint.")
    p.add_argument("checkpoint", help="checkpoint folder or hub id")
    p.add_argument("--n-map", type=int, default=4000, help="held-out latents in the map (default 4000)")
    p.add_argument("--n-examples", type=int, default=16)
    p.add_argument(
        "--n-calib", type=int, default=None, help="held-out images that calibrate the OOD detector (min(512, n-map))"
    )
    p.add_argument("--tsne", action="store_true", help="also compute the t-SNE map")
    p.add_argument("--force", action="store_true", help="recompute even when a cache exists")
    p.add_argument(
        "--no-measure",
        action="store_true",
        help="skip measuring what each slider does on decoded images (procedural world; the app's slider captions)",
    )
    a = p.parse_args(argv)
    from .config import ConfigError

    try:
        model = api.load_model(a.checkpoint)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    last = [-1]

    def report(frac: float, msg: str) -> None:
        pct = int(math.floor(frac * 100))
        if pct != last[0]:
            last[0] = pct
            print(f"[{pct:3d}%] {msg}", file=sys.stderr)

    assets = load_or_compute(model, a.n_examples, a.n_map, force=a.force, progress=report, n_calib=a.n_calib)
    if not a.no_measure:
        from .sliders import ensure_measured

        ensure_measured(model, assets, force=a.force, progress=report)
    if a.tsne:
        tsne_map(assets)
    print(f"explorer assets in {assets.folder or '(memory only: no writable folder)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
