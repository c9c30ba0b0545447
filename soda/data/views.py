"""View pairs and evaluation sets: what the trainer and the evaluation read.

Training streams are infinite ``IterableDataset``s that yield ready-made batches (use ``DataLoader(batch_size=None)``
or iterate directly). Batch ``s`` of a stream is a pure function of (seed, rank, s): the same seed gives an identical
stream, different ranks get different streams, ``start_step`` resumes a stream exactly, and DataLoader workers split
the steps among themselves so that the stream is the same for any ``num_workers``.

- ``WorldPairs``: procedural scenes; ``multiview`` = the same scene from two cameras (rays for both), ``identity`` =
  target equals source (reconstruction).
- ``AugmentPairs``: two random-resized-crop (+ flip, optional brightness/contrast/saturation jitter, never hue) views
  of images from any indexable dataset, for data without cameras.
- ``world_eval_set`` / ``world_nvs_set``: labelled evaluation sets (held-out scenes by default).
- ``export_world`` / ``load_exported`` / ``export_shapes3d_h5``: cached on-disk copies for evaluation.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset, get_worker_info

from soda.data import world
from soda.data.cameras import ray_channels

_MASK64 = (1 << 64) - 1


def stream_seed(seed: int, stream: int, step: int) -> int:
    """(seed, stream, step) -> a well-mixed 63-bit generator seed (splitmix64 finaliser)."""
    x = (seed * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9 + step * 0x94D049BB133111EB + 1) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) >> 1


def _worker_steps(start_step: int):
    """Steps this process yields: all of them, or every k-th from start + w in DataLoader worker w of k, so that the
    DataLoader's round-robin delivers steps start, start + 1, ... exactly as with num_workers = 0."""
    info = get_worker_info()
    w, k = (0, 1) if info is None else (info.id, info.num_workers)
    step = start_step + w
    while True:
        yield step
        step += k


