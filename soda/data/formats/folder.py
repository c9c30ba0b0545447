"""Any folder of images (searched recursively, sorted by path), optionally labelled by a CSV, with a held-out split.

Images of any mode are converted to 8-bit RGB (palette, alpha over white, 16-bit, grayscale, CMYK), centre-cropped to
a square and resized to ``res`` (Lanczos). ``labels.csv`` (in the folder, or a path given as ``labels``) has a header
row; its first column (or the one named ``filename``/``file``/``path``) holds image paths relative to the folder and
every other column is one label. With a CSV the dataset is exactly its rows, in order.

**Labels.** Integer columns keep their values; other numbers are mapped to class indices in numeric order and any
other column to class indices in sorted order of its values (``label_classes`` keeps the names). Each column has a
kind (``label_kinds``): ``categorical`` (text, or integers with 3..20 distinct values, e.g. digit classes) or
``numeric`` (two values, more than 20, or non-integer numbers). A header suffix ``:categorical`` / ``:numeric``
(``digit:categorical``) overrides the guess and is not part of the name. The explorer gives a categorical column one
direction per class and a numeric column one direction (towards larger values).

**Held-out split.** A file is held out (``split="test"``) when the SHA-256 of its path relative to the folder (POSIX
separators), read as a number in [0, 1), is below ``test_fraction`` (default 0.1): the same files on every machine,
whatever else is added to the folder. In a folder where no file falls below it (a handful of files), the one with the
smallest hash is held out. A ``split`` column in ``labels.csv`` (``train`` / ``test``; ``val``, ``valid`` and
``validation`` count as ``test``) replaces the hash. Training streams read ``split="train"``; the trainer's held-out
loss, the explorer's examples and map, and ``soda.eval`` read ``split="test"``.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import torch

from soda.data.errors import EmptySplitError
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
SPLITS = ("all", "train", "test")
TEST_FRACTION = 0.1
_SPLIT_VALUES = {"train": False, "test": True, "val": True, "valid": True, "validation": True}
MAX_CATEGORIES = 20  # integer columns with 3..MAX_CATEGORIES distinct values are categorical
_KIND_SUFFIXES = {":categorical": "categorical", ":numeric": "numeric"}


def hash_unit(relpath: str) -> float:
    """A relative path (POSIX separators) -> a number in [0, 1) from its SHA-256: the same on every machine."""
    return int.from_bytes(hashlib.sha256(relpath.encode("utf-8")).digest()[:8], "big") / 2.0**64


def held_out_by_hash(relpaths: list[str], test_fraction: float = TEST_FRACTION) -> list[bool]:
    """Relative paths -> True for the held-out ones (hash below ``test_fraction``; at least one when there are two
    or more files and ``test_fraction`` > 0, and never all of them)."""
    u = [hash_unit(p) for p in relpaths]
    test = [x < test_fraction for x in u]
    if test_fraction > 0 and len(u) >= 2 and not any(test):
        test[min(range(len(u)), key=u.__getitem__)] = True
    if len(u) >= 2 and all(test):  # keep something to train on
        test[max(range(len(u)), key=u.__getitem__)] = False
    return test


def _relpath(p: str) -> str:
    return Path(os.path.normpath(p.strip())).as_posix()


def _column_kind(values: list[str]) -> tuple[str, list[int], list[str] | None]:
    """A label column's strings -> (kind, integer labels, class names or None when the values are kept as they are)."""
    try:
        ints = [int(v) for v in values]
        k = len(set(ints))
        return ("categorical" if 3 <= k <= MAX_CATEGORIES else "numeric"), ints, None
    except ValueError:
        pass
    try:
        nums = [float(v) for v in values]
        if any(x != x for x in nums):
            raise ValueError
        order = sorted(set(nums))
        index = {x: i for i, x in enumerate(order)}
        names = {}
        for v, x in zip(values, nums, strict=True):
            names.setdefault(x, v)
        return "numeric", [index[x] for x in nums], [names[x] for x in order]
    except ValueError:
        names = sorted(set(values))
        index = {v: i for i, v in enumerate(names)}
        return "categorical", [index[v] for v in values], names


def read_labels_csv(path: Path) -> tuple[list[str], list[str], torch.Tensor, dict]:
    """labels.csv -> (relative paths, label names, (N,L) long labels, {name: class names for mapped columns}).

    The ``split`` column, when present, is not a label (see ``read_labels_table``)."""
    t = read_labels_table(path)
    return t["files"], t["names"], t["labels"], t["classes"]


