"""Does the decoder read the scene from z? Object-pixel PSNR and the z-use gap (pure functions on a labelled batch).

The loss and the whole-image PSNR hide a decoder that draws the room from z but ignores the object: the room is most
of the pixels. Two measurements make it visible:

- **object-pixel PSNR**: PSNR over the pixels the renderer says belong to the object (ground-truth coverage);
- **z-use gap**: the PSNR of the one-step prediction x0-hat with the true z minus with another scene's z (the batch
  rolled by one), at t = 1 (pure noise: everything must come from z) and at alpha_bar = 0.1, on all pixels and on the
  object's pixels. A decoder that ignores z has a gap of 0 dB.

Used by the trainer at every checkpoint (held-out scenes) and by ``soda.eval``.
"""

from __future__ import annotations

import torch

from ..diffusion import alpha_bar, q_sample, t_from_alpha_bar, to_x0

OBJECT_WEIGHT_MIN = 0.1  # object weight = coverage x shading (shading >= 0.35): > 0.1 means mostly object


def object_masks(factors: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor, res: int) -> torch.Tensor:
    """Scenes (B,6) seen by cameras K (B,3,3), c2w (B,4,4) -> (B,1,res,res) bool, True on the object's pixels."""
    from ..data.world import render_geometry

    f = factors.long()
    w = render_geometry(f[:, 4], f[:, 3], f[:, 5], K, c2w, res, supersample=2, shadows=False)
    return (w[:, 2:3] > OBJECT_WEIGHT_MIN).to(factors.device)


def masked_psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Images (B,3,H,W) in [-1,1], optional mask (B,1,H,W) -> (B,) PSNR in dB on the [0,1] scale over the masked
    pixels (all pixels without a mask). Rows with an empty mask give NaN (skip them with nanmean)."""
    d2 = ((a.float().clamp(-1, 1) - b.float().clamp(-1, 1)) / 2).pow(2)
    if mask is None:
        mse = d2.mean(dim=(1, 2, 3))
    else:
        m = mask.float().expand_as(d2)
        mse = (d2 * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3))  # 0/0 -> NaN for an empty mask
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


@torch.no_grad()
def x0_prediction(model, x0: torch.Tensor, zs: torch.Tensor, rays, t_value: float, noise: torch.Tensor):
    """One denoiser call at time ``t_value`` on x_t made from the clean images ``x0`` -> x0-hat (B,3,H,W) in [-1,1]."""
    cfg = model.cfg.diffusion
    t = torch.full((x0.shape[0],), float(t_value), device=x0.device)
    ab = alpha_bar(t, cfg.schedule).to(x0.device)
    x_t = q_sample(x0, ab, noise)
    return to_x0(model.denoise(x_t, t, zs, rays), x_t, ab, cfg.prediction).clamp(-1, 1)


@torch.no_grad()
def z_use_gap(model, images, rays, mask, seed: int = 0) -> dict:
    """Held-out images (B,3,H,W) in [-1,1] (source = target), their rays (or None), object masks (B,1,H,W) ->
    {'t1': {...}, 'ab0.1': {...}} with psnr / psnr_shuffled / gap (all pixels) and the same on object pixels, in dB.
    The shuffled z is the batch rolled by one (every row gets another scene's z; needs B >= 2)."""
    if images.shape[0] < 2:
        raise ValueError("z_use_gap needs at least 2 images (the shuffled z comes from another image)")
    zs = model.sections(model.encode(images, rays))
    shuffled = zs.roll(1, dims=0)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=g).to(images.device)
    out = {}
    t_01 = float(t_from_alpha_bar(torch.tensor(0.1), model.cfg.diffusion.schedule))
    for name, t in (("t1", 1.0), ("ab0.1", t_01)):
        a = x0_prediction(model, images, zs, rays, t, noise)
        b = x0_prediction(model, images, shuffled, rays, t, noise)
        r = {}
        for suffix, m in (("", None), ("_object", mask)):
            p_true = float(masked_psnr(a, images, m).nanmean())
            p_shuf = float(masked_psnr(b, images, m).nanmean())
            r |= {f"psnr{suffix}": p_true, f"psnr_shuffled{suffix}": p_shuf, f"gap{suffix}": p_true - p_shuf}
        out[name] = r
    return out


def held_out_scenes(n: int, res: int, seed: int = 0, n_fourier: int = 0) -> dict:
    """n held-out scenes (test split, random cameras) with object masks: world_eval_set's dict plus 'mask'."""
    from ..data.views import world_eval_set

    d = world_eval_set(n, res, split="test", seed=seed, camera="random", n_fourier=n_fourier)
    d["mask"] = object_masks(d["factors"], d["K"], d["c2w"], res)
    return d


def held_out_files(cfg, n: int) -> dict:
    """The first n held-out files of an image-folder config (its test split; training never reads them), source =
    target, no cameras and no object masks: {'images' (n,3,H,W) in [-1,1], 'rays': None, 'mask': None}."""
    from ..data.streams import image_source

    src = image_source(cfg, "test")
    n = min(n, len(src))
    if n < 2:
        raise ValueError(f"the folder's held-out split has {len(src)} file(s); the z-use gap needs at least 2")
    items = [src[i] for i in range(n)]
    images = torch.stack([it["image"] if isinstance(it, dict) else it for it in items])
    return {"images": images, "rays": None, "mask": None}


@torch.no_grad()
def scene_metrics(model, scenes: dict, steps: int = 20, seed: int = 0, sampler: str = "ddim") -> dict:
    """Reconstruction PSNR on all and on object pixels (decoded with ``steps`` sampler steps, source camera = target
    camera) and the z-use gap, for a SODA model on ``held_out_scenes`` (or ``held_out_files``: no object mask, so no
    object entries). -> flat dict of floats (dB)."""
    from .. import api

    dev = next(model.parameters()).device
    images = scenes["images"].to(dev)
    rays = scenes["rays"].to(dev) if model.uses_cameras else None
    mask = scenes["mask"].to(dev) if scenes.get("mask") is not None else None
    z = model.encode(images, rays)
    rec = api.decode(model, z, rays=rays, steps=steps, seed=seed, sampler=sampler).to(dev)
    out = {"recon_psnr": float(masked_psnr(rec, images).mean())}
    if mask is not None:
        out["recon_psnr_object"] = float(masked_psnr(rec, images, mask).nanmean())
    for where, r in z_use_gap(model, images, rays, mask, seed=seed).items():
        out[f"zgap_{where}"] = r["gap"]
        if mask is not None:
            out[f"zgap_{where}_object"] = r["gap_object"]
    return out
