"""Compare label-free slider methods (soda.sliders.labelfree) on one procedural-world checkpoint at equal decode
budget: every method's directions are fitted on ``--fit`` encoded held-out scenes (seed 11, no labels read) and scored
on ``--scenes`` other held-out scenes (seed 5) at strengths -2, -1, +1, +2 std with ``--steps`` decoder steps; the
factor classifiers only score. Prints one row per method: factors reached (moves >= 80%, keeps the rest >= 90%) and,
per factor, the best shown direction's effect / keep.

    python scripts/compare_labelfree.py CKPT [--methods pca_section,ica_z,sefa] [--n 21] [--out runs/labelfree.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("--methods", default="pca_section,ica_section,ica_z,sefa,ica_rings")
    ap.add_argument("--n", type=int, default=21, help="directions per whole-z method (per-section: 3 each)")
    ap.add_argument("--fit", type=int, default=2000)
    ap.add_argument("--scenes", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--out", default="")
    ap.add_argument(
        "--dci", type=int, default=0, help="also DCI on z and on sections (PC1, 3 PCs) with this many codes (2/3 train)"
    )
    a = ap.parse_args()
    from soda import api
    from soda.clip.factors import load_or_train_factor_classifiers
    from soda.data.views import world_eval_set
    from soda.eval.edits import FACTORS
    from soda.paths import cache_root
    from soda.sliders.labelfree import fit_label_free, labelfree_scores

    model = api.load_model(a.ckpt)
    clf = load_or_train_factor_classifiers(model.res, cache_root() / "factor-classifiers")
    fit = world_eval_set(a.fit, model.res, split="test", seed=11, camera="fixed")
    Zf = api.encode(model, fit["images"])
    meas = world_eval_set(a.scenes, model.res, split="test", seed=5, camera="fixed")
    Zm = api.encode(model, meas["images"])
    slices = api.section_slices(model)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return api.decode(model, z, steps=a.steps, seed=0)

    res = {}
    for m in a.methods.split(","):
        t = time.time()
        D = fit_label_free(Zf, slices, m, n=a.n, decode=decode)
        tf = time.time() - t
        sc = labelfree_scores(decode, clf.predict, Zm, D)
        res[m] = {"n": len(D), "fit_s": round(tf, 1), "score_s": round(time.time() - t - tf, 1), **sc}
        cells = " | ".join(f"{sc['best'][f]['effect']:.2f} / {sc['best'][f]['keeps']:.2f}" for f in FACTORS)
        print(f"| {m} ({len(D)}) | {sc['met']} | {cells} |  fit {tf:.0f}s", flush=True)
    if a.dci:
        res["dci"] = dci_figures(model, a.dci)
        print(json.dumps(res["dci"]))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


def dci_figures(model, n: int) -> dict:
    """DCI disentanglement on z, on sections (PC1 each) and on sections (3 PCs each, importances summed per section)
    with n held-out fixed-camera codes (the evaluation's set, seed 1), 2/3 of them to fit."""
    from soda.data.views import world_eval_set
    from soda.eval import dci, dci_scores, group_rows, section_codes
    from soda.eval.runner import encode_set

    d = world_eval_set(n, model.res, split="test", seed=1, camera="fixed")
    codes, fac = encode_set(model, d["images"], d["rays"]), d["factors"].numpy()
    k = 2 * n // 3
    out = {"n_train": k, "n_test": n - k, "z": dci(codes[:k], fac[:k], codes[k:], fac[k:])["disentanglement"]}
    s1 = section_codes(codes, model.n_sections)
    out["sections_pc1"] = dci(s1[:k], fac[:k], s1[k:], fac[k:])["disentanglement"]
    s3 = section_codes(codes, model.n_sections, 3)
    r = dci(s3[:k], fac[:k], s3[k:], fac[k:])
    out["sections_3pc"] = dci_scores(group_rows(r["importance_matrix"], 3))["disentanglement"]
    return {key: float(v) for key, v in out.items()}


if __name__ == "__main__":
    main()
