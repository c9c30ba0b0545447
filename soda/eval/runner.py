"""Run every protocol a checkpoint's data supports and collect the numbers (the thin wrapper around the metrics).

The metric functions are pure (soda.eval.dci, mig, probes, image_metrics); this module only gets arrays out of a
model and the procedural world. All evaluation images come from held-out factor combinations (the world's test
split), except the probes' *training* half, which uses training-split scenes as the protocol requires.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass
class EvalSizes:
    dci_train: int = 2000
    dci_test: int = 1000
    probe_train: int = 2000
    probe_test: int = 1000
    recon: int = 256
    nvs_scenes: int = 64
    nvs_views: int = 4
    steps: int = 50
    sampler: str = "ddim"
    seed: int = 0
    edit_scenes: int = 16  # edit fidelity (soda.eval.edits): held-out scenes per slider; 0 skips the step
    edit_strengths: str = "-2,-1,1,2"  # slider strengths (std), comma-separated
    view_scenes: int = 8  # novel-view identity: scenes x orbit frames
    view_frames: int = 6


Progress = Callable[[str, int, int], None]


def _noop(stage: str, i: int, n: int) -> None:
    pass


@torch.no_grad()
def encode_set(model, images: torch.Tensor, rays: torch.Tensor | None, batch: int = 256) -> np.ndarray:
    """(N,3,H,W) in [-1,1] -> codes (N, z_dim) float64."""
    out = []
    for i in range(0, images.shape[0], batch):
        r = rays[i : i + batch] if (rays is not None and model.uses_cameras) else None
        out.append(model.encode(images[i : i + batch].float(), r).double())
    return torch.cat(out).numpy()


@torch.no_grad()
def decode_set(
    model,
    z: torch.Tensor,
    rays: torch.Tensor | None,
    sizes: EvalSizes,
    batch: int = 64,
    progress: Progress = _noop,
    stage: str = "decode",
    per_row_noise: bool = True,
) -> torch.Tensor:
    """Decode latents (N, z_dim) with target rays -> images (N,3,H,W) in [-1,1] (any model kind: api.decode). Each
    row starts from its own noise (reconstructions of different images: a shared start made them look alike);
    ``per_row_noise=False`` shares one noise image (frames of a traversal, which should differ only by z)."""
    from .. import api

    out = []
    n = z.shape[0]
    for i in range(0, n, batch):
        r = rays[i : i + batch] if (rays is not None and model.uses_cameras) else None
        zb = z[i : i + batch]
        kw = {"steps": sizes.steps, "seed": sizes.seed + i * per_row_noise, "sampler": sizes.sampler}
        out.append(api.decode(model, zb, rays=r, per_row_noise=per_row_noise, **kw))
        progress(stage, min(i + batch, n), n)
    return torch.cat(out)


def _01(x: torch.Tensor) -> np.ndarray:
    return ((x.float().clamp(-1, 1) + 1) / 2).numpy()


def run_all(model, sizes: EvalSizes, progress: Progress = _noop, figures: dict | None = None) -> dict:
    """Every protocol for a procedural-world checkpoint -> metrics dict (and arrays for figures when asked)."""
    from ..data.views import world_eval_set, world_nvs_set
    from ..data.world import FACTOR_NAMES
    from . import dci, image_metrics, knn_probe, linear_probe, mig, section_codes

    res = model.res
    t0 = time.time()
    m: dict = {"sizes": asdict(sizes), "timings_s": {}}

    # ---- disentanglement: fixed camera, held-out combinations ----
    progress("render disentanglement set", 0, 1)
    dset = world_eval_set(sizes.dci_train + sizes.dci_test, res, split="test", seed=sizes.seed + 1, camera="fixed")
    codes = encode_set(model, dset["images"], dset["rays"])
    fac = dset["factors"].numpy()
    ntr = sizes.dci_train
    sec = model.n_sections
    dci_full = dci(codes[:ntr], fac[:ntr], codes[ntr:], fac[ntr:], progress=lambda i, n: progress("DCI (z)", i, n))
    m["dci"] = {k: float(v) for k, v in dci_full.items() if k != "importance_matrix"}
    mig_full = mig(codes[:ntr], fac[:ntr])  # the training rows, as disentanglement_lib computes MIG
    m["mig"] = float(mig_full["mig"])
    m["mig_per_factor"] = dict(zip(FACTOR_NAMES, map(float, mig_full["per_factor"]), strict=True))
    if sec > 1:
        scodes = section_codes(codes, sec)
        dci_sec = dci(
            scodes[:ntr], fac[:ntr], scodes[ntr:], fac[ntr:], progress=lambda i, n: progress("DCI (sections)", i, n)
        )
        m["dci_sections"] = {k: float(v) for k, v in dci_sec.items() if k != "importance_matrix"}
        m["mig_sections"] = float(mig(scodes[:ntr], fac[:ntr])["mig"])
        m["section_importance"] = dci_sec["importance_matrix"].tolist()
    m["timings_s"]["disentanglement"] = round(time.time() - t0, 1)

    # ---- representation probes: train on training scenes, test on held-out scenes (random cameras) ----
    t1 = time.time()
    progress("render probe sets", 0, 1)
    ptr = world_eval_set(sizes.probe_train, res, split="train", seed=sizes.seed + 2, camera="random")
    pte = world_eval_set(sizes.probe_test, res, split="test", seed=sizes.seed + 3, camera="random")
    ztr, zte = encode_set(model, ptr["images"], ptr["rays"]), encode_set(model, pte["images"], pte["rays"])
    m["probes"] = {}
    for k, name in enumerate(FACTOR_NAMES):
        ytr, yte = ptr["factors"][:, k].numpy(), pte["factors"][:, k].numpy()
        m["probes"][name] = {
            "linear": float(linear_probe(ztr, ytr, zte, yte)["accuracy"]),
            "knn": float(knn_probe(ztr, ytr, zte, yte)["accuracy"]),
        }
        progress("probes", k + 1, len(FACTOR_NAMES))
    m["timings_s"]["probes"] = round(time.time() - t1, 1)

    # ---- reconstruction: held-out scenes, random cameras, decode with the source camera ----
    t2 = time.time()
    rec_set = {k: v[: sizes.recon] for k, v in pte.items()}
    z_rec = torch.from_numpy(encode_set(model, rec_set["images"], rec_set["rays"])).float()
    rec = decode_set(model, z_rec, rec_set["rays"], sizes, progress=progress, stage="reconstruction")
    m["reconstruction"] = {
        "psnr": image_metrics.psnr(_01(rec), _01(rec_set["images"]))["mean"],
        "ssim": image_metrics.ssim(_01(rec), _01(rec_set["images"]))["mean"],
        "n": sizes.recon,
    }
    # does the decoder draw the object from z? object-pixel PSNR and the z-use gap (soda.eval.zuse)
    from .zuse import masked_psnr, object_masks, z_use_gap

    mask = object_masks(rec_set["factors"], rec_set["K"], rec_set["c2w"], res)
    m["reconstruction"]["psnr_object"] = float(masked_psnr(rec, rec_set["images"], mask).nanmean())
    if model.cfg.kind == "soda":
        r = rec_set["rays"] if model.uses_cameras else None
        m["z_use_gap"] = z_use_gap(model, rec_set["images"].float(), r, mask, seed=sizes.seed)
    m["timings_s"]["reconstruction"] = round(time.time() - t2, 1)

    # ---- novel views: one source view, the other views of the same held-out scene as targets ----
    if model.uses_cameras:
        t3 = time.time()
        nvs = world_nvs_set(sizes.nvs_scenes, sizes.nvs_views, res, split="test", seed=sizes.seed + 4)
        imgs, rays = nvs["images"], nvs["rays"]  # (S, V, ...)
        S, V = imgs.shape[:2]
        z_src = torch.from_numpy(encode_set(model, imgs[:, 0], rays[:, 0])).float()
        z_rep = z_src[:, None].expand(S, V - 1, -1).reshape(S * (V - 1), -1)
        tgt_rays = rays[:, 1:].reshape(S * (V - 1), *rays.shape[2:])
        gen = decode_set(model, z_rep, tgt_rays, sizes, progress=progress, stage="novel views")
        truth = imgs[:, 1:].reshape(S * (V - 1), *imgs.shape[2:])
        m["novel_view"] = {
            "psnr": image_metrics.psnr(_01(gen), _01(truth))["mean"],
            "ssim": image_metrics.ssim(_01(gen), _01(truth))["mean"],
            "n_scenes": S,
            "n_targets": S * (V - 1),
        }
        m["timings_s"]["novel_view"] = round(time.time() - t3, 1)
        if figures is not None:
            figures["nvs"] = (
                imgs[:8, 0],
                truth.view(S, V - 1, *truth.shape[1:])[:8, 0],
                gen.view(S, V - 1, *gen.shape[1:])[:8, 0],
            )
    # ---- edit fidelity: sliders, section mixing and novel views judged on decoded images (soda.eval.edits) ----
    if sizes.edit_scenes > 0 and model.cfg.kind == "soda":
        from .edits import run_edits
        from .shipped import shipped_carriers, shipped_sliders

        t4 = time.time()
        R = dci_full["importance_matrix"]  # (z_dim, F): summed within each section, the sections carrying a factor
        imp = R[: sec * (R.shape[0] // sec)].reshape(sec, -1, R.shape[1]).sum(1) if sec > 1 else None
        m["edits"], edit_figs = run_edits(
            model,
            n_scenes=sizes.edit_scenes,
            strengths=[float(x) for x in sizes.edit_strengths.split(",")],
            seed=sizes.seed,
            view_scenes=sizes.view_scenes,
            view_frames=sizes.view_frames,
            section_importance=imp,
            sliders=shipped_sliders(model, (torch.from_numpy(codes).float(), dset["factors"]), sizes.seed),
            carriers=shipped_carriers(model),
            progress=lambda f, s: progress(f"edits: {s}", int(100 * f), 100),
        )
        m["timings_s"]["edits"] = round(time.time() - t4, 1)
        if figures is not None:
            figures["edits"] = edit_figs
    # ---- label-free sliders: what a person without labels gets (the explorer's label-free sliders) ----
    if sizes.edit_scenes > 0 and model.cfg.kind == "soda" and sec > 1:
        t5 = time.time()
        m["labelfree"], _ = run_labelfree(
            model, codes[:ntr], codes[ntr:], fac[:ntr], fac[ntr:], sizes, mixing=(m.get("edits") or {}).get("mixing")
        )
        m["labelfree"]["section_dci_pc1"] = m["dci_sections"]["disentanglement"]
        m["timings_s"]["labelfree"] = round(time.time() - t5, 1)
    if figures is not None:
        figures["recon"] = (rec_set["images"][:8], rec[:8])
        figures["codes"], figures["factors"] = codes, fac
        figures["importance"] = dci_full["importance_matrix"]
        figures["example"] = (dset["images"][:2], dset["rays"][:2] if dset.get("rays") is not None else None)
    m["timings_s"]["total"] = round(time.time() - t0, 1)
    return m


SECTION_K = 3  # principal components per section in the group-wise section DCI (FDAE's protocol)


def run_labelfree(
    model,
    codes_train: np.ndarray,
    codes_test: np.ndarray,
    factors_train: np.ndarray,
    factors_test: np.ndarray,
    sizes: EvalSizes,
    mixing: dict | None = None,
    section_k: int = SECTION_K,
    classifier: dict | None = None,
) -> tuple[dict, list]:
    """The label-free step: the explorer's label-free sliders (fitted on ``codes_train`` alone when no cached
    explorer assets hold them; the factors are never passed to the fit) scored per factor on decoded held-out scenes
    (soda.sliders.labelfree.labelfree_scores: effect = the factor's class changes, keeps = every other factor keeps
    its class), section DCI with ``section_k`` principal components per section, and the Mix panel's hue carriers'
    follow / keep from the edit step's ``mixing`` (``classifier``: settings of the factor classifiers) -> (metrics,
    the directions scored)."""
    from ..chosen_steps import edit_steps
    from ..clip.factors import load_or_train_factor_classifiers
    from ..data.views import world_eval_set
    from ..paths import cache_root
    from ..sliders.labelfree import MET_EFFECT, MET_KEEP, labelfree_scores
    from . import dci, group_rows, section_codes
    from .edits import CIRCULAR
    from .shipped import shipped_free_sliders

    D, where = shipped_free_sliders(model, torch.from_numpy(np.asarray(codes_train)).float())
    clf = load_or_train_factor_classifiers(model.res, cache_root() / "factor-classifiers", **(classifier or {}))
    scenes = world_eval_set(2 * sizes.edit_scenes, model.res, split="test", seed=sizes.seed + 5, camera="fixed")
    z = torch.from_numpy(encode_set(model, scenes["images"], scenes["rays"])).float()
    steps = edit_steps(model)  # the measured full-quality steps (soda.steps), else the config's preview steps
    strengths = [float(x) for x in sizes.edit_strengths.split(",")]
    sc = labelfree_scores(
        lambda zz: api_decode(model, zz, steps, sizes.seed),
        clf.predict,
        z,
        D,
        strengths,
        names=[f"free{i + 1}" for i in range(len(D))],
    )
    out = {
        "directions_from": where,
        "n_shown": len(D),
        "kinds": [getattr(d, "kind", "direction") for d in D],
        "n_scenes": int(z.shape[0]),
        "strengths": strengths,
        "steps": steps,
        "bar": {"effect": MET_EFFECT, "keeps": MET_KEEP},
        **sc,
    }
    sec = model.n_sections
    if sec > 1 and model.z_dim // sec >= section_k:
        ktr, kte = section_codes(codes_train, sec, section_k), section_codes(codes_test, sec, section_k)
        r = dci(ktr, factors_train, kte, factors_test)
        grouped = dci_scores_of(group_rows(r["importance_matrix"], section_k))
        out["section_dci_k"] = {"k": section_k, **grouped, "informativeness_test": r["informativeness_test"]}
    if mixing:
        out["mix_hues"] = {
            f: {"follow": mixing["effect"].get(f), "keep": mixing["preservation"].get(f)}
            for f in CIRCULAR
            if f in mixing.get("effect", {})
        }
    return out, D


def api_decode(model, z: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    from .. import api

    return api.decode(model, z, steps=steps, seed=seed)


def dci_scores_of(R: np.ndarray) -> dict:
    from . import dci_scores

    return {k: float(v) for k, v in dci_scores(R).items()}
