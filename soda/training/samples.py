"""What the trainer looks at while it runs: decoded samples of a fixed held-out batch and its held-out loss.

Every model kind is handled through the common model interface (soda.model.io.CheckpointMixin): ``decode`` for the
samples, the model's own loss and ``held_out_times`` for the held-out loss.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..api import tile_rows
from ..atomic import write_file
from ..config import SODAConfig

__all__ = ["generate", "held_out_loss", "save_sample_grid", "write_samples"]


@torch.no_grad()
def generate(
    model, batch: dict, steps: int, seed: int = 0, sampler: str = "ddim", guidance: float = 0.0
) -> torch.Tensor:
    """Decode the target view of ``batch`` (``src`` (B,3,H,W) in [-1,1], ``src_rays``/``tgt_rays``) from z of its
    source -> (B,3,H,W) in [-1,1], each row from its own noise (drawn from ``seed``; see the model's ``decode``)."""
    z = model.encode(batch["src"], batch.get("src_rays"))
    kw = {"steps": steps, "seed": seed, "sampler": sampler, "guidance": guidance}
    return model.decode(z, batch.get("tgt_rays"), per_row_noise=True, **kw)


@torch.no_grad()
def held_out_loss(model, batch: dict, n_t: int = 8, seed: int = 0) -> float:
    """Loss of ``model`` (eval mode, no masking) on a fixed batch, at the model's fixed times
    (``model.held_out_times(n_t)``) with fixed noise -> their mean."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    tgt = batch["tgt"]
    times = model.held_out_times(n_t)
    total = 0.0
    for t_val in times:
        t = torch.full((tgt.shape[0],), float(t_val), device=tgt.device)
        noise = torch.randn(tgt.shape, generator=g).to(tgt.device)
        total += float(model(batch, g, t=t, noise=noise))
    model.train(was)
    return total / len(times)


def save_sample_grid(path: Path, batch: dict, generated: torch.Tensor, n: int = 8) -> None:
    """PNG with one row per example: source | target | generated (skipped with a warning when Pillow is missing)."""
    try:
        from PIL import Image
    except ImportError:
        warnings.warn("Pillow is not installed: sample grids are not written", stacklevel=2)
        return
    k = min(n, generated.shape[0])
    grid = tile_rows([batch["src"][:k], batch["tgt"][:k], generated[:k]])  # (k*H, 3W, 3)
    write_file(path, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))


def write_samples(out: Path, step: int, ema, fixed: dict, cfg: SODAConfig, rows: int = 8) -> Path:
    """samples/step-N.png: the first ``rows`` examples of the held-out batch (only those are decoded)."""
    path = out / "samples" / f"step-{step:08d}.png"
    part = {k: v[:rows] if torch.is_tensor(v) else v for k, v in fixed.items()}
    save_sample_grid(path, part, generate(ema, part, steps=min(20, cfg.model.diffusion.sample_steps)), n=rows)
    return path
