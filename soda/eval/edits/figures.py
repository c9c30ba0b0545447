"""The report's "Edits" section: the change matrix as a heatmap, before / after examples, the section-mixing matrix and
the novel-view frames (``edit_figures``), and the section's markdown (``edits_section``) from ``run_edits``' metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .scores import FACTORS, MixingScores, SliderScores, default_specs

# ------------------------------------------------------------------------------------------------------------
# Figures and the report section
# ------------------------------------------------------------------------------------------------------------


def _heatmap(M: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 + 0.75 * len(cols), 0.9 + 0.32 * len(rows)))
    ax.imshow(np.nan_to_num(M, nan=0.0), cmap="magma", vmin=0, vmax=1, aspect="auto")
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            v = M[i, j]
            ax.text(
                j,
                i,
                "-" if np.isnan(v) else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if (not np.isnan(v) and v > 0.6) else "white",
            )
    ax.set_xticks(range(len(cols)), [c.replace("_", " ") for c in cols], rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def edit_figures(figs: dict, out) -> dict[str, str]:
    """The Edits section's PNGs in ``out`` -> {name: filename} (names start with 'edits_')."""
    from pathlib import Path

    from ...api import save_grid

    out = Path(out)
    files = {}
    sc: SliderScores = figs["sliders"]
    title = "how often each slider changes each factor's class"
    _heatmap(sc.changes, sc.labels, FACTORS, title, out / "edits_matrix.png")
    files["edits_matrix"] = "edits_matrix.png"
    rec, edited = figs["slider_examples"]  # (E,3,H,W), (K, S, E, 3, H, W)
    K, S = edited.shape[:2]
    neg = [i for i, s in enumerate(sc.strengths) if s < 0]
    pos = [i for i, s in enumerate(sc.strengths) if s > 0]
    cols = [edited[:, i, 0] for i in neg] + [rec[:1].expand(K, -1, -1, -1)] + [edited[:, i, 0] for i in pos]
    save_grid(cols, out / "edits_examples.png")
    files["edits_examples"] = "edits_examples.png"
    if "mixing" in figs:
        mx: MixingScores = figs["mixing"]
        rows = [f"section {k}" for k in range(mx.follow.shape[0])]
        title = "section k from B: how often each factor follows B"
        _heatmap(mx.follow, rows, FACTORS, title, out / "edits_mixing.png")
        files["edits_mixing"] = "edits_mixing.png"
    if "views" in figs:
        src, fr, p_src, p_fr = figs["views"]
        n = min(6, src.shape[0])
        tiles = [src[:n]] + [fr[:n, v] for v in range(fr.shape[1])]
        save_grid(tiles, out / "edits_views.png")
        files["edits_views"] = "edits_views.png"
    return files


