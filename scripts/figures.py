"""The published figures of README.md and docs/*.md, written from the committed results: each number has one source.

    python scripts/figures.py           # rewrite every figure block from its source
    python scripts/figures.py --check   # exit 1, naming the blocks, when a published figure differs from its source

A figure block is ``<!-- figures:NAME -->text<!-- /figures -->``, inline in a sentence or a table row; BLOCKS maps
each NAME to the function that writes its text from the sources. Nothing is measured here; the sources are the
committed outputs of:

- ``python -m soda.eval --checkpoint assets/checkpoints/world32 ...``: the report's metrics.json;
- ``python -m soda.precompute assets/checkpoints/world32``: the explorer assets (the slider captions' measurement,
  ``slider_effects``, and the measured decoder steps, ``decode_steps``);
- ``python bench/ood.py --json bench/results/ood.json``;
- ``python bench/app_latency.py --reps 20 --json bench/results/app_latency.json``.

After rerunning one of them, run this script and commit the results with the pages (tests/test_published_figures.py
fails while a page and its source disagree, and when a bench result belongs to other weights or steps).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CKPT = "assets/checkpoints/world32"
SOURCES = {
    "metrics": f"{CKPT}/report/metrics.json",
    "assets": f"{CKPT}/explorer/assets.json",
    "ood": "bench/results/ood.json",
    "latency": "bench/results/app_latency.json",
}
BLOCK = re.compile(r"<!-- figures:([\w-]+) -->(.*?)<!-- /figures -->", re.S)


def pages(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def load_sources(root: Path = ROOT) -> dict:
    return {k: json.loads((root / p).read_text()) for k, p in SOURCES.items()}


def pct(x: float, space: str = "") -> str:
    return f"{100 * x:.0f}{space}%"


def ms(s: float) -> str:
    return f"{1000 * s:.0f} ms"


# --- the bundled checkpoint's evaluation (metrics.json) -------------------------------------------------------------


def standing(s: dict) -> str:
    m = s["metrics"]
    return (
        f"reconstruction PSNR {m['reconstruction']['psnr']:.1f} dB (bar 28), novel views "
        f"{m['novel_view']['psnr']:.1f} dB (bar 24), linear probes shape {m['probes']['shape']['linear']:.3f} and "
        f"object hue {m['probes']['object_hue']['linear']:.3f} (bars 0.95 / 0.97), DCI disentanglement "
        f"{m['dci']['disentanglement']:.2f} (bar 0.6), z-use gap at t = 1 on the object's pixels "
        f"{m['z_use_gap']['t1']['gap_object']:.1f} dB (bar 10)"
    )


def _report_slider(s: dict, label: str) -> dict:
    return s["metrics"]["edits"]["sliders"]["sliders"][label]


def _caption_slider(s: dict, label: str) -> dict:
    return s["assets"]["slider_effects"]["named"][label]


def _span(xs: list[float]) -> str:
    lo, hi = pct(min(xs)), pct(max(xs))
    return lo if lo == hi else f"{lo[:-1]}-{hi}"


def sliders(s: dict) -> str:
    """README: the report's figures for the sliders with a bar, and the captions' for the same sliders."""
    obj, floor = _report_slider(s, "object_hue +"), _report_slider(s, "floor_hue +")
    shapes = [v for k, v in s["metrics"]["edits"]["sliders"]["sliders"].items() if k.startswith("shape: ")]
    c_obj, c_floor = _caption_slider(s, "object_hue +"), _caption_slider(s, "floor_hue +")
    e, se = s["metrics"]["edits"], s["assets"]["slider_effects"]
    same = "the same" if se["steps"] == e["steps"] else f"{se['steps']} (not {e['steps']})"
    return (
        f"object hue moves its factor in {pct(obj['effect'])} of edits and keeps the rest in "
        f"{pct(obj['preservation'])}, floor hue {pct(floor['effect'])} / {pct(floor['preservation'])} (bars 80% / "
        f"80%), every shape slider {_span([v['effect'] for v in shapes])} / "
        f"{_span([v['preservation'] for v in shapes])} (the report's {e['n_scenes']} held-out scenes at {e['steps']} "
        f"decoder steps; the explorer's captions measure the same sliders at {same} steps and the same strengths on "
        f"{se['n_scenes']} other "
        f"held-out scenes and read {pct(c_obj['effect'])} / {pct(c_obj['preservation'])} and "
        f"{pct(c_floor['effect'])} / {pct(c_floor['preservation'])}: [docs/EDITS.md](docs/EDITS.md#shipped))"
    )


def weak(s: dict) -> str:
    p = s["metrics"]["probes"]
    o = _report_slider(s, "orientation +")
    return (
        f"scale (probe {p['scale']['linear']:.2f}) and orientation ({p['orientation']['linear']:.2f}) are only partly "
        f"linear in z, and the orientation slider keeps the rest in {pct(o['preservation'])}"
    )


def caption_example(s: dict) -> str:
    return f"`{_caption_slider(s, 'object_hue +')['caption']}`"


def slider_table(s: dict) -> str:
    """EDITS.md: every named slider as the app's captions and as the report measured it."""
    se, e = s["assets"]["slider_effects"], s["metrics"]["edits"]
    rows = [
        "| slider | caption in the app: moves / keeps | the report: moves / keeps |",
        "| --- | --- | --- |",
    ]
    for label, c in se["named"].items():
        r = e["sliders"]["sliders"][label]
        rows.append(
            f"| {label} | {pct(c['effect'])} / {pct(c['preservation'])} | "
            f"{pct(r['effect'])} / {pct(r['preservation'])} |"
        )
    strengths = ", ".join(f"{x:+g}" for x in e["strengths"])
    # where the two samples differ most: the factor whose class the edits change at the most different rates
    gap = {
        f: sum(
            e["sliders"]["sliders"][k]["changes"][f] - c["changes"][f]
            for k, c in se["named"].items()
            if c["factor"] != f
        )
        for f in s["assets"]["factor_names"]
    }
    f = max(gap, key=lambda k: abs(gap[k]))
    more = "the report's" if gap[f] > 0 else "the captions'"
    return (
        f"\n\nThe captions decode at {se['steps']} DDIM steps, the report at {e['steps']} (noise seed {e['seed']}), "
        f"strengths {strengths} std, on {se['n_scenes']} and {e['n_scenes']} held-out scenes: **the same sliders, "
        "measured on different scenes** "
        "(the captions' drawn by `soda.sliders.captions`, the report's by `soda.eval`), so the two columns differ "
        f"by the sample, most in how often an edit changes the {f.replace('_', ' ')} class read from the decoded "
        f"image ({more} scenes, more often; {e['sliders']['n_edits']} edits per slider in each):\n\n"
        + "\n".join(rows)
        + "\n\n"
    )


