"""Command line: check CLIP weights, and validate slider names against the procedural world's ground truth.

    python -m soda.clip check [--clip SPEC] [--checkpoint DIR]
    python -m soda.clip validate --checkpoint DIR [--clip SPEC] --out DIR [--components 1] [--refs 2]

``validate`` writes OUT/clip_validation.md and OUT/clip_validation.json (and caches classifiers in OUT/cache unless
--cache says otherwise). Without a CLIP spec (flag, $SODA_CLIP or model card) it still writes the factor table and
says how to add CLIP; with a spec that cannot be loaded it exits with status 2 and the instructions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..atomic import write_json, write_text


def _progress(fraction: float, message: str) -> None:
    print(f"\r[{fraction:4.0%}] {message:<60}", end="", file=sys.stderr, flush=True)


def _load(spec: str | None, checkpoint: str | None, device: str, required: bool):
    from .loading import load_clip
    from .specs import ClipUnavailable, resolve_spec

    if not required and resolve_spec(spec, checkpoint) is None:
        return None, "no CLIP spec given: factor table only (see docs/CLIP.md to add CLIP names)"
    try:
        return load_clip(spec, device, checkpoint_dir=checkpoint), None
    except ClipUnavailable as e:
        print(str(e), file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m soda.clip", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="load the CLIP weights (or print what to provide)")
    c.add_argument("--clip", help="ARCH:PATH, local-dir:DIR, hf-hub:ORG/NAME (default: $SODA_CLIP, model card)")
    c.add_argument("--checkpoint", help="SODA checkpoint folder whose model card may name the CLIP weights")
    c.add_argument("--device", default="cpu")
    v = sub.add_parser("validate", help="which factor each slider moves, and whether CLIP names it so")
    v.add_argument("--checkpoint", required=True, help="SODA checkpoint folder (or hub id) trained on the world")
    v.add_argument("--clip", help="CLIP spec (default: $SODA_CLIP, then the checkpoint's model card)")
    v.add_argument("--out", required=True, help="folder for clip_validation.md / .json")
    v.add_argument("--cache", help="cache folder (default OUT/cache)")
    v.add_argument("--components", type=int, default=1, help="principal directions per section")
    v.add_argument("--refs", type=int, default=2, help="reference latents per traversal")
    v.add_argument("--data", type=int, default=512, help="held-out scenes encoded for the directions")
    v.add_argument("--decode-steps", type=int, default=None, help="sampler steps per frame (default: preview)")
    v.add_argument("--vocabulary", help="text file, one 'name: prompt | prompt' per line")
    v.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    if args.cmd == "check":
        clip, _ = _load(args.clip, args.checkpoint, args.device, required=True)
        print(f"ok: {clip.spec} (embedding {clip.embed_dim}, input {clip.image_size[0]} px, key {clip.key})")
        return 0

    from .. import api
    from .naming import DEFAULT_VOCABULARY, parse_vocabulary
    from .validate import validate_names

    model = api.load_model(args.checkpoint, args.device)
    ckpt_dir = model.checkpoint_dir
    clip, note = _load(args.clip, str(ckpt_dir) if ckpt_dir else None, args.device, required=args.clip is not None)
    if note:
        print(note, file=sys.stderr)
    vocab = parse_vocabulary(Path(args.vocabulary).read_text()) if args.vocabulary else DEFAULT_VOCABULARY
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = validate_names(
        model,
        clip,
        n_components=args.components,
        n_refs=args.refs,
        n_data=args.data,
        vocabulary=vocab,
        decode_steps=args.decode_steps,
        cache=args.cache or out / "cache",
        progress=_progress,
    )
    print(file=sys.stderr)
    md = f"# Slider names vs ground truth: `{args.checkpoint}`\n\n{result.markdown()}\n"
    write_text(out / "clip_validation.md", md)
    write_json(out / "clip_validation.json", result.to_json(), indent=1)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
