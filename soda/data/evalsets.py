"""Evaluation sets of the procedural world and their cached on-disk copies.

- ``world_eval_set`` / ``world_nvs_set``: labelled evaluation sets (held-out scenes by default), deterministic in seed.
- ``export_world`` / ``load_exported`` / ``export_shapes3d_h5``: cached on-disk copies for evaluation (written
  atomically with ``soda.atomic``: a file appears complete or not at all).

All are re-exported by ``soda.data.views`` (their historical home).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from soda import atomic
from soda.data import world
from soda.data.cameras import default_camera, ray_channels, sample_cameras
from soda.data.seeds import stream_seed
from soda.data.world import to_signed

_EVAL_STREAM = 7_777_777  # evaluation sets never share a generator state with training streams


def _eval_cameras(n, res, camera, g):
    if camera == "fixed":
        return default_camera(res, n)
    if camera == "random":
        return sample_cameras(n, g, res)
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
        "images": to_signed(images),
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
    K, c2w = sample_cameras(n_scenes * n_views, g, res)
    f_rep = factors.repeat_interleave(n_views, dim=0)
    dev = torch.device(device)
    images = world.render(f_rep, K, c2w, res, device=dev)
    K, c2w = K.to(dev), c2w.to(dev)
    rays = ray_channels(K, c2w, res, res, n_fourier)
    S, V = n_scenes, n_views
    return {
        "images": to_signed(images).view(S, V, 3, res, res),
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

    def write(tmp: Path) -> None:
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

    return atomic.write_file(path, write)


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
    g = torch.Generator().manual_seed(stream_seed(seed, _EVAL_STREAM + 3, 0))
    if n is None:
        factors = world.unravel_factors(world.split_indices(split))
    else:
        factors = world.sample_factors(n, g, split)
    n = factors.shape[0]
    K, c2w = _eval_cameras(n, res, camera, g)
    bar = _progress(n, progress, f"shapes3d-layout {split}")
    fixed = world.FixedCameraRenderer(res, device=device) if camera == "fixed" else None

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as fh:
            ds = fh.create_dataset("images", shape=(n, res, res, 3), dtype=np.uint8, chunks=(min(n, 256), res, res, 3))
            for i in range(0, n, 4096):
                sl = slice(i, min(n, i + 4096))
                ds[sl] = _render_batched(factors[sl], K[sl], c2w[sl], res, torch.device(device), fixed, bar).numpy()
            fh.create_dataset("labels", data=world.factor_values(factors).numpy())

    atomic.write_file(path, write)
    if bar is not None:
        bar.close()
    return path
