"""SODA = encoder + sectioned latent + modulated UNet denoiser (checkpoint I/O in soda.model.io)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..config import ModelConfig
from ..diffusion import SAMPLERS, diffusion_loss
from ..diffusion.guidance import guided_denoiser
from .encoder import Encoder
from .io import CheckpointMixin
from .layers import COORD_CHANNELS, coordinate_grid
from .unet import UNet


class SODA(CheckpointMixin, nn.Module):
    """Bottleneck diffusion model: E(x_src [, rays_src]) -> z; D(x_t, t, z [, rays_tgt]) -> eps (or v)."""

    KIND = ("soda",)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        e, u, lat = cfg.encoder, cfg.unet, cfg.latent
        self.n_sections = cfg.sections
        self.section_dim = cfg.section_dim
        self.enc_rays = cfg.ray_channels if e.use_rays else 0
        self.dec_rays = cfg.ray_channels if u.use_rays else 0
        self.dec_coords = COORD_CHANNELS if u.coords else 0
        if u.coords:  # fixed, built once; not saved (the config rebuilds it)
            self.register_buffer("coord_grid", coordinate_grid(cfg.res), persistent=False)
        self.encoder = Encoder(3 + self.enc_rays, lat.z_dim, e.base_channels, e.channel_mult, e.blocks_per_stage)
        self.unet = UNet(
            3 + self.dec_rays + self.dec_coords,
            3,
            self.section_dim,
            self.n_sections,
            u.base_channels,
            u.channel_mult,
            u.num_res_blocks,
            u.attention_levels,
            u.num_heads,
            u.groups,
            u.dropout,
            cfg.res,
            u.z_spatial,
        )
        self.mask_rate = 1.0  # fraction of p_section / p_drop applied in training (the trainer's masking warm-up)
        null = torch.zeros(self.n_sections, self.section_dim)
        if lat.null_mode == "learned":
            self.null = nn.Parameter(null)
        else:
            self.register_buffer("null", null)

    # ---------------------------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, rays: torch.Tensor | None = None) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] (+ rays (B,R,H,W) when the encoder uses cameras) -> z (B, z_dim)."""
        if self.enc_rays:
            if rays is None:
                raise ValueError("this checkpoint's encoder needs the source camera rays")
            x = torch.cat([x, rays.to(x.dtype)], dim=1)
        return self.encoder(x)

    def sections(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) -> (B, K, d)."""
        return z.view(z.shape[0], self.n_sections, self.section_dim)

    def z_parameters(self) -> list[nn.Parameter]:
        """The z pathway: encoder, the z modulation (and spatial map) of every block, the learned null (trained at
        train.z_lr_mult)."""
        params = list(self.encoder.parameters())
        for m in self.unet.modules():
            for name in ("z_mod", "z_map"):
                if getattr(m, name, None) is not None:
                    params += list(getattr(m, name).parameters())
        if isinstance(self.null, nn.Parameter):
            params.append(self.null)
        return params

    def null_sections(self, batch: int) -> torch.Tensor:
        """(B, K, d) the unconditional latent (learned null in every section)."""
        return self.null.unsqueeze(0).expand(batch, -1, -1)

    def mask_sections(self, zs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Layer masking: each section -> null with p_section, whole z -> null with p_drop (both scaled by
        ``self.mask_rate``). (B,K,d) -> (B,K,d)."""
        lat = self.cfg.latent
        b, k, _ = zs.shape
        u = torch.rand(b, k + 1, generator=generator).to(zs.device)
        r = self.mask_rate
        drop = (u[:, :k] < lat.p_section * r) | (u[:, k:] < lat.p_drop * r)  # (B, K)
        null = self.null_sections(b).to(zs.dtype)
        return torch.where(drop[..., None], null, zs)

    def denoise(
        self, x_t: torch.Tensor, t: torch.Tensor, zs: torch.Tensor | None, rays: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x_t (B,3,H,W), t (B,) in [0,1], zs (B,K,d) sections or None (= null), rays (B,R,H,W) -> (B,3,H,W)."""
        if zs is None:
            zs = self.null_sections(x_t.shape[0]).to(x_t.dtype)
        if self.dec_rays:
            if rays is None:
                raise ValueError("this checkpoint's decoder needs the target camera rays")
            x_t = torch.cat([x_t, rays.to(x_t.dtype)], dim=1)
        if self.dec_coords:
            grid = self.coord_grid.to(x_t.dtype).expand(x_t.shape[0], -1, -1, -1)
            x_t = torch.cat([x_t, grid], dim=1)
        return self.unet(x_t, t, zs)

    @torch.no_grad()
    def decode(
        self,
        z: torch.Tensor,
        rays: torch.Tensor | None = None,
        steps: int | None = None,
        seed: int = 0,
        sampler: str = "ddim",
        guidance: float | None = None,
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
        per_row_noise: bool = False,
    ) -> torch.Tensor:
        """z (B, z_dim) [+ target rays (B,R,H,W)] -> images (B,3,H,W) in [-1,1] on the model's device, by
        ``steps`` (default diffusion.sample_steps) steps of ``sampler`` with guidance weight ``guidance`` (default
        diffusion.guidance; soda.diffusion.guidance). The starting noise is drawn from ``seed``: one (1,3,H,W) image
        shared by every row (a row's image does not depend on the rest of the batch: traversals, orbits and edit
        measurements vary z or the camera, never the noise), or with ``per_row_noise`` row i of randn(B,3,H,W)
        (reconstructions of different images: a shared start made them look alike). One row alone gets the same
        noise either way."""
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler '{sampler}' (choose from {', '.join(SAMPLERS)})")
        d = self.cfg.diffusion
        dev = next(self.parameters()).device
        z = z.to(dev, torch.float32)
        b = z.shape[0]
        rays = rays.to(dev) if rays is not None else None
        w = d.guidance if guidance is None else guidance
        eps = guided_denoiser(self.denoise, self.sections(z), self.null_sections(b), rays, w, d.schedule, d.prediction)
        g = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(b if per_row_noise else 1, 3, self.res, self.res, generator=g)
        noise = noise.expand(b, -1, -1, -1).contiguous().to(dev)
        return SAMPLERS[sampler](eps, noise, steps or d.sample_steps, d.schedule, callback=callback)

    def held_out_times(self, n: int) -> torch.Tensor:
        """The n diffusion times (n,) a held-out loss averages over: evenly spaced in [0.05, 0.95]."""
        return torch.linspace(0.05, 0.95, n)

    def forward(
        self,
        batch: dict,
        generator: torch.Generator | None = None,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        t_sampling: dict | None = None,
    ) -> torch.Tensor:
        """The training loss of ``batch`` (scalar): encode the source, mask sections (in training mode), denoise the
        target; t drawn per ``t_sampling`` and noise from ``generator`` unless given (soda.diffusion.diffusion_loss)."""

        def predict(x_t: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
            zs = self.sections(self.encode(batch["src"], batch.get("src_rays")))
            if self.training:
                zs = self.mask_sections(zs, generator)
                if isinstance(self.null, nn.Parameter):
                    zs = zs + 0.0 * self.null.sum()  # keep the null in the graph every step (DDP needs every grad)
            return self.denoise(x_t, tt, zs, batch.get("tgt_rays"))

        d = self.cfg.diffusion
        return diffusion_loss(
            predict,
            batch["tgt"],
            d.schedule,
            d.prediction,
            t=t,
            noise=noise,
            generator=generator,
            t_sampling=t_sampling,
        )
