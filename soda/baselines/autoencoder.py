"""Deterministic-decoder baselines with SODA's encoder: plain autoencoder (kind "ae") and beta-VAE (kind "vae").

Same encoder (a ResNet reading the source view and its camera rays), a convolutional decoder from z (plus the
target camera rays, so that multi-view pairs are a fair comparison), pixel MSE; the beta-VAE adds beta * KL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..model.encoder import BasicBlock, Encoder
from ..model.io import CheckpointMixin
from ..model.layers import group_norm


class Decoder(nn.Module):
    """z (B, z_dim) [+ rays (B,R,H,W)] -> image (B,3,H,W) in [-1,1] (tanh)."""

    def __init__(self, z_dim: int, res: int, ray_channels: int, base: int = 32, mult: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.start = res // 2 ** (len(mult) - 1)
        c = base * mult[-1]
        self.fc = nn.Linear(z_dim, c * self.start * self.start)
        self.c0 = c
        ups: list[nn.Module] = []
        for m in reversed(mult[:-1]):
            ups += [nn.Upsample(scale_factor=2.0, mode="nearest"), BasicBlock(c, base * m, 1)]
            c = base * m
        self.ups = nn.Sequential(BasicBlock(c if not ups else self.c0, self.c0, 1), *ups)
        self.rays = nn.Conv2d(ray_channels, c, 3, padding=1) if ray_channels else None
        self.head = nn.Sequential(BasicBlock(c, c, 1), group_norm(c, 8), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, z: torch.Tensor, rays: torch.Tensor | None) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.c0, self.start, self.start)
        h = self.ups(h)
        if self.rays is not None and rays is not None:
            h = h + self.rays(rays.to(h.dtype))
        return torch.tanh(self.head(h))


class Autoencoder(CheckpointMixin, nn.Module):
    """kind "ae": z = E(x); kind "vae": q(z|x) = N(mu, sigma^2) with beta * KL to N(0, I)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        e = cfg.encoder
        self.variational = cfg.kind == "vae"
        self.n_sections, self.section_dim = 1, cfg.latent.z_dim  # one undivided latent (SODA splits z into sections)
        self.enc_rays = cfg.ray_channels if e.use_rays else 0
        self.dec_rays = cfg.ray_channels if cfg.unet.use_rays else 0
        out = cfg.latent.z_dim * (2 if self.variational else 1)
        self.encoder = Encoder(3 + self.enc_rays, out, e.base_channels, e.channel_mult, e.blocks_per_stage)
        self.decoder = Decoder(cfg.latent.z_dim, cfg.res, self.dec_rays, e.base_channels, e.channel_mult)

    def _stats(self, x: torch.Tensor, rays: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.enc_rays:
            x = torch.cat([x, rays.to(x.dtype)], dim=1)
        h = self.encoder(x)
        if not self.variational:
            return h, None
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def z_parameters(self) -> list[nn.Parameter]:
        """The encoder (trained at train.z_lr_mult, as SODA's z pathway)."""
        return list(self.encoder.parameters())

    def encode(self, x: torch.Tensor, rays: torch.Tensor | None = None) -> torch.Tensor:
        """(B,3,H,W) -> z (B, z_dim): the posterior mean for the VAE."""
        return self._stats(x, rays)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, rays: torch.Tensor | None = None, **sampling) -> torch.Tensor:
        """z (B, z_dim) [+ target rays (B,R,H,W)] -> images (B,3,H,W) in [-1,1] on the model's device. The decoder
        is deterministic: ``sampling`` (steps, seed, sampler, guidance, callback) is accepted and ignored."""
        dev = next(self.parameters()).device
        return self.decoder(z.to(dev, torch.float32), None if rays is None else rays.to(dev))

    def held_out_times(self, n: int) -> torch.Tensor:
        """The loss does not depend on t: one point (the held-out loss still draws its noise image, as SODA's)."""
        return torch.linspace(0.05, 0.95, 1)

    def forward(
        self,
        batch: dict,
        generator: torch.Generator | None = None,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        t_sampling: dict | None = None,
    ) -> torch.Tensor:
        """Training loss of ``batch`` (scalar): pixel MSE of the target view (+ beta * KL per pixel for the VAE).
        ``t``, ``noise`` and ``t_sampling`` are accepted for the common interface and ignored."""
        x_src, src_rays, tgt_rays, x_tgt = batch["src"], batch.get("src_rays"), batch.get("tgt_rays"), batch["tgt"]
        mu, logvar = self._stats(x_src, src_rays)
        z = mu
        kl = torch.zeros((), device=mu.device)
        if self.variational:
            eps = torch.randn(mu.shape, generator=generator).to(mu.device, mu.dtype)
            z = mu + (0.5 * logvar).exp() * eps
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        rec = F.mse_loss(self.decoder(z, tgt_rays).float(), x_tgt.float())
        # KL is summed over z and divided by the pixel count so beta keeps its usual per-image meaning with MSE
        return rec + self.cfg.beta * kl / x_tgt[0].numel()
