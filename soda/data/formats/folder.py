"""Any folder of images (searched recursively, sorted by path), optionally labelled by a CSV.

Images of any mode are converted to 8-bit RGB (palette, alpha over white, 16-bit, grayscale, CMYK), centre-cropped to
a square and resized to ``res`` (Lanczos). ``labels.csv`` (in the folder, or a path given as ``labels``) has a header
row; its first column (or the one named ``filename``/``file``/``path``) holds image paths relative to the folder and
every other column is one label. Integer columns are kept as they are; any other column is mapped to class indices in
sorted order of its values (``label_classes`` keeps the names). With a CSV the dataset is exactly its rows, in order.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from soda.data.formats import (
    IMAGE_EXTENSIONS,
    FormatError,
    center_crop_resize,
    load_rgb,
    require_dir,
    require_file,
    uint8_to_tensor,
)

_PATH_COLUMNS = ("filename", "file", "path", "image")


def read_labels_csv(path: Path) -> tuple[list[str], list[str], torch.Tensor, dict]:
    """labels.csv -> (relative paths, label names, (N,L) long labels, {name: class names for mapped columns})."""
    path = require_file(path, "a labels CSV with a header row: filename,label1,...")
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise FormatError(f"{path}: expected a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    path_col = next((lower.index(c) for c in _PATH_COLUMNS if c in lower), 0)
    label_cols = [j for j in range(len(header)) if j != path_col]
    files, columns = [], {j: [] for j in label_cols}
    for line_no, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise FormatError(f"{path}: line {line_no} has {len(r)} fields, the header has {len(header)}")
        files.append(r[path_col].strip())
        for j in label_cols:
            columns[j].append(r[j].strip())
    labels, classes = [], {}
    for j in label_cols:
        col = columns[j]
        try:
            labels.append([int(v) for v in col])
        except ValueError:
            names = sorted(set(col))
            classes[header[j]] = names
            index = {v: i for i, v in enumerate(names)}
            labels.append([index[v] for v in col])
    tensor = torch.tensor(labels, dtype=torch.long).T if labels else torch.zeros(len(files), 0, dtype=torch.long)
    return files, [header[j] for j in label_cols], tensor.contiguous(), classes


class ImageFolder(torch.utils.data.Dataset):
    """Items: image (3,res,res) in [-1,1], path (str), and labels (L,) long when a labels CSV is present."""

    def __init__(self, root, res: int | None = 64, labels="auto", crop: int | None = None):
        self.root = require_dir(root, "a folder of images")
        self.res, self.crop = res, crop
        csv_path = self.root / "labels.csv" if labels == "auto" else (Path(labels) if labels else None)
        if csv_path is not None and (labels != "auto" or csv_path.exists()):
            files, self.label_names, self.labels, self.label_classes = read_labels_csv(csv_path)
            self.files = [self.root / f for f in files]
            for f, line in zip(self.files, range(2, len(files) + 2)):
                if not f.is_file():
                    raise FileNotFoundError(f"{csv_path}: line {line} names {f}, which does not exist")
        else:
            self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            self.label_names, self.labels, self.label_classes = [], None, {}
        if not self.files:
            raise FileNotFoundError(f"{self.root}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        arr = center_crop_resize(load_rgb(self.files[i]), self.res, self.crop)
        item = {"image": uint8_to_tensor(arr), "path": str(self.files[i])}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item
