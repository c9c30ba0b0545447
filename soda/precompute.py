"""Explorer assets per checkpoint: example images and latents, section and named directions, the latent map.

``load_or_compute(model)`` returns an ``ExplorerAssets``. It is computed once from the checkpoint's own data (the
procedural world renders held-out scenes from the default camera, so no dataset is needed) and stored as
``assets.safetensors`` + ``assets.json`` in ``$SODA_CACHE`` (default ``~/.cache/soda``) under the weights' hash.
Assets shipped with a checkpoint (``<checkpoint>/explorer/``, written only by the developer command below) are read
first when they belong to its weights, and never written by the app or the library: whatever is computed for them
later (a detector, a t-SNE, measurements), or assets that do not match, go to the user cache, and every shipped file
stays as it was. A t-SNE of the map is computed on demand and cached beside the assets (``tsne.safetensors``). The
out-of-distribution detector (soda.ood) is calibrated on further held-out images and stored beside them too
(``ood.safetensors``); a cache without one (or with one of an older version) gets one on first use. Nothing is
pickled; a cache whose weights hash differs is recomputed.

    python -m soda.precompute assets/checkpoints/world32 [--n-map 4000] [--n-calib 512] [--force]

writes (or completes) the assets beside the checkpoint, in ``<checkpoint>/explorer/`` (the user cache when that
folder cannot be written): the one way shipped assets are made.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import api
from .atomic import is_writable, replace_dir, write_file, write_json
from .held_out import held_out, held_out_data, image_keys  # noqa: F401 (held_out_data: the name app/ reads)
from .latent_map import TSNE_NAME, named_directions, ood_model, principal_axes, tsne_fingerprint, tsne_map
from .ood import FILE_NAME as OOD_NAME
from .ood import OODDetector
from .paths import ASSETS_META, cache_root, candidate_dirs, weights_fingerprint  # noqa: F401 (re-exported)

ASSETS_VERSION = 1
ASSETS_NAME = "assets.safetensors"
META_NAME = "assets.json"
N_PCA = 8  # principal axes of the map kept for projection

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
    # named sliders that are not straight lines (soda.sliders.moves: HueRotation, ClassSwap), by label; their
    # named_dirs row is the slider's ``vector``, so that readers of plain directions still get one
    named_moves: dict = field(default_factory=dict)
    # the label-free sliders the explorer shows (soda.sliders.labelfree: fitted on the map latents, no labels read)
    # and where each acts in the image (M, H, W) in [0, 1]; None in caches written before they existed
    free_dirs: torch.Tensor | None = None  # (M, z_dim), one std of the data along each (a ring's chord)
    free_maps: torch.Tensor | None = None
    free_moves: dict = field(default_factory=dict)  # slider index -> its z-dependent move (RingRotation)

    def free_sliders(self) -> list:
        """The label-free sliders in order: the z-dependent move where the slider has one, else its direction."""
        if self.free_dirs is None:
            return []
        return [self.free_moves.get(i, self.free_dirs[i]) for i in range(self.free_dirs.shape[0])]

    def set_free(self, sliders, maps: torch.Tensor | None) -> None:
        """Replace the label-free sliders (directions (z_dim,) or objects with ``move``) and their change maps."""
        self.free_moves = {i: d for i, d in enumerate(sliders) if hasattr(d, "move")}
        rows = [d.vector_or_chord() if hasattr(d, "move") else d for d in sliders]
        self.free_dirs = torch.stack([r.float() for r in rows]) if rows else None
        self.free_maps = maps

    # read from the checkpoint's own explorer/ folder, which only `python -m soda.precompute` writes: anything
    # computed later goes to the user cache (save_folder)
    shipped: bool = False

    def save_folder(self) -> Path | None:
        """Where files computed later for these assets (t-SNE, ...) are written: their folder, or the user cache
        under the weights' hash when they were read from a checkpoint's own explorer folder."""
        return cache_root() / self.fingerprint if self.shipped and self.fingerprint else self.folder

    def named_sliders(self) -> list:
        """The named sliders in ``named_labels`` order: the z-dependent slider where the label has one, else its
        direction."""
        return [self.named_moves.get(lab, self.named_dirs[j]) for j, lab in enumerate(self.named_labels)]

    def set_named(self, sliders, labels) -> None:
        """Replace the named sliders by ``sliders`` (directions (z_dim,) or objects with ``move``), labelled."""
        self.named_labels = list(labels)
        self.named_moves = {lab: d for d, lab in zip(sliders, labels, strict=True) if hasattr(d, "move")}
        rows = [d.vector_or_chord() if hasattr(d, "move") else d for d in sliders]
        self.named_dirs = torch.stack([r.float() for r in rows]) if rows else self.named_dirs[:0]

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


# weights_fingerprint and candidate_dirs live in soda.paths (the steps reader needs them below this floor)


# ------------------------------------------------------------------------------------------------------------
# Directions
# ------------------------------------------------------------------------------------------------------------


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
    cfg = model.full_config
    world = cfg is None or cfg.data.dataset == "world"
    say(0.0, "rendering held-out examples" if world else "reading example images")
    ex = held_out(model, n_examples, seed)
    ex_img, ex_fac, ex_cap, camera, names = ex["images"], ex["factors"], ex["captions"], ex["camera"], ex["names"]
    say(0.05, "encoding examples")
    ex_z = api.encode(model, ex_img)
    say(0.1, f"rendering {n_map} held-out scenes for the map" if world else "reading the map's images")
    mp = held_out(model, n_map, seed + 1)
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
    say(0.9, "label-free sliders and their change maps")
    free, maps = free_sliders(model, Z)
    say(0.95, "map projection and OOD model")
    mean, axes = principal_axes(Z, min(N_PCA, Z.shape[1], Z.shape[0]))
    o_mean, o_prec, dist = ood_model(Z)
    assets = ExplorerAssets(
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
    assets.set_free(free, maps)
    return assets


def free_sliders(model, Z: torch.Tensor) -> tuple[list, torch.Tensor]:
    """The explorer's label-free sliders (soda.sliders.labelfree, fitted on the latents Z alone) and their change
    maps -> (M sliders, (M, H, W))."""
    from .sliders.labelfree import explorer_change_maps, explorer_directions

    D = explorer_directions(model, Z)
    return D, explorer_change_maps(model, Z, D)


def ensure_free_sliders(model, assets: ExplorerAssets) -> bool:
    """Give assets from a cache written before the label-free sliders existed their sliders (in memory) -> whether
    they were added (the caller may persist them)."""
    if assets.free_dirs is not None:
        return False
    assets.set_free(*free_sliders(model, assets.map_latents))
    return True


_TENSORS = ("example_latents", "section_dirs", "named_dirs", "map_latents", "pca_mean", "pca_axes", "map_pca")
_TENSORS += ("ood_mean", "ood_precision")


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
        for k in ("free_dirs", "free_maps"):
            if getattr(assets, k) is not None:
                tensors[k] = getattr(assets, k).float().contiguous()
        moves = {}
        for i, (lab, mv) in enumerate(sorted(assets.named_moves.items())):
            key = f"move{i}"
            # cloned: the swaps of one factor share their class means and reader, which safetensors refuses
            tensors |= {f"{key}.{k}": v.float().clone().contiguous() for k, v in mv.tensors().items()}
            moves[lab] = {"key": key, **mv.meta()}
        free_moves = {}
        for i, mv in sorted(assets.free_moves.items()):
            key = f"free_move{i}"
            tensors |= {f"{key}.{k}": v.float().clone().contiguous() for k, v in mv.tensors().items()}
            free_moves[str(i)] = {"key": key, **mv.meta()}
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
            "named_moves": moves,
            "free_moves": free_moves,
            **assets.meta,
        }
        (tmp / META_NAME).write_text(json.dumps(meta, indent=1))
        tsne = folder / TSNE_NAME  # kept when it belongs to the same weights (copied: the old folder stays intact)
        if tsne.is_file() and tsne_fingerprint(tsne) == fingerprint:
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
    keys = ("example_captions", "named_labels", "factor_names", "ood_threshold", "ood_typical", "camera")
    keys += ("format", "version", "fingerprint", "named_moves", "free_moves")
    try:
        moves = _load_moves(meta.get("named_moves") or {}, t)
        free_moves = {int(i): m for i, m in _load_moves(meta.get("free_moves") or {}, t).items()}
    except (KeyError, TypeError, ValueError):
        return None  # a damaged cache is rebuilt, like any other unreadable one
    return ExplorerAssets(
        examples=t["examples"].numpy(),
        **{k: t[k] for k in _TENSORS},
        map_factors=t.get("map_factors"),
        example_factors=t.get("example_factors"),
        free_dirs=t.get("free_dirs"),
        free_maps=t.get("free_maps"),
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
        named_moves=moves,
        free_moves=free_moves,
    )


def _load_moves(stored: dict, tensors: dict) -> dict:
    from .sliders.moves import load_move

    out = {}
    for lab, info in stored.items():
        prefix = f"{info['key']}."
        parts = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        out[str(lab)] = load_move(parts, info)
    return out


def cached_assets(checkpoint_dir: Path, fingerprint: str | None = None):
    """Yield the readable explorer caches of the weights in ``checkpoint_dir`` (fingerprint: computed when not
    given), in candidate_dirs' order."""
    fp = fingerprint or weights_fingerprint(checkpoint_dir)
    for d in candidate_dirs(checkpoint_dir, fp):
        got = load_assets(d, fp)
        if got is not None:
            yield got


