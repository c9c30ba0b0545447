"""Augmentation pairs for data without cameras: two random views (crop, flip, optional colour jitter) of one image.

``AugmentPairs`` is an infinite stream like ``soda.data.views.WorldPairs`` (batch ``s`` is a pure function of
(seed, rank, s), see ``soda.data.seeds``); ``random_resized_crop`` and ``colour_jitter`` are its per-image operations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset

from soda.data.seeds import stream_seed, worker_steps


def _as_image(item) -> torch.Tensor:
    x = item["image"] if isinstance(item, dict) else item
    x = torch.as_tensor(x)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an image (3,H,W) in [-1,1], got shape {tuple(x.shape)}")
    return x.float()


def random_resized_crop(
    x: torch.Tensor, res: int, g: torch.Generator, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True
) -> torch.Tensor:
    """(3,H,W) -> (3,res,res): a crop covering a random area fraction in `scale` with aspect ratio in `ratio`
    (log-uniform), antialiased resize, and a horizontal flip with probability 1/2 when `flip`."""
    _, H, W = x.shape
    area = H * W
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(1, generator=g).item())
        log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(1, generator=g).item()
        w = int(round(math.sqrt(target * math.exp(log_r))))
        h = int(round(math.sqrt(target / math.exp(log_r))))
        if 0 < w <= W and 0 < h <= H:
            break
    else:  # fall back to the largest centred square-ish crop
        h, w = H, W
    top = int(torch.randint(0, H - h + 1, (1,), generator=g))
    left = int(torch.randint(0, W - w + 1, (1,), generator=g))
    crop = x[:, top : top + h, left : left + w]
    out = F.interpolate(crop[None], size=(res, res), mode="bilinear", align_corners=False, antialias=True)[0]
    if flip and torch.rand(1, generator=g).item() < 0.5:
        out = out.flip(-1)
    return out


def colour_jitter(x: torch.Tensor, g: torch.Generator, strength: float = 0.4) -> torch.Tensor:
    """(3,H,W) in [-1,1] -> brightness, contrast and saturation scaled by factors in [1-s, 1+s]; hue untouched."""
    u = 1.0 + strength * (2 * torch.rand(3, generator=g) - 1)
    y = (x + 1) / 2
    y = y * u[0]
    mean = y.mean()
    y = (y - mean) * u[1] + mean
    grey = (0.299 * y[0] + 0.587 * y[1] + 0.114 * y[2])[None]
    y = (y - grey) * u[2] + grey
    return y.clamp(0, 1) * 2 - 1


class AugmentPairs(IterableDataset):
    """Infinite batches {'src', 'tgt'} (B,3,res,res) in [-1,1]: two independent augmentations of the same images
    (with probability ``p_identity`` the target is the source view itself, the augmentation analogue of
    ``WorldPairs``' same-camera pairs: it teaches the decoder to reproduce the framing it was given).

    ``images_source`` is any indexable dataset whose items are (3,H,W) tensors in [-1,1] or dicts with 'image'.
    Colour jitter (brightness/contrast/saturation only) is off by default: never use it when colour is a factor.
    """

    def __init__(
        self,
        images_source,
        res: int,
        batch_size: int,
        seed: int = 0,
        scale=(0.5, 1.0),
        ratio=(3 / 4, 4 / 3),
        flip: bool = True,
        color_jitter: bool = False,
        jitter_strength: float = 0.4,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        p_identity: float = 0.0,
    ):
        if len(images_source) == 0:
            raise ValueError("AugmentPairs needs a non-empty images_source")
        if not 0.0 <= p_identity <= 1.0:
            raise ValueError(f"p_identity must be in [0, 1], got {p_identity}")
        self.source, self.res, self.batch_size, self.seed = images_source, res, batch_size, seed
        self.p_identity = p_identity
        self.scale, self.ratio, self.flip = scale, ratio, flip
        self.color_jitter, self.jitter_strength = color_jitter, jitter_strength
        self.rank, self.world_size, self.start_step = rank, world_size, start_step

    def _view(self, x, g):
        v = random_resized_crop(x, self.res, g, self.scale, self.ratio, self.flip)
        return colour_jitter(v, g, self.jitter_strength) if self.color_jitter else v

    def batch(self, step: int) -> dict:
        """The stream's batch number ``step``: {'src', 'tgt'} (B,3,res,res) in [-1,1]."""
        g = torch.Generator().manual_seed(stream_seed(self.seed, 1_000_003 + self.rank, step))
        idx = torch.randint(len(self.source), (self.batch_size,), generator=g)
        src, tgt = [], []
        same = (torch.rand(self.batch_size, generator=g) < self.p_identity).tolist() if self.p_identity else None
        for k, i in enumerate(idx.tolist()):
            x = _as_image(self.source[i])
            src.append(self._view(x, g))
            tgt.append(src[-1] if same and same[k] else self._view(x, g))
        return {"src": torch.stack(src), "tgt": torch.stack(tgt)}

    def __iter__(self):
        for step in worker_steps(self.start_step):
            yield self.batch(step)