def _to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0,1] -> [-1,1]."""
    return x.mul(2.0).sub_(1.0)


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
            src = _to_signed(self._fixed(factors))
            rays = ray_channels(K, c2w, res, res, self.n_fourier)
            return self._pack(src, src, rays, rays, K, c2w, K, c2w, factors)
        K, c2w = (t.to(dev) for t in world.sample_cameras(B, g, res))
        if self.mode == "identity":
            src = _to_signed(world.render(factors, K, c2w, res, self.supersample, device=dev))
            rays = ray_channels(K, c2w, res, res, self.n_fourier)
            return self._pack(src, src, rays, rays, K, c2w, K, c2w, factors)
        K_t, c2w_t = (t.to(dev) for t in world.sample_cameras(B, g, res))
        same = (torch.rand(B, generator=g) < self.p_identity).to(dev)
        c2w_t = torch.where(same[:, None, None], c2w, c2w_t)
        K_t = torch.where(same[:, None, None], K, K_t)
        # One render call for the sources and the targets that differ from them (identical cameras, identical images).
        diff = (~same).nonzero().squeeze(1)
        fd = factors.to(dev)
        images = world.render(
            torch.cat([fd, fd[diff]]), torch.cat([K, K_t[diff]]), torch.cat([c2w, c2w_t[diff]]), res, self.supersample
        )
        src = _to_signed(images[:B])
        tgt = src.clone()
        tgt[diff] = _to_signed(images[B:])
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
        for step in _worker_steps(self.start_step):
            yield self.batch(step)


# ----------------------------------------------------------------------------------------------------------------------
# Augmentation pairs (data without cameras)
# ----------------------------------------------------------------------------------------------------------------------
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
        for step in _worker_steps(self.start_step):
            yield self.batch(step)


# ----------------------------------------------------------------------------------------------------------------------
# Evaluation sets
# ----------------------------------------------------------------------------------------------------------------------
_EVAL_STREAM = 7_777_777  # evaluation sets never share a generator state with training streams


def _eval_cameras(n, res, camera, g):
    if camera == "fixed":
        return world.default_camera(res, n)
    if camera == "random":
        return world.sample_cameras(n, g, res)
    raise ValueError(f"camera must be 'fixed' or 'random', got {camera!r}")


def _render_batched(factors, K, c2w, res, device, fixed=None, progress=None, batch=256):
    """Render in slices (with the FixedCameraRenderer `fixed` if given) -> uint8 (n,H,W,3) on the CPU."""
    n = factors.shape[0]
    out = torch.empty(n, res, res, 3, dtype=torch.uint8)
    for i in range(0, n, batch):
        sl = slice(i, min(n, i + batch))
        if fixed is not None:
            img = fixed(factors[sl])
        else:
            img = world.render(factors[sl], K[sl], c2w[sl], res, device=device)
        out[sl] = (img * 255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu()
        if progress is not None:
            progress.update(sl.stop - sl.start)
    return out


def world_eval_set(
    n: int, res: int, split: str = "test", seed: int = 0, camera: str = "fixed", device="cpu", n_fourier: int = 0
) -> dict:
    """n labelled scenes -> {'images' (n,3,H,W) in [-1,1], 'factors' (n,6) long, 'K' (n,3,3), 'c2w' (n,4,4),
    'rays' (n,6+12*n_fourier,H,W)}. Images are float renders (not uint8-quantised); deterministic in seed."""
    g = torch.Generator().manual_seed(stream_seed(seed, _EVAL_STREAM, 0))
    factors = world.sample_factors(n, g, split)
    K, c2w = _eval_cameras(n, res, camera, g)
    dev = torch.device(device)
    if camera == "fixed":
        images = world.FixedCameraRenderer(res, device=dev)(factors)
    else:
        images = world.render(factors, K, c2w, res, device=dev)
    K, c2w = K.to(dev), c2w.to(dev)
    return {
        "images": _to_signed(images),
        "factors": factors.to(dev),
        "K": K,
        "c2w": c2w,
        "rays": ray_channels(K, c2w, res, res, n_fourier),
    }


def world_nvs_set(
    n_scenes: int, n_views: int, res: int, split: str = "test", seed: int = 0, device="cpu", n_fourier: int = 0
) -> dict:
    """Novel-view set: n_scenes scenes, each from n_views random cameras (view 0 = source, the rest = targets) ->
    {'images' (S,V,3,H,W) in [-1,1], 'factors' (S,6), 'K' (S,V,3,3), 'c2w' (S,V,4,4), 'rays' (S,V,6+12n,H,W)}."""
    g = torch.Generator().manual_seed(stream_seed(seed, _EVAL_STREAM + 1, 0))
    factors = world.sample_factors(n_scenes, g, split)
    K, c2w = world.sample_cameras(n_scenes * n_views, g, res)
    f_rep = factors.repeat_interleave(n_views, dim=0)
    dev = torch.device(device)
    images = world.render(f_rep, K, c2w, res, device=dev)
    K, c2w = K.to(dev), c2w.to(dev)
    rays = ray_channels(K, c2w, res, res, n_fourier)
    S, V = n_scenes, n_views
    return {
        "images": _to_signed(images).view(S, V, 3, res, res),
        "factors": factors.to(dev),
        "K": K.view(S, V, 3, 3),
        "c2w": c2w.view(S, V, 4, 4),
        "rays": rays.view(S, V, -1, res, res),
    }


# ----------------------------------------------------------------------------------------------------------------------
# On-disk exports
# ----------------------------------------------------------------------------------------------------------------------
def _progress(total, enabled, desc):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img")


def _atomic_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".partial")


def export_world(
    path,
    n: int,
    res: int = 64,
    split: str = "test",
    seed: int = 0,
    camera: str = "fixed",
    device="cpu",
    progress: bool = True,
) -> Path:
    """Render n scenes and write an uncompressed .npz: images (n,H,W,3) uint8, factors (n,6) int64, K (n,3,3) and
    c2w (n,4,4) float32, plus res/split/seed/camera metadata. The same arguments give the same file contents."""
    path = Path(path)
    g = torch.Generator().manual_seed(stream_seed(seed, _EVAL_STREAM + 2, 0))
    factors = world.sample_factors(n, g, split)
    K, c2w = _eval_cameras(n, res, camera, g)
    bar = _progress(n, progress, f"world {split} {res}px")
    fixed = world.FixedCameraRenderer(res, device=device) if camera == "fixed" else None
    images = _render_batched(factors, K, c2w, res, torch.device(device), fixed, bar)
    if bar is not None:
        bar.close()
    tmp = _atomic_path(path)
    with open(tmp, "wb") as fh:
        np.savez(
            fh,
            images=images.numpy(),
            factors=factors.numpy().astype(np.int64),
            K=K.numpy().astype(np.float32),
            c2w=c2w.numpy().astype(np.float32),
            res=np.int64(res),
            split=np.str_(split),
            seed=np.int64(seed),
            camera=np.str_(camera),
        )
    os.replace(tmp, path)
    return path


class ExportedWorld(torch.utils.data.Dataset):
    """An export_world .npz as a dataset of dicts: image (3,H,W) in [-1,1], factors (6,), K (3,3), c2w (4,4)."""

    KEYS = ("images", "factors", "K", "c2w")

    def __init__(self, path):
        from soda.data.formats import load_npz_arrays

        self.path = Path(path)
        arrays = load_npz_arrays(self.path, self.KEYS, what="a world export (export_world)")
        n = arrays["images"].shape[0]
        img = arrays["images"]
        if img.ndim != 4 or img.shape[3] != 3 or img.dtype != np.uint8:
            raise ValueError(f"{self.path}: 'images' must be (N,H,W,3) uint8, got {img.shape} {img.dtype}")
        for key, shape in (("factors", (n, 6)), ("K", (n, 3, 3)), ("c2w", (n, 4, 4))):
            if tuple(arrays[key].shape) != shape:
                raise ValueError(f"{self.path}: '{key}' must have shape {shape}, got {tuple(arrays[key].shape)}")
        self.images = img
        self.factors = torch.from_numpy(np.array(arrays["factors"], dtype=np.int64))
        self.K = torch.from_numpy(np.array(arrays["K"], dtype=np.float32))
        self.c2w = torch.from_numpy(np.array(arrays["c2w"], dtype=np.float32))
        self.res = img.shape[1]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict:
        img = torch.from_numpy(np.array(self.images[i])).permute(2, 0, 1).float() / 127.5 - 1
        return {"image": img, "factors": self.factors[i], "K": self.K[i], "c2w": self.c2w[i]}

    def as_eval_set(self, n_fourier: int = 0) -> dict:
        """The whole export in world_eval_set's format (images (n,3,H,W) in [-1,1], factors, K, c2w, rays)."""
        images = torch.from_numpy(np.array(self.images)).permute(0, 3, 1, 2).float() / 127.5 - 1
        return {
            "images": images,
            "factors": self.factors,
            "K": self.K,
            "c2w": self.c2w,
            "rays": ray_channels(self.K, self.c2w, self.res, self.res, n_fourier),
        }


