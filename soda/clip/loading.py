"""open_clip models for naming sliders: loading a resolved spec (see soda.clip.specs), the shared ClipModel wrapper
(preprocessing from SODA's [-1, 1] images, unit-norm embeddings), and a tiny randomly initialised model for tests.

State dicts are read with safetensors or ``torch.load(weights_only=True)`` only. open_clip itself is imported only
once a usable spec is found, so a missing model fails in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from .specs import ENV_VAR, HUB_CONFIG, ClipUnavailable, instructions, parse_spec, resolve_spec

TINY_NAME = "soda-tiny-clip"
TEXT_CACHE_SIZE = 4096  # text embeddings kept per ClipModel
TINY_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


# ------------------------------------------------------------------------------------------------------------
# The model wrapper
# ------------------------------------------------------------------------------------------------------------


@dataclass
class ClipModel:
    """An open_clip model with its tokenizer and preprocessing, used read-only (safe to share between users)."""

    model: torch.nn.Module
    tokenizer: object
    spec: str
    key: str  # identifies the weights in cache keys
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    device: torch.device
    _text_cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    _text_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature (exp of the logit_scale parameter, at most 100)."""
        return float(self.model.logit_scale.detach().exp().clamp(max=100.0))

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) in [-1,1] -> (N,3,S,S) normalised CLIP input (resize the short side, centre crop)."""
        x = (images.float() + 1) / 2
        h, w = x.shape[-2:]
        th, tw = self.image_size
        s = max(th / h, tw / w)
        size = (max(th, round(h * s)), max(tw, round(w * s)))
        if size != (h, w):
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=s < 1)
        top, left = (size[0] - th) // 2, (size[1] - tw) // 2
        x = x[..., top : top + th, left : left + tw].clamp(0, 1)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(N,3,H,W) in [-1,1] -> (N, D) unit-norm image embeddings (float32, CPU)."""
        out = []
        for i in range(0, images.shape[0], batch_size):
            x = self.preprocess(images[i : i + batch_size]).to(self.device)
            out.append(F.normalize(self.model.encode_image(x).float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.embed_dim)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """T strings -> (T, D) unit-norm text embeddings (float32, CPU); each string is encoded once per process."""
        if not texts:
            return torch.zeros(0, self.embed_dim)
        with self._text_lock:  # the app shares one ClipModel between users
            missing = sorted({t for t in texts if t not in self._text_cache})
            if missing:
                tokens = self.tokenizer(missing).to(self.device)
                emb = F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu()
                if len(self._text_cache) + len(missing) > TEXT_CACHE_SIZE:
                    self._text_cache.clear()
                self._text_cache.update(zip(missing, emb))
            return torch.stack([self._text_cache[t] for t in texts])

    @property
    def embed_dim(self) -> int:
        """Dimension of the joint embedding space."""
        return int(self.model.visual.output_dim)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """safetensors or torch.load(weights_only=True) only; unwraps {'state_dict': ...} and 'module.' prefixes."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path), device="cpu")
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ClipUnavailable(instructions(f"'{path}' is not a plain state dict ({type(e).__name__}: {e})")) from e
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd:
        raise ClipUnavailable(instructions(f"'{path}' holds no state dict"))
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    from open_clip.model import resize_pos_embed, resize_text_pos_embed

    sd = _read_state_dict(path)
    try:
        try:
            from open_clip.convert import convert_state_dict

            sd = convert_state_dict(model, sd)
        except ImportError:
            pass
        if "logit_scale" in sd and sd["logit_scale"].ndim != model.logit_scale.ndim:
            sd["logit_scale"] = sd["logit_scale"].reshape(model.logit_scale.shape)
        if getattr(model, "logit_bias", None) is not None and "logit_bias" not in sd:
            sd["logit_bias"] = torch.zeros_like(model.logit_bias)
        resize_pos_embed(sd, model)
        resize_text_pos_embed(sd, model)
        model.load_state_dict(sd, strict=True)
    except (RuntimeError, AssertionError, KeyError, ValueError) as e:
        first = " ".join(str(e).splitlines()[:3])[:300] or type(e).__name__
        raise ClipUnavailable(instructions(f"'{path}' does not fit the architecture ({first})")) from e


def _file_key(path: Path) -> str:
    """Size + hash of the first and last MiB: cheap, and changes when the weights do."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read())
    return f"{size}-{h.hexdigest()[:16]}"


class _QuietRandomInit(logging.Filter):
    """Drops open_clip's 'initialized randomly' warning: the weights are loaded right after creation."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextmanager
def _quiet_create():
    root, flt = logging.getLogger(), _QuietRandomInit()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _wrap(model: torch.nn.Module, tokenizer, spec: str, key: str, device) -> ClipModel:
    from open_clip import get_model_preprocess_cfg

    pp = get_model_preprocess_cfg(model)
    size = pp.get("size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    model = model.to(device).eval().requires_grad_(False)
    return ClipModel(model, tokenizer, spec, key, size, tuple(pp["mean"]), tuple(pp["std"]), torch.device(device))


def load_clip(
    spec: str | None = None, device: str = "cpu", checkpoint_dir: str | os.PathLike | None = None
) -> ClipModel:
    """A CLIP spec (default: $SODA_CLIP, then the checkpoint's model card) -> ClipModel; ClipUnavailable otherwise."""
    from ..model.hub import install_timeouts

    install_timeouts()  # whatever open_clip fetches through huggingface_hub (weights, a tokenizer) has the timeout
    resolved = resolve_spec(spec, checkpoint_dir)
    if not resolved:
        raise ClipUnavailable(
            instructions(f"no CLIP spec was given (--clip flag, ${ENV_VAR} and model card are empty)")
        )
    src = parse_spec(resolved)
    import open_clip

    if src.arch == TINY_NAME:
        _register_tiny()  # saved tiny test weights load like any other architecture

    if src.arch is not None:
        if open_clip.get_model_config(src.arch.replace("/", "-")) is None:
            raise ClipUnavailable(instructions(f"'{src.arch}' is not an open_clip architecture"))
        with _quiet_create():
            model = open_clip.create_model(src.arch, force_quick_gelu=src.quick_gelu, pretrained_text=False)
        tokenizer = open_clip.get_tokenizer(src.arch)
        arch = src.arch
    else:
        name = f"local-dir:{src.config_dir}"
        with _quiet_create():
            model = open_clip.create_model(name, load_weights=False, pretrained_text=False)
        tokenizer = open_clip.get_tokenizer(name)
        arch = json.loads((src.config_dir / HUB_CONFIG).read_text()).get("model_cfg", {}).get("name", "custom")
    _load_weights(model, src.weights)
    return _wrap(model, tokenizer, resolved, f"{arch}|{src.weights.name}|{_file_key(src.weights)}", device)


# ------------------------------------------------------------------------------------------------------------
# A tiny randomly initialised model (tests, mechanics only)
# ------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _register_tiny() -> str:
    import open_clip

    folder = Path(tempfile.mkdtemp(prefix="soda-tiny-clip-"))
    (folder / f"{TINY_NAME}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder)
    return TINY_NAME


def tiny_clip(seed: int = 0, device: str = "cpu") -> ClipModel:
    """A ~4M-parameter randomly initialised open_clip model built offline (no weights involved): tests only."""
    import open_clip

    name = _register_tiny()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with _quiet_create():
            model = open_clip.create_model(name, pretrained=None)
    digest = hashlib.sha256(json.dumps(TINY_CONFIG, sort_keys=True).encode()).hexdigest()[:8]
    return _wrap(model, open_clip.get_tokenizer(name), f"tiny:{seed}", f"tiny-{digest}-seed{seed}", device)
