"""Generate the bad-input corpus: odd and broken images, recipes and checkpoints, and a pickle that runs code.

    python scripts/make_bad_inputs.py [OUT] [--sentinel PATH]        (OUT defaults to tests/data/bad)

Everything is generated (nothing is a hand-edited binary), in a second or two. OUT gets::

    images/       corrupt PNG / JPEG, 0-byte file, text and SVG renamed .png, a decompression bomb header, an
                  8000 x 8000 image (solid colour: ~100 KB), 1x1, RGBA, LA, palette, 16-bit, 1-bit, float TIFF,
                  grayscale, CMYK JPEG, animated GIF, an EXIF-rotated photo, a JPEG named .png
    recipes/      JSON recipes with NaN / Infinity / 1e999, missing keys, wrong lengths and types, 100k-deep nesting,
                  more than 1 MB, binary junk, ... and one good recipe (the control)
    checkpoints/  a good tiny checkpoint (the control), model.safetensors that is a pickle, a pickle-only folder,
                  truncated safetensors, weights of another architecture, a config with a typo'd key, a config asking
                  for a 3-billion-parameter model, a negative width, foreign / deep / non-JSON configs, no config
    evil.pt       a torch.save pickle whose unpickling creates the file ``--sentinel`` (and does nothing else)
    manifest.json every case: file, kind, whether the app must accept or refuse it, and words its message must contain

The tests (tests/test_reliability_inputs.py, tests/test_safety.py) call ``make_corpus(tmp_dir, sentinel)`` and drive
every case through the app's API. ``CASES`` is static so that tests can be parametrised without generating files.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
Z_DIM = 20  # the `tiny` preset: recipes are made for it
EDIT = "section0.pc1"


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # image | recipe | checkpoint | pickle
    file: str  # relative to the corpus folder
    expect: str  # accept | refuse
    words: str = ""  # a regular expression the refusal message must match


def _cases() -> dict[str, Case]:
    img = [
        ("corrupt_png", "corrupt_truncated.png", "refuse", "corrupt or truncated"),
        ("corrupt_png_crc", "corrupt_crc.png", "refuse", "corrupt or truncated"),
        ("corrupt_jpeg", "corrupt_truncated.jpg", "refuse", "corrupt or truncated"),
        ("garbage_jpeg", "garbage.jpg", "refuse", "not an image|corrupt"),
        ("empty", "empty.png", "refuse", r"empty \(0 bytes\)"),
        ("text_as_png", "text.png", "refuse", "not an image"),
        ("svg_as_png", "script.png", "refuse", "not an image"),
        ("bomb_header", "bomb.png", "refuse", "too large to decode safely|megapixels"),
        ("huge_8000", "huge_8000.png", "accept", ""),
        ("one_pixel", "one_pixel.png", "accept", ""),
        ("rgba", "rgba.png", "accept", ""),
        ("gray_alpha", "gray_alpha.png", "accept", ""),
        ("palette", "palette.png", "accept", ""),
        ("sixteen_bit", "sixteen_bit.png", "accept", ""),
        ("one_bit", "one_bit.png", "accept", ""),
        ("float_tiff", "float.tiff", "accept", ""),
        ("grayscale", "grayscale.jpg", "accept", ""),
        ("cmyk_jpeg", "cmyk.jpg", "accept", ""),
        ("animated_gif", "animated.gif", "accept", ""),
        ("exif_rotated", "exif_rotated.jpg", "accept", ""),
        ("jpeg_named_png", "jpeg_inside.png", "accept", ""),
        ("evil_pickle_as_image", "../evil.pt", "refuse", "not an image"),
    ]
    rec = [
        ("good", "accept", ""),
        ("nan_latent", "refuse", "NaN or infinity"),
        ("inf_edit", "refuse", "finite number"),
        ("overflow_latent", "refuse", "NaN or infinity"),
        ("huge_latent", "refuse", r"within \+-"),
        ("nan_camera", "refuse", "camera"),
        ("nan_steps", "refuse", "steps"),
        ("inf_steps", "refuse", "steps"),
        ("float_steps", "refuse", "steps"),
        ("bool_steps", "refuse", "steps"),
        ("negative_seed", "refuse", "seed"),
        ("missing_keys", "refuse", "missing latent, seed"),
        ("short_latent", "refuse", "has 5 numbers"),
        ("long_latent", "refuse", f"has {Z_DIM + 7} numbers"),
        ("string_latent", "refuse", "list of numbers"),
        ("edits_not_dict", "refuse", "edits"),
        ("unknown_edit", "refuse", "unknown"),
        ("wrong_format", "refuse", "not a SODA recipe"),
        ("not_object", "refuse", "JSON object"),
        ("not_json", "refuse", "not valid JSON"),
        ("empty", "refuse", "not valid JSON|no recipe"),
        ("binary", "refuse", "not valid JSON"),
        ("deep_nesting", "refuse", "nested too deeply"),
        ("too_large", "refuse", "too large"),
        ("path_checkpoint", "accept", ""),  # names '../../etc': replayed on the session's checkpoint, with a note
    ]
    ck = [
        ("good", "accept", ""),
        ("pickle_as_safetensors", "refuse", "not a readable safetensors file"),
        ("pickle_only", "refuse", "no model.safetensors"),
        ("truncated_safetensors", "refuse", "not a readable safetensors file"),
        ("header_only_safetensors", "refuse", "not a readable safetensors file"),
        ("wrong_architecture", "refuse", "do not match the architecture"),
        ("typo_config", "refuse", "did you mean 'model.unet.base_channels'"),
        ("gigantic_config", "refuse", "do not match the architecture"),
        ("negative_width", "refuse", "cannot be built|must"),
        ("foreign_config", "refuse", "not a SODA checkpoint"),
        ("deep_config", "refuse", "not a usable SODA config|not a readable JSON"),
        ("config_not_json", "refuse", "not a readable JSON config"),
        ("no_config", "refuse", "not a SODA checkpoint folder"),
        ("file_not_folder", "refuse", "expected a checkpoint folder"),
    ]
    out = {}
    for name, file, expect, words in img:
        out[f"image/{name}"] = Case(f"image/{name}", "image", f"images/{file}", expect, words)
    for name, expect, words in rec:
        out[f"recipe/{name}"] = Case(f"recipe/{name}", "recipe", f"recipes/{name}.json", expect, words)
    for name, expect, words in ck:
        file = "checkpoints/file_not_folder.safetensors" if name == "file_not_folder" else f"checkpoints/{name}"
        out[f"checkpoint/{name}"] = Case(f"checkpoint/{name}", "checkpoint", file, expect, words)
    out["pickle/evil"] = Case("pickle/evil", "pickle", "evil.pt", "refuse", "")
    return out


CASES = _cases()


# ------------------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------------------


def _png_bytes(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header claiming width x height 1-bit pixels, with one tiny IDAT: 10 Gpx announced, 100 bytes
    on disk. A reader that allocates before checking the size runs out of memory."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A width x height RGB PNG of one colour, written directly: the first row holds the pixels and every other
    row is 'same as above' (PNG filter Up of zeros), which zlib shrinks ~1000x. Faster than PIL's encoder."""
    z = zlib.compressobj(6)
    parts = [z.compress(b"\x00" + bytes(rgb) * width)]
    rows = b"\x02" + bytes(3 * width)
    for start in range(1, height, 500):
        parts.append(z.compress(rows * min(500, height - start)))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def make_images(folder: Path) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noise = (rng.random((40, 64, 3)) * 255).astype(np.uint8)
    good = _png_bytes(Image.fromarray(noise))
    (folder / "corrupt_truncated.png").write_bytes(good[: len(good) // 2])
    bad = bytearray(good)
    i = bad.index(b"IDAT") + 20
    bad[i : i + 8] = bytes(b ^ 0xFF for b in bad[i : i + 8])  # flip bits inside the compressed data: CRC fails
    (folder / "corrupt_crc.png").write_bytes(bytes(bad))
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="JPEG", quality=90)
    jpg = buf.getvalue()
    (folder / "corrupt_truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    (folder / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image, just text renamed to .png\n")
    (folder / "script.png").write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>\n')
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "huge_8000.png").write_bytes(solid_png(8000, 8000, (200, 30, 30)))  # 200 KB; 192 MB decoded
    Image.new("RGB", (1, 1), (10, 200, 60)).save(folder / "one_pixel.png")
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, 16:] = (0, 0, 255, 255)  # left half fully transparent (-> white), right half opaque blue
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    la = np.zeros((32, 32, 2), np.uint8)
    la[..., 0], la[..., 1] = 0, 0  # black but fully transparent -> white
    Image.fromarray(la, "LA").save(folder / "gray_alpha.png")
    Image.fromarray(noise).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(folder / "palette.png")
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))  # left black .. right white, 16-bit
    Image.fromarray(ramp).save(folder / "sixteen_bit.png")
    Image.fromarray(noise[..., 0] > 127).save(folder / "one_bit.png")
    Image.fromarray(np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1)), "F").save(folder / "float.tiff")
    Image.fromarray(noise).convert("L").save(folder / "grayscale.jpg", quality=95)
    Image.fromarray(noise).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    frames = [Image.new("RGB", (24, 24), c) for c in ((5, 5, 5), (250, 250, 250), (250, 0, 0))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=60, loop=0)
    # a landscape photo, top half red and bottom half blue, whose EXIF says "rotate 90 degrees clockwise to view"
    # (orientation 6): shown upright it is portrait, left half blue and right half red.
    photo = np.zeros((32, 64, 3), np.uint8)
    photo[:16] = (220, 20, 20)
    photo[16:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo).save(folder / "exif_rotated.jpg", quality=95, exif=exif.tobytes())
    (folder / "jpeg_inside.png").write_bytes(jpg)