def labelfree(s: dict) -> str:
    """README: what a person without labels gets (the report's label-free step)."""
    m = s["metrics"]
    lf = m["labelfree"]
    best = ", ".join(f"{f.replace('_', ' ')} {pct(b['effect'])} / {pct(b['keeps'])}" for f, b in lf["best"].items())
    k = lf.get("section_dci_k", {})
    return (
        f"{lf['met']} of {len(lf['best'])} factors reached by one of the {lf['n_shown']} sliders found without labels "
        f"(moves it in >= 80% of edits, keeps the rest in >= 90%; bar 6 of 6): {best}; section-level DCI "
        f"disentanglement {m['dci_sections']['disentanglement']:.2f} with PC1 per section (bar 0.6), "
        f"{k.get('disentanglement', float('nan')):.2f} with {k.get('k', 3)} PCs per section"
    )


# --- decoder steps (assets.json) ----------------------------------------------------------------------------------


def steps(s: dict) -> str:
    d = s["assets"]["decode_steps"]
    return f"{d['preview']} preview / {d['full']} full, {d['sampler'].upper()}"


# --- bench/ood.py ---------------------------------------------------------------------------------------------------


def ood_readme(s: dict) -> str:
    o = s["ood"]
    return (
        f"false alarms {o['false_alarms']:.1%} of {o['n_scenes']} fresh held-out scenes (bar 5%), detection "
        f"{pct(o['detection'])} of {o['n_non_scene']} non-scene images (bar 95%)"
    )


def ood_row(s: dict) -> str:
    o = s["ood"]
    alone = ", ".join(f"{k} {pct(o['signals'][k]['detection'], ' ')}" for k in ("latent", "recon", "pixel"))
    return (
        f"{o['false_alarms']:.1%}".replace("%", " %")
        + f" ({round(o['false_alarms'] * o['n_scenes'])} of {o['n_scenes']}) | {pct(o['detection'], ' ')} "
        f"({round(o['detection'] * o['n_non_scene'])} of {o['n_non_scene']}) | {alone}"
    )


# --- bench/app_latency.py -------------------------------------------------------------------------------------------


def _pair(r: dict, unit: str) -> str:
    if unit == "s":
        return f"{r['p50_s']:.2f} / {r['p95_s']:.2f} s"
    return f"{1000 * r['p50_s']:.0f} / {1000 * r['p95_s']:.0f} ms"


def _target(t: float | None) -> str:
    return "-" if t is None else (f"≤ {t:g} s" if t >= 1 else f"≤ {ms(t)}")


