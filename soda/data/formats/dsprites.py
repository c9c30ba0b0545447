"""dSprites (Matthey et al. 2017): ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` with ``imgs`` (737280,64,64)
uint8 in {0,1} and ``latents_classes`` (737280,6) integer class indices; factor sizes [1, 3, 6, 40, 32, 32] (colour,
shape, scale, orientation, x, y). Other keys (``latents_values``, ``metadata``) are not read; ``metadata`` is a
pickled object and is never unpickled.
"""

from __future__ import annotations

import numpy as np
import torch

from soda.data.formats import FormatError, load_npz_arrays, resize_tensor

FACTOR_NAMES = ("color", "shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (1, 3, 6, 40, 32, 32)
WHAT = "a dSprites .npz with 'imgs' (N,64,64) uint8 in {0,1} and 'latents_classes' (N,6) integers"


class DSprites(torch.utils.data.Dataset):
    """Items: image (3,res,res) in [-1,1] (white sprite on black), factors (6,) long."""

    factor_names, factor_sizes = FACTOR_NAMES, FACTOR_SIZES

    def __init__(self, path, res: int | None = 64):
        self.path, self.res = path, res
        arrays = load_npz_arrays(path, ["imgs", "latents_classes"], WHAT)
        imgs, classes = arrays["imgs"], arrays["latents_classes"]
        if imgs.ndim != 3:
            raise FormatError(f"{path}: 'imgs' is {imgs.shape} (expected {WHAT})")
        if classes.shape != (imgs.shape[0], 6) or not np.issubdtype(classes.dtype, np.integer):
            raise FormatError(f"{path}: 'latents_classes' is {classes.shape} {classes.dtype} (expected {WHAT})")
        self.imgs = imgs
        self.factors = torch.from_numpy(np.array(classes, dtype=np.int64))

    def __len__(self) -> int:
        return self.imgs.shape[0]

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        x = torch.from_numpy(np.asarray(self.imgs[i], dtype=np.float32))
        if x.max() > 1:  # some copies store 0/255
            x = x / 255.0
        image = (x * 2 - 1)[None].expand(3, -1, -1).contiguous()
        return {"image": resize_tensor(image, self.res), "factors": self.factors[i]}
