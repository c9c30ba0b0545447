"""Figures and the Markdown report for one checkpoint, and the side-by-side comparison table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..api import save_grid
from ..atomic import write_file, write_json, write_text


def _strip(images: torch.Tensor, rows: int, path: Path, scale: int = 3) -> None:
    """(rows*cols,3,H,W) -> a rows x cols grid PNG."""
    cols = images.shape[0] // rows
    chunks = [images[r * cols : (r + 1) * cols] for r in range(rows)]
    save_grid([torch.stack([c[j] for c in chunks]) for j in range(cols)], path, scale)


def make_figures(model, figures: dict, out: Path, steps: int, seed: int = 0) -> dict[str, str]:
    """Write the report's PNGs into ``out``; returns {name: filename}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import api
    from ..data.world import FACTOR_NAMES, FACTOR_SIZES
    from .runner import EvalSizes, decode_set

    sizes = EvalSizes(steps=steps, seed=seed)
    files = {}
    truth, rec = figures["recon"]
    save_grid([truth, rec], out / "reconstruction.png")
    files["reconstruction"] = "reconstruction.png"
    if "nvs" in figures:
        save_grid(list(figures["nvs"]), out / "novel_views.png")
        files["novel_views"] = "novel_views.png"

    codes = torch.from_numpy(figures["codes"]).float()
    ex_img, ex_rays = figures["example"]
    z0 = codes[0]
    rays0 = ex_rays[:1] if (ex_rays is not None and model.uses_cameras) else None
    values = [-2.0, -1.0, 0.0, 1.0, 2.0]
    # every model kind has sections (a baseline: one, its whole latent): one traversal row per section
    dirs = api.section_directions(model, codes, n_components=1)
    zs = torch.cat([api.traverse(z0, d[0], values) for d in dirs])  # (K*5, z_dim)
    r = rays0.expand(zs.shape[0], -1, -1, -1) if rays0 is not None else None
    imgs = decode_set(model, zs, r, sizes, per_row_noise=False)  # frames differ by z only
    _strip(imgs, len(dirs), out / "traversals.png")
    files["traversals"] = "traversals.png"
    path = api.interpolate(model, codes[0], codes[1], 8, "slerp")
    r = rays0.expand(8, -1, -1, -1) if rays0 is not None else None
    _strip(decode_set(model, path, r, sizes, per_row_noise=False), 1, out / "interpolation.png")
    files["interpolation"] = "interpolation.png"

    R = figures["importance"]
    fig, ax = plt.subplots(figsize=(4, max(3, R.shape[0] * 0.06)))
    ax.imshow(R, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(FACTOR_NAMES)), FACTOR_NAMES, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("latent dimension")
    ax.set_title("DCI importance (z dims x factors)", fontsize=8)
    fig.tight_layout()
    write_file(out / "dci_importance.png", lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    files["dci_importance"] = "dci_importance.png"

    X = figures["codes"] - figures["codes"].mean(0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    pc = X @ vt[:2].T
    fig, axes = plt.subplots(2, 3, figsize=(10, 6.5))
    for k, ax in enumerate(axes.flat):
        sc = ax.scatter(
            pc[:, 0], pc[:, 1], c=figures["factors"][:, k], s=3, cmap="turbo", vmin=0, vmax=FACTOR_SIZES[k] - 1
        )
        ax.set_title(FACTOR_NAMES[k], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(sc, ax=ax, fraction=0.04)
    fig.suptitle("PCA of z (held-out scenes, fixed camera), coloured by factor", fontsize=10)
    fig.tight_layout()
    write_file(out / "pca_factors.png", lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    files["pca_factors"] = "pca_factors.png"
    if "edits" in figures:
        from .edits import edit_figures

        files.update(edit_figures(figures["edits"], out))
    return files


BARS = {  # the world32 bars of the checkpoint issue (held-out scenes, 32 px)
    "reconstruction PSNR (dB)": (lambda m: m["reconstruction"]["psnr"], 28.0),
    "novel-view PSNR (dB)": (lambda m: m.get("novel_view", {}).get("psnr", float("nan")), 24.0),
    "linear probe: shape": (lambda m: m["probes"]["shape"]["linear"], 0.95),
    "linear probe: object hue": (lambda m: m["probes"]["object_hue"]["linear"], 0.97),
    "DCI disentanglement (z)": (lambda m: m["dci"]["disentanglement"], 0.60),
    "z-use gap at t = 1, object pixels (dB)": (lambda m: m["z_use_gap"]["t1"]["gap_object"], 10.0),
    # issue 12: the hue sliders do what they say on decoded images (soda.eval.edits)
    "slider effect: object_hue +": (lambda m: m["edits"]["sliders"]["sliders"]["object_hue +"]["effect"], 0.8),
    "slider preservation: object_hue +": (
        lambda m: m["edits"]["sliders"]["sliders"]["object_hue +"]["preservation"],
        0.8,
    ),
    "slider effect: floor_hue +": (lambda m: m["edits"]["sliders"]["sliders"]["floor_hue +"]["effect"], 0.8),
    "slider preservation: floor_hue +": (
        lambda m: m["edits"]["sliders"]["sliders"]["floor_hue +"]["preservation"],
        0.8,
    ),
    # issue 21: sliders found without labels (the explorer's label-free sliders; labels only score)
    "factors reached by a label-free slider (of 6)": (lambda m: m["labelfree"]["met"], 6),
    "section DCI disentanglement (PC1 per section)": (lambda m: m["dci_sections"]["disentanglement"], 0.6),
    "DCI disentanglement (z), issue 21": (lambda m: m["dci"]["disentanglement"], 0.85),
}


def clip_validation(
    model,
    spec: str | None,
    out: Path,
    seed: int = 0,
    n_data: int = 512,
    cache: Path | None = None,
    progress=None,
    **validate_kw,
) -> dict:
    """soda.clip.validate_names for the report when CLIP weights load (spec: the --clip flag, else $SODA_CLIP, else
    the checkpoint's model card) -> {"status": "done", "spec", "agreement", "markdown", "seconds"}, with
    OUT/clip_validation.md and .json written; or {"status": "skipped", "reason"} without usable weights."""
    import time

    from ..clip import ClipUnavailable, load_clip, resolve_spec, validate_names

    ckpt = model.checkpoint_dir
    ckpt = str(ckpt) if ckpt is not None else None
    resolved = resolve_spec(spec, ckpt)
    if resolved is None:
        return {"status": "skipped", "reason": "no CLIP spec was given (--clip SPEC, $SODA_CLIP or the model card)"}
    t = time.perf_counter()
    try:
        clip = load_clip(resolved, checkpoint_dir=ckpt)
    except ClipUnavailable as e:
        reason = str(e).splitlines()[0].removeprefix("CLIP weights are not available: ").rstrip(".")
        return {"status": "skipped", "spec": resolved, "reason": f"the CLIP weights did not load: {reason}"}
    result = validate_names(
        model, clip, n_data=n_data, seed=seed, cache=cache or out / "clip-cache", progress=progress, **validate_kw
    )
    md = result.markdown()
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "clip_validation.md", f"# Slider names vs ground truth\n\n{md}\n")
    write_json(out / "clip_validation.json", result.to_json(), indent=1)
    return {
        "status": "done",
        "spec": resolved,
        "agreement": result.agreement,
        "markdown": md,
        "n_refs": result.meta.get("n_refs"),
        "n_data": result.meta.get("n_data"),
        "seconds": round(time.perf_counter() - t, 1),
    }


def clip_section(clip: dict | None) -> list[str]:
    """The report's "CLIP-named directions" section (lines) from ``clip_validation``'s result."""
    lines = ["## CLIP-named directions", ""]
    if not clip or clip.get("status") != "done":
        reason = (clip or {}).get("reason", "no CLIP spec was given")
        return lines + [
            f"CLIP validation was skipped: {reason}. Give open_clip weights with `--clip SPEC` (or `$SODA_CLIP`, "
            "or a `clip:` entry in the checkpoint's model card); see docs/CLIP.md, *Supplying CLIP weights*.",
            "",
        ]
    return lines + [
        f"Each section's first principal direction (over {clip.get('n_data', 512)} encoded held-out scenes) is "
        f"traversed from "
        f"{clip.get('n_refs', 2)} held-out latents at -2..2 std. Factor classifiers trained on renders with "
        "ground-truth labels say which factor the frames change most; CLIP "
        f"(`{clip['spec']}`) names the same frames, and a slider agrees when CLIP's top name maps to that factor "
        f"(soda.clip.ATTRIBUTE_FACTOR). Also in `clip_validation.md` / `.json` ({clip.get('seconds', '?')} s).",
        "",
        clip["markdown"],
        "",
    ]


def labelfree_section(lf: dict) -> list[str]:
    """The report's section on the label-free sliders (soda.eval.runner.run_labelfree)."""
    bar = lf["bar"]
    lines = [
        "## Sliders found without labels",
        "",
        f"The {lf['n_shown']} label-free sliders the explorer shows ({lf['directions_from']}), each decoded at "
        f"strengths {', '.join(f'{x:g}' for x in lf['strengths'])} std on {lf['n_scenes']} held-out scenes "
        f"({lf['steps']} decoder steps); the factor classifiers read every edit. Per factor, the shown slider with "
        f"the largest min(effect, keeps): effect = how often the factor's class changes, keeps = how often every "
        f"other factor keeps its class. Reached = effect >= {bar['effect']:.0%} and keeps >= {bar['keeps']:.0%}. "
        "Labels score here; they never chose a direction.",
        "",
        "| factor | best slider | effect | keeps the rest | reached |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f, b in lf["best"].items():
        lines.append(f"| {f} | {b['name']} | {b['effect']:.2f} | {b['keeps']:.2f} | {'yes' if b['met'] else 'no'} |")
    lines += ["", f"Factors reached: **{lf['met']} of {len(lf['best'])}**.", ""]
    if "section_dci_k" in lf:
        d = lf["section_dci_k"]
        lines.append(
            f"Section-level DCI: PC1 per section {lf.get('section_dci_pc1', float('nan')):.3f}; the top {d['k']} PCs "
            f"per section, importances summed per section (FDAE's group protocol): disentanglement "
            f"{d['disentanglement']:.3f}, completeness {d['completeness']:.3f}, informativeness "
            f"{d['informativeness_test']:.3f}."
        )
    if lf.get("mix_hues"):
        cells = ", ".join(
            f"{f.replace('_', ' ')} {_num(v['follow'])} / {_num(v['keep'])}" for f, v in lf["mix_hues"].items()
        )
        lines.append(f"Mix panel, 'take a factor from B' for each hue (follows / keeps): {cells}.")
    return [*lines, ""]


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def write_report(out: Path, name: str, m: dict, files: dict[str, str], card: dict, clip: dict | None = None) -> Path:
    """report.md for one checkpoint (``clip``: clip_validation's result; None leaves the CLIP section out)."""
    s = m["sizes"]
    lines = [
        f"# Evaluation report: {name}",
        "",
        f"Checkpoint: `{card.get('checkpoint')}`, kind `{card.get('kind')}`, trained {card.get('step', '?')} steps, "
        f"{card.get('images_seen', '?')} images seen. Generated by `{card.get('command')}`.",
        "",
        "All images are from **held-out scenes**: factor combinations of the procedural world never rendered in "
        "training (about 10% of the 480,000 combinations, fixed by seed). This is *not* the NMR/ShapeNet "
        "novel-view protocol: objects are simple analytic shapes.",
        "",
        "## Bars (world32)",
        "",
        "| metric | value | bar | met |",
        "| --- | --- | --- | --- |",
    ]
    for label, (fn, bar) in BARS.items():
        try:
            v = float(fn(m))
        except (KeyError, TypeError):
            v = float("nan")
        ok = "yes" if v >= bar else "no"
        fmt = f"{v:.3f}" if bar < 1 else f"{v:.2f}"
        lines.append(f"| {label} | {fmt} | {bar} | {ok} |")
    lines += [
        "",
        "## Disentanglement (fixed camera, held-out scenes)",
        "",
        f"DCI with one `GradientBoostingClassifier` per factor on {s['dci_train']} train / {s['dci_test']} test "
        "codes (disentanglement_lib definition; the reference sizes are 10000/5000). MIG with 20 histogram bins on "
        f"the {s['dci_train']} training codes, as disentanglement_lib computes it.",
        "",
        "| codes | disentanglement | completeness | informativeness (test acc) | MIG |",
        "| --- | --- | --- | --- | --- |",
        f"| z ({card.get('z_dim')} dims) | {m['dci']['disentanglement']:.3f} | {m['dci']['completeness']:.3f} | "
        f"{m['dci']['informativeness_test']:.3f} | {m['mig']:.3f} |",
    ]
    if "dci_sections" in m:
        d = m["dci_sections"]
        lines.append(
            f"| sections (PC1 of each) | {d['disentanglement']:.3f} | {d['completeness']:.3f} | "
            f"{d['informativeness_test']:.3f} | {m['mig_sections']:.3f} |"
        )
    lines += ["", "MIG per factor: " + ", ".join(f"{k} {v:.3f}" for k, v in m["mig_per_factor"].items()), ""]
    lines += [
        "## Representation probes (frozen z)",
        "",
        f"Trained on {s['probe_train']} training-split scenes, tested on {s['probe_test']} held-out scenes, random "
        "cameras. Linear: StandardScaler + LogisticRegression(max_iter=2000); kNN: k = 20 on L2-normalised z.",
        "",
        "| factor | linear | kNN |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {k} | {v['linear']:.3f} | {v['knn']:.3f} |" for k, v in m["probes"].items()]
    lines += [
        "",
        "## Images",
        "",
        "PSNR and SSIM on [0, 1] images, data_range 1, SSIM as scikit-image `structural_similarity` defaults "
        f"(the pixelNeRF convention). Sampler {s['sampler']}, {s['steps']} steps, seed {s['seed']}.",
        "",
        f"- Reconstruction (source = target camera, {m['reconstruction']['n']} held-out images): "
        f"PSNR {m['reconstruction']['psnr']:.2f} dB, SSIM {m['reconstruction']['ssim']:.3f}",
    ]
    if "psnr_object" in m["reconstruction"]:
        lines.append(
            f"- Reconstruction on the object's pixels only (ground-truth coverage from the renderer): "
            f"PSNR {m['reconstruction']['psnr_object']:.2f} dB"
        )
    if "z_use_gap" in m:
        lines += [
            "- z-use gap: PSNR of the one-step prediction x0-hat with the true z minus with another scene's z "
            "(0 dB = the decoder ignores z):",
            "",
            "  | noise level | all pixels: true / shuffled / gap | object pixels: true / shuffled / gap |",
            "  | --- | --- | --- |",
        ]
        for where, label in (("t1", "t = 1 (pure noise)"), ("ab0.1", "alpha_bar = 0.1")):
            g = m["z_use_gap"][where]
            lines.append(
                f"  | {label} | {g['psnr']:.2f} / {g['psnr_shuffled']:.2f} / {g['gap']:.2f} | "
                f"{g['psnr_object']:.2f} / {g['psnr_shuffled_object']:.2f} / {g['gap_object']:.2f} |"
            )
        lines.append("")
    if "novel_view" in m:
        nv = m["novel_view"]
        lines.append(
            f"- Novel views (one source view -> {nv['n_targets']} other views of {nv['n_scenes']} held-out "
            f"scenes): PSNR {nv['psnr']:.2f} dB, SSIM {nv['ssim']:.3f}"
        )
    lines += [
        "- FID / KID / LPIPS: not computed (no Inception/LPIPS weights are available offline; see "
        "`soda.eval.fid` for loading them from local files).",
        "",
        "## Figures",
        "",
    ]
    captions = {
        "reconstruction": "Reconstruction: held-out image | reconstruction",
        "novel_views": "Novel views: source | true target view | generated target view",
        "traversals": "Traversals: one row per latent section, its first principal direction at -2..+2 std",
        "interpolation": "Slerp interpolation between two held-out scenes",
        "dci_importance": "DCI importance matrix",
        "pca_factors": "PCA of z coloured by each factor",
    }
    for k, f in files.items():
        if not k.startswith("edits_"):  # the Edits section shows its own
            lines += [f"**{captions.get(k, k)}**", "", f"![{k}]({f})", ""]
    if "edits" in m:
        from .edits import edits_section

        lines += edits_section(m["edits"], files)
    if "labelfree" in m:
        lines += labelfree_section(m["labelfree"])
    if clip is not None:
        lines += clip_section(clip)
    lines += ["## Timings (s)", "", ", ".join(f"{k} {v}" for k, v in m["timings_s"].items()), ""]
    path = out / "report.md"
    write_text(path, "\n".join(lines))
    return path


def comparison_table(rows: list[tuple[str, dict]]) -> str:
    """Markdown table of several checkpoints' headline metrics."""
    head = (
        "| checkpoint | images seen | recon PSNR | object PSNR | NVS PSNR | probe shape | probe obj hue | "
        "DCI D (z) | DCI C (z) | DCI D (sections) | MIG |"
    )
    lines = [head, "| --- " * 11 + "|"]
    for name, m in rows:
        nv = m.get("novel_view", {}).get("psnr", float("nan"))
        ds = m.get("dci_sections", {}).get("disentanglement", float("nan"))
        obj = m["reconstruction"].get("psnr_object", float("nan"))
        lines.append(
            f"| {name} | {m.get('images_seen', '?')} | {m['reconstruction']['psnr']:.2f} | {obj:.2f} | {nv:.2f} | "
            f"{m['probes']['shape']['linear']:.3f} | {m['probes']['object_hue']['linear']:.3f} | "
            f"{m['dci']['disentanglement']:.3f} | {m['dci']['completeness']:.3f} | {ds:.3f} | {m['mig']:.3f} |"
        )
    return "\n".join(lines)


def save_metrics(out: Path, m: dict) -> None:
    write_text(out / "metrics.json", json.dumps(m, indent=2, default=float))