def load_or_compute(
    model,
    n_examples: int = 16,
    n_map: int = 4000,
    n_components: int = 3,
    force: bool = False,
    progress: Progress | None = None,
    n_calib: int | None = None,
    beside: bool = False,
) -> ExplorerAssets:
    """The cached assets of ``model``'s checkpoint, computing and storing them on first use (the OOD detector is
    calibrated on ``n_calib`` held-out images, default min(512, n_map), when the cache has none).

    Assets shipped in ``<checkpoint>/explorer`` are read when they belong to the weights; they are written only with
    ``beside=True`` (``python -m soda.precompute``). Otherwise new or completed assets go to the user cache, and a
    shipped folder is never changed, even when its assets are stale (another version, other weights)."""
    ckpt = model.checkpoint_dir
    sha = getattr(model, "weights_sha256", None)  # checked when the model was loaded: no need to hash it again
    fp = sha[:16] if sha else weights_fingerprint(ckpt) if ckpt is not None else "unsaved"
    own = Path(ckpt) / "explorer" if ckpt is not None else None
    dirs = [d for d in candidate_dirs(ckpt, fp) if beside or d != own] if ckpt is not None else []
    if not force and ckpt is not None:
        first = None
        for got in cached_assets(ckpt, fp):
            got.shipped = got.folder == own and not beside
            ensure_free_sliders(model, got)  # in memory: a cache is never rewritten for them
            if got.ood is not None:
                return got
            first = first or got
        if first is not None:  # a cache from before the detector, or of an older detector: add one
            first.ood = calibrate_ood(model, first, n_calib, progress)
            if first.shipped:
                copy_to_cache(first)
            elif is_writable(first.folder):
                try:
                    first.ood.save(first.folder / OOD_NAME, fp)
                except OSError:
                    pass
            return first
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


