"""The denoiser D(x_t, t, z [, rays]) -> eps (or v): a DDPM-style UNet whose every stage reads its own latent section.

Stages are numbered in the order the signal flows: down levels 0..L-1, the middle (L), up levels L-1..0
(stages L+1..2L). With K sections, stage s reads section ``s * K // (2L + 1)``: K = 2L + 1 gives one section per
stage (our default), K = 1 gives the whole z to every block (the no-sections ablation).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Attention, Downsample, ResBlock, Upsample, group_norm, timestep_embedding, zero_module


def stage_sections(num_levels: int, n_sections: int) -> list[int]:
    """Section index read by each of the 2L + 1 stages (down..., mid, up...)."""
    n_stages = 2 * num_levels + 1
    return [s * n_sections // n_stages for s in range(n_stages)]


class UNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        section_dim: int,
        n_sections: int,
        base_channels: int = 64,
        channel_mult: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_levels: tuple[int, ...] = (2,),
        num_heads: int = 4,
        groups: int = 32,
        dropout: float = 0.0,
        res: int = 32,
        z_spatial: int = 0,
    ):
        super().__init__()
        L = len(channel_mult)
        self.sections = stage_sections(L, n_sections)
        t_dim = base_channels * 4
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.base_channels = base_channels
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        def block(ci: int, co: int, lvl: int) -> ResBlock:
            # the z_spatial lowest levels get a z -> (C, S, S) map at their resolution S
            size = res // 2**lvl if lvl >= L - z_spatial else 0
            return ResBlock(ci, co, t_dim, section_dim, groups, dropout, size)

        # ---- down path ----
        self.down = nn.ModuleList()
        skips = [base_channels]
        c = base_channels
        for lvl, mult in enumerate(channel_mult):
            stage = nn.ModuleList()
            for _ in range(num_res_blocks):
                co = base_channels * mult
                stage.append(block(c, co, lvl))
                if lvl in attention_levels:
                    stage.append(Attention(co, num_heads, groups))
                c = co
                skips.append(c)
            if lvl != L - 1:
                stage.append(Downsample(c))
                skips.append(c)
            self.down.append(stage)
        # ---- middle ----
        self.mid = nn.ModuleList([block(c, c, L - 1), Attention(c, num_heads, groups), block(c, c, L - 1)])
        # ---- up path ----
        self.up = nn.ModuleList()
        for lvl, mult in reversed(list(enumerate(channel_mult))):
            stage = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                co = base_channels * mult
                stage.append(block(c + skips.pop(), co, lvl))
                if lvl in attention_levels:
                    stage.append(Attention(co, num_heads, groups))
                c = co
            if lvl != 0:
                stage.append(Upsample(c))
            self.up.append(stage)
        self.out = nn.Sequential(
            group_norm(c, groups), nn.SiLU(), zero_module(nn.Conv2d(c, out_channels, 3, padding=1))
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, z_sections: torch.Tensor | None) -> torch.Tensor:
        """x (B,C_in,H,W) noisy image (+ ray channels), t (B,) in [0,1], z_sections (B,K,d) or None -> (B,C_out,H,W)."""
        t_emb = torch.nn.functional.silu(self.time_mlp(timestep_embedding(t, self.base_channels)))  # (B, T)

        def zsec(stage: int) -> torch.Tensor | None:
            return None if z_sections is None else z_sections[:, self.sections[stage]]  # (B, d)

        h = self.stem(x)
        hs = [h]
        for lvl, stage in enumerate(self.down):
            for m in stage:
                if isinstance(m, ResBlock):
                    h = m(h, t_emb, zsec(lvl))
                else:
                    h = m(h)
                # The skip is the ResBlock's output, taken BEFORE the attention that follows it (DDPM, Ho et al.
                # 2020, takes it after). A deliberate, documented deviation (docs/METHOD.md): the up path's
                # attention still sees every level, and changing it would change every trained checkpoint's
                # outputs, the bundled one included.
                if not isinstance(m, Attention):
                    hs.append(h)
        L = len(self.down)
        for m in self.mid:
            h = m(h, t_emb, zsec(L)) if isinstance(m, ResBlock) else m(h)
        for i, stage in enumerate(self.up):
            for m in stage:
                if isinstance(m, ResBlock):
                    h = m(torch.cat([h, hs.pop()], dim=1), t_emb, zsec(L + 1 + i))
                else:
                    h = m(h)
        return self.out(h)
