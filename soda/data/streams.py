"""Training streams for the trainer: infinite iterators of batch dicts where batch s depends only on (seed, rank, s).

That makes ``--resume`` exact without saving any data-loader state, and gives every DDP rank its own stream.
Batches hold ``src``/``tgt`` (B,3,H,W) in [-1,1] and, for camera data, ``src_rays``/``tgt_rays`` (B,R,H,W).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..config import SODAConfig


def step_generator(seed: int, rank: int, step: int, split: str = "train") -> torch.Generator:
    """A generator whose state is a pure function of (seed, rank, step, split)."""
    salt = 0 if split == "train" else 7_919
    return torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 2_147_483_647 + step * 97 + salt) % 2**63)


def world_batch(
    gen: torch.Generator,
    res: int,
    batch_size: int,
    mode: str = "multiview",
    split: str = "train",
    p_identity: float = 0.0,
    n_fourier: int = 0,
) -> dict:
    """One batch of procedural-world view pairs (same scene; the target camera differs unless identity)."""
    from . import world
    from .cameras import ray_channels

    factors = world.sample_factors(batch_size, gen, split=split)  # (B, 6)
    K, c2w_src = world.sample_cameras(batch_size, gen, res)
    if mode == "identity":
        c2w_tgt = c2w_src
    else:
        _, c2w_tgt = world.sample_cameras(batch_size, gen, res)
        same = torch.rand(batch_size, generator=gen) < p_identity
        c2w_tgt = torch.where(same[:, None, None], c2w_src, c2w_tgt)
    src = world.render(factors, K, c2w_src, res) * 2 - 1
    tgt = src if mode == "identity" else world.render(factors, K, c2w_tgt, res) * 2 - 1
    same_cam = (c2w_src == c2w_tgt).flatten(1).all(1)
    tgt = torch.where(same_cam[:, None, None, None], src, tgt)  # identical cameras render identical images
    return {
        "src": src,
        "tgt": tgt,
        "factors": factors,
        "K": K,
        "src_c2w": c2w_src,
        "tgt_c2w": c2w_tgt,
        "src_rays": ray_channels(K, c2w_src, res, res, n_fourier),
        "tgt_rays": ray_channels(K, c2w_tgt, res, res, n_fourier),
    }


def augment_pair(images: torch.Tensor, gen: torch.Generator, res: int, scale: tuple[float, float] = (0.5, 1.0)) -> dict:
    """(B,3,H,W) in [-1,1] -> two independent random-resized-crop + flip views (no colour jitter)."""

    def view(x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        s = scale[0] + (scale[1] - scale[0]) * torch.rand(b, generator=gen)  # area fraction
        side = s.sqrt()  # (B,) crop side as a fraction of the image
        cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - side)  # crop centre in [-1, 1] coordinates
        cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - side)
        flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = side * flip, cx
        theta[:, 1, 1], theta[:, 1, 2] = side, cy
        grid = torch.nn.functional.affine_grid(theta, (b, 3, res, res), align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    return {"src": view(images), "tgt": view(images)}


def make_stream(
    cfg: SODAConfig, rank: int = 0, world_size: int = 1, start_step: int = 0, split: str = "train"
) -> Iterator[dict]:
    """Infinite iterator of training batches for ``cfg.data`` starting at ``start_step``."""
    d, bs = cfg.data, cfg.train.batch_size
    if d.dataset == "world":
        mode = "identity" if d.mode == "identity" else "multiview"
        step = start_step
        while True:
            g = step_generator(cfg.train.seed, rank, step, split)
            yield world_batch(g, d.res, bs, mode, split, d.p_identity, d.n_fourier)
            step += 1
    else:
        images = _image_source(cfg)
        n = len(images)
        step = start_step
        while True:
            g = step_generator(cfg.train.seed, rank, step, split)
            idx = torch.randint(0, n, (bs,), generator=g)
            x = torch.stack([images[int(i)]["image"] for i in idx])
            if d.mode == "augment":
                yield augment_pair(x, g, d.res)
            else:
                yield {"src": x, "tgt": x}
            step += 1


def _image_source(cfg: SODAConfig):
    """An indexable dataset of dicts with 'image' (3,H,W) in [-1,1] at cfg.data.res."""
    d = cfg.data
    if d.dataset == "folder":
        from .formats.folder import ImageFolder

        return ImageFolder(d.path, res=d.res)
    if d.dataset == "shapes3d":
        from .formats.shapes3d import Shapes3D

        return Shapes3D(d.path, res=d.res)
    raise ValueError(f"unknown dataset '{d.dataset}'")
