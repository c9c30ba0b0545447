"""SRN multi-view renders (Sitzmann et al. 2019; cars/chairs as used by pixelNeRF):

- ``<root>/<object>/rgb/000000.png ...``: the views;
- ``<root>/<object>/pose/000000.txt ...``: 16 numbers, the 4x4 camera-to-world matrix in OpenCV axes (x right,
  y down, z forward) -- the project's own convention, so poses are used as they are;
- ``<root>/<object>/intrinsics.txt``: first line ``f cx cy 0`` in pixels of the stored images (later lines -- origin,
  near plane, scale, image size -- are not needed).

Views and poses are matched by file stem. With ``res`` set, images are resized and K is scaled to match.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from soda.data.cameras import scale_intrinsics
from soda.data.formats import FormatError, load_rgb, require_dir, require_file, resize_tensor, uint8_to_tensor


def read_intrinsics(path: Path) -> tuple[float, float, float]:
    """intrinsics.txt -> (f, cx, cy) from its first line."""
    path = require_file(path, "an SRN intrinsics.txt whose first line is 'f cx cy 0'")
    first = path.read_text().splitlines()[:1]
    try:
        vals = [float(v) for v in first[0].split()]
    except (IndexError, ValueError) as e:
        raise FormatError(f"{path}: first line must be 'f cx cy 0', got {first!r}") from e
    if len(vals) < 3:
        raise FormatError(f"{path}: first line must be 'f cx cy 0', got {first[0]!r}")
    return vals[0], vals[1], vals[2]


def read_pose(path: Path) -> torch.Tensor:
    """pose .txt with 16 numbers -> (4,4) float32 camera-to-world."""
    try:
        vals = np.array(path.read_text().split(), dtype=np.float64)
    except ValueError as e:
        raise FormatError(f"{path}: expected 16 numbers (a 4x4 camera-to-world matrix)") from e
    if vals.size != 16:
        raise FormatError(f"{path}: expected 16 numbers (a 4x4 camera-to-world matrix), got {vals.size}")
    return torch.from_numpy(vals.reshape(4, 4)).float()


class SRN(torch.utils.data.Dataset):
    """One item per view: image (3,H,W) in [-1,1], K (3,3), c2w (4,4), object (int), view (int)."""

    def __init__(self, root, res: int | None = None):
        self.root = require_dir(root, "an SRN category folder of <object>/{rgb,pose,intrinsics.txt}")
        self.res = res
        self.objects = sorted(p.name for p in self.root.iterdir() if (p / "rgb").is_dir())
        if not self.objects:
            raise FileNotFoundError(f"{self.root}: no <object>/rgb/ folders found")
        self.items, self._intrinsics, self._views = [], [], []
        for o, name in enumerate(self.objects):
            obj = self.root / name
            self._intrinsics.append(read_intrinsics(obj / "intrinsics.txt"))
            rgbs = sorted((obj / "rgb").glob("*.png"))
            require_dir(obj / "pose", "an SRN pose/ folder of 4x4 camera-to-world .txt files")
            if not rgbs:
                raise FileNotFoundError(f"{obj / 'rgb'}: no .png views")
            start = len(self.items)
            for v, rgb in enumerate(rgbs):
                pose = obj / "pose" / (rgb.stem + ".txt")
                if not pose.exists():
                    raise FileNotFoundError(f"{pose}: no pose for view {rgb.name}")
                self.items.append((o, v, rgb, pose))
            self._views.append(list(range(start, len(self.items))))

    def __len__(self) -> int:
        return len(self.items)

    def views_of(self, obj: int) -> list[int]:
        """Dataset indices of all views of object number `obj`."""
        return self._views[obj]

    def __getitem__(self, i: int) -> dict:
        o, v, rgb, pose = self.items[int(i)]
        arr = load_rgb(rgb)
        H, W = arr.shape[:2]
        f, cx, cy = self._intrinsics[o]
        K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=torch.float32)
        image = uint8_to_tensor(arr)
        if self.res is not None and (H, W) != (self.res, self.res):
            image = resize_tensor(image, self.res)
            K = scale_intrinsics(K[None], self.res / W, self.res / H)[0]
        return {"image": image, "K": K, "c2w": read_pose(pose), "object": o, "view": v}
