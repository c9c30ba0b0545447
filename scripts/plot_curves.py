"""Held-out training curves from one or more run folders' metrics.jsonl (the trainer's checkpoint records).

    .venv/bin/python scripts/plot_curves.py runs/world32-r2 [runs/other ...] --out docs/figures/curves.png [--csv F]

Plots reconstruction PSNR, object-pixel PSNR, the z-use gap at t = 1 on object pixels and the held-out loss against
images seen, one line per run (labelled by its folder name). ``--csv`` also writes the records as a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PANELS = (
    ("recon_psnr", "reconstruction PSNR (dB)"),
    ("recon_psnr_object", "object-pixel PSNR (dB)"),
    ("zgap_t1_object", "z-use gap at t = 1, object (dB)"),
    ("val_loss", "held-out loss"),
)


def held_out_records(run: Path) -> list[dict]:
    """The checkpoint records (those with held-out metrics) of ``run``/metrics.jsonl, in order of images seen."""
    recs = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a line a crash cut short
        if isinstance(r, dict) and "recon_psnr" in r:
            recs.append(r)
    return sorted(recs, key=lambda r: r["images_seen"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--csv", type=Path)
    a = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {}
    for run in a.runs:
        if not (run / "metrics.jsonl").exists():
            print(f"error: {run / 'metrics.jsonl'} not found", file=sys.stderr)
            return 2
        data[run.name] = held_out_records(run)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.2))
    for ax, (key, label) in zip(axes, PANELS, strict=True):
        for name, recs in data.items():
            pts = [(r["images_seen"] / 1000, r[key]) for r in recs if key in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=name, lw=1.2)
        ax.set_xlabel("images seen (thousands)")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")
    if a.csv:
        cols = ["run", "images_seen", *(k for k, _ in PANELS), "zgap_t1", "zgap_ab0.1_object", "elapsed_s"]
        rows = [",".join(cols)]
        for name, recs in data.items():
            rows += [",".join(str(r.get(c, name if c == "run" else "")) for c in cols) for r in recs]
        a.csv.write_text("\n".join(rows) + "\n")
        print(f"wrote {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