# ------------------------------------------------------------------------------------------------------------
# Recipes
# ------------------------------------------------------------------------------------------------------------


def good_recipe(z_dim: int = Z_DIM, edit: str = EDIT) -> dict:
    return {
        "format": "soda-recipe",
        "version": 1,
        "latent": [0.1 * ((i % 7) - 3) for i in range(z_dim)],
        "edits": {edit: 1.0},
        "seed": 3,
        "steps": 4,
        "sampler": "ddim",
        "camera": None,
    }


def _with_raw(d: dict, key: str, raw: str) -> str:
    """JSON text of ``d`` with the value of ``key`` replaced by raw JSON (numbers json.dumps never writes)."""
    return json.dumps({**d, key: "@RAW@"}).replace('"@RAW@"', raw)


def make_recipes(folder: Path, base: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    g = dict(base or good_recipe())
    lat = list(g["latent"])
    edit = next(iter(g["edits"]), EDIT)

    def put(name: str, d) -> None:
        text = d if isinstance(d, str) else json.dumps(d, allow_nan=True)
        (folder / f"{name}.json").write_text(text)

    put("good", g)
    put("nan_latent", {**g, "latent": [float("nan"), *lat[1:]]})  # the literal NaN
    put("inf_edit", {**g, "edits": {edit: float("inf")}})  # the literal Infinity
    put("overflow_latent", _with_raw(g, "latent", "[1e999, " + ", ".join(map(json.dumps, lat[1:])) + "]"))
    put("huge_latent", {**g, "latent": [1e300, *lat[1:]]})  # finite in float64, inf in float32
    put("nan_camera", {**g, "camera": {"azimuth": float("nan"), "elevation": 10.0, "radius": 4.0}})
    put("nan_steps", {**g, "steps": float("nan")})
    put("inf_steps", _with_raw(g, "steps", "1e999"))  # parses as float infinity
    put("float_steps", {**g, "steps": 2.5})
    put("bool_steps", {**g, "steps": True})
    put("negative_seed", {**g, "seed": -1})
    put("missing_keys", {k: v for k, v in g.items() if k not in ("latent", "seed")})
    put("short_latent", {**g, "latent": lat[:5]})
    put("long_latent", {**g, "latent": lat + [0.0] * 7})
    put("string_latent", {**g, "latent": "0.1, 0.2"})
    put("edits_not_dict", {**g, "edits": [[edit, 1.0]]})
    put("unknown_edit", {**g, "edits": {"section99.pc9": 1.0}})
    put("wrong_format", {**g, "format": "something-else"})
    put("not_object", json.dumps([1, 2, 3]))
    put("not_json", "{this is not json")
    put("empty", "")
    (folder / "binary.json").write_bytes(bytes(range(256)) * 8)
    put("deep_nesting", "[" * 100_000 + "]" * 100_000)  # 200 KB; blows the JSON parser's recursion limit
    put("too_large", {**g, "padding": "x" * (1 << 20)})
    put("path_checkpoint", {**g, "checkpoint": "../../../../etc"})


# ------------------------------------------------------------------------------------------------------------
# Pickles and checkpoints
# ------------------------------------------------------------------------------------------------------------


class _TouchOnUnpickle:
    """Unpickling this creates the sentinel file (and nothing else): proof that something unpickled it."""

    def __init__(self, sentinel: Path):
        self.sentinel = Path(sentinel)

    def __reduce__(self):
        return Path.touch, (self.sentinel,)


def evil_pickle_bytes(sentinel: Path) -> bytes:
    """A torch.save file (zip + pickle) that runs ``Path(sentinel).touch()`` when loaded with weights_only=False."""
    import torch

    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(2)}, "payload": _TouchOnUnpickle(sentinel)}, buf)
    return buf.getvalue()


