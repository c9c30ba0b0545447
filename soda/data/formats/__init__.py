"""Loaders for real data files, each an indexable dataset of dicts with ``image`` (3,H,W) float32 in [-1,1].

Every loader validates its files up front: a missing file raises FileNotFoundError and a malformed one raises
``FormatError`` (a ValueError), both naming the file and what was expected. Shared helpers live here.

| loader | file layout | extra keys |
|---|---|---|
| ``Shapes3D`` | ``3dshapes.h5``: images (N,64,64,3) uint8, labels (N,6) float64 | factors (6,), values (6,) |
| ``MPI3D`` | ``mpi3d_*.npz``: images (N,64,64,3) uint8 | factors (7,) from the index |
| ``DSprites`` | ``dsprites*.npz``: imgs (N,64,64) uint8 0/1, latents_classes (N,6) | factors (6,) |
| ``ImageFolder`` | any images, optional ``labels.csv`` | labels (L,) when a CSV is given |
| ``CelebA`` | ``img_align_celeba/``, ``list_attr_celeba.txt``, ``list_eval_partition.txt`` | labels (40,) 0/1 |
| ``SRN`` | ``<object>/rgb/*.png``, ``<object>/pose/*.txt``, ``<object>/intrinsics.txt`` | K, c2w, object |
| ``NMR`` | ``<category>/<object>/image/*.png``, ``cameras.npz``, ``softras_*.lst`` | K, c2w, object, category |
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")


class FormatError(ValueError):
    """A data file exists but does not have the expected layout."""


def require_file(path, what: str) -> Path:
    """Path -> Path, or FileNotFoundError naming the file and what it should contain."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found (expected {what})")
    return path


def require_dir(path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: directory not found (expected {what})")
    return path


def uint8_to_tensor(arr) -> torch.Tensor:
    """uint8 (H,W,3) or (H,W) array -> (3,H,W) float32 in [-1,1]."""
    x = torch.from_numpy(np.array(arr, dtype=np.uint8))  # a copy: sources may be read-only memory maps
    if x.ndim == 2:
        x = x[:, :, None].expand(-1, -1, 3)
    return x.permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def resize_tensor(x: torch.Tensor, res: int | None) -> torch.Tensor:
    """(3,H,W) -> (3,res,res) by an antialiased bilinear resize (no-op when res is None or already the size)."""
    if res is None or (x.shape[-2] == res and x.shape[-1] == res):
        return x
    return F.interpolate(x[None], size=(res, res), mode="bilinear", align_corners=False, antialias=True)[0]


def to_rgb(img: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Any PIL image -> 8-bit RGB: palette and alpha are composited over `background`, 16-bit and float images are
    rescaled by their type's range (I;16 -> /257, I -> /257 when > 255, F assumed in [0,1])."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img).astype(np.float64)
        if img.mode == "F":
            a = a * 255.0
        elif img.mode.startswith("I;16") or a.max(initial=0) > 255:
            a = a / 257.0
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return img.convert("RGB")


def load_rgb(path, background=(255, 255, 255)) -> np.ndarray:
    """Image file -> uint8 (H,W,3); raises FormatError naming the file when it cannot be decoded."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(to_rgb(img, background))
    except (OSError, SyntaxError, ValueError) as e:
        raise FormatError(f"{path}: cannot read as an image ({e})") from e


def center_crop_resize(arr: np.ndarray, res: int | None, crop: int | None = None) -> np.ndarray:
    """uint8 (H,W,3) -> centre crop (side `crop`, default the shorter side) resized to res x res (Lanczos)."""
    H, W = arr.shape[:2]
    side = min(H, W) if crop is None else min(crop, H, W)
    top, left = (H - side) // 2, (W - side) // 2
    arr = arr[top : top + side, left : left + side]
    if res is None or side == res:
        return np.ascontiguousarray(arr)
    return np.asarray(Image.fromarray(arr).resize((res, res), Image.LANCZOS))


def _npz_member_memmap(path: Path, key: str):
    """Memory-map member `key` of an uncompressed .npz; None when the member is compressed."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(key + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if local[:4] != b"PK\x03\x04":
            return None
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        start = info.header_offset + 30 + name_len + extra_len
        fh.seek(start)
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        offset = fh.tell()
    if dtype.hasobject:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def load_npz_arrays(path, keys, what: str, mmap: bool = True) -> dict:
    """Open an .npz and return the named arrays (memory-mapped when stored uncompressed and `mmap`).

    Raises FileNotFoundError / FormatError naming the file, the missing keys and the keys present."""
    path = require_file(path, what)
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
    except zipfile.BadZipFile as e:
        raise FormatError(f"{path}: not an .npz archive (expected {what})") from e
    missing = [k for k in keys if k not in names]
    if missing:
        raise FormatError(f"{path}: missing arrays {missing} (expected {what}; found {sorted(names)})")
    out, lazy = {}, None
    for k in keys:
        arr = _npz_member_memmap(path, k) if mmap else None
        if arr is None:
            if lazy is None:
                lazy = np.load(path, allow_pickle=False)
            arr = lazy[k]
        out[k] = arr
    return out
