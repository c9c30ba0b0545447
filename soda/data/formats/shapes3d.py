"""Shapes3D (Burgess & Kim 2018): ``3dshapes.h5`` with ``images`` (480000,64,64,3) uint8 and ``labels`` (480000,6)
float64 holding the real factor values: floor hue (10), wall hue (10), object hue (10), scale (8, 0.75..1.25),
shape (4), orientation (15, -30..30).

Class indices come from ``np.unique(column, return_inverse=True)`` (the disentanglement_lib convention). When a file
holds only part of the grid (a subset or one of this project's exports) and a column's values all lie on the known
Shapes3D grid, indices are taken on the full grid instead, so that they keep their meaning.
"""

from __future__ import annotations

import numpy as np
import torch

from soda.data.formats import FormatError, require_file, resize_tensor, uint8_to_tensor

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
GRID_VALUES = (
    np.linspace(0.0, 0.9, 10),
    np.linspace(0.0, 0.9, 10),
    np.linspace(0.0, 0.9, 10),
    np.linspace(0.75, 1.25, 8),
    np.arange(4, dtype=np.float64),
    np.linspace(-30.0, 30.0, 15),
)
WHAT = "a Shapes3D HDF5 file with 'images' (N,64,64,3) uint8 and 'labels' (N,6) float64"


def labels_to_classes(labels: np.ndarray) -> np.ndarray:
    """(N,6) float64 factor values -> (N,6) int64 class indices (see module docstring)."""
    out = np.empty(labels.shape, dtype=np.int64)
    for k in range(labels.shape[1]):
        col = labels[:, k]
        grid = GRID_VALUES[k]
        idx = np.abs(col[:, None] - grid[None, :]).argmin(1)
        if np.allclose(grid[idx], col, atol=1e-6):
            out[:, k] = idx
        else:
            out[:, k] = np.unique(col, return_inverse=True)[1].reshape(-1)
    return out


class Shapes3D(torch.utils.data.Dataset):
    """Items: image (3,res,res) in [-1,1], factors (6,) long class indices, values (6,) float64 real values."""

    factor_names, factor_sizes = FACTOR_NAMES, FACTOR_SIZES

    def __init__(self, path, res: int | None = 64, in_memory: bool = False):
        import h5py

        self.path, self.res = require_file(path, WHAT), res
        try:
            with h5py.File(self.path, "r") as fh:
                missing = [k for k in ("images", "labels") if k not in fh]
                if missing:
                    raise FormatError(f"{self.path}: missing datasets {missing} (expected {WHAT}; found {list(fh)})")
                images, labels = fh["images"], fh["labels"]
                if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
                    raise FormatError(f"{self.path}: 'images' is {images.shape} {images.dtype} (expected {WHAT})")
                if labels.shape != (images.shape[0], 6):
                    raise FormatError(f"{self.path}: 'labels' is {labels.shape}, expected ({images.shape[0]}, 6)")
                values = np.asarray(labels[:], dtype=np.float64)
                self._images = np.asarray(images[:]) if in_memory else None
        except OSError as e:
            raise FormatError(f"{self.path}: cannot open as HDF5 ({e}); expected {WHAT}") from e
        self.values = torch.from_numpy(values)
        self.factors = torch.from_numpy(labels_to_classes(values))
        self._h5 = None

    def __len__(self) -> int:
        return self.factors.shape[0]

    def _image(self, i: int) -> np.ndarray:
        if self._images is not None:
            return self._images[i]
        if self._h5 is None:  # opened lazily, once per process (h5py handles do not survive fork/pickle)
            import h5py

            self._h5 = h5py.File(self.path, "r")
        return self._h5["images"][i]

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        image = resize_tensor(uint8_to_tensor(self._image(i)), self.res)
        return {"image": image, "factors": self.factors[i], "values": self.values[i]}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_h5"] = None
        return state