def make_checkpoints(folder: Path, sentinel: Path) -> None:
    import shutil

    import torch

    sys.path.insert(0, str(ROOT))
    from soda.config import SODAConfig
    from soda.model import SODA

    folder.mkdir(parents=True, exist_ok=True)
    cfg = SODAConfig.from_yaml("tiny")
    torch.manual_seed(0)
    good = SODA(cfg.model).save_pretrained(folder / "good", full_config=cfg)
    weights = (good / "model.safetensors").read_bytes()
    config = json.loads((good / "config.json").read_text())

    def folder_with(name: str, cfg_json=None, weights_bytes: bytes | None = None, weights_name="model.safetensors"):
        d = folder / name
        d.mkdir(exist_ok=True)
        if cfg_json is not None:
            text = cfg_json if isinstance(cfg_json, str) else json.dumps(cfg_json, indent=1)
            (d / "config.json").write_text(text)
        if weights_bytes is not None:
            (d / weights_name).write_bytes(weights_bytes)
        return d

    evil = evil_pickle_bytes(sentinel)
    folder_with("pickle_as_safetensors", config, evil)
    folder_with("pickle_only", config, evil, "pytorch_model.bin")
    folder_with("truncated_safetensors", config, weights[: len(weights) // 2])
    folder_with("header_only_safetensors", config, weights[:6])
    other = SODAConfig.from_yaml("tiny", ["--model.latent.z_dim=40", "--model.unet.base_channels=24"])
    tmp = SODA(other.model).save_pretrained(folder / ".other", full_config=other)
    folder_with("wrong_architecture", config, (tmp / "model.safetensors").read_bytes())
    shutil.rmtree(tmp)
    typo = json.loads(json.dumps(config))
    unet = typo["config"]["model"]["unet"]
    unet["base_chanels"] = unet.pop("base_channels")
    folder_with("typo_config", typo, weights)
    giant = json.loads(json.dumps(config))
    giant["config"]["model"]["unet"]["base_channels"] = 4096  # ~3 billion parameters: 12 GB if it were built
    folder_with("gigantic_config", giant, weights)
    negative = json.loads(json.dumps(config))
    negative["config"]["model"]["unet"]["base_channels"] = -16
    folder_with("negative_width", negative, weights)
    folder_with("foreign_config", {"architectures": ["BertModel"], "model_type": "bert"}, weights)
    folder_with("deep_config", '{"format": "soda", "format_version": 1, "config": ' + "[" * 100_000, weights)
    folder_with("config_not_json", "format: soda\nthis is YAML, not JSON\n", weights)
    folder_with("no_config", None, weights)
    (folder / "file_not_folder.safetensors").write_bytes(weights)


# ------------------------------------------------------------------------------------------------------------


def make_corpus(out: str | Path, sentinel: str | Path | None = None, recipe: dict | None = None) -> dict[str, Path]:
    """Write the whole corpus into ``out`` -> {case name: path}. The pickle payload creates ``sentinel`` (default
    ``out/UNPICKLED``) if anything ever unpickles it; ``recipe`` is the good recipe the bad ones are made from."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sentinel = Path(sentinel) if sentinel else out / "UNPICKLED"
    make_images(out / "images")
    make_recipes(out / "recipes", recipe)
    make_checkpoints(out / "checkpoints", sentinel)
    (out / "evil.pt").write_bytes(evil_pickle_bytes(sentinel))
    manifest = {"sentinel": str(sentinel), "cases": [asdict(c) for c in CASES.values()]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    paths = {name: (out / c.file).resolve() for name, c in CASES.items()}
    missing = [n for n, p in paths.items() if not p.exists()]
    if missing:
        raise RuntimeError(f"corpus cases without a file: {missing}")
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", nargs="?", default=str(ROOT / "tests" / "data" / "bad"))
    p.add_argument("--sentinel", default=None, help="file the pickle payload creates (default OUT/UNPICKLED)")
    a = p.parse_args(argv)
    paths = make_corpus(a.out, a.sentinel)
    print(f"{len(paths)} cases in {a.out} (manifest.json lists what the app must do with each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
