"""CelebA (Liu et al. 2015), aligned-and-cropped release:

- ``img_align_celeba/000001.jpg`` ... (178x218 JPEGs);
- ``list_attr_celeba.txt``: line 1 the image count, line 2 the 40 attribute names, then one line per image
  ``000001.jpg  -1  1 ...`` with +-1 values;
- ``list_eval_partition.txt``: ``000001.jpg 0`` per line, 0 = train, 1 = valid, 2 = test.

Images are centre-cropped (``crop`` = 140 px by default, the usual choice for 64 px CelebA) and resized to ``res``.
Labels are the 40 attributes as 0/1.
"""

from __future__ import annotations

from pathlib import Path

import torch

from soda.data.formats import FormatError, center_crop_resize, load_rgb, require_dir, require_file, uint8_to_tensor

SPLITS = {"train": 0, "valid": 1, "val": 1, "test": 2}


def read_attributes(path: Path) -> tuple[list[str], list[str], torch.Tensor]:
    """list_attr_celeba.txt -> (file names, attribute names, (N,40) long in {0,1})."""
    path = require_file(path, "list_attr_celeba.txt: count, attribute names, then 'file.jpg +-1 ...' rows")
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) < 2:
        raise FormatError(f"{path}: expected a count line, an attribute-name line and data rows")
    try:
        count = int(lines[0][0])
    except ValueError as e:
        raise FormatError(f"{path}: line 1 must be the number of images, got {' '.join(lines[0])!r}") from e
    names, rows = lines[1], lines[2:]
    if len(rows) != count:
        raise FormatError(f"{path}: line 1 announces {count} images but {len(rows)} rows follow")
    files, values = [], []
    for n, r in enumerate(rows, start=3):
        if len(r) != len(names) + 1 or any(v not in ("1", "-1") for v in r[1:]):
            raise FormatError(f"{path}: line {n} must be a file name and {len(names)} values of +-1")
        files.append(r[0])
        values.append([v == "1" for v in r[1:]])
    return files, names, torch.tensor(values, dtype=torch.long)


def read_partition(path: Path) -> dict[str, int]:
    """list_eval_partition.txt -> {file name: 0 train / 1 valid / 2 test}."""
    path = require_file(path, "list_eval_partition.txt: 'file.jpg 0|1|2' per line")
    out = {}
    for n, ln in enumerate(path.read_text().splitlines(), start=1):
        if not ln.strip():
            continue
        parts = ln.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise FormatError(f"{path}: line {n} must be 'file.jpg 0|1|2', got {ln.strip()!r}")
        out[parts[0]] = int(parts[1])
    return out


class CelebA(torch.utils.data.Dataset):
    """Items: image (3,res,res) in [-1,1], labels (40,) long in {0,1}."""

    def __init__(self, root, split: str = "train", res: int | None = 64, crop: int | None = 140):
        if split not in (*SPLITS, "all"):
            raise ValueError(f"split must be one of {sorted(SPLITS)} or 'all', got {split!r}")
        self.root = require_dir(root, "a CelebA folder with img_align_celeba/, list_attr_celeba.txt, ...")
        self.image_dir = require_dir(self.root / "img_align_celeba", "the aligned CelebA JPEGs")
        files, self.attr_names, labels = read_attributes(self.root / "list_attr_celeba.txt")
        partition = read_partition(self.root / "list_eval_partition.txt")
        missing = [f for f in files if f not in partition]
        if missing:
            raise FormatError(f"{self.root / 'list_eval_partition.txt'}: no partition for {missing[:3]} ...")
        keep = [i for i, f in enumerate(files) if split == "all" or partition[f] == SPLITS[split]]
        self.files = [files[i] for i in keep]
        self.labels = labels[keep]
        self.split, self.res, self.crop = split, res, crop

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        path = self.image_dir / self.files[i]
        if not path.exists():
            raise FileNotFoundError(f"{path}: listed in list_attr_celeba.txt but not found")
        arr = center_crop_resize(load_rgb(path), self.res, self.crop)
        return {"image": uint8_to_tensor(arr), "labels": self.labels[i]}
