"""Compare slider direction methods by the edit-fidelity metric on one procedural-world checkpoint (docs/EDITS.md).

Every method is fitted on the same encoded held-out scenes (``--fit``, seed 11 as in ``python -m soda.eval``) and
measured on the same ``--scenes`` other held-out scenes (seed 5, the evaluation's; any scene whose factors equal a
fitted one is skipped), strengths -2, -1, +1, +2 std, the model's preview steps, noise seed 0. ``refined`` starts from
``mean_all`` and is tuned (soda.sliders.refine_direction) on ``--refine-scenes`` of the fitted scenes with noise seed
1, so neither its scenes nor its noise are the measured ones. Phases, so that the decoder-free part and the costly
part can run apart: ``prepare`` (encode, importance), ``base`` (the five existing methods), ``refined``, ``rotate``
(the hue sliders that turn the colour wheel, soda.sliders.HueRotation: ``rotate``, ``rotate_sec``, ``rotate_proj``),
``swap`` (the shape sliders' soda.sliders.ClassSwap), ``step`` (scale and orientation: ClassStep), ``table``.

    python scripts/compare_sliders.py CKPT OUT --phase prepare|base|refined|rotate|table [--labels "object_hue +"]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

BASE = ("logistic", "sections", "mean", "mean_all", "projected")
STRENGTHS = (-2.0, -1.0, 1.0, 2.0)


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def prepare(model, out: Path, n_fit: int, n_scenes: int) -> None:
    from soda import api
    from soda.data.views import world_eval_set
    from soda.sliders import section_importance

    fit = world_eval_set(n_fit, model.res, split="test", seed=11, camera="fixed")
    Zf = api.encode(model, fit["images"])
    meas = world_eval_set(3 * n_scenes, model.res, split="test", seed=5, camera="fixed")
    seen = {tuple(r) for r in fit["factors"].tolist()}
    keep = [i for i, r in enumerate(meas["factors"].tolist()) if tuple(r) not in seen][:n_scenes]
    log(f"measured scenes: {len(keep)} (skipped {keep[-1] + 1 - len(keep)} that equal a fitted scene)")
    Zm = api.encode(model, meas["images"][keep])
    imp = section_importance(Zf, fit["factors"], model.n_sections)
    imp = torch.from_numpy(imp)  # tensors only: data.pt is read back with weights_only=True
    torch.save({"Zf": Zf, "ff": fit["factors"], "Zm": Zm, "fm": meas["factors"][keep], "imp": imp}, out / "data.pt")


def directions(model, clf, data: dict, method: str, specs, refine: dict):
    """(K, D) directions, or K HueRotations for the rotation methods."""
    from soda.sliders import (
        ROTATE_METHODS,
        fit_directions,
        fit_rotations,
        fit_steps,
        fit_swaps,
        projected_directions,
        refine_direction,
    )

    Zf, ff, imp = data["Zf"], data["ff"], data["imp"]
    sd = Zf.shape[1] // model.n_sections
    if method in ("swap", "step"):
        S, kept = (fit_swaps if method == "swap" else fit_steps)(Zf, ff, specs)
        assert kept == list(specs), "the swap is for shape sliders only, the step for scale and orientation"
        return S
    if method in ROTATE_METHODS:
        R, kept = fit_rotations(Zf, ff, specs, method, imp, sd, model, clf, seed=0)  # as choose_directions does
        assert kept == list(specs), "the rotation methods are for hue sliders only"
        return R
    base = "mean_all" if method in ("projected", "refined") else method
    D, kept = fit_directions(Zf, ff, specs, base, imp, sd)
    assert kept == list(specs), "every compared slider must have both sides in the fitted scenes"
    if method == "projected":  # as choose_directions does it
        D = projected_directions(model, clf, D, kept, Zf[:16], seed=0)
    if method == "refined":
        Zr = Zf[16 : 16 + refine["scenes"]]
        D = torch.stack(
            [
                refine_direction(
                    model,
                    clf,
                    s,
                    d,
                    Zr,
                    Zf,
                    steps=refine["steps"],
                    decode_steps=refine["decode_steps"],
                    seed=1,
                    progress=lambda f, m: log(m),
                )
                for s, d in zip(kept, D, strict=True)
            ]
        )
    return D


def measure(model, clf, data: dict, methods, specs, refine: dict, out: Path, tag: str) -> None:
    from soda import api
    from soda.eval.edits import measure_sliders

    Ds, all_specs = [], []
    for m in methods:
        t = time.time()
        Ds.append(directions(model, clf, data, m, specs, refine))
        all_specs += list(specs)
        log(f"{m}: directions in {time.time() - t:.0f} s")
    steps = model.cfg.diffusion.preview_steps
    t = time.time()
    sc, ex = measure_sliders(
        lambda z: api.decode(model, z, steps=steps, seed=0),
        clf.predict,
        data["Zm"],
        [d for D in Ds for d in D],  # directions (rows) and rotations alike
        all_specs,
        STRENGTHS,
        progress=lambda f, s: log(f"{s} {f:.0%}") if int(f * 100) % 10 == 0 else None,
    )
    secs = time.time() - t
    res = {"refine": refine if "refined" in methods else None, "decode_seconds": secs, "results": {}}
    for k, m in enumerate(methods):
        for i, s in enumerate(specs):
            r = k * len(specs) + i
            res["results"].setdefault(s.label, {})[m] = {
                "effect": float(sc.effect[r]),
                "preservation": float(sc.preservation[r]),
                "changes": sc.changes[r].tolist(),
            }
    kept = {m: D if isinstance(D, torch.Tensor) else [r.tensors() for r in D] for m, D in zip(methods, Ds, strict=True)}
    torch.save({"dirs": kept, "after": ex["after"], "before": ex["before"]}, out / f"{tag}.pt")
    (out / f"{tag}.json").write_text(json.dumps(res, indent=1))
    log(f"{tag}: measured in {secs:.0f} s")


def table(out: Path) -> None:
    from soda.eval.edits import FACTORS

    rows: dict = {}
    methods: list[str] = []
    for f in sorted(out.glob("*.json")):  # base.json, then one file per refinement setting (a column each)
        for lab, by in json.loads(f.read_text())["results"].items():
            by = {(f.stem if m == "refined" else m): r for m, r in by.items()}
            rows.setdefault(lab, {}).update(by)
            methods += [m for m in by if m not in methods]
    print("| slider | " + " | ".join(methods) + " |")
    print("| --- " * (len(methods) + 1) + "|")
    for lab, by in rows.items():
        cells = [f"{by[m]['effect']:.2f} / {by[m]['preservation']:.2f}" if m in by else "-" for m in methods]
        print(f"| {lab} | " + " | ".join(cells) + " |")
    print()
    for lab, by in rows.items():
        for m, r in by.items():
            print(lab, m, "changes:", ", ".join(f"{f} {c:.2f}" for f, c in zip(FACTORS, r["changes"], strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--phase", choices=("prepare", "base", "refined", "rotate", "swap", "step", "table"), required=True)
    ap.add_argument("--labels", default="object_hue +,floor_hue +")
    ap.add_argument("--fit", type=int, default=3000)
    ap.add_argument("--scenes", type=int, default=16)
    ap.add_argument("--refine-scenes", type=int, default=8)
    ap.add_argument("--refine-steps", type=int, default=12)
    ap.add_argument("--refine-decode-steps", type=int, default=2)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.phase == "table":
        return table(out)
    from soda import api
    from soda.clip.factors import load_or_train_factor_classifiers
    from soda.eval.edits import spec_for_label
    from soda.precompute import cache_root

    torch.set_num_threads(1)
    model = api.load_model(a.ckpt)
    if a.phase == "prepare":
        return prepare(model, out, a.fit, a.scenes)
    clf = load_or_train_factor_classifiers(model.res, cache_root() / "factor-classifiers")
    data = torch.load(out / "data.pt", weights_only=True)  # a dict of tensors this script wrote
    data["imp"] = data["imp"].numpy()
    specs = [spec_for_label(x.strip()) for x in a.labels.split(",")]
    refine = {"scenes": a.refine_scenes, "steps": a.refine_steps, "decode_steps": a.refine_decode_steps}
    from soda.sliders import ROTATE_METHODS

    methods = {"base": BASE, "rotate": ROTATE_METHODS, "swap": ("swap",), "step": ("step",)}.get(a.phase, ("refined",))
    tag = a.phase
    if a.phase == "refined":
        tag = f"refined-s{a.refine_scenes}-n{a.refine_steps}-d{a.refine_decode_steps}"
    measure(model, clf, data, methods, specs, refine, out, tag)


if __name__ == "__main__":
    main()
