"""Building blocks: timestep embedding, the doubly modulated ResBlock, attention, zero_module."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def zero_module(m: nn.Module) -> nn.Module:
    """Zero every parameter of ``m`` (modulation branches and output projections start as the identity)."""
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) continuous t in [0, 1] -> (B, dim) sinusoidal features (t scaled by 1000 like DDPM steps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


COORD_CHANNELS = 10


def coordinate_grid(res: int) -> torch.Tensor:
    """(COORD_CHANNELS, res, res): pixel-centre x and y in [-1, 1], then sin and cos of pi * f * (x, y) at f = 1, 2
    (unet.coords: the decoder's sense of position where no camera rays give one)."""
    c = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    y, x = torch.meshgrid(c, c, indexing="ij")
    chans = [x, y]
    for f in (1.0, 2.0):
        chans += [
            torch.sin(math.pi * f * x),
            torch.cos(math.pi * f * x),
            torch.sin(math.pi * f * y),
            torch.cos(math.pi * f * y),
        ]
    return torch.stack(chans)


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels, eps=1e-6)


class ResBlock(nn.Module):
    """GN -> SiLU -> conv -> GN modulated by time (s_t, b_t) then by its latent section (s_z, b_z) -> SiLU -> conv.

    ``h = GN(h) * (1 + s_t) + b_t``; ``h = h * (1 + s_z) + b_z`` (``+ M z`` reshaped to (C, S, S) with a
    ``z_map_size`` S, unet.z_spatial). The modulation maps are zero-initialised, so at
    initialisation the block ignores t and z; they start to act after the first optimiser step (the convs keep
    their default init so that gradients reach the modulation maps at once).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        t_dim: int,
        z_dim: int,
        groups: int = 32,
        dropout: float = 0.0,
        z_map_size: int = 0,
    ):
        super().__init__()
        self.norm1 = group_norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = group_norm(c_out, groups)
        self.t_mod = zero_module(nn.Linear(t_dim, 2 * c_out))
        self.z_mod = zero_module(nn.Linear(z_dim, 2 * c_out)) if z_dim > 0 else None
        # unet.z_spatial: z_sec -> a (C, S, S) map added after the modulation (S = this block's resolution)
        self.z_map = zero_module(nn.Linear(z_dim, c_out * z_map_size**2)) if z_dim > 0 and z_map_size else None
        self.z_map_size = z_map_size
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, z_sec: torch.Tensor | None) -> torch.Tensor:
        """x (B,C,H,W), t_emb (B,T) already SiLU'd, z_sec (B,d) or None -> (B,C_out,H,W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        s_t, b_t = self.t_mod(t_emb)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = self.norm2(h) * (1 + s_t) + b_t
        if self.z_mod is not None and z_sec is not None:
            s_z, b_z = self.z_mod(z_sec)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + s_z) + b_z
            if self.z_map is not None:
                s = self.z_map_size
                h = h + self.z_map(z_sec).view(h.shape[0], -1, s, s).to(h.dtype)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over pixels with a zero-initialised output projection."""

    def __init__(self, channels: int, num_heads: int = 4, groups: int = 32):
        super().__init__()
        self.num_heads = num_heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_module(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # (B, heads, HW, d)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, d)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
