"""Uploaded images -> (res, res, 3) uint8 at the model's size, with clear errors for anything unreadable.

Any mode PIL reads is accepted (RGBA / LA composited on white, palette, 16-bit, 32-bit int / float, CMYK,
grayscale, 1-bit); animated files give their first frame; EXIF rotation is applied; the image is centre-cropped to a
square and resized. Memory stays bounded: anything above ``MAX_PIXELS`` is refused before it is decoded; JPEGs are
decoded at a reduced scale (``draft``); other formats cannot be, so a large image (over ``LARGE_PIXELS`` once
decoded) is decoded in one of ``DECODE_SLOTS`` slots ($SODA_MAX_DECODES, default 2: more wait), reduced strip by strip
(no second full-size copy for the mode conversion), and then the C allocator is asked to give the freed memory back
to the system (glibc ``malloc_trim``; per-thread arenas otherwise keep it). An 8190 x 8190 PNG (200 KB on disk) is
201 MB decoded: at most two of those are in memory at once, whatever the number of uploads.

What Gradio's upload route takes is bounded too: at most ``MAX_BYTES`` per file (``launch(max_file_size=...)``,
$SODA_MAX_UPLOAD_MB, default 20 MB) and only the file types the app reads (``UPLOAD_TYPES``: images and .json
recipes); ``UploadFilter`` removes any other upload at once and answers 415.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from .text import excerpt, log_safe

log = logging.getLogger("soda.app")

MAX_PIXELS = 8192 * 8192  # 67 Mpx: an 8000 x 8000 photo is fine, a decompression bomb is not
MAX_BYTES = int(float(os.environ.get("SODA_MAX_UPLOAD_MB", "20")) * 1024 * 1024)  # per uploaded file
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL warns above this and refuses above twice this
IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")
UPLOAD_TYPES = (*IMAGE_TYPES, ".json")  # what the page's two upload boxes take: an image, a recipe
LARGE_PIXELS = 2048 * 2048  # a decode above this (16 MB as RGB) takes a slot and gives its memory back afterwards
DECODE_SLOTS = max(1, int(os.environ.get("SODA_MAX_DECODES", "2")))  # large decodes at once; more wait their turn
STRIP_BYTES = 8 << 20  # a large image is converted and reduced in strips of about this size
_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class UploadError(ValueError):
    """The upload cannot be used (the message says why, for the user)."""


def too_large(name: str, pixels: int, size: str = "") -> str:
    """The one wording of the pixel-count refusal, however the size was found (``name``: already quoted)."""
    return f"{name} is too large ({size}{pixels / 1e6:.0f} megapixels); the limit is {MAX_PIXELS / 1e6:.0f} megapixels"


def read_image(path: str | Path, res: int) -> np.ndarray:
    """Image file -> (res, res, 3) uint8: first frame, EXIF-rotated, centre-cropped, resized, converted to RGB."""
    p = Path(path)
    if not p.is_file():
        raise UploadError("no image was received (the upload is missing)")
    name = excerpt(p.name)
    size = p.stat().st_size
    if size == 0:
        raise UploadError(f"{name} is empty (0 bytes)")
    if size > MAX_BYTES:
        raise UploadError(f"{name} is {size / 2**20:.0f} MB; the limit is {MAX_BYTES / 2**20:g} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)  # animated GIF / APNG / WebP: the first frame
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise UploadError(too_large(name, w * h, f"{w} x {h} pixels, "))
                if w < 1 or h < 1:
                    raise UploadError(f"{name} has no pixels")
                if im.format == "JPEG":
                    s = min(w, h)
                    im.draft(None, (max(1, w * 2 * res // s), max(1, h * 2 * res // s)))  # decode at >= 2x target
                large = im.size[0] * im.size[1] > LARGE_PIXELS
                with _decode_slots if large else contextlib.nullcontext():
                    try:
                        return _decode(im, res)
                    finally:
                        if large:
                            im.close()
                            give_memory_back()
    except UploadError:
        raise
    except Image.DecompressionBombError as e:  # PIL refuses above 2 * MAX_PIXELS before we see the size
        got = re.search(r"\((\d+) pixels\)", str(e))
        raise UploadError(too_large(name, int(got.group(1)) if got else 2 * MAX_PIXELS + 1)) from None
    except UnidentifiedImageError:
        raise UploadError(f"{name} is not an image this app can read (PNG, JPEG, GIF, WebP, BMP, TIFF)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise UploadError(f"{name} is corrupt or truncated ({log_safe(e, 120)})") from None


class UploadFilter:
    """ASGI middleware on Gradio's upload route (``POST /gradio_api/upload``): when a stored file's type is not one of
    ``UPLOAD_TYPES``, every file of that request is removed again and the answer is 415 with one line. (Gradio checks
    a component's ``file_types`` only when an event uses the file, and keeps any upload in its cache for an hour.)
    Pass it as ``launch(app_kwargs={"middleware": [Middleware(UploadFilter)]})``."""

    def __init__(self, app, types: tuple[str, ...] = UPLOAD_TYPES):
        self.app, self.types = app, tuple(t.lower() for t in types)

    async def __call__(self, scope, receive, send):
        upload = scope.get("type") == "http" and scope.get("method") == "POST"
        if not upload or not scope.get("path", "").rstrip("/").endswith("/gradio_api/upload"):  # not /call/upload
            return await self.app(scope, receive, send)
        held: list[dict] = []

        async def hold(message):
            held.append(message)

        await self.app(scope, receive, hold)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        refused = []
        if start is not None and start.get("status") == 200:
            try:
                stored = [str(p) for p in json.loads(body)]
            except (ValueError, TypeError):
                stored = []
            refused = [p for p in stored if not p.lower().endswith(self.types)]
            if refused:
                for p in stored:
                    Path(p).unlink(missing_ok=True)
        if not refused:
            for m in held:
                await send(m)
            return
        log.warning("upload refused: file type of %s", log_safe(Path(refused[0]).name, 120))
        text = (
            f"{excerpt(Path(refused[0]).name)} is not a file type this app takes ({', '.join(self.types)})"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 415,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(text)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": text})


def _decode(im: Image.Image, res: int) -> np.ndarray:
    """An opened image -> (res, res, 3) uint8: decoded, reduced when large, EXIF-rotated (the small image, not the
    decoded one: ``ImageOps.exif_transpose`` would copy it whole even when there is nothing to rotate)."""
    im.load()  # first, as exif_transpose does: loading a TIFF applies its orientation itself and drops the tag
    transpose = _TRANSPOSE.get(im.getexif().get(ExifTags.Base.Orientation, 1))
    return _to_rgb_square(im, res, transpose)


def give_memory_back() -> None:
    """Ask glibc to return freed memory to the system (``malloc_trim(0)``): after a large decode, the freed blocks
    otherwise stay in the allocator's per-thread arenas, resident, for good. Does nothing on other C libraries."""
    if _trim is not None:
        _trim(0)


def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL("libc.so.6").malloc_trim  # glibc only (musl has no malloc_trim: AttributeError)
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


_trim = _malloc_trim()


def _working_mode(mode: str) -> str:
    """The mode an image of ``mode`` is resized in."""
    if mode in ("P", "PA"):
        return "RGBA"
    if mode == "1":
        return "L"
    if mode.startswith("I;16"):
        return "I"
    return mode if mode in ("L", "LA", "RGB", "RGBA", "I", "F") else "RGB"  # CMYK, YCbCr, LAB, HSV, RGBX, ...


def _reduce_large(im: Image.Image, res: int, mode: str) -> Image.Image:
    """A decoded image over ``LARGE_PIXELS`` -> box-averaged by an integer factor (to at least 4x the target size)
    and in ``mode``, strip by strip: never a second full-size image (a palette or 16-bit image converted whole
    would double the memory). Smaller images, and ones too small to reduce, come back as they are."""
    w, h = im.size
    f = min(w, h) // (4 * res)
    if w * h <= LARGE_PIXELS or f < 2:
        return im
    W, H = w // f * f, h // f * f  # at most f - 1 pixels dropped at the right and bottom edges
    out = Image.new(mode, (W // f, H // f))
    rows = f * max(1, STRIP_BYTES // (W * 4 * f))
    for y in range(0, H, rows):
        part = im.crop((0, y, W, min(y + rows, H)))
        part = part if part.mode == mode else part.convert(mode)
        out.paste(part.reduce(f), (0, y // f))  # RGBA / LA: reduce premultiplies alpha, as resize does
    return out


def _to_rgb_square(im: Image.Image, res: int, transpose: Image.Transpose | None = None) -> np.ndarray:
    """Any-mode PIL image -> (EXIF ``transpose``) centre square resized to res -> (res, res, 3) uint8."""
    sixteen = im.mode.startswith("I;16")
    mode = _working_mode(im.mode)
    im = _reduce_large(im, res, mode)
    if im.mode != mode:
        im = im.convert(mode)
    if transpose is not None:
        im = im.transpose(transpose)
    w, h = im.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    if im.mode in ("I", "F"):  # 16/32-bit integer or float grayscale: scale to 0..255
        a = np.asarray(im.resize((res, res), Image.Resampling.BILINEAR, box=box), dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        if sixteen or (im.mode == "I" and 0 <= lo and 255 < hi <= 65535):
            lo, hi = 0.0, 65535.0
        elif im.mode == "I" and 0 <= lo and hi <= 255:
            lo, hi = 0.0, 255.0
        elif im.mode == "F" and 0 <= lo and hi <= 1:
            lo, hi = 0.0, 1.0
        a = np.clip((a - lo) / max(hi - lo, 1e-12) * 255.0, 0, 255)
        return np.repeat(np.round(a).astype(np.uint8)[..., None], 3, axis=2)
    small = im.resize((res, res), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    if small.mode in ("RGBA", "LA"):
        bg = Image.new("RGBA", small.size, (255, 255, 255, 255))
        small = Image.alpha_composite(bg, small.convert("RGBA"))
    return np.asarray(small.convert("RGB"), dtype=np.uint8).copy()
