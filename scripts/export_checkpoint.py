"""Copy a run's EMA inference weights into a bundled checkpoint folder with its model card.

    python scripts/export_checkpoint.py runs/world32-cpu assets/checkpoints/world32 --command "..." [--notes FILE]

Only model.safetensors + config.json (+ README.md, the card) are written; optimizer state never leaves the run folder.
config.json records the sha256 of model.safetensors (``weights_sha256``), which loading checks.
The card's numbers come from the run's own files (config.json train metadata, metrics.jsonl) and, when present, the
evaluation report's metrics.json in the destination folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("dest")
    p.add_argument("--command", required=True, help="the exact training command(s), for the card")
    p.add_argument("--notes", default="", help="a Markdown file with extra notes for the card (history, caveats)")
    p.add_argument("--hardware", default=f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})")
    a = p.parse_args()
    run, dest = Path(a.run), Path(a.dest)
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("model.safetensors", "config.json"):
        tmp = dest / f".{f}.tmp"
        shutil.copyfile(run / "ema" / f, tmp)
        os.replace(tmp, dest / f)
    meta = record_weights_hash(dest)
    tr = meta.get("train", {})
    cfg = meta["config"]
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    vals = [r for r in recs if "val_loss" in r]
    metrics_file = dest / "report" / "metrics.json"
    m = json.loads(metrics_file.read_text()) if metrics_file.exists() else None
    n_params = _params(dest)
    lines = [
        "---",
        "library_name: soda-explorer",
        "tags: [soda, diffusion, representation-learning, procedural-world]",
        "---",
        f"# {cfg.get('name', dest.name)}: SODA on the procedural world ({cfg['model']['res']} px)",
        "",
        "EMA inference weights of a SODA bottleneck diffusion model (encoder + sectioned latent + modulated UNet) "
        "trained on multi-view pairs of the project's procedural world (floor, walls, one object; Shapes3D factor "
        "grid; random cameras with exact poses).",
        "",
        "| | |",
        "| --- | --- |",
        f"| parameters | {n_params / 1e6:.2f} M |",
        f"| latent | z_dim {cfg['model']['latent']['z_dim']}, sections "
        f"{cfg['model']['latent']['n_sections'] or 2 * len(cfg['model']['unet']['channel_mult']) + 1} |",
        f"| data | procedural world, `{cfg['data']['mode']}` pairs, p_identity {cfg['data']['p_identity']}, "
        "training split (held-out factor combinations never rendered) |",
        f"| steps | {tr.get('step')} (batch {cfg['train']['batch_size']}) |",
        f"| images seen | {tr.get('images_seen')} |",
        f"| wall time | {tr.get('train_seconds', 0) / 3600:.2f} h of training |",
        f"| hardware | {a.hardware}, shared with other jobs |",
        f"| last held-out loss | {vals[-1]['val_loss']:.4f} at step {vals[-1]['step']} |" if vals else "",
        "",
        "## Command",
        "",
        "```bash",
        a.command,
        "```",
        "",
    ]
    if m:
        lines += [
            "## Metrics (held-out scenes; see report/report.md)",
            "",
            f"- reconstruction PSNR {m['reconstruction']['psnr']:.2f} dB, SSIM {m['reconstruction']['ssim']:.3f}",
            f"- novel-view PSNR {m.get('novel_view', {}).get('psnr', float('nan')):.2f} dB",
            f"- linear probe: shape {m['probes']['shape']['linear']:.3f}, object hue "
            f"{m['probes']['object_hue']['linear']:.3f}",
            f"- DCI disentanglement {m['dci']['disentanglement']:.3f}, completeness {m['dci']['completeness']:.3f}; "
            f"MIG {m['mig']:.3f}",
        ]
        if "psnr_object" in m["reconstruction"]:
            lines.append(f"- reconstruction PSNR on the object's pixels {m['reconstruction']['psnr_object']:.2f} dB")
        if "z_use_gap" in m:
            g = m["z_use_gap"]["t1"]
            lines.append(
                f"- z-use gap at t = 1 (x0-hat PSNR, true z minus another scene's z): {g['gap']:.2f} dB on all "
                f"pixels, {g['gap_object']:.2f} dB on the object's pixels"
            )
        lines.append("")
    if vals:
        stride = max(1, len(vals) // 12)
        picked = vals[::stride] + ([vals[-1]] if (len(vals) - 1) % stride else [])
        if all("recon_psnr" in r for r in vals):
            lines += [
                "## Held-out curves (the trainer's checkpoint metrics: 64 held-out scenes, DDIM 20 steps)",
                "",
                "| step | images seen | held-out loss | recon PSNR | object PSNR | z gap t=1 | z gap t=1 (object) |",
                "| --- | --- | --- | --- | --- | --- | --- |",
            ]
            lines += [
                f"| {r['step']} | {r['images_seen']} | {r['val_loss']:.4f} | {r['recon_psnr']:.2f} | "
                f"{r['recon_psnr_object']:.2f} | {r['zgap_t1']:.2f} | {r['zgap_t1_object']:.2f} |"
                for r in picked
            ]
        else:
            lines += ["## Held-out loss curve", "", "| step | images seen | held-out loss |", "| --- | --- | --- |"]
            lines += [f"| {r['step']} | {r['images_seen']} | {r['val_loss']:.4f} |" for r in picked]
        lines.append("")
    if a.notes:
        lines += [Path(a.notes).read_text(), ""]
    (dest / "README.md").write_text("\n".join(x for x in lines if x is not None))
    print(f"wrote {dest}")


def record_weights_hash(dest: Path) -> dict:
    """Record the sha256 of the copied model.safetensors in dest's config.json (what loading checks); a hash that
    the run's ema/config.json already records must match the copy -> the config.json metadata."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from soda.model.io import HASH_KEY, file_sha256

    meta = json.loads((dest / "config.json").read_text())
    sha = file_sha256(dest / "model.safetensors")
    if meta.get(HASH_KEY) not in (None, sha):
        raise SystemExit(f"error: {dest / 'model.safetensors'} does not match the {HASH_KEY} of the run's config.json")
    meta[HASH_KEY] = sha
    tmp = dest / ".config.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, dest / "config.json")
    return meta


def _params(dest: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(dest / "model.safetensors"), "pt") as f:
        return sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


if __name__ == "__main__":
    main()
