"""SODA = encoder + sectioned latent + modulated UNet denoiser (checkpoint I/O in soda.model.io)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .encoder import Encoder
from .io import CheckpointMixin
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
        self.encoder = Encoder(3 + self.enc_rays, lat.z_dim, e.base_channels, e.channel_mult, e.blocks_per_stage)
        self.unet = UNet(
            3 + self.dec_rays,
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
        """The z pathway: encoder, the z modulation of every block, the learned null (trained at train.z_lr_mult)."""
        params = list(self.encoder.parameters())
        params += [
            p for m in self.unet.modules() if getattr(m, "z_mod", None) is not None for p in m.z_mod.parameters()
        ]
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
        return self.unet(x_t, t, zs)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        x_src: torch.Tensor,
        src_rays: torch.Tensor | None = None,
        tgt_rays: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Training forward: encode the source, mask sections (in training mode), denoise the target."""
        zs = self.sections(self.encode(x_src, src_rays))
        if self.training:
            zs = self.mask_sections(zs, generator)
            if isinstance(self.null, nn.Parameter):
                zs = zs + 0.0 * self.null.sum()  # keep the null in the graph every step (DDP needs every grad)
        return self.denoise(x_t, t, zs, tgt_rays)
