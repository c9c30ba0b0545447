"""Data command line.

python -m soda.data export --dataset world --n 10000 --res 64 --split test --out data/world_test64.npz
python -m soda.data export --dataset world --format h5 --n 20000 --out data/3dshapes_world.h5
python -m soda.data sheet --out assets/data/world_contact_sheet.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def _tile(img: torch.Tensor, scale: int):
    from PIL import Image

    arr = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    tile = Image.fromarray(arr)
    return tile.resize((tile.width * scale, tile.height * scale), Image.NEAREST) if scale > 1 else tile


def _two_lines(description: str) -> str:
    """'F3 W7 O1 s1.04 cube -17deg' -> 'F3 W7 O1' and 's1.04 cube -17deg' on two lines."""
    words = description.split(" ")
    return " ".join(words[:3]) + "\n" + " ".join(words[3:])


def contact_sheet(res: int = 64, cols: int = 8, rows: int = 2, seed: int = 0, split: str = "train", scale: int = 2):
    """A PIL image: `rows` x `cols` random scenes from random cameras and one row from the fixed camera, each with
    its factors beneath, then one scene seen from `cols` cameras sweeping the azimuth range."""
    from PIL import Image, ImageDraw, ImageFont

    from soda.data import cameras, world

    g = torch.Generator().manual_seed(seed)
    n = rows * cols
    factors = world.sample_factors(n + 2 * cols, g, split)
    K, c2w = cameras.sample_cameras(n, g, res)
    random_imgs = world.render(factors[:n], K, c2w, res)
    fixed_f = factors[n : n + cols]
    fixed_imgs = world.FixedCameraRenderer(res)(fixed_f)
    scene = factors[n + cols : n + cols + 1].expand(cols, 6)
    az = torch.linspace(*cameras.AZIMUTH_RANGE, cols)
    el = torch.linspace(*cameras.ELEVATION_RANGE, cols)
    Kv, c2wv = cameras.spherical_camera(az, el, 4.0, res, cols)
    sweep_imgs = world.render(scene, Kv, c2wv, res)

    font = ImageFont.load_default()
    tile, pad, text_h, title_h = res * scale, 6, 30, 22
    sections = [
        (
            f"Random scenes ({split} split), random cameras",
            [random_imgs[r * cols : (r + 1) * cols] for r in range(rows)],
            [factors[r * cols : (r + 1) * cols] for r in range(rows)],
        ),
        ("Fixed camera (DEFAULT_CAMERA): the disentanglement view", [fixed_imgs], [fixed_f]),
        ("One scene, cameras sweeping azimuth and elevation (radius 4)", [sweep_imgs], None),
    ]
    height = sum(title_h + len(s[1]) * (tile + text_h + pad) for s in sections) + pad
    width = cols * (tile + pad) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = pad
    for title, img_rows, fac_rows in sections:
        draw.text((pad, y + 4), title, fill=(0, 0, 0), font=font)
        y += title_h
        for r, imgs in enumerate(img_rows):
            for c in range(cols):
                x = pad + c * (tile + pad)
                sheet.paste(_tile(imgs[c], scale), (x, y))
                if fac_rows is not None:
                    text = _two_lines(world.describe(fac_rows[r][c]))
                else:
                    text = f"az {az[c]:+.0f} el {el[c]:.0f}" + ("\n" + world.describe(scene[0]) if c == 0 else "")
                draw.multiline_text((x, y + tile + 2), text, fill=(0, 0, 0), font=font, spacing=2)
            y += tile + text_h + pad
    return sheet


def _export(args) -> int:
    from soda.data import views

    if args.dataset != "world":
        print(f"export: only --dataset world can be generated here (got {args.dataset!r})", file=sys.stderr)
        return 2
    if args.format == "h5":
        if args.res != 64:
            print("export: the Shapes3D h5 layout is 64 px; drop --res or use --format npz", file=sys.stderr)
            return 2
        path = views.export_shapes3d_h5(
            args.out, None if args.n <= 0 else args.n, args.split, args.seed, args.camera, args.device
        )
    else:
        path = views.export_world(args.out, args.n, args.res, args.split, args.seed, args.camera, args.device)
    print(f"wrote {path}")
    return 0


def _sheet(args) -> int:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(args.res, args.cols, args.rows, args.seed, args.split).save(out)
    print(f"wrote {out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m soda.data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="render a labelled dataset to disk (.npz, or the Shapes3D .h5 layout)")
    e.add_argument("--dataset", default="world", help="only 'world' (the procedural world) is generated")
    e.add_argument(
        "--n", type=int, default=10000, help="number of scenes (h5 format: 0 = the whole split in grid order)"
    )
    e.add_argument("--res", type=int, default=64)
    e.add_argument("--split", default="test", choices=["train", "test", "all"])
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--camera", default="fixed", choices=["fixed", "random"])
    e.add_argument("--format", default="npz", choices=["npz", "h5"])
    e.add_argument("--device", default="cpu")
    e.add_argument("--out", required=True)
    s = sub.add_parser("sheet", help="write a contact-sheet PNG of world samples with their factors")
    s.add_argument("--out", default="assets/data/world_contact_sheet.png")
    s.add_argument("--res", type=int, default=64)
    s.add_argument("--cols", type=int, default=8)
    s.add_argument("--rows", type=int, default=2)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--split", default="train", choices=["train", "test", "all"])
    dg = sub.add_parser("digits", help="write scikit-learn's 8x8 digits as an image folder with labels.csv")
    dg.add_argument("--out", default="data/digits")
    dg.add_argument("--res", type=int, default=32)
    dg.add_argument("--test-size", type=float, default=0.2, help="held-out share, stratified by digit")
    dg.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.command == "digits":
        from .digits import write_digits

        print(f"wrote {write_digits(args.out, args.res, args.test_size, args.seed)}")
        return 0
    return _export(args) if args.command == "export" else _sheet(args)


if __name__ == "__main__":
    raise SystemExit(main())