def _pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def edits_section(e: dict, files: dict[str, str]) -> list[str]:
    """The report's "Edits" section (lines) from run_edits' metrics and edit_figures' files."""
    sl = e["sliders"]
    strengths = ", ".join(f"{s:+g}" for s in sl["strengths"])
    acc_c = ", ".join(f"{k} {v:.2f}" for k, v in e["classifier_accuracy_clean"].items())
    acc_d = ", ".join(f"{k} {v:.2f}" for k, v in e["classifier_accuracy_decoded"].items())
    lines = [
        "## Edits (what sliders, mixing and novel views do to the decoded image)",
        "",
        f"Each edit is decoded ({e['steps']} DDIM steps, noise seed {e['seed']}, the same for the reconstruction "
        f"and the edit) and ground-truth factor classifiers (soda.clip.factors, trained on renders) read every factor "
        f"of both. Sliders: {e['n_scenes']} held-out scenes x strengths {strengths} (std of the data along a "
        "direction; classes for the z-dependent sliders of soda.sliders.moves, whose whole swap is 1); directions: "
        f"{e.get('directions_from', '?')}. **Effect**: how often the slider's factor moves the promised way (ordered "
        "factors: one step closer to the end the sign names, circularly for hues; shape: reaching the named shape at "
        "+, leaving it at -), over the edits that can. **Preservation**: how often every other factor keeps its "
        "class (orientation read only on the cube and capsule). The oracle columns are the same measurement with the "
        "renderer as a perfect decoder of a factor-valued z: the ceiling these classifiers allow.",
        "",
        f"Classifier accuracy on clean held-out renders: {acc_c}. On this checkpoint's decoded reconstructions "
        f"(against the true factors; decoder and classifier errors together): {acc_d}.",
        "",
        "| slider | promise | effect | preservation | effect by strength | oracle effect / preservation |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    specs = {s.label: s for s in default_specs()}
    for lab, r in sl["sliders"].items():
        promise = specs[lab].short() if lab in specs else r["factor"]
        by = " / ".join(_pct(x) for x in r["effect_by_strength"])
        o = e.get("oracle", {})
        lines.append(
            f"| {lab} | {promise} | {_pct(r['effect'])} | {_pct(r['preservation'])} | {by} | "
            f"{_pct(o.get('effect', {}).get(lab))} / {_pct(o.get('preservation', {}).get(lab))} |"
        )
    lines += ["", "**What each slider really moves** (fraction of edits that change each factor's class)", ""]
    lines += [f"![edits_matrix]({files['edits_matrix']})", ""] if "edits_matrix" in files else []
    if "edits_examples" in files:
        lines += [
            f"**Before / after** (one held-out scene; columns: strengths {strengths} with the reconstruction in the "
            "middle; one row per slider in the table's order)",
            "",
            f"![edits_examples]({files['edits_examples']})",
            "",
        ]
    if "mixing" in e:
        mx = e["mixing"]
        where = (
            mx["carriers_from"]
            if "importance" not in mx["carriers_from"]
            else f"at least half the top section's share of {mx['carriers_from']}"
        )
        lines += [
            f"**Section mixing** ({mx['n_pairs']} pairs of held-out scenes A, B). The sections that carry each factor "
            f"({where}) are taken from B together. Follows "
            "donor: among pairs whose classes differ, how often the mix takes B's class; others kept: how often every "
            "factor carried only by other sections keeps A's class. The matrix below swaps one section at a time.",
            "",
            "| factor | carrying sections | follows donor | others kept |",
            "| --- | --- | --- | --- |",
        ]
        for f in FACTORS:
            where = ", ".join(map(str, mx["carriers"][f]))
            lines.append(f"| {f} | {where} | {_pct(mx['effect'][f])} | {_pct(mx['preservation'][f])} |")
        lines += [""]
        if "edits_mixing" in files:
            lines += [f"![edits_mixing]({files['edits_mixing']})", ""]
    if "views" in e:
        v = e["views"]
        pf = v["decoded"]["per_factor"]
        rf = v["renderer"]["per_factor"]
        lines += [
            f"**Novel-view identity** ({v['n_scenes']} held-out scenes, {len(v['cameras'])} orbit cameras across the "
            "training azimuths). Classifiers trained on random-camera renders read each decoded orbit frame and the "
            "decoded source view; identity = every factor agrees. The renderer row is the same for true renders (the "
            f"classifiers' own ceiling; their held-out accuracy: "
            f"{', '.join(f'{k} {x:.2f}' for k, x in v['classifier_accuracy_clean'].items())}).",
            "",
            "| frames | all factors agree | " + " | ".join(FACTORS) + " |",
            "| --- " * (len(FACTORS) + 2) + "|",
            f"| decoded | {_pct(v['decoded']['all'])} | " + " | ".join(_pct(pf[f]) for f in FACTORS) + " |",
            f"| renderer | {_pct(v['renderer']['all'])} | " + " | ".join(_pct(rf[f]) for f in FACTORS) + " |",
            "",
        ]
        if "edits_views" in files:
            lines += [
                "Decoded source view | orbit frames (one row per scene)",
                "",
                f"![edits_views]({files['edits_views']})",
                "",
            ]
    lines += [f"Edit fidelity took {e.get('seconds', '?')} s.", ""]
    return lines
