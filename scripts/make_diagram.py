"""Draw the SODA overview figure used in the README: python scripts/make_diagram.py."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402


def box(ax, x, y, w, h, text, color):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="#333", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)


def arrow(ax, a, b, **kw):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=10, lw=1, color="#333", **kw))


def main(out: Path = Path("assets/figures/soda_diagram.png")) -> None:
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 3.4)
    ax.axis("off")
    box(ax, 0.1, 1.9, 1.4, 0.8, "source view\n+ camera rays", "#dde8f7")
    box(ax, 1.9, 1.9, 1.3, 0.8, "ResNet\nencoder E", "#c9dcf5")
    colors = ["#f7d9c4", "#f5e6a8", "#d3efc5", "#c4e7ef", "#d9d0f3", "#f3c9dd", "#e5e5e5"]
    for k in range(7):
        box(ax, 3.6 + k * 0.32, 2.0, 0.28, 0.6, f"z{k + 1}", colors[k])
    ax.text(4.7, 2.8, "z split into K sections (layer masking: p=0.2 each, 0.1 all)", ha="center", fontsize=7.5)
    box(ax, 0.1, 0.3, 1.4, 0.8, "noisy target view\nx_t + target rays", "#dde8f7")
    stages = ["down 1", "down 2", "down 3", "mid", "up 3", "up 2", "up 1"]
    for k, s in enumerate(stages):
        y = 0.3 + (0.45 if k in (2, 3, 4) else 0.2 if k in (1, 5) else 0.0)
        box(ax, 2.0 + k * 0.85, y, 0.75, 0.6 - (0.15 if k == 3 else 0), s, colors[k])
        arrow(ax, (3.74 + k * 0.32, 2.0), (2.37 + k * 0.85, y + 0.6))
    arrow(ax, (1.5, 2.3), (1.9, 2.3))
    arrow(ax, (3.2, 2.3), (3.55, 2.3))
    arrow(ax, (1.5, 0.7), (2.0, 0.6))
    box(ax, 8.2, 0.3, 1.6, 0.8, "predicted noise\n(diffusion loss)", "#f0f0f0")
    arrow(ax, (7.85, 0.6), (8.2, 0.7))
    ax.text(
        5.0,
        0.05,
        "UNet denoiser D: every ResBlock modulated by time and by its own section of z",
        ha="center",
        fontsize=7.5,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130, bbox_inches="tight")


if __name__ == "__main__":
    main()
