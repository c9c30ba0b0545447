"""Checkpoint folders: ``model.safetensors`` (weights) + ``config.json`` (``{"format": "soda", "format_version": 1,
"config": {...}}``). The config alone rebuilds the model; nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from ..config import FORMAT_VERSION, ConfigError, SODAConfig, load_config_json

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


class CheckpointMixin:
    """save_pretrained / from_pretrained for modules built as ``cls(cfg.model)``."""

    def save_pretrained(
        self, path: str | os.PathLike, full_config: SODAConfig | None = None, extra: dict | None = None
    ) -> Path:
        """Write model.safetensors + config.json into ``path`` atomically (temp folder, then rename). Other files
        already in the folder (model card, explorer caches) are kept."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "soda"})
            cfg = (full_config or SODAConfig(model=self.cfg, data=_data_for(self.cfg))).to_dict()
            meta = {"format": "soda", "format_version": FORMAT_VERSION, "config": cfg, **(extra or {})}
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
            if path.exists():
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
    def from_pretrained(cls, path_or_id: str | os.PathLike, map_location: str = "cpu"):
        """Load a checkpoint folder (or a hub id when the network allows) into a model in eval mode."""
        folder = resolve_checkpoint(path_or_id)
        cfg = read_config(folder)
        want = getattr(cls, "KIND", None)
        if want and cfg.model.kind not in want:
            raise ConfigError(
                f"{folder}: a '{cfg.model.kind}' checkpoint, expected {' or '.join(want)}; "
                "load it with soda.api.load_model"
            )
        model = cls(cfg.model)
        _load_weights(model, folder / WEIGHTS_NAME, map_location)
        model.full_config = cfg
        model.checkpoint_dir = folder
        return model.eval()


def _data_for(m) -> object:
    from ..config import DataConfig

    return DataConfig(res=m.res)


def read_config(folder: Path) -> SODAConfig:
    meta = load_config_json(folder / CONFIG_NAME)
    try:
        return SODAConfig.from_dict(meta["config"])
    except ConfigError as e:
        raise ConfigError(f"{folder / CONFIG_NAME}: {e}") from None


def _load_weights(model: torch.nn.Module, file: Path, map_location: str) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(file), device=map_location)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ConfigError(f"{file}: not a readable safetensors file ({e})") from None
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or bad:
        raise ConfigError(
            f"{file}: weights do not match the architecture in config.json "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, different shapes {bad[:3]})"
        )
    model.load_state_dict(state)


def resolve_checkpoint(path_or_id: str | os.PathLike) -> Path:
    """A local folder with config.json, or a hub id downloaded through huggingface_hub; clear errors otherwise."""
    p = Path(path_or_id)
    if p.is_dir():
        if not (p / CONFIG_NAME).exists():
            raise ConfigError(
                f"{p}: not a SODA checkpoint folder (no {CONFIG_NAME}; expected {CONFIG_NAME} + {WEIGHTS_NAME})"
            )
        if not (p / WEIGHTS_NAME).exists():
            raise ConfigError(f"{p}: checkpoint folder has no {WEIGHTS_NAME}")
        return p
    if p.exists():
        raise ConfigError(f"{p}: expected a checkpoint folder (with {CONFIG_NAME} and {WEIGHTS_NAME}), got a file")
    s = str(path_or_id)
    if not HUB_ID.fullmatch(s) or ".." in s:
        raise ConfigError(f"checkpoint '{s}' not found: not a local folder and not a valid hub id (owner/name)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(s, allow_patterns=["*.json", "*.safetensors", "*.md"]))
    except Exception as e:  # offline, unknown repo, ...
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(
            f"checkpoint '{s}' is not a local folder and could not be fetched from the hub "
            f"({type(e).__name__}: {first})"
        ) from None


def build_model(cfg) -> torch.nn.Module:
    """ModelConfig -> SODA or a baseline, by ``cfg.kind``."""
    if cfg.kind == "soda":
        from .soda import SODA

        return SODA(cfg)
    from ..baselines import Autoencoder

    return Autoencoder(cfg)


def load_pretrained(path_or_id: str | os.PathLike, map_location: str = "cpu") -> torch.nn.Module:
    """Any checkpoint of this project (SODA or a baseline), rebuilt from its own config.json."""
    folder = resolve_checkpoint(path_or_id)
    cfg = read_config(folder)
    model = build_model(cfg.model)
    _load_weights(model, folder / WEIGHTS_NAME, map_location)
    model.full_config = cfg
    model.checkpoint_dir = folder
    return model.eval()
