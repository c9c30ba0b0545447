"""open_clip weights for naming sliders: where they come from, how they load, and a tiny offline model for tests.

A CLIP spec names an open_clip architecture and its weights:

- ``ARCH:PATH``       a state dict file of a known architecture, e.g. ``ViT-B-32:/models/clip-vit-b-32.safetensors``
                      (.safetensors, or .bin/.pt/.pth readable by ``torch.load(weights_only=True)``);
- ``local-dir:DIR``   (or just ``DIR``) a folder holding ``open_clip_config.json`` and the weights, as on the hub;
- ``hf-hub:ORG/NAME`` a hub repository in open_clip layout; ``ARCH:TAG`` an open_clip pretrained tag
                      (``ViT-B-32:laion2b_s34b_b79k``). Both use a copy in the Hugging Face cache when there is one
                      and download only where the network is allowed.

Offline-ness is decided before anything touches the network (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``/
``SODA_OFFLINE``, else a one-second reachability check), so a missing model fails fast with ``ClipUnavailable``,
whose message says exactly what to provide. open_clip itself is imported only once a usable spec is found.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

ENV_VAR = "SODA_CLIP"
CARD_KEY = "clip"  # front-matter key in a checkpoint's README.md model card
EXAMPLE = "ViT-B-32:/models/clip-vit-b-32.safetensors"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
HUB_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HUB_CONFIG = "open_clip_config.json"
TINY_NAME = "soda-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


class ClipUnavailable(RuntimeError):
    """No usable CLIP weights; the message tells the user what to provide."""


def instructions(reason: str) -> str:
    """The full message of a ClipUnavailable: the reason, then every way to supply weights, with examples."""
    offline = "offline: nothing will be downloaded" if not network_allowed() else "online"
    return (
        f"CLIP weights are not available: {reason}.\n"
        "Give an open_clip checkpoint in one of three places (first match wins):\n"
        f"  1. a --clip flag, e.g.  python -m soda.clip validate --checkpoint CKPT --clip {EXAMPLE} --out DIR\n"
        f"  2. the {ENV_VAR} environment variable, e.g.  export {ENV_VAR}={EXAMPLE}\n"
        f"  3. the checkpoint's model card: a line `{CARD_KEY}: {EXAMPLE}` in the YAML front matter of its README.md\n"
        "     (relative paths are resolved against the checkpoint folder).\n"
        "The value is ARCH:PATH, where ARCH is an open_clip architecture (ViT-B-32, ViT-B-16, RN50, ...; OpenAI's\n"
        "weights need the -quickgelu variant, e.g. ViT-B-32-quickgelu) and PATH a state dict file: .safetensors, or\n"
        ".bin/.pt/.pth loadable by torch.load(weights_only=True) (TorchScript archives are not). Also accepted:\n"
        "local-dir:DIR (a folder with open_clip_config.json and the weights), hf-hub:ORG/NAME or ARCH:TAG (used from\n"
        "the Hugging Face cache when present, downloaded only where the network is allowed;\n"
        f"this process is {offline})."
    )


# ------------------------------------------------------------------------------------------------------------
# Network policy (decided up front, never blocking for more than a second)
# ------------------------------------------------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on")
_REACH: dict[str, tuple[float, bool]] = {}


def _env_offline() -> bool:
    return any(
        os.environ.get(k, "").strip().lower() in _TRUE
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SODA_OFFLINE")
    )


def _reachable(host: str, timeout: float) -> bool:
    """TCP connect to host:443 in a daemon thread (DNS included), giving up after ``timeout`` seconds."""
    result = [False]

    def probe():
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result[0] = True
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return result[0]


def network_allowed(timeout: float = 1.0) -> bool:
    """False when an offline variable is set or the hub does not answer within ``timeout`` (memoised for 60 s)."""
    if _env_offline():
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    now = time.monotonic()
    if host not in _REACH or now - _REACH[host][0] > 60:
        _REACH[host] = (now, _reachable(host, timeout))
    return _REACH[host][1]


# ------------------------------------------------------------------------------------------------------------
# Specs
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """A resolved spec: an architecture name or a config folder, and the weights file."""

    arch: str | None  # built-in open_clip name; None when ``config_dir`` holds open_clip_config.json
    config_dir: Path | None
    weights: Path
    quick_gelu: bool = False


def card_spec(checkpoint_dir: str | os.PathLike) -> str | None:
    """The ``clip:`` entry of a checkpoint's README.md front matter (relative paths made absolute), or None."""
    import yaml

    readme = Path(checkpoint_dir) / "README.md"
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    try:
        front = yaml.safe_load(text[3:end] if end > 0 else "") or {}
    except yaml.YAMLError:
        return None
    value = front.get(CARD_KEY) if isinstance(front, dict) else None
    if not value:
        return None
    value = str(value)
    prefix, sep, rest = value.partition(":")
    if sep and _is_arch_prefix(prefix) and not Path(rest).is_absolute() and rest.endswith(WEIGHT_SUFFIXES):
        return f"{prefix}:{(Path(checkpoint_dir) / rest).resolve()}"
    if prefix == "local-dir" and sep and not Path(rest).is_absolute():
        return f"local-dir:{(Path(checkpoint_dir) / rest).resolve()}"
    return value


