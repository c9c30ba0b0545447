"""SODA = encoder + sectioned latent + modulated UNet denoiser; save_pretrained / from_pretrained.

A checkpoint folder holds ``model.safetensors`` (weights) and ``config.json`` (``{"format": "soda",
"format_version": 1, "config": {...}}``): the config alone rebuilds the model, nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from ..config import FORMAT_VERSION, ConfigError, ModelConfig, SODAConfig, load_config_json
from .encoder import Encoder
from .unet import UNet

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class SODA(nn.Module):
    """Bottleneck diffusion model: E(x_src [, rays_src]) -> z; D(x_t, t, z [, rays_tgt]) -> eps (or v)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        e, u, lat = cfg.encoder, cfg.unet, cfg.latent
        self.n_sections = cfg.sections
        self.section_dim = cfg.section_dim
        self.enc_rays = cfg.ray_channels if e.use_rays else 0
        self.dec_rays = cfg.ray_channels if u.use_rays else 0
        self.encoder = Encoder(3 + self.enc_rays, lat.z_dim, e.base_channels, e.channel_mult, e.blocks_per_stage)
        self.unet = UNet(3 + self.dec_rays, 3, self.section_dim, self.n_sections, u.base_channels, u.channel_mult,
                         u.num_res_blocks, u.attention_levels, u.num_heads, u.groups, u.dropout)
        null = torch.zeros(self.n_sections, self.section_dim)
        if lat.null_mode == "learned":
            self.null = nn.Parameter(null)
        else:
            self.register_buffer("null", null)

    # ---------------------------------------------------------------------------------------------------------
    @property
    def z_dim(self) -> int:
        return self.cfg.latent.z_dim

    @property
    def res(self) -> int:
        return self.cfg.res

    @property
    def uses_cameras(self) -> bool:
        return self.enc_rays > 0 or self.dec_rays > 0

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

    def null_sections(self, batch: int) -> torch.Tensor:
        """(B, K, d) the unconditional latent (learned null in every section)."""
        return self.null.unsqueeze(0).expand(batch, -1, -1)

    def mask_sections(self, zs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Layer masking: each section -> null with p_section, whole z -> null with p_drop. (B,K,d) -> (B,K,d)."""
        lat = self.cfg.latent
        b, k, _ = zs.shape
        u = torch.rand(b, k + 1, generator=generator).to(zs.device)
        drop = (u[:, :k] < lat.p_section) | (u[:, k:] < lat.p_drop)  # (B, K)
        null = self.null_sections(b).to(zs.dtype)
        return torch.where(drop[..., None], null, zs)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, zs: torch.Tensor | None,
                rays: torch.Tensor | None = None) -> torch.Tensor:
        """x_t (B,3,H,W), t (B,) in [0,1], zs (B,K,d) sections or None (= null), rays (B,R,H,W) -> (B,3,H,W)."""
        if zs is None:
            zs = self.null_sections(x_t.shape[0]).to(x_t.dtype)
        if self.dec_rays:
            if rays is None:
                raise ValueError("this checkpoint's decoder needs the target camera rays")
            x_t = torch.cat([x_t, rays.to(x_t.dtype)], dim=1)
        return self.unet(x_t, t, zs)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, x_src: torch.Tensor, src_rays: torch.Tensor | None = None,
                tgt_rays: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training forward: encode the source, mask sections (in training mode), denoise the target."""
        zs = self.sections(self.encode(x_src, src_rays))
        if self.training:
            zs = self.mask_sections(zs, generator)
            if isinstance(self.null, nn.Parameter):
                zs = zs + 0.0 * self.null.sum()  # keep the null in the graph every step (DDP needs every grad)
        return self.denoise(x_t, t, zs, tgt_rays)

    # ---------------------------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | os.PathLike, full_config: SODAConfig | None = None,
                        extra: dict | None = None) -> Path:
        """Write model.safetensors + config.json into ``path`` atomically (temp folder, then rename)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "soda"})
            cfg = full_config.to_dict() if full_config is not None else {"model": _model_dict(self.cfg)}
            meta = {"format": "soda", "format_version": FORMAT_VERSION, "config": cfg, **(extra or {})}
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
            if path.exists():
                # keep files that are not ours (model card, caches) by moving them into the new folder
                for f in path.iterdir():
                    if f.name not in (WEIGHTS_NAME, CONFIG_NAME) and not (tmp / f.name).exists():
                        os.replace(f, tmp / f.name)
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike, map_location: str = "cpu") -> SODA:
        """Load a checkpoint folder (or a Hugging Face hub id when the network allows) into a model in eval mode."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = resolve_checkpoint(path_or_id)
        meta = load_config_json(folder / CONFIG_NAME)
        cfg = SODAConfig.from_dict(meta["config"]) if "data" in meta["config"] else _model_only(meta["config"])
        model = cls(cfg.model)
        try:
            state = load_file(str(folder / WEIGHTS_NAME), device=map_location)
        except (SafetensorError, OSError, ValueError) as e:
            raise ConfigError(f"{folder / WEIGHTS_NAME}: not a readable safetensors file ({e})") from None
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        bad = [k for k in own if k in state and state[k].shape != own[k].shape]
        if missing or unexpected or bad:
            raise ConfigError(
                f"{folder / WEIGHTS_NAME}: weights do not match the architecture in config.json "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}, different shapes {bad[:3]})"
            )
        model.load_state_dict(state)
        model.full_config = cfg
        model.checkpoint_dir = folder
        return model.eval()


def _model_dict(m: ModelConfig) -> dict:
    return SODAConfig(model=m).to_dict()["model"] | {}


def _model_only(d: dict) -> SODAConfig:
    res = d.get("model", {}).get("res", 32)
    return SODAConfig.from_dict({"model": d.get("model", {}), "data": {"res": res}})


def resolve_checkpoint(path_or_id: str | os.PathLike) -> Path:
    """A local folder with config.json, or a hub id downloaded through huggingface_hub; clear errors otherwise."""
    p = Path(path_or_id)
    if p.is_dir():
        if not (p / CONFIG_NAME).exists():
            raise ConfigError(f"{p}: not a SODA checkpoint folder (no {CONFIG_NAME}; expected {CONFIG_NAME} + "
                              f"{WEIGHTS_NAME})")
        if not (p / WEIGHTS_NAME).exists():
            raise ConfigError(f"{p}: checkpoint folder has no {WEIGHTS_NAME}")
        return p
    if p.exists():
        raise ConfigError(f"{p}: expected a checkpoint folder (with {CONFIG_NAME} and {WEIGHTS_NAME}), got a file")
    s = str(path_or_id)
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*", s) or ".." in s:
        raise ConfigError(f"checkpoint '{s}' not found: not a local folder and not a valid hub id (owner/name)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(s, allow_patterns=["*.json", "*.safetensors", "*.md", "*.npz"]))
    except Exception as e:  # offline, unknown repo, ...
        raise ConfigError(f"checkpoint '{s}' is not a local folder and could not be fetched from the hub "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
