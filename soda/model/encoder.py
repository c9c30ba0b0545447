"""ResNet encoder: (B, C, H, W) image (+ optional camera-ray channels) -> z (B, z_dim). Knows nothing of diffusion."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import group_norm


class BasicBlock(nn.Module):
    """Pre-activation ResNet basic block (GroupNorm, so that batch size 1 and DDP behave like training)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.norm1 = group_norm(c_in, 8)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm2 = group_norm(c_out, 8)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.skip = (
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False) if (stride != 1 or c_in != c_out) else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Encoder(nn.Module):
    """Small-image ResNet: 3x3 stride-1 stem, no max-pool, stride-2 stages, global average pool, linear head."""

    def __init__(
        self,
        in_channels: int,
        z_dim: int,
        base_channels: int = 64,
        channel_mult: tuple[int, ...] = (1, 2, 4),
        blocks_per_stage: int = 1,
    ):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        blocks: list[nn.Module] = []
        c = base_channels
        for i, mult in enumerate(channel_mult):
            c_out = base_channels * mult
            for j in range(blocks_per_stage):
                blocks.append(BasicBlock(c, c_out, stride=2 if (i > 0 and j == 0) else 1))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.norm = group_norm(c, 8)
        self.head = nn.Linear(c, z_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] (rays concatenated by the caller) -> (B, z_dim)."""
        h = self.blocks(self.stem(x))
        h = F.silu(self.norm(h)).mean(dim=(2, 3))  # (B, C) global average pool
        return self.head(h)