def load_exported(path) -> ExportedWorld:
    """Open an export_world .npz (images stay uint8, memory-mapped when stored uncompressed)."""
    return ExportedWorld(path)


def export_shapes3d_h5(
    path,
    n: int | None = None,
    split: str = "all",
    seed: int = 0,
    camera: str = "fixed",
    device="cpu",
    progress: bool = True,
) -> Path:
    """Write the Shapes3D layout: 'images' (N,64,64,3) uint8, 'labels' (N,6) float64 of real factor values.

    n=None renders every combination of the split in Shapes3D's row-major factor order (split='all' gives the full
    480000-image grid, about 5.9 GB); an integer n samples n scenes of the split.
    """
    import h5py

    path, res = Path(path), 64
    if n is None:
        factors = world.unravel_factors(world.split_indices(split))
        g = torch.Generator().manual_seed(stream_seed(seed, _EVAL_STREAM + 3, 0))
    else:
        g = torch.Generator().manual_seed(stream_seed(seed, _EVAL_STREAM + 3, 0))
        factors = world.sample_factors(n, g, split)
    n = factors.shape[0]
    K, c2w = _eval_cameras(n, res, camera, g)
    bar = _progress(n, progress, f"shapes3d-layout {split}")
    fixed = world.FixedCameraRenderer(res, device=device) if camera == "fixed" else None
    tmp = _atomic_path(path)
    with h5py.File(tmp, "w") as fh:
        ds = fh.create_dataset("images", shape=(n, res, res, 3), dtype=np.uint8, chunks=(min(n, 256), res, res, 3))
        for i in range(0, n, 4096):
            sl = slice(i, min(n, i + 4096))
            ds[sl] = _render_batched(factors[sl], K[sl], c2w[sl], res, torch.device(device), fixed, bar).numpy()
        fh.create_dataset("labels", data=world.factor_values(factors).numpy())
    if bar is not None:
        bar.close()
    os.replace(tmp, path)
    return path
