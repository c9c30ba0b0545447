"""``python -m soda.eval --checkpoint PATH --out DIR [--compare PATH ...] [--clip SPEC]``: every protocol, report.md,
metrics.json (and, when CLIP weights load, the CLIP slider-name agreement table)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..atomic import write_text


def main(argv: list[str] | None = None) -> int:
    from .runner import EvalSizes

    d = EvalSizes()
    p = argparse.ArgumentParser(prog="python -m soda.eval", description=__doc__)
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (model.safetensors + config.json)")
    p.add_argument("--out", required=True, help="output folder for report.md, metrics.json and figures")
    p.add_argument(
        "--compare",
        nargs="*",
        default=[],
        metavar="CKPT",
        help="more checkpoints evaluated the same way and put side by side in one table",
    )
    p.add_argument("--dci-train", type=int, default=d.dci_train)
    p.add_argument("--dci-test", type=int, default=d.dci_test)
    p.add_argument("--probe-train", type=int, default=d.probe_train)
    p.add_argument("--probe-test", type=int, default=d.probe_test)
    p.add_argument("--recon", type=int, default=d.recon, help="held-out images to reconstruct")
    p.add_argument("--nvs-scenes", type=int, default=d.nvs_scenes)
    p.add_argument("--nvs-views", type=int, default=d.nvs_views)
    p.add_argument("--steps", type=int, default=d.steps, help="sampler steps for SODA decoding")
    p.add_argument("--sampler", default=d.sampler, choices=["ddim", "dpmpp_2m"])
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--edit-scenes", type=int, default=d.edit_scenes, help="edit fidelity: scenes per slider (0: skip)")
    p.add_argument("--edit-strengths", default=d.edit_strengths, help="edit fidelity: slider strengths in std")
    p.add_argument("--view-scenes", type=int, default=d.view_scenes, help="novel-view identity: held-out scenes")
    p.add_argument("--view-frames", type=int, default=d.view_frames, help="novel-view identity: orbit frames")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse an existing metrics.json of the same checkpoint step and sizes (resumable comparisons)",
    )
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--clip",
        metavar="SPEC",
        default=None,
        help="open_clip weights (ARCH:PATH, local-dir:DIR, hf-hub:ORG/NAME; default $SODA_CLIP, then the model card): "
        "adds the table of CLIP slider names vs ground-truth factors (soda.clip.validate_names); without weights the "
        "report says why it was skipped",
    )
    a = p.parse_args(argv)

    from dataclasses import asdict

    import torch
    from tqdm import tqdm

    from ..config import ConfigError
    from ..model import load_pretrained
    from .report import clip_validation, comparison_table, make_figures, save_metrics, write_report
    from .runner import run_all

    if a.threads:
        torch.set_num_threads(a.threads)
    sizes = EvalSizes(
        a.dci_train,
        a.dci_test,
        a.probe_train,
        a.probe_test,
        a.recon,
        a.nvs_scenes,
        a.nvs_views,
        a.steps,
        a.sampler,
        a.seed,
        a.edit_scenes,
        a.edit_strengths,
        a.view_scenes,
        a.view_frames,
    )
    command = "python -m soda.eval " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    rows = []
    for i, ck in enumerate([a.checkpoint, *a.compare]):
        try:
            model = load_pretrained(ck)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        label = display_name(ck)
        out = Path(a.out) if i == 0 else Path(a.out) / "compare" / label
        if model.full_config.data.dataset == "folder":  # held-out files, probes per label column (soda.eval.folder)
            from .folder import evaluate_folder_checkpoint

            rows.append((label, evaluate_folder_checkpoint(model, ck, label, out, sizes, command, not a.no_figures)))
            continue
        if model.full_config.data.dataset != "world":
            print(
                f"error: {ck}: automatic evaluation covers procedural-world and image-folder checkpoints only "
                f"(this one was trained on '{model.full_config.data.dataset}')",
                file=sys.stderr,
            )
            return 2
        out.mkdir(parents=True, exist_ok=True)
        train_meta = json.loads((Path(model.checkpoint_dir) / "config.json").read_text()).get("train", {})
        if a.reuse and (out / "metrics.json").exists():
            old = json.loads((out / "metrics.json").read_text())
            if old.get("sizes") == asdict(sizes) and old.get("step") == train_meta.get("step"):
                print(f"{ck}: reusing {out / 'metrics.json'}", file=sys.stderr)
                rows.append((label, old))
                continue
        bars: dict[str, tqdm] = {}

        def progress(stage: str, j: int, n: int, bars=bars, name=label) -> None:
            if stage not in bars:
                bars[stage] = tqdm(total=n, desc=f"{name}: {stage}", leave=False, file=sys.stderr)
            bars[stage].n = j
            bars[stage].refresh()

        figures: dict = {}
        m = run_all(model, sizes, progress, figures=None if a.no_figures else figures)
        for b in bars.values():
            b.close()
        m["images_seen"] = train_meta.get("images_seen")
        m["step"] = train_meta.get("step")
        card = {
            "checkpoint": ck,
            "kind": model.cfg.kind,
            "z_dim": model.cfg.latent.z_dim,
            "command": command,
            "step": m["step"],
            "images_seen": m["images_seen"],
        }
        files = {} if a.no_figures else make_figures(model, figures, out, sizes.steps, sizes.seed)

        def clip_progress(f: float, msg: str, name=label) -> None:
            print(f"\r{name}: CLIP validation [{f:4.0%}] {msg:<50}", end="", file=sys.stderr, flush=True)

        clip = clip_validation(
            model, a.clip, out, seed=a.seed, cache=Path(a.out) / "clip-cache", progress=clip_progress
        )
        if clip["status"] == "done":
            print(file=sys.stderr)
        else:
            print(f"{ck}: CLIP validation skipped: {clip['reason']}", file=sys.stderr)
        m["clip_names"] = {k: v for k, v in clip.items() if k != "markdown"}
        save_metrics(out, m)
        write_report(out, label, m, files, card, clip=clip)
        rows.append((label, m))
        print(
            f"{ck}: recon PSNR {m['reconstruction']['psnr']:.2f} dB, "
            f"NVS PSNR {m.get('novel_view', {}).get('psnr', float('nan')):.2f} dB, "
            f"DCI D {m['dci']['disentanglement']:.3f}, probe shape {m['probes']['shape']['linear']:.3f}"
        )
    if len(rows) > 1:
        if all(m.get("dataset") == "folder" for _, m in rows):
            from .folder import folder_comparison_table as comparison_table
        table = comparison_table(rows)
        write_text(Path(a.out) / "comparison.md", "# Comparison\n\n" + table + "\n")
        with open(Path(a.out) / "report.md", "a") as f:
            f.write("\n## Comparison\n\n" + table + "\n")
        print(table)
    return 0


def display_name(ck: str) -> str:
    """A run's EMA folder is named after its run (runs/x/ema -> x)."""
    p = Path(ck)
    return p.parent.name if p.name == "ema" and p.parent.name else p.name


if __name__ == "__main__":
    sys.exit(main())
