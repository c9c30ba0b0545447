"""Decoder steps chosen by measurement, per checkpoint.

A SODA decoder conditioned on z needs far fewer sampling steps than an unconditional one: z already fixes most of the
image. ``measure(model)`` decodes held-out scenes, and the same scenes' latents moved along the explorer's sliders
(+-2 std), with k steps of each sampler (k in ``STEPS``) and compares every image with the ``REFERENCE_STEPS``-step
DDIM decode of the same latent and noise (the app's full render before this choice existed):

- ``psnr``: mean per-image PSNR (dB, images in [0, 1]), and ``psnr_p5``, its 5th percentile;
- ``ssim``: mean SSIM (soda.eval.image_metrics);
- ``agreement``: on the procedural world, the share of (image, factor) pairs where the ground-truth factor
  classifiers (soda.clip.factors) read the same class in both images (None elsewhere);
- ``hf_ratio``: sharpness, the energy of the image's upper half of spatial frequencies (|f| >= 1/4 cycle per pixel)
  over the reference's, summed over the set (PSNR favours blur: a blurred image has a ratio < 1, added noise > 1).

``choose(table)`` returns the smallest k per quality whose decodes meet ``TOLERANCES`` on every set, and one
sampler for both (the one that needs fewer steps; DDIM on a tie, the sampler of renders and recipes so far).
``python -m soda.precompute CKPT`` stores the choice as ``decode_steps`` in the explorer assets' metadata
(``ensure_chosen``); ``steps_for(model, quality)`` is what the app, ``soda.api.decode`` (steps=None) and the
evaluation's edit step read. The checkpoint config's ``sample_steps`` / ``preview_steps`` are the fallback when
nothing was measured, and the override when ``SODA_DECODE_STEPS=config`` (or ``P,F``: preview and full steps) is set;
any caller may still ask for any number of steps (50 included).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np
import torch

# the stored choice and the steps every caller reads live in soda.chosen_steps (below soda.api, which reads them)
from .chosen_steps import ENV, META_KEY, choice, edit_steps, forget, steps_for, stored  # noqa: F401

STEPS = (1, 2, 3, 4, 6, 8)  # candidate step counts
REFERENCE_STEPS = 50  # the reference decode (DDIM), the app's full render before measured steps
SAMPLER_ORDER = ("ddim", "dpmpp_2m")  # on a tie the first wins
STRENGTH = 2.0  # edited latents: +-2 std along the explorer's sliders
HF_CUTOFF = 0.25  # cycles per pixel: the upper half of the band (Nyquist = 0.5)

# What each quality must keep of the 50-step render, on held-out scenes and on edited latents alike (chosen by looking
# at the bundled checkpoint's table in docs/APP.md, before the choice was made):
# - full (what stays on screen): no visible difference. 40 dB mean PSNR is an RMS error of 1 % of the range (2.5 of
#   255 grey levels); SSIM >= 0.99; the factor classifiers read the same class in >= 98 % of (image, factor) pairs
#   (scenes edited onto a class boundary flip with any change of the decoder: 8 steps reach 99.7 % on edited
#   latents); as sharp as the reference within 10 % (high-frequency energy).
# - preview (shown only while a slider moves, replaced by the full render on release): the same scene, a little
#   softer. >= 33 dB (RMS 2 %), SSIM >= 0.93, factors read the same in >= 95 %, high-frequency energy within 15 %.
#   A one-step decode is the decoder's mean guess from z alone: softer (11-12 % less high-frequency energy), which
#   is what the looser SSIM and sharpness bounds allow; 2 steps would cost 70 % more time per preview.
TOLERANCES = {
    "full": {"psnr": 40.0, "ssim": 0.99, "agreement": 0.98, "hf_ratio": (0.9, 1.1)},
    "preview": {"psnr": 33.0, "ssim": 0.93, "agreement": 0.95, "hf_ratio": (0.85, 1.15)},
}

Progress = Callable[[float, str], None]


# ------------------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------------------


def hf_energy(x: torch.Tensor, cutoff: float = HF_CUTOFF) -> torch.Tensor:
    """(N,C,H,W) images -> (N,) energy of the spatial frequencies with |f| >= ``cutoff`` cycles per pixel. The image
    is mirrored at its edges first (a periodic 2H x 2W image), so that the jump between opposite borders does not
    count as detail."""
    x = x.double() - x.double().mean(dim=(-2, -1), keepdim=True)
    x = torch.cat([x, x.flip(-1)], dim=-1)
    x = torch.cat([x, x.flip(-2)], dim=-2)
    p = torch.fft.rfft2(x, norm="ortho").abs() ** 2  # (N,C,H,W//2+1)
    fy = torch.fft.fftfreq(x.shape[-2], dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(x.shape[-1], dtype=torch.float64)[None, :]
    mask = (fy**2 + fx**2).sqrt() >= cutoff
    w = torch.ones_like(fx).expand_as(mask).clone()
    w[:, 1 : (x.shape[-1] + 1) // 2] = 2.0  # rfft: the columns between 0 and Nyquist stand for two frequencies
    return (p * (mask * w)).sum(dim=(1, 2, 3))


def compare(
    images: torch.Tensor, reference: torch.Tensor, classify: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> dict:
    """k-step decodes against the reference decodes, both (N,3,H,W) in [-1, 1] -> the metrics of the module
    docstring."""
    from .eval.image_metrics import psnr, ssim

    a, b = ((images.clamp(-1, 1) + 1) / 2).float(), ((reference.clamp(-1, 1) + 1) / 2).float()
    p = np.minimum(psnr(a, b)["per_image"], 99.0)  # identical images: 99 dB, not inf
    out = {
        "psnr": round(float(p.mean()), 2),
        "psnr_p5": round(float(np.percentile(p, 5)), 2),
        "ssim": round(ssim(a, b)["mean"], 4),
        "agreement": None,
        "hf_ratio": round(float(hf_energy(images).sum() / hf_energy(reference).sum().clamp(min=1e-12)), 3),
    }
    if classify is not None:
        out["agreement"] = round(float((classify(images) == classify(reference)).float().mean()), 4)
    return out


def meets(row: dict, tol: dict) -> bool:
    """Whether one table row (``compare``'s metrics) is within tolerances ``tol`` (agreement: when measured)."""
    lo, hi = tol["hf_ratio"]
    ok = row["psnr"] >= tol["psnr"] and row["ssim"] >= tol["ssim"] and lo <= row["hf_ratio"] <= hi
    return ok and (row["agreement"] is None or row["agreement"] >= tol["agreement"])


# ------------------------------------------------------------------------------------------------------------
# Measure and choose
# ------------------------------------------------------------------------------------------------------------


def explorer_sliders(assets) -> list:
    """The sliders the explorer shows for ``assets`` (soda.precompute.ExplorerAssets): its label-free sliders (or,
    in caches from before them, each section's principal directions) and its named sliders."""
    out = []
    if assets.free_dirs is not None:  # z-dependent ones (ring rotations) move themselves
        free = assets.free_sliders() if hasattr(assets, "free_sliders") else list(assets.free_dirs)
        out += [d for d in free if hasattr(d, "move") or float(d.norm()) > 0]
    else:
        out += [d for d in assets.section_dirs.flatten(0, 1) if float(d.norm()) > 0]
    return out + list(assets.named_sliders())


def edited_latents(z: torch.Tensor, sliders: Sequence, strength: float = STRENGTH) -> torch.Tensor:
    """Row i of z (N, z_dim) moved along slider i mod len(sliders) by +strength, or -strength on every other
    round of the sliders -> (N, z_dim)."""
    from . import api

    if not sliders:
        return z.clone()
    rows = []
    for i in range(z.shape[0]):
        sign = 1.0 if (i // len(sliders)) % 2 == 0 else -1.0
        sign = sign if i % 2 == 0 else -sign  # both signs even when there are more sliders than scenes
        rows.append(api.move_along(z[i : i + 1], sliders[i % len(sliders)], sign * strength))
    return torch.cat(rows)


def measure(
    model,
    assets=None,
    n_scenes: int = 64,
    steps: Sequence[int] = STEPS,
    samplers: Sequence[str] = SAMPLER_ORDER,
    reference_steps: int = REFERENCE_STEPS,
    seed: int = 0,
    classifiers=None,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> dict:
    """The table: {"held_out" | "edited": {sampler: {k: compare(...)}}} plus what was measured (see the module
    docstring). ``assets`` gives the explorer's sliders (default: each section's principal directions of the
    held-out latents); ``classifiers`` a soda.clip.factors.FactorClassifiers (default on the procedural world: the
    cached ones, trained on first use; elsewhere none)."""
    from . import api
    from .held_out import held_out

    say = progress or (lambda f, s: None)
    cfg = model.full_config
    world = cfg is None or cfg.data.dataset == "world"
    if classifiers is None and world:
        from .clip.factors import load_or_train_factor_classifiers
        from .paths import cache_root

        say(0.0, "decoder steps: factor classifiers")
        classifiers = load_or_train_factor_classifiers(model.res, cache_root() / "factor-classifiers")
    classify = classifiers.predict if classifiers is not None else None
    data = held_out(model, n_scenes, seed + 11)  # not the examples' (seed), map's (+1) or calibration's (+2)
    z = api.encode(model, data["images"])
    if assets is not None:
        sliders = explorer_sliders(assets)
    else:
        sliders = [d for sec in api.section_directions(model, z) for d in sec]
    sets = {"held_out": z, "edited": edited_latents(z, sliders)}

    def dec(zz: torch.Tensor, k: int, sampler: str) -> torch.Tensor:
        parts = [
            api.decode(model, zz[i : i + batch_size], steps=k, seed=seed + i, sampler=sampler, per_row_noise=True)
            for i in range(0, zz.shape[0], batch_size)
        ]
        return torch.cat(parts)

    table: dict = {}
    work = len(sets) * (reference_steps + len(samplers) * sum(steps))
    done = 0
    for name, zz in sets.items():
        say(done / work, f"decoder steps: {reference_steps}-step reference of the {name.replace('_', '-')} latents")
        ref = dec(zz, reference_steps, "ddim")
        done += reference_steps
        table[name] = {}
        for s in samplers:
            table[name][s] = {}
            for k in steps:
                say(done / work, f"decoder steps: {s}, {k} steps, {name.replace('_', '-')} latents")
                table[name][s][str(k)] = compare(dec(zz, k, s), ref, classify)
                done += k
    say(1.0, "decoder steps measured")
    return {
        "reference": f"{reference_steps}-step ddim",
        "n_scenes": int(z.shape[0]),
        "n_sliders": len(sliders),
        "strength": STRENGTH,
        "seed": seed,
        "classifiers": classify is not None,
        "table": table,
    }


def choose(measured: dict, tolerances: dict | None = None, fallback: dict | None = None) -> dict:
    """``measure``'s result -> {"preview": k, "full": k, "sampler": name, "met": {quality: bool}, "tolerances"}: per
    quality the smallest k that meets its tolerances on every set, for the sampler that needs fewest steps (full
    first, then preview; ties: SAMPLER_ORDER). A quality no k meets gets ``fallback[quality]`` (default: the
    reference's steps) and met False; a preview never takes more steps than the full render."""
    tol = tolerances or TOLERANCES
    table = measured["table"]
    ref = int(str(measured["reference"]).split("-")[0])
    fallback = {"preview": ref, "full": ref, **(fallback or {})}
    found = {s for t in table.values() for s in t}
    samplers = [s for s in SAMPLER_ORDER if s in found] + sorted(found - set(SAMPLER_ORDER))
    best = None
    for s in samplers:
        ks = sorted({int(k) for t in table.values() for k in t.get(s, {})})
        got = {}
        for q in ("full", "preview"):
            ok = [k for k in ks if all(str(k) in t.get(s, {}) and meets(t[s][str(k)], tol[q]) for t in table.values())]
            got[q] = ok[0] if ok else None
        cost = tuple(10**6 if got[q] is None else got[q] for q in ("full", "preview"))
        if best is None or cost < best[0]:
            best = (cost, s, got)
    _, sampler, got = best
    met = {q: got[q] is not None for q in ("preview", "full")}
    out = {q: int(fallback[q] if got[q] is None else got[q]) for q in ("preview", "full")}
    out["preview"] = min(out["preview"], out["full"])
    return {**out, "sampler": sampler if any(met.values()) else "ddim", "met": met, "tolerances": tol}


# ------------------------------------------------------------------------------------------------------------
# Stored choice and the steps every caller reads
# ------------------------------------------------------------------------------------------------------------


def ensure_chosen(model, assets, force: bool = False, progress: Progress | None = None, **measure_kw) -> bool:
    """Measure and store the choice in ``assets``' metadata (and its assets.json, only that key) unless it has one
    -> whether it was measured now."""
    d = model.cfg.diffusion
    fallback = {"preview": int(d.preview_steps), "full": int(d.sample_steps)}
    old = assets.meta.get(META_KEY)
    if not force and isinstance(old, dict) and "table" in old:
        if _jsonable(old.get("tolerances")) == _jsonable(TOLERANCES):
            return False
        measured = {k: v for k, v in old.items() if k not in ("preview", "full", "sampler", "met", "tolerances")}
    else:  # new tolerances re-choose from the stored table; only a new (or forced) measurement decodes
        measured = measure(model, assets, progress=progress, **measure_kw)
    got = choose(measured, fallback=fallback)
    assets.meta[META_KEY] = {**got, **measured}
    forget(model)
    if assets.folder is not None and not getattr(assets, "shipped", False):  # shipped assets: only precompute writes
        from .atomic import write_json
        from .paths import ASSETS_META as META_NAME

        path = assets.folder / META_NAME
        try:
            meta = json.loads(path.read_text())
            meta[META_KEY] = assets.meta[META_KEY]
            write_json(path, meta, indent=1)
        except (OSError, ValueError):
            pass  # a read-only folder: the choice lives in memory for this process
    return True


def _jsonable(x):
    return json.loads(json.dumps(x))
