"""MPI3D (Gondal et al. 2019): ``mpi3d_{toy,realistic,real}.npz`` with key ``images`` (1036800,64,64,3) uint8 and no
labels; image i has factors ``np.unravel_index(i, [6, 6, 2, 3, 3, 40, 40])`` (object colour, object shape, object
size, camera height, background colour, horizontal axis, vertical axis).

The archive is memory-mapped when stored uncompressed (as distributed), so opening it costs no memory. A file that
holds a sub-grid (e.g. a test's tiny file) passes its own ``factor_sizes``; the image count must equal their product.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from soda.data.formats import FormatError, load_npz_arrays, resize_tensor, uint8_to_tensor

FACTOR_NAMES = (
    "object_color",
    "object_shape",
    "object_size",
    "camera_height",
    "background_color",
    "horizontal_axis",
    "vertical_axis",
)
FACTOR_SIZES = (6, 6, 2, 3, 3, 40, 40)
WHAT = "an MPI3D .npz with 'images' (N,64,64,3) uint8, N = prod(factor sizes)"


class MPI3D(torch.utils.data.Dataset):
    """Items: image (3,res,res) in [-1,1], factors (7,) long."""

    factor_names = FACTOR_NAMES

    def __init__(self, path, res: int | None = 64, factor_sizes=FACTOR_SIZES):
        self.path, self.res = path, res
        self.images = load_npz_arrays(path, ["images"], WHAT)["images"]
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        img = self.images
        if img.ndim != 4 or img.shape[3] != 3 or img.dtype != np.uint8:
            raise FormatError(f"{path}: 'images' is {img.shape} {img.dtype} (expected {WHAT})")
        if img.shape[0] != math.prod(self.factor_sizes):
            raise FormatError(
                f"{path}: {img.shape[0]} images but factor sizes {list(self.factor_sizes)} give "
                f"{math.prod(self.factor_sizes)} (expected {WHAT})"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def factors_of(self, indices) -> torch.Tensor:
        """(n,) indices -> (n,7) long factors."""
        idx = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(np.stack(np.unravel_index(idx, self.factor_sizes), axis=-1).astype(np.int64))

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        image = resize_tensor(uint8_to_tensor(self.images[i]), self.res)
        return {"image": image, "factors": self.factors_of([i])[0]}