def resolve_spec(spec: str | None = None, checkpoint_dir: str | os.PathLike | None = None) -> str | None:
    """The spec in force: the explicit one (a --clip flag), else $SODA_CLIP, else the checkpoint's model card."""
    for value in (spec, os.environ.get(ENV_VAR)):
        if value and value.strip():
            return value.strip()
    return card_spec(checkpoint_dir) if checkpoint_dir is not None else None


def _is_arch_prefix(prefix: str) -> bool:
    return len(prefix) > 1 and "/" not in prefix and "\\" not in prefix and prefix not in ("hf-hub", "local-dir")


def _hub_file(repo: str, names: tuple[str, ...], download: bool) -> Path | None:
    """A file of a hub repo from the local HF cache, else (when allowed) downloaded; None when neither works."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    for name in names:
        hit = try_to_load_from_cache(repo, name)
        if isinstance(hit, str):
            return Path(hit)
    if download:
        for name in names:
            try:
                return Path(hf_hub_download(repo, name))
            except Exception:  # missing file, or the hub refused: try the next name
                continue
    return None


def _from_hub(repo: str, arch: str | None, weight_names: tuple[str, ...], quick_gelu: bool, what: str) -> _Source:
    download = network_allowed()
    weights = _hub_file(repo, weight_names, download)
    if weights is None:
        why = "is not in the Hugging Face cache and the network is not allowed" if not download else "failed to load"
        raise ClipUnavailable(instructions(f"{what} {why}"))
    if arch is not None:
        return _Source(arch, None, weights, quick_gelu)
    config = _hub_file(repo, (HUB_CONFIG,), download)
    if config is None:
        raise ClipUnavailable(instructions(f"{what} has no {HUB_CONFIG}"))
    return _Source(None, config.parent, weights, quick_gelu)


def _folder_source(folder: Path, spec: str) -> _Source:
    if not (folder / HUB_CONFIG).is_file():
        raise ClipUnavailable(instructions(f"'{spec}': the folder has no {HUB_CONFIG}"))
    for name in (*HUB_WEIGHTS, "model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return _Source(None, folder, folder / name)
    found = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not found:
        raise ClipUnavailable(instructions(f"'{spec}': no weights file ({', '.join(WEIGHT_SUFFIXES)}) in the folder"))
    return _Source(None, folder, found[0])


def parse_spec(spec: str) -> _Source:
    """A spec string -> where its config and weights are (files checked; hub only as the policy allows)."""
    if spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:") :].strip("/")
        return _from_hub(repo, None, HUB_WEIGHTS, False, f"'{spec}'")
    if spec.startswith("local-dir:"):
        return _folder_source(Path(spec[len("local-dir:") :]).expanduser(), spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _folder_source(path, spec)
    if path.is_file():
        if (path.parent / HUB_CONFIG).is_file():
            return _Source(None, path.parent, path)
        raise ClipUnavailable(instructions(f"'{spec}' is a file but names no architecture (write ARCH:{spec})"))
    prefix, sep, rest = spec.partition(":")
    if not sep or not _is_arch_prefix(prefix):
        raise ClipUnavailable(instructions(f"'{spec}' is neither an existing file or folder nor ARCH:PATH"))
    weights = Path(rest).expanduser()
    if weights.is_file():
        return _Source(prefix, None, weights)
    if "/" in rest or "\\" in rest or rest.endswith(WEIGHT_SUFFIXES):
        raise ClipUnavailable(instructions(f"the weights file '{rest}' does not exist"))
    return _pretrained_tag(prefix, rest, spec)


def _pretrained_tag(arch: str, tag: str, spec: str) -> _Source:
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch, tag)
    hub = (cfg or {}).get("hf_hub", "")
    if not hub:
        raise ClipUnavailable(
            instructions(f"'{spec}': '{tag}' is not an open_clip pretrained tag of {arch} on the hub")
        )
    repo, name = os.path.split(hub)
    return _from_hub(repo, arch, (name,) if name else HUB_WEIGHTS, bool(cfg.get("quick_gelu")), f"'{spec}'")


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
        """T strings -> (T, D) unit-norm text embeddings (float32, CPU)."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu()

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[-1]) if hasattr(self.model, "text_projection") else -1


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
    resolved = resolve_spec(spec, checkpoint_dir)
    if not resolved:
        raise ClipUnavailable(
            instructions(f"no CLIP spec was given (--clip flag, ${ENV_VAR} and model card are empty)")
        )
    src = parse_spec(resolved)
    import open_clip

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