def copy_to_cache(assets: ExplorerAssets) -> bool:
    """Save shipped assets (read from a checkpoint's own explorer folder), with what was added to them in memory,
    into the user cache, and use that copy from now on; the shipped folder is not touched. -> whether it was saved."""
    src, dst = assets.folder, cache_root() / assets.fingerprint
    if not is_writable(dst):
        return False
    try:
        save_assets(assets, dst, assets.fingerprint)
        tsne = None if src is None else src / TSNE_NAME
        if tsne is not None and tsne.is_file() and tsne_fingerprint(tsne) == assets.fingerprint:
            if not (dst / TSNE_NAME).exists():
                write_file(dst / TSNE_NAME, lambda tmp: shutil.copyfile(tsne, tmp))
    except OSError:
        return False
    assets.shipped = False
    return True


def persist_measurement(assets: ExplorerAssets, directions_changed: bool) -> None:
    """Store a slider measurement (``soda.sliders.ensure_measured``) with the assets: the whole assets folder again
    when the named directions changed, else only the metadata; a read-only folder keeps it in memory. Shipped assets
    (``assets.shipped``) are copied to the user cache with the measurement instead."""
    if assets.folder is None:
        return
    if assets.shipped:
        copy_to_cache(assets)
        return
    if directions_changed and is_writable(assets.folder):
        try:
            save_assets(assets, assets.folder, assets.fingerprint)
            return
        except OSError:
            pass
    path = assets.folder / META_NAME
    try:
        meta = json.loads(path.read_text())
        meta["slider_effects"] = assets.meta["slider_effects"]
        write_json(path, meta, indent=1)
    except (OSError, ValueError):
        pass  # a read-only folder: the measurement lives in memory for this process


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
    fit = held_out(model, n_fit, seed + 1)["images"]
    cal = held_out(model, n_calib, seed + 2)["images"]
    seen = set(image_keys(fit))
    cal = cal[[i for i, k in enumerate(image_keys(cal)) if k not in seen]]
    if cal.shape[0] < min(n_calib, 48):  # a small data set: split what there is
        pool, first = torch.cat([fit, cal]), {}
        for i, k in enumerate(image_keys(pool)):
            first.setdefault(k, i)
        pool = pool[sorted(first.values())]
        cut = max(1, (2 * pool.shape[0]) // 3)
        fit, cal = pool[:cut], pool[cut:]
    fit_z = api.encode(model, fit)
    det = ood.calibrate(model, fit, fit_z, cal, progress=lambda f, msg: say(f, msg))
    det.meta["held_out"] = bool(assets.meta.get("held_out", True))
    return det


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
    p.add_argument(
        "--no-steps",
        action="store_true",
        help="skip choosing the decoder's preview and full-quality steps by measurement (soda.steps; --no-measure "
        "skips it too)",
    )
    p.add_argument(
        "--refit-free",
        action="store_true",
        help="fit the label-free sliders again (and measure them), keeping the rest of the cached assets",
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

    assets = load_or_compute(  # the developer's command: writes beside the checkpoint (its shipped assets)
        model, a.n_examples, a.n_map, force=a.force, progress=report, n_calib=a.n_calib, beside=True
    )
    if not a.no_measure:
        from .sliders import ensure_free_measured, ensure_measured

        ensure_measured(model, assets, force=a.force, progress=report, save=persist_measurement)
        if a.refit_free:
            assets.set_free(*free_sliders(model, assets.map_latents))
            (assets.meta.get("slider_effects") or {}).pop("free", None)
        # assets from before the label-free sliders: add them and their measurement, keep the rest as it was
        if ensure_free_measured(model, assets, progress=report) and assets.folder is not None:
            save_assets(assets, assets.folder, assets.fingerprint)
    if not (a.no_measure or a.no_steps):  # the fewest decoder steps within soda.steps.TOLERANCES of 50 steps
        from .steps import ensure_chosen

        ensure_chosen(model, assets, force=a.force, progress=report)
    if a.tsne:
        tsne_map(assets)
    print(f"explorer assets in {assets.folder or '(memory only: no writable folder)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
