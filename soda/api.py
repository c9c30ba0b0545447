"""The library surface used by the app and the evaluation suite: load, encode, decode, edit, interpolate, novel views.

Images are tensors (B,3,H,W) in [-1, 1]; latents are (B, z_dim). Cameras follow soda.data.cameras (OpenCV axes,
camera-to-world). Every decode is deterministic: the same z, camera, seed, steps and sampler give the same image
on the same machine, with the same thread count and batch composition (docs/RELIABILITY.md gives the tolerances
otherwise).

    from soda import api
    model = api.load_model()                              # the bundled checkpoint ("world32"), from any folder
    z = api.encode(model, images)                         # uses the default camera for camera checkpoints
    z2 = api.move_along(z, api.section_directions(model, Z)[3][0], 2.0)
    out = api.decode(model, z2, steps=50)
    side = api.decode(model, z2, camera=api.Camera(azimuth=40, elevation=20, radius=4.0))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from .diffusion import SAMPLERS
from .model import SODA


def load_model(
    path_or_id: str | os.PathLike | None = None, device: str = "cpu", max_download_mb: float | None = None
) -> SODA:
    """Checkpoint folder, name or hub id -> SODA in eval mode (the saved weights are the EMA weights). No argument:
    the bundled checkpoint (``"world32"``), found from any working folder; a name is a folder of the repository's
    assets/checkpoints (``soda.paths.checkpoints_root``). With ``max_download_mb``, a hub checkpoint whose files
    total more is refused (ConfigError) before anything is fetched."""
    if path_or_id is None:
        from .model.io import named_checkpoint
        from .paths import BUNDLED_CHECKPOINT

        path_or_id = named_checkpoint(BUNDLED_CHECKPOINT)  # not a same-named folder of the working directory
    if max_download_mb is not None:
        from .model import resolve_checkpoint

        path_or_id = str(resolve_checkpoint(path_or_id, max_hub_bytes=int(max_download_mb * (1 << 20))))
    return SODA.from_pretrained(path_or_id, map_location=device)


# ------------------------------------------------------------------------------------------------------------
# Cameras
# ------------------------------------------------------------------------------------------------------------

# One camera module (soda.data.cameras); its API names are re-exported here: Camera(azimuth, elevation, radius),
# camera_limits() (training ranges), orbit_cameras(n, ...) (a loopable azimuth sweep) and default_camera().
from .data.cameras import Camera, camera_limits, fourier_bands, orbit_cameras  # noqa: E402, F401

default_camera = Camera.default  # () -> the Camera assumed for uploads to camera-conditioned checkpoints


def camera_rays(model: SODA, camera: Camera | None, batch: int = 1) -> torch.Tensor | None:
    """Camera (None: the default) -> (B, R, H, W) ray channels for ``model`` (None for checkpoints without cameras)."""
    if not model.uses_cameras:
        return None
    cam = camera or Camera.default()
    return cam.rays(model.res, fourier_bands(model.cfg.ray_channels), batch).to(_device(model))


# ------------------------------------------------------------------------------------------------------------
# Encode / decode
# ------------------------------------------------------------------------------------------------------------


def _device(model: SODA) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode(
    model: SODA,
    images: torch.Tensor,
    camera: Camera | None = None,
    rays: torch.Tensor | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """(B,3,H,W) in [-1,1] -> z (B, z_dim). Camera checkpoints use ``rays``, else ``camera``, else the default."""
    out = []
    dev = _device(model)
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].to(dev, torch.float32)
        r = rays[i : i + batch_size].to(dev) if rays is not None else camera_rays(model, camera, x.shape[0])
        out.append(model.encode(x, r))
    return torch.cat(out).cpu()


@torch.no_grad()
def decode(
    model: SODA,
    z: torch.Tensor,
    camera: Camera | None = None,
    rays: torch.Tensor | None = None,
    steps: int | None = None,
    seed: int = 0,
    sampler: str | None = None,
    guidance: float | None = None,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    per_row_noise: bool = False,
) -> torch.Tensor:
    """z (B, z_dim) -> images (B,3,H,W) in [-1,1], for any model kind (``model.decode``). The noise is fixed by
    ``seed``: the same for every row (so each row's image is independent of the batch: frames of a traversal or an
    orbit differ only by z or camera), or, with ``per_row_noise``, row i of randn(B,3,H,W) (for reconstructions of
    different images). ``guidance`` w (default: the checkpoint's) gives eps_c + w (eps_c - eps_u). ``steps`` None:
    the checkpoint's full-quality steps (``soda.chosen_steps.steps_for``: measured by ``python -m
    soda.precompute``, else the config's sample_steps); ``sampler`` None: the sampler they were chosen for (DDIM
    when not measured). Any number of steps may be asked for (``steps=50``: the reference render)."""
    if steps is None or sampler is None:
        from .chosen_steps import choice

        c = choice(model)
        steps = c["full"] if steps is None else steps
        sampler = c["sampler"] if sampler is None else sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler '{sampler}' (choose from {', '.join(SAMPLERS)})")
    b = z.shape[0]
    if rays is None:
        rays = camera_rays(model, camera, b)
    elif rays.shape[0] == 1 and b > 1:
        rays = rays.expand(b, -1, -1, -1)
    kw = {"steps": steps, "seed": seed, "sampler": sampler, "guidance": guidance, "callback": callback}
    return model.decode(z, rays, per_row_noise=per_row_noise, **kw).cpu()


UNCERTAINTY_SEEDS = 8  # noise seeds per uncertainty map


@torch.no_grad()
def uncertainty(
    model: SODA,
    z: torch.Tensor,
    k: int = UNCERTAINTY_SEEDS,
    steps: int | None = None,
    seed: int = 0,
    camera: Camera | None = None,
    sampler: str | None = None,
) -> torch.Tensor:
    """What z does not store: one latent (1 or z_dim,) decoded with ``k`` >= 2 noise draws in one batch (row i: row
    i of randn(k,3,H,W) from ``seed``) -> (H, W), per pixel the standard deviation of the decodes over the noise
    (population std, root mean square over the colour channels, in units of the image range [0, 1]). Zero where z
    fixes the pixel; large where the decoder invents detail that z leaves open."""
    k = int(k)
    if k < 2:
        raise ValueError(f"the uncertainty map needs at least 2 noise seeds, got {k}")
    z = z.reshape(1, -1).expand(k, -1)
    x = decode(model, z, camera=camera, steps=steps, seed=seed, sampler=sampler, per_row_noise=True)  # (k,3,H,W)
    x = (x.double().clamp(-1, 1) + 1) / 2
    return x.var(dim=0, unbiased=False).mean(dim=0).sqrt().float()


def reconstruct(model: SODA, images: torch.Tensor, camera: Camera | None = None, **kw) -> torch.Tensor:
    """Encode then decode with the same camera: (B,3,H,W) -> (B,3,H,W) in [-1,1]."""
    return decode(model, encode(model, images, camera), camera=camera, **kw)


def novel_view(model: SODA, z: torch.Tensor, camera: Camera, **kw) -> torch.Tensor:
    """Decode z as seen from ``camera`` (camera checkpoints only): (B, z_dim) -> (B,3,H,W)."""
    if not model.uses_cameras:
        raise ValueError("this checkpoint was trained without cameras: novel views are not available")
    return decode(model, z, camera=camera, **kw)


def refine_latent(
    model: SODA,
    images: torch.Tensor,
    z: torch.Tensor,
    steps: int = 50,
    lr: float = 0.05,
    n_noise: int = 8,
    seed: int = 0,
    camera: Camera | None = None,
) -> Iterator[tuple[int, torch.Tensor, float]]:
    """Improve z (B, z_dim) for images (B,3,H,W) in [-1,1] by Adam on the denoising loss (seeded t and noise draws,
    n_noise per image and step). Yields (step, z (B, z_dim), loss) after every step; stop iterating to cancel."""
    from .diffusion import diffusion_loss

    dev = _device(model)
    b = images.shape[0]
    x0 = images.to(dev, torch.float32).repeat_interleave(n_noise, 0)  # (B*n, 3, H, W)
    rays = camera_rays(model, camera, b * n_noise)
    sched, pred = model.cfg.diffusion.schedule, model.cfg.diffusion.prediction
    g = torch.Generator().manual_seed(int(seed))
    z = z.detach().to(dev, torch.float32).clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for i in range(steps):
        t = ((torch.arange(n_noise) + torch.rand(n_noise, generator=g)) / n_noise).repeat(b).clamp(0.02, 0.98)
        noise = torch.randn(x0.shape, generator=g)
        with torch.enable_grad():
            zs = model.sections(z.repeat_interleave(n_noise, 0))
            loss = diffusion_loss(
                lambda x_t, tt, zs=zs: model.denoise(x_t, tt, zs, rays),
                x0,
                sched,
                pred,
                t=t.to(dev),
                noise=noise.to(dev),
            )
            (grad,) = torch.autograd.grad(loss, z)  # only z: the shared model's parameters are never touched
        z.grad = grad
        opt.step()
        yield i + 1, z.detach().cpu().clone(), float(loss.detach())


# ------------------------------------------------------------------------------------------------------------
# Latent edits
# ------------------------------------------------------------------------------------------------------------


def section_slices(model: SODA) -> list[slice]:
    """The z indices of each latent section."""
    d = model.section_dim
    return [slice(k * d, (k + 1) * d) for k in range(model.n_sections)]


def section_directions(model: SODA, Z: torch.Tensor, n_components: int = 3) -> list[list[torch.Tensor]]:
    """Per section, its top principal directions over latents Z (N, z_dim), each a full (z_dim,) vector scaled to
    one standard deviation of the data along it. -> [section][component] (z_dim,)."""
    from .latent_map import pca

    out = []
    for sl in section_slices(model):
        _, axes, std = pca(Z[:, sl], n_components)  # sign: largest entry positive
        comps = []
        for c in range(axes.shape[0]):
            full = torch.zeros(Z.shape[1], dtype=torch.float64)
            full[sl] = axes[c] * std[c]
            comps.append(full.float())
        out.append(comps)
    return out


def move_along(z: torch.Tensor, direction, amount: float | torch.Tensor) -> torch.Tensor:
    """z (B, z_dim) + amount * direction (z_dim,) (amount in units of the direction's std). A slider that is not a
    straight line (an object with ``move(z, amount)``, such as soda.sliders.HueRotation) makes its own move."""
    if hasattr(direction, "move"):
        return direction.move(z, amount)
    return z + torch.as_tensor(amount, dtype=z.dtype).reshape(-1, 1) * direction.to(z.dtype)


def traverse(z: torch.Tensor, direction, values: Sequence[float]) -> torch.Tensor:
    """One latent (1 or z_dim,) moved to each of ``values`` std along ``direction`` -> (len(values), z_dim)."""
    z = z.reshape(1, -1)
    return move_along(z.expand(len(values), -1), direction, torch.tensor(list(values)))


def slerp(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of (D,) vectors for weights w (N,) -> (N, D); falls back to lerp when parallel."""
    a64, b64 = a.double(), b.double()
    na, nb = a64.norm(), b64.norm()
    cos = torch.clamp((a64 @ b64) / (na * nb + 1e-12), -1, 1)
    omega = torch.arccos(cos)
    w = w.double()[:, None]
    if omega.abs() < 1e-6:
        return ((1 - w) * a64 + w * b64).to(a.dtype)
    so = torch.sin(omega)
    return ((torch.sin((1 - w) * omega) / so) * a64 + (torch.sin(w * omega) / so) * b64).to(a.dtype)


def interpolate(
    model: SODA,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    n: int,
    method: str = "lerp",
    sections: Sequence[int] | None = None,
) -> torch.Tensor:
    """Latents from z_a to z_b (both (z_dim,)) in n frames; only ``sections`` move when given -> (n, z_dim)."""
    if method not in ("lerp", "slerp"):
        raise ValueError(f"unknown interpolation '{method}' (lerp or slerp)")
    z_a, z_b = z_a.reshape(-1), z_b.reshape(-1)
    w = torch.linspace(0, 1, n)
    if method == "lerp":
        path = (1 - w[:, None]) * z_a + w[:, None] * z_b
    else:
        path = slerp(z_a, z_b, w)
    if sections is not None:
        keep = torch.ones(z_a.shape[0], dtype=torch.bool)
        for k in sections:
            keep[section_slices(model)[k]] = False
        path[:, keep] = z_a[keep]
    return path


def mix_sections(model: SODA, z_a: torch.Tensor, z_b: torch.Tensor, from_b: Sequence[bool]) -> torch.Tensor:
    """Section k from z_b where from_b[k], else from z_a: (z_dim,) x 2 -> (z_dim,)."""
    if len(from_b) != model.n_sections:
        raise ValueError(f"expected {model.n_sections} section choices, got {len(from_b)}")
    out = z_a.reshape(-1).clone()
    for k, sl in enumerate(section_slices(model)):
        if from_b[k]:
            out[sl] = z_b.reshape(-1)[sl]
    return out


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in [-1,1] -> (B,H,W,3) uint8."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def tile_rows(columns: Sequence[torch.Tensor]) -> np.ndarray:
    """Columns of images, each (N,3,H,W) in [-1,1] -> one (N*H, len(columns)*W, 3) uint8 picture: row i shows image
    i of every column side by side."""
    cols = [to_uint8(c) for c in columns]  # each (N, H, W, 3)
    n, h, w, _ = cols[0].shape
    return np.concatenate(cols, axis=2).reshape(n * h, len(cols) * w, 3)


def save_grid(columns: Sequence[torch.Tensor], path, scale: int = 3) -> None:
    """Columns of images, each (N,3,H,W) in [-1,1] -> a PNG at ``path`` (``tile_rows``, enlarged ``scale`` x with
    nearest-neighbour pixels), written atomically."""
    from PIL import Image

    from .atomic import write_file

    img = Image.fromarray(tile_rows(columns))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    write_file(path, lambda tmp: img.save(tmp, format="PNG"))


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """(B,H,W,3) uint8 -> (B,3,H,W) float in [-1,1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
