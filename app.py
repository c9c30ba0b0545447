"""SODA latent explorer: ``python app.py [--checkpoint PATH_OR_HUB_ID] [--host HOST] [--port PORT] [--share]``.

A launcher only: it loads the checkpoint (computing the explorer's cached assets on first use), builds the page from
app/ui.py and serves it. Run it as ``python app.py`` (``gradio app.py`` reload mode would import the ``app`` package
instead of this file).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

DEFAULT_CHECKPOINT = "assets/checkpoints/world32"
HELP_MISSING = """error: the checkpoint '{ckpt}' does not exist yet.

Train the bundled one (hours on a CPU, much faster on a GPU) and copy its EMA weights:
    python -m soda.train --config world32-cpu
    mkdir -p assets/checkpoints && cp -r runs/world32-cpu/ema assets/checkpoints/world32
or open any other checkpoint folder or hub id:
    python app.py --checkpoint runs/<run>/ema
    python app.py --checkpoint <owner>/<name>
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="SODA latent explorer (Gradio)")
    p.add_argument(
        "--checkpoint",
        default=os.environ.get("SODA_CHECKPOINT", DEFAULT_CHECKPOINT),
        help=f"checkpoint folder or hub id (default {DEFAULT_CHECKPOINT})",
    )
    p.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="interface to listen on (0.0.0.0 for all)",
    )
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    p.add_argument(
        "--allow-hub",
        metavar="IDS",
        default=os.environ.get("SODA_HUB_CHECKPOINTS", ""),
        help="hub ids (owner/name, comma-separated) that visitors may open from the page's checkpoint box, or '*' "
        "for any (local use only); default $SODA_HUB_CHECKPOINTS, else none. --checkpoint itself is always allowed",
    )
    p.add_argument(
        "--hub-max-mb",
        type=float,
        default=os.environ.get("SODA_HUB_MAX_MB", "200"),
        help="largest download (MB) of a hub checkpoint opened from the page (default $SODA_HUB_MAX_MB, else 200)",
    )
    p.add_argument("--n-map", type=int, default=4000, help="held-out latents in the map when computing assets")
    p.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("SODA_THREADS", "0")),
        help="torch threads (0 = cores / concurrent renders of the queue)",
    )
    p.add_argument(
        "--clip",
        metavar="SPEC",
        default=None,
        help="open_clip weights for the Directions (CLIP) tab: ARCH:PATH, local-dir:DIR or hf-hub:ORG/NAME "
        "(default: $SODA_CLIP, then the checkpoint's model card; loaded in the background on first use)",
    )
    a = p.parse_args(argv)

    import re
    from pathlib import Path

    try:
        exists = Path(a.checkpoint).exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        exists = False
    if not exists:  # fail fast, before the heavy imports
        if a.checkpoint == DEFAULT_CHECKPOINT:
            print(HELP_MISSING.format(ckpt=a.checkpoint), file=sys.stderr)
            return 2
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", a.checkpoint):
            print(
                f"error: checkpoint '{a.checkpoint}' not found: not a folder and not a hub id (owner/name)",
                file=sys.stderr,
            )
            return 2

    import torch

    from app.explorer import Explorer, ExplorerError, discover_checkpoints
    from app.ui import CONCURRENT_RENDERS, build_demo, launch_options

    # Each concurrent render gets its share of the cores: on 2 cores, one thread per render was 1.5-3x faster than
    # two (bench/app_latency.py, measured while other processes ran).
    torch.set_num_threads(a.threads or max(1, (os.cpu_count() or 1) // CONCURRENT_RENDERS))

    hub = [s.strip() for s in a.allow_hub.split(",") if s.strip()]
    ex = Explorer(
        a.checkpoint,
        allowed=discover_checkpoints(),
        hub_ids=hub,
        hub_max_mb=a.hub_max_mb,
        n_map=a.n_map,
        clip_spec=a.clip,
    )
    last = [-1]

    def report(frac: float, msg: str) -> None:
        pct = int(frac * 100)
        if pct // 10 != last[0] // 10 or pct == 100:
            print(f"[explorer assets {pct:3d}%] {msg}", file=sys.stderr)
        last[0] = pct

    try:
        ex.get(a.checkpoint, progress=report)
    except ExplorerError as e:
        print(
            f"error: {e}\n\nPass a checkpoint folder or hub id with --checkpoint (see python app.py --help).",
            file=sys.stderr,
        )
        return 2
    from app.media import make_gradio_image_cache_atomic

    make_gradio_image_cache_atomic()  # identical images served at once must not truncate each other
    demo = build_demo(ex)
    demo.launch(server_name=a.host, server_port=a.port, share=a.share, **launch_options())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
