"""Non-scene images for the out-of-distribution benchmark (bench/ood.py), assembled from what installed packages ship
plus synthetic ones. Nothing is downloaded: a package that is missing simply contributes nothing.

    non_scene_images(res) -> [(name, category, (res, res, 3) uint8), ...]

Categories: ``photo`` (the sample photographs of scikit-image, scikit-learn and matplotlib: a centre crop and three
seeded random crops of each), ``face`` (scikit-image's LFW subset), ``noise``, ``gradient``, ``text``, ``flat``
(flat colour), ``checkerboard``, ``stripes`` and ``wheel`` (colour wheels). Deterministic: the same list every call.
"""

from __future__ import annotations

import colorsys
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PHOTO_CROPS = 3  # random crops per photo, besides the centre crop
N_FACES = 24


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sample_photo_files() -> list[Path]:
    """Image files shipped inside installed packages (scikit-image, scikit-learn, matplotlib), sorted."""
    out: list[Path] = []
    sk = _package_dir("skimage")
    if sk is not None:
        out += sorted(p for p in (sk / "data").glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    sl = _package_dir("sklearn")
    if sl is not None:
        out += sorted((sl / "datasets" / "images").glob("*.jpg"))
    mpl = _package_dir("matplotlib")
    if mpl is not None:
        out += sorted(p for p in (mpl / "mpl-data" / "sample_data").glob("*") if p.suffix.lower() in (".png", ".jpg"))
    return out


def _rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "P", "PA"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    if im.mode in ("I", "I;16", "F"):
        a = np.asarray(im, dtype=np.float64)
        a = (a - a.min()) / max(a.max() - a.min(), 1e-12) * 255
        return Image.fromarray(a.astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def _square(im: Image.Image, box: tuple[int, int, int], res: int) -> np.ndarray:
    x, y, s = box
    return np.asarray(im.resize((res, res), Image.Resampling.LANCZOS, box=(x, y, x + s, y + s)), dtype=np.uint8)


def photos(res: int, seed: int = 0) -> list[tuple[str, str, np.ndarray]]:
    """Each sample photo: its centre crop (what the app does to an upload) and PHOTO_CROPS seeded random crops."""
    rng = np.random.default_rng(seed)
    out = []
    for p in sample_photo_files():
        try:
            with Image.open(p) as raw:
                im = _rgb(raw)
        except OSError:
            continue
        w, h = im.size
        if min(w, h) < 16:
            continue
        s = min(w, h)
        out.append((f"{p.name} centre", "photo", _square(im, ((w - s) // 2, (h - s) // 2, s), res)))
        for k in range(PHOTO_CROPS):
            c = int(rng.integers(max(16, s // 3), s + 1))
            x, y = int(rng.integers(0, w - c + 1)), int(rng.integers(0, h - c + 1))
            out.append((f"{p.name} crop {k}", "photo", _square(im, (x, y, c), res)))
    return out


def faces(res: int) -> list[tuple[str, str, np.ndarray]]:
    sk = _package_dir("skimage")
    f = sk / "data" / "lfw_subset.npy" if sk is not None else None
    if f is None or not f.is_file():
        return []
    a = np.load(f, allow_pickle=False)[:: max(1, 200 // N_FACES)][:N_FACES]  # (n, 25, 25) in [0, 1]
    out = []
    for i, g in enumerate(a):
        im = Image.fromarray((g * 255).round().astype(np.uint8)).convert("RGB")
        out.append((f"lfw face {i}", "face", np.asarray(im.resize((res, res), Image.Resampling.LANCZOS))))
    return out


def noise(res: int, seed: int = 1) -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(4):
        out.append((f"uniform rgb noise {i}", "noise", rng.integers(0, 256, (res, res, 3), dtype=np.uint8)))
    for i in range(3):
        g = rng.integers(0, 256, (res, res, 1), dtype=np.uint8)
        out.append((f"gray noise {i}", "noise", np.repeat(g, 3, axis=2)))
    for i, sd in enumerate((20, 40, 70)):
        base = rng.integers(40, 216, 3)
        a = np.clip(base + rng.normal(0, sd, (res, res, 3)), 0, 255).astype(np.uint8)
        out.append((f"gaussian noise sd {sd} ({i})", "noise", a))
    for k in (2, 4, 8):
        small = rng.integers(0, 256, (res // k, res // k, 3), dtype=np.uint8)
        out.append((f"blocky noise {k}px", "noise", np.repeat(np.repeat(small, k, 0), k, 1)))
    for k in (4, 8):
        small = Image.fromarray(rng.integers(0, 256, (k, k, 3), dtype=np.uint8))
        out.append((f"smooth noise {k}", "noise", np.asarray(small.resize((res, res), Image.Resampling.BICUBIC))))
    sp = np.full((res, res, 3), 128, np.uint8)
    mask = rng.random((res, res))
    sp[mask < 0.1], sp[mask > 0.9] = 0, 255
    out.append(("salt and pepper", "noise", sp))
    return out


def _lerp_image(t: np.ndarray, c0, c1) -> np.ndarray:
    c0, c1 = np.asarray(c0, np.float64), np.asarray(c1, np.float64)
    return np.clip(c0 + (c1 - c0) * t[..., None], 0, 255).round().astype(np.uint8)


def gradients(res: int) -> list[tuple[str, str, np.ndarray]]:
    yy, xx = np.mgrid[0:res, 0:res] / (res - 1)
    r = np.sqrt((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / np.sqrt(0.5)
    pairs = [
        ((0, 0, 0), (255, 255, 255)),
        ((255, 0, 0), (0, 0, 255)),
        ((255, 255, 0), (0, 128, 0)),
        ((30, 30, 90), (250, 180, 60)),
    ]
    out = []
    for a, b in pairs:
        for name, t in (("horizontal", xx), ("vertical", yy), ("diagonal", (xx + yy) / 2), ("radial", r)):
            out.append((f"{name} gradient {a}->{b}", "gradient", _lerp_image(t, a, b)))
    return out


def _font(size: int):
    mpl = _package_dir("matplotlib")
    f = mpl / "mpl-data" / "fonts" / "ttf" / "DejaVuSans-Bold.ttf" if mpl is not None else None
    if f is not None and f.is_file():
        return ImageFont.truetype(str(f), size)
    return ImageFont.load_default()


def text(res: int) -> list[tuple[str, str, np.ndarray]]:
    cases = [
        ("Hello", (255, 255, 255), (0, 0, 0)),
        ("SODA", (0, 0, 0), (255, 255, 255)),
        ("42", (250, 240, 200), (120, 20, 20)),
        ("abc", (20, 40, 160), (255, 255, 0)),
        ("OK", (200, 200, 200), (0, 100, 0)),
        ("lorem ipsum dolor sit amet", (255, 255, 255), (40, 40, 40)),
        ("x = y + 1", (30, 30, 30), (0, 255, 128)),
        ("README", (240, 240, 255), (200, 0, 200)),
        ("?!", (0, 0, 0), (255, 80, 0)),
        ("The quick brown fox", (255, 250, 230), (0, 0, 120)),
    ]
    out = []
    for i, (s, bg, fg) in enumerate(cases):
        big = res * 4
        im = Image.new("RGB", (big, big), bg)
        d = ImageDraw.Draw(im)
        size = big // 2 if len(s) <= 4 else big // 6
        font = _font(size)
        words, lines, line = s.split(), [], ""
        for w in words:
            trial = (line + " " + w).strip()
            if d.textlength(trial, font=font) > big * 0.95 and line:
                lines.append(line)
                line = w
            else:
                line = trial
        lines.append(line)
        y = (big - size * 1.2 * len(lines)) / 2
        for ln in lines:
            d.text(((big - d.textlength(ln, font=font)) / 2, y), ln, fill=fg, font=font)
            y += size * 1.2
        out.append((f"text '{s}' ({i})", "text", np.asarray(im.resize((res, res), Image.Resampling.LANCZOS))))
    return out


def flat(res: int) -> list[tuple[str, str, np.ndarray]]:
    colours = {
        "black": (0, 0, 0),
        "white": (255, 255, 255),
        "mid grey": (128, 128, 128),
        "dark grey": (60, 60, 60),
        "red": (220, 30, 30),
        "green": (30, 180, 60),
        "blue": (30, 60, 220),
        "yellow": (240, 220, 40),
        "cyan": (40, 220, 230),
        "magenta": (220, 40, 200),
        "orange": (250, 140, 20),
        "pastel pink": (250, 200, 210),
        "olive": (128, 128, 0),
        "navy": (0, 0, 100),
    }
    return [(f"flat {k}", "flat", np.full((res, res, 3), v, np.uint8)) for k, v in colours.items()]


def checkerboards(res: int) -> list[tuple[str, str, np.ndarray]]:
    yy, xx = np.mgrid[0:res, 0:res]
    pairs = [((0, 0, 0), (255, 255, 255)), ((255, 0, 0), (0, 0, 255)), ((40, 160, 40), (240, 240, 200))]
    out = []
    for a, b in pairs:
        for k in (1, 2, 4, 8):
            m = ((xx // k + yy // k) % 2).astype(bool)
            img = np.where(m[..., None], np.asarray(b, np.uint8), np.asarray(a, np.uint8))
            out.append((f"checkerboard {k}px {a}/{b}", "checkerboard", img))
    return out


def stripes(res: int) -> list[tuple[str, str, np.ndarray]]:
    yy, xx = np.mgrid[0:res, 0:res]
    out = []
    for k, (a, b) in zip(
        (2, 4, 8), [((0, 0, 0), (255, 255, 255)), ((200, 0, 0), (255, 220, 0)), ((0, 0, 128), (180, 220, 255))]
    ):
        for name, m in (("vertical", (xx // k) % 2), ("horizontal", (yy // k) % 2)):
            img = np.where(m[..., None].astype(bool), np.asarray(b, np.uint8), np.asarray(a, np.uint8))
            out.append((f"{name} stripes {k}px", "stripes", img))
    return out


def wheels(res: int) -> list[tuple[str, str, np.ndarray]]:
    yy, xx = (np.mgrid[0:res, 0:res] + 0.5) / res - 0.5
    ang = (np.arctan2(yy, xx) / (2 * np.pi)) % 1.0
    rad = np.sqrt(xx**2 + yy**2) / 0.5
    out = []
    for name, bg in (("on white", 1.0), ("on black", 0.0)):
        img = np.empty((res, res, 3))
        for i in range(res):
            for j in range(res):
                if rad[i, j] <= 1:
                    img[i, j] = colorsys.hsv_to_rgb(ang[i, j], min(1.0, rad[i, j]), 1.0)
                else:
                    img[i, j] = bg
        out.append((f"colour wheel {name}", "wheel", (img * 255).round().astype(np.uint8)))
    hues = np.repeat(np.linspace(0, 1, res, endpoint=False)[None, :], res, 0)
    img = np.stack([np.array(colorsys.hsv_to_rgb(h, 1.0, 1.0)) for h in hues.reshape(-1)]).reshape(res, res, 3)
    out.append(("hue rainbow", "wheel", (img * 255).round().astype(np.uint8)))
    return out


def non_scene_images(res: int) -> list[tuple[str, str, np.ndarray]]:
    """Every non-scene image at the model's size: [(name, category, (res, res, 3) uint8)]."""
    out = []
    for make in (photos, faces, noise, gradients, text, flat, checkerboards, stripes, wheels):
        out += make(res)
    return out
