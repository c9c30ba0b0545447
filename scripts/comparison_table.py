"""Collect per-run evaluation metrics into one fixed-budget comparison table (Markdown).

    python scripts/comparison_table.py runs/cmp-eval OUT.md --note "..."

Each sub-folder of the first argument holds a metrics.json written by `python -m soda.eval` (same sizes for all).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from soda.eval.report import comparison_table

ORDER = [
    "soda",
    "paper",
    "no-low-snr",
    "no-z-lr",
    "mask-on",
    "bf16",
    "no-sections",
    "no-masking",
    "cosine",
    "beta-vae",
    "autoencoder",
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("out")
    p.add_argument("--note", default="")
    a = p.parse_args()
    runs = {
        d.name: json.loads((d / "metrics.json").read_text())
        for d in Path(a.folder).iterdir()
        if (d / "metrics.json").exists()
    }
    names = [n for n in ORDER if n in runs] + sorted(n for n in runs if n not in ORDER)
    sizes = {json.dumps(runs[n]["sizes"], sort_keys=True) for n in names}
    if len(sizes) != 1:
        raise SystemExit("the runs were evaluated with different sizes; re-run them with the same flags")
    s = runs[names[0]]["sizes"]
    lines = [
        "# Fixed-budget comparison: SODA, ablations and baselines",
        "",
        a.note,
        "",
        comparison_table([(n, runs[n]) for n in names]),
        "",
        f"Evaluation sizes (all runs): DCI {s['dci_train']}/{s['dci_test']}, probes {s['probe_train']}/"
        f"{s['probe_test']}, reconstruction {s['recon']} images, novel views {s['nvs_scenes']} scenes x "
        f"{s['nvs_views'] - 1} targets, {s['sampler']} {s['steps']} steps; held-out scenes throughout.",
        "",
    ]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