def latency_table(s: dict) -> str:
    lat = s["latency"]
    st = lat["steps"]
    n = lambda k: f"{k} step" + ("s" if k != 1 else "")  # noqa: E731
    rows = [
        ("preview", f"slider preview ({n(st['preview'])})", "ms"),
        ("full render", f"full render ({n(st['full'])})", "ms"),
        ("reference render", f"reference render ({n(st['reference'])})", "ms"),
        ("uncertainty map", f"what z does not store (8 seeds, {n(st['full'])})", "ms"),
        ("encode upload", "encode an upload (640x480 JPEG)", "ms"),
        ("PCA map 5k", "PCA map of 5k points (fit + figure)", "ms"),
        ("orbit 24 frames", f"orbit GIF, 24 frames ({n(lat['orbit_steps'])})", "s"),
    ]
    out = [
        "| operation | target | p50 / p95 | share of the 50-step render (bar) |",
        "|---|---|---|---|",
    ]
    for key, label, unit in rows:
        r = lat[key]
        share = "1" if key == "reference render" else ""
        if "of_reference" in r:
            share = f"{r['of_reference']:.3f} (≤ 1/{round(1 / r['of_reference_bar'])})"
        out.append(f"| {label} | {_target(r['target_s'])} | {_pair(r, unit)} | {share} |".replace("|  |", "| |"))
    return "\n\n" + "\n".join(out) + "\n\n"


def latency_load(s: dict) -> str:
    la = s["latency"]["load_average"]
    return f"{la['before'][0]:.1f} before the run, {la['after'][0]:.1f} after"


def latency_threads(s: dict) -> str:
    t = s["latency"]["threads"]
    return f"{t} thread" + ("s" if t != 1 else "")


def latency_reps(s: dict) -> str:
    return str(s["latency"]["preview"]["n"])


def latency_uncertainty(s: dict) -> str:
    lat = s["latency"]
    return f"{ms(lat['uncertainty map']['p50_s'])} (load average {lat['load_average']['before'][0]:.1f})"


def latency_readme_case(s: dict) -> str:
    la = s["latency"]["load_average"]
    return f"{latency_threads(s)}, load {la['before'][0]:.1f}-{la['after'][0]:.1f}"


def latency_readme(s: dict) -> str:
    lat = s["latency"]
    st = lat["steps"]
    p = lambda k: lat[k]["p50_s"]  # noqa: E731
    return (
        f"at the measured steps ({st['preview']} preview / {st['full']} full): preview {ms(p('preview'))} (target "
        f"{ms(lat['preview']['target_s']).replace(' ms', '')}), full render {ms(p('full render'))} "
        f"({ms(lat['full render']['target_s'])}), beside the {st['reference']}-step render {ms(p('reference render'))}"
        f" in the same run; encode {ms(p('encode upload'))} ({ms(lat['encode upload']['target_s'])}), PCA map of 5k "
        f"{ms(p('PCA map 5k'))} ({lat['PCA map 5k']['target_s']:g} s), 24-frame orbit {p('orbit 24 frames'):.2f} s "
        f"({lat['orbit 24 frames']['target_s']:g} s)"
    )


BLOCKS = {
    "standing": standing,
    "sliders": sliders,
    "weak": weak,
    "labelfree": labelfree,
    "caption-example": caption_example,
    "slider-table": slider_table,
    "steps": steps,
    "ood": ood_readme,
    "ood-row": ood_row,
    "latency-table": latency_table,
    "latency-load": latency_load,
    "latency-threads": latency_threads,
    "latency-reps": latency_reps,
    "latency-uncertainty": latency_uncertainty,
    "latency-case": latency_readme_case,
    "latency": latency_readme,
}


def render(text: str, sources: dict) -> str:
    """``text`` with every figure block rewritten from ``sources``."""

    def one(m: re.Match) -> str:
        if m.group(1) not in BLOCKS:
            raise KeyError(f"unknown figure block {m.group(1)!r} (scripts/figures.py BLOCKS)")
        return f"<!-- figures:{m.group(1)} -->{BLOCKS[m.group(1)](sources)}<!-- /figures -->"

    return BLOCK.sub(one, text)


def drift(text: str, sources: dict) -> list[tuple[str, str, str]]:
    """The blocks of ``text`` whose published figures differ from their sources -> (name, published, source)."""
    return [
        (m.group(1), m.group(2), BLOCKS[m.group(1)](sources))
        for m in BLOCK.finditer(text)
        if m.group(2) != BLOCKS[m.group(1)](sources)
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when a figure differs")
    a = ap.parse_args(argv)
    sources = load_sources()
    stale = 0
    for page in pages():
        text = page.read_text()
        new = render(text, sources)
        if new == text:
            continue
        for name, old, fresh in drift(text, sources):
            stale += 1
            print(f"{page.relative_to(ROOT)}: {name}\n  published: {old.strip()}\n  source:    {fresh.strip()}")
        if not a.check:
            page.write_text(new)
    print(f"{stale} figure block(s) {'differ' if a.check else 'rewritten'}" if stale else "every figure is current")
    return 1 if a.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
