"""Frames -> files for download: GIF (Pillow), MP4 (the ffmpeg inside imageio-ffmpeg), strips of images.

Frames are (H, W, 3) uint8 at the model's size; files are upscaled with nearest-neighbour so that 32 px images stay
crisp. Files go to a per-process folder whose old files are pruned, so nothing piles up on a long-running Space.
``make_gradio_image_cache_atomic`` fixes a race in how Gradio stores the images it serves (see there).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from soda import atomic

_OUT: Path | None = None
KEEP_SECONDS = 3600


def out_dir() -> Path:
    """This process's download folder (created on first use; files older than an hour are removed)."""
    global _OUT
    if _OUT is None or not _OUT.exists():
        _OUT = Path(tempfile.mkdtemp(prefix="soda-explorer-"))
    now = time.time()
    for f in _OUT.iterdir():
        try:
            if now - f.stat().st_mtime > KEEP_SECONDS:
                f.unlink()
        except OSError:
            pass
    return _OUT


def new_path(stem: str, suffix: str) -> Path:
    return out_dir() / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"


def upscale(frame: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size * W / H, 3) by pixel repetition (integer factor, at least 1)."""
    k = max(1, size // frame.shape[0])
    return np.repeat(np.repeat(frame, k, axis=0), k, axis=1)


def strip(frames: Sequence[np.ndarray], gap: int = 1) -> np.ndarray:
    """Frames side by side with a white gap -> (H, n * W + (n - 1) * gap, 3) uint8."""
    h = frames[0].shape[0]
    sep = np.full((h, gap, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, f in enumerate(frames):
        if i:
            parts.append(sep)
        parts.append(f)
    return np.concatenate(parts, axis=1)


def write_png(frame: np.ndarray, stem: str = "soda") -> str:
    path = new_path(stem, ".png")
    Image.fromarray(frame).save(path)
    return str(path)


def write_gif(frames: Sequence[np.ndarray], stem: str = "soda", fps: float = 8.0, size: int = 256) -> str:
    """Looping GIF of the frames, upscaled to ``size`` px."""
    path = new_path(stem, ".gif")
    ims = [Image.fromarray(upscale(f, size)) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=int(1000 / fps), loop=0, optimize=False)
    return str(path)


def write_mp4(frames: Sequence[np.ndarray], stem: str = "soda", fps: float = 8.0, size: int = 256) -> str | None:
    """H.264 MP4 of the frames (upscaled to ``size`` px, even sides); None when no ffmpeg is available."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    path = new_path(stem, ".mp4")
    big = [upscale(f, size) for f in frames]
    h, w = big[0].shape[:2]
    h2, w2 = h - h % 2, w - w % 2
    try:
        writer = imageio_ffmpeg.write_frames(
            str(path),
            (w2, h2),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=1,
            ffmpeg_log_level="error",
        )
        writer.send(None)
        for f in big:
            writer.send(np.ascontiguousarray(f[:h2, :w2]))
        writer.close()
    except (OSError, RuntimeError, BrokenPipeError):
        path.unlink(missing_ok=True)
        return None
    return str(path) if path.exists() and os.path.getsize(path) > 0 else None


def make_gradio_image_cache_atomic() -> None:
    """Make Gradio's image cache safe for identical images rendered at the same time. Idempotent.

    Gradio 6.31 stores every image output (gr.Image, gr.Gallery, gr.ImageSlider) at a content-addressed path of its
    cache with ``processing_utils.save_pil_to_cache``, which opens that path with 'wb' and writes. When two sessions
    produce the same image at the same moment (two users clicking the same example), the second write truncates the
    file while the first user's download is being served, and that user gets a broken image ("peer closed connection
    without sending complete message body"; found by tests/test_reliability_load.py). This replacement writes a temp
    file and renames it into place, so a reader sees a complete file, and does not rewrite a file that is already
    there (it touches it, so that ``delete_cache`` counts its age from this use, as Gradio does for uploads).
    """
    from gradio import processing_utils as pu

    if getattr(pu.save_pil_to_cache, "_atomic", False):
        return

    def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        data = pu.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / pu.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        path = (folder / f"{name}.{format}").resolve()
        try:
            if path.stat().st_size == len(data):  # the same bytes (the folder is named by their hash)
                os.utime(path)
                return str(path)
        except OSError:
            pass
        atomic.write_bytes(path, data)  # a temp file renamed into place, world-readable
        return str(path)

    save_pil_to_cache._atomic = True
    pu.save_pil_to_cache = save_pil_to_cache
