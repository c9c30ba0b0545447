"""NMR ShapeNet renders (Kato et al. 2018, as packaged by DVR and used by pixelNeRF):

- ``<root>/<category>/<object>/image/0000.png ... 0023.png``: 24 views at 64x64;
- ``<root>/<category>/<object>/cameras.npz``: ``world_mat_i`` (3x4 or 4x4 world-to-camera, OpenCV axes) or
  ``world_mat_inv_i`` (its inverse) and ``camera_mat_i`` (intrinsics in normalised device coordinates, image in
  [-1,1]);
- ``<root>/<category>/softras_{train,val,test}.lst``: one object id per line.

Conversion to the project's convention: ``c2w = inverse(world_mat)``; ``fx = camera_mat[0,0] * W/2``,
``fy = camera_mat[1,1] * H/2``, ``cx = (1 + camera_mat[0,2]) * W/2``, ``cy = (1 + camera_mat[1,2]) * H/2``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from soda.data.formats import FormatError, load_rgb, require_dir, require_file, uint8_to_tensor

SPLITS = ("train", "val", "test")


def camera_from_npz(cams: dict, i: int, H: int, W: int, path) -> tuple[torch.Tensor, torch.Tensor]:
    """View i of a loaded cameras.npz -> (K (3,3), c2w (4,4)) float32."""
    if f"world_mat_inv_{i}" in cams:
        c2w = np.asarray(cams[f"world_mat_inv_{i}"], dtype=np.float64)
    elif f"world_mat_{i}" in cams:
        w2c = np.asarray(cams[f"world_mat_{i}"], dtype=np.float64)
        if w2c.shape == (3, 4):
            w2c = np.vstack([w2c, [0.0, 0.0, 0.0, 1.0]])
        if w2c.shape != (4, 4):
            raise FormatError(f"{path}: world_mat_{i} has shape {w2c.shape}, expected (3,4) or (4,4)")
        c2w = np.linalg.inv(w2c)
    else:
        raise FormatError(f"{path}: no world_mat_{i} (or world_mat_inv_{i}) for view {i}")
    if f"camera_mat_{i}" not in cams:
        raise FormatError(f"{path}: no camera_mat_{i} for view {i}")
    m = np.asarray(cams[f"camera_mat_{i}"], dtype=np.float64)
    if m.shape[0] < 3 or m.shape[1] < 3:
        raise FormatError(f"{path}: camera_mat_{i} has shape {m.shape}, expected (3,3) or (4,4)")
    K = np.array(
        [[m[0, 0] * W / 2, 0.0, (1 + m[0, 2]) * W / 2], [0.0, m[1, 1] * H / 2, (1 + m[1, 2]) * H / 2], [0, 0, 1]]
    )
    return torch.from_numpy(K).float(), torch.from_numpy(c2w[:4, :4]).float()


class NMR(torch.utils.data.Dataset):
    """One item per view: image (3,64,64) in [-1,1], K (3,3), c2w (4,4), object (int), category (str), view (int)."""

    def __init__(self, root, split: str = "train", categories=None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = require_dir(root, "an NMR root of <category>/<object>/{image,cameras.npz}")
        lst = f"softras_{split}.lst"
        if categories is None:
            categories = sorted(p.name for p in self.root.iterdir() if (p / lst).is_file())
            if not categories:
                raise FileNotFoundError(f"{self.root}: no <category>/{lst} found")
        self.objects, self.items, self._views = [], [], []
        for cat in categories:
            ids = [
                ln.strip()
                for ln in require_file(self.root / cat / lst, "object ids, one per line").read_text().splitlines()
            ]
            for obj_id in filter(None, ids):
                obj = require_dir(self.root / cat / obj_id, f"the object {obj_id} listed in {self.root / cat / lst}")
                views = sorted((obj / "image").glob("*.png"))
                if not views:
                    raise FileNotFoundError(f"{obj / 'image'}: no .png views")
                require_file(obj / "cameras.npz", "world_mat_i and camera_mat_i for every view")
                o = len(self.objects)
                self.objects.append((cat, obj_id))
                start = len(self.items)
                self.items += [(o, int(v.stem), v) for v in views]
                self._views.append(list(range(start, len(self.items))))
        self._cams = {}

    def __len__(self) -> int:
        return len(self.items)

    def views_of(self, obj: int) -> list[int]:
        """Dataset indices of all views of object number `obj`."""
        return self._views[obj]

    def _cameras(self, o: int) -> dict:
        if o not in self._cams:
            cat, obj_id = self.objects[o]
            path = self.root / cat / obj_id / "cameras.npz"
            with np.load(path, allow_pickle=False) as z:
                self._cams[o] = {k: z[k] for k in z.files}
        return self._cams[o]

    def __getitem__(self, i: int) -> dict:
        o, v, path = self.items[int(i)]
        arr = load_rgb(path)
        H, W = arr.shape[:2]
        cat, obj_id = self.objects[o]
        K, c2w = camera_from_npz(self._cameras(o), v, H, W, Path(self.root / cat / obj_id / "cameras.npz"))
        return {"image": uint8_to_tensor(arr), "K": K, "c2w": c2w, "object": o, "category": cat, "view": v}