def read_labels_table(path: Path) -> dict:
    """labels.csv -> {'files', 'names', 'labels' (N,L) long, 'classes' {name: class names}, 'kinds' {name: kind},
    'split' (list of bools, True = held out) or None}."""
    path = require_file(path, "a labels CSV with a header row: filename,label1,...")
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise FormatError(f"{path}: expected a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    path_col = next((lower.index(c) for c in _PATH_COLUMNS if c in lower), 0)
    split_col = lower.index("split") if "split" in lower and lower.index("split") != path_col else None
    label_cols = [j for j in range(len(header)) if j not in (path_col, split_col)]
    files, columns, split = [], {j: [] for j in label_cols}, [] if split_col is not None else None
    for line_no, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise FormatError(f"{path}: line {line_no} has {len(r)} fields, the header has {len(header)}")
        files.append(r[path_col].strip())
        for j in label_cols:
            columns[j].append(r[j].strip())
        if split is not None:
            v = r[split_col].strip().lower()
            if v not in _SPLIT_VALUES:
                raise FormatError(f"{path}: line {line_no}: split must be train or test (or val), got {v!r}")
            split.append(_SPLIT_VALUES[v])
    labels, classes, kinds, names = [], {}, {}, []
    for j in label_cols:
        name, forced = header[j], None
        for suffix, kind in _KIND_SUFFIXES.items():
            if name.lower().endswith(suffix):
                name, forced = name[: -len(suffix)].strip(), kind
        kind, values, cls = _column_kind(columns[j])
        names.append(name)
        kinds[name] = forced or kind
        if cls is not None:
            classes[name] = cls
        labels.append(values)
    tensor = torch.tensor(labels, dtype=torch.long).T if labels else torch.zeros(len(files), 0, dtype=torch.long)
    return {
        "files": files,
        "names": names,
        "labels": tensor.contiguous(),
        "classes": classes,
        "kinds": kinds,
        "split": split,
    }


class ImageFolder(torch.utils.data.Dataset):
    """Items: image (3,res,res) in [-1,1], path (str), and labels (L,) long when a labels CSV is present.

    ``split``: ``all`` (every file), ``train`` or ``test`` (the held-out files; see the module docstring).
    ``split_source`` says how the split was made (``csv`` or ``hash``); ``relpaths`` are the files' keys."""

    def __init__(
        self,
        root,
        res: int | None = 64,
        labels="auto",
        crop: int | None = None,
        split: str = "all",
        test_fraction: float = TEST_FRACTION,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = require_dir(root, "a folder of images")
        self.res, self.crop, self.split = res, crop, split
        csv_path = self.root / "labels.csv" if labels == "auto" else (Path(labels) if labels else None)
        held = None
        if csv_path is not None and (labels != "auto" or csv_path.exists()):
            t = read_labels_table(csv_path)
            files = t["files"]
            self.label_names, self.labels, self.label_classes = t["names"], t["labels"], t["classes"]
            self.label_kinds, held = t["kinds"], t["split"]
            self.files = [self.root / f for f in files]
            for f, line in zip(self.files, range(2, len(files) + 2)):
                if not f.is_file():
                    raise FileNotFoundError(f"{csv_path}: line {line} names {f}, which does not exist")
            self.relpaths = [_relpath(f) for f in files]
        else:
            self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            self.label_names, self.labels, self.label_classes, self.label_kinds = [], None, {}, {}
            self.relpaths = [p.relative_to(self.root).as_posix() for p in self.files]
        if not self.files:
            raise FileNotFoundError(f"{self.root}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")
        self.split_source = "csv" if held is not None else "hash"
        if held is None:
            held = held_out_by_hash(self.relpaths, test_fraction)
        self.n_total, self.n_test = len(self.files), sum(held)
        if split != "all":
            keep = [i for i, h in enumerate(held) if h == (split == "test")]
            if not keep:
                why = "the split column marks none" if self.split_source == "csv" else f"{self.n_total} image(s)"
                raise EmptySplitError(f"{self.root}: no {split} images ({why})")
            self.files = [self.files[i] for i in keep]
            self.relpaths = [self.relpaths[i] for i in keep]
            if self.labels is not None:
                self.labels = self.labels[keep]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        arr = center_crop_resize(load_rgb(self.files[i]), self.res, self.crop)
        item = {"image": uint8_to_tensor(arr), "path": str(self.files[i])}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item
