"""scikit-learn's handwritten digits (``sklearn.datasets.load_digits``: 1,797 images of 8x8 pixels, 10 classes) as an
image folder for the folder path: real data that ships with an installed package, so the folder recipe can be
checked on any machine without downloads.

    python -m soda.data digits --out data/digits          # 32 px PNGs + labels.csv (digit, split)

Images are white strokes on black (sklearn's 0..16 ink scaled to 0..255), upscaled with bicubic interpolation. The
split is stratified by digit (sklearn ``train_test_split``, ``test_size``, ``seed``) and written to the ``split``
column of ``labels.csv``, which the folder loader uses instead of its path hash.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_digits(out, res: int = 32, test_size: float = 0.2, seed: int = 0, limit: int | None = None) -> Path:
    """Write ``digit_NNNN.png`` files and ``labels.csv`` (filename, digit, split) into ``out`` -> ``out``.
    ``limit`` keeps a stratified subset of that many images (for quick tests)."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images, y = d.images, d.target
    idx = np.arange(len(y))
    if limit is not None and limit < len(y):
        idx, _ = train_test_split(idx, train_size=limit, stratify=y, random_state=seed)
        idx = np.sort(idx)
    tr, te = train_test_split(idx, test_size=test_size, stratify=y[idx], random_state=seed)
    test = set(te.tolist())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [("filename", "digit", "split")]
    for i in idx.tolist():
        name = f"digit_{i:04d}.png"
        u8 = np.clip(np.round(images[i] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        Image.fromarray(u8, "L").resize((res, res), Image.BICUBIC).save(out / name)
        rows.append((name, str(int(y[i])), "test" if i in test else "train"))
    with open(out / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return out
