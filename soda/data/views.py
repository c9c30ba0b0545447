"""View pairs and evaluation sets: what the trainer and the evaluation read.

Training streams are infinite ``IterableDataset``s that yield ready-made batches (use ``DataLoader(batch_size=None)``
or iterate directly). Batch ``s`` of a stream is a pure function of (seed, rank, s) (``soda.data.seeds``): the same
seed gives an identical stream, different ranks get different streams, ``start_step`` resumes a stream exactly, and
DataLoader workers split the steps among themselves so that the stream is the same for any ``num_workers``.

- ``WorldPairs`` (here): procedural scenes; ``multiview`` = the same scene from two cameras (rays for both),
  ``identity`` = target equals source (reconstruction).
- ``AugmentPairs`` (``soda.data.augment``): two random-resized-crop (+ flip, optional brightness/contrast/saturation
  jitter, never hue) views of images from any indexable dataset, for data without cameras.
- ``world_eval_set`` / ``world_nvs_set`` (``soda.data.evalsets``): labelled evaluation sets (held-out scenes by
  default).
- ``export_world`` / ``load_exported`` / ``export_shapes3d_h5`` (``soda.data.evalsets``): cached on-disk copies for
  evaluation.

Every name above is importable from here.
"""

from __future__ import annotations

import torch
from torch.utils.data import IterableDataset

from soda.data import world
from soda.data.augment import AugmentPairs, colour_jitter, random_resized_crop  # noqa: F401 (re-exported)
from soda.data.cameras import ray_channels, sample_cameras
from soda.data.evalsets import (  # noqa: F401 (re-exported)
    ExportedWorld,
    export_shapes3d_h5,
    export_world,
    load_exported,
    world_eval_set,
    world_nvs_set,
)
from soda.data.seeds import stream_seed, worker_steps
from soda.data.world import to_signed


# ----------------------------------------------------------------------------------------------------------------------
# Procedural pairs
# ----------------------------------------------------------------------------------------------------------------------
class WorldPairs(IterableDataset):
    """Infinite batches of procedural view pairs.

    Each batch: ``src``/``tgt`` (B,3,H,W) in [-1,1]; ``src_rays``/``tgt_rays`` (B,6+12*n_fourier,H,W);
    ``src_K``/``tgt_K`` (B,3,3); ``src_c2w``/``tgt_c2w`` (B,4,4); ``factors`` (B,6) long.
    ``multiview``: two independent random cameras per scene, except that with probability ``p_identity`` the target
    camera is the source camera. ``identity``: target = source. ``camera="fixed"`` uses DEFAULT_CAMERA for every image
    (identity mode only; geometry is cached, so it is very fast).
    """

    def __init__(
        self,
        res: int = 32,
        batch_size: int = 64,
        mode: str = "multiview",
        split: str = "train",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        p_identity: float = 0.0,
        device="cpu",
        camera: str = "random",
        n_fourier: int = 0,
        supersample: int = 2,
        start_step: int = 0,
    ):
        if mode not in ("multiview", "identity"):
            raise ValueError(f"mode must be 'multiview' or 'identity', got {mode!r}")
        if camera not in ("random", "fixed"):
            raise ValueError(f"camera must be 'random' or 'fixed', got {camera!r}")
        if camera == "fixed" and mode == "multiview":
            raise ValueError("multiview pairs need random cameras (camera='fixed' only works with mode='identity')")
        if not 0.0 <= p_identity <= 1.0:
            raise ValueError(f"p_identity must be in [0, 1], got {p_identity}")
        world.split_indices(split)  # validates the split name
        self.res, self.batch_size, self.mode, self.split = res, batch_size, mode, split
        self.seed, self.rank, self.world_size, self.p_identity = seed, rank, world_size, p_identity
        self.device, self.camera, self.n_fourier, self.supersample = (
            torch.device(device),
            camera,
            n_fourier,
            supersample,
        )
        self.start_step = start_step
        self._fixed = None

    def batch(self, step: int) -> dict:
        """The stream's batch number ``step`` (a pure function of seed, rank and step)."""
        g = torch.Generator().manual_seed(stream_seed(self.seed, self.rank, step))
        B, res, dev = self.batch_size, self.res, self.device
        factors = world.sample_factors(B, g, self.split)
        if self.camera == "fixed":
            if self._fixed is None:
                self._fixed = world.FixedCameraRenderer(res, supersample=self.supersample, device=dev)
            K, c2w = self._fixed.cameras(B)
            src = to_signed(self._fixed(factors))
            rays = ray_channels(K, c2w, res, res, self.n_fourier)
            return self._pack(src, src, rays, rays, K, c2w, K, c2w, factors)
        K, c2w = (t.to(dev) for t in sample_cameras(B, g, res))
        if self.mode == "identity":
            src = to_signed(world.render(factors, K, c2w, res, self.supersample, device=dev))
            rays = ray_channels(K, c2w, res, res, self.n_fourier)
            return self._pack(src, src, rays, rays, K, c2w, K, c2w, factors)
        K_t, c2w_t = (t.to(dev) for t in sample_cameras(B, g, res))
        same = (torch.rand(B, generator=g) < self.p_identity).to(dev)
        c2w_t = torch.where(same[:, None, None], c2w, c2w_t)
        K_t = torch.where(same[:, None, None], K, K_t)
        # One render call for the sources and the targets that differ from them (identical cameras, identical images).
        diff = (~same).nonzero().squeeze(1)
        fd = factors.to(dev)
        images = world.render(
            torch.cat([fd, fd[diff]]), torch.cat([K, K_t[diff]]), torch.cat([c2w, c2w_t[diff]]), res, self.supersample
        )
        src = to_signed(images[:B])
        tgt = src.clone()
        tgt[diff] = to_signed(images[B:])
        rays_s = ray_channels(K, c2w, res, res, self.n_fourier)
        rays_t = ray_channels(K_t, c2w_t, res, res, self.n_fourier)
        return self._pack(src, tgt, rays_s, rays_t, K, c2w, K_t, c2w_t, factors)

    def _pack(self, src, tgt, rays_s, rays_t, K_s, c2w_s, K_t, c2w_t, factors) -> dict:
        return {
            "src": src,
            "tgt": tgt,
            "src_rays": rays_s,
            "tgt_rays": rays_t,
            "src_K": K_s,
            "src_c2w": c2w_s,
            "tgt_K": K_t,
            "tgt_c2w": c2w_t,
            "factors": factors.to(src.device),
        }

    def __iter__(self):
        for step in worker_steps(self.start_step):
            yield self.batch(step)
