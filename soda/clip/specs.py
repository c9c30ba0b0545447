"""CLIP specs: where open_clip weights come from, decided without waiting on the network.

A CLIP spec names an open_clip architecture and its weights:

- ``ARCH:PATH``       a state dict file of a known architecture, e.g. ``ViT-B-32:/models/clip-vit-b-32.safetensors``
                      (.safetensors, or .bin/.pt/.pth readable by ``torch.load(weights_only=True)``);
- ``local-dir:DIR``   (or just ``DIR``) a folder holding ``open_clip_config.json`` and the weights, as on the hub;
- ``hf-hub:ORG/NAME`` a hub repository in open_clip layout; ``ARCH:TAG`` an open_clip pretrained tag
                      (``ViT-B-32:laion2b_s34b_b79k``). Both use a copy in the Hugging Face cache when there is one
                      and download only where the network is allowed.

The spec in force is the explicit one (a --clip flag), else ``$SODA_CLIP``, else the ``clip:`` entry of the checkpoint's
model card. Offline-ness is decided before anything touches the network (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``/
``SODA_OFFLINE``, else a one-second reachability check), so a missing model fails fast with ``ClipUnavailable``,
whose message says exactly what to provide.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "SODA_CLIP"
CARD_KEY = "clip"  # front-matter key in a checkpoint's README.md model card
EXAMPLE = "ViT-B-32:/models/clip-vit-b-32.safetensors"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
HUB_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HUB_CONFIG = "open_clip_config.json"


class ClipUnavailable(RuntimeError):
    """No usable CLIP weights; the message tells the user what to provide."""


def instructions(reason: str) -> str:
    """The full message of a ClipUnavailable: the reason, then every way to supply weights, with examples."""
    offline = "offline: nothing will be downloaded" if not network_allowed() else "online"
    return (
        f"CLIP weights are not available: {reason}.\n"
        "Give an open_clip checkpoint in one of three places (first match wins):\n"
        f"  1. a --clip flag, e.g.  python app.py --clip {EXAMPLE}\n"
        "     (the same flag works for python -m soda.clip validate ... and python -m soda.eval ...)\n"
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
        try:
            hit = try_to_load_from_cache(repo, name)
        except Exception:  # an invalid repo id: nothing can be cached under it
            return None
        if isinstance(hit, str):
            return Path(hit)
    if download:
        from ..config import ConfigError
        from ..model.hub import check_answers, hub_timeout, timed_out, timeout_message

        try:  # one request with the timeout first: hf_hub_download retries a hung hub for minutes per file
            check_answers(repo, f"CLIP weights '{repo}'")
        except ConfigError as e:
            raise ClipUnavailable(instructions(str(e))) from None
        for name in names:
            try:
                return Path(hf_hub_download(repo, name, etag_timeout=hub_timeout()))
            except Exception as e:  # missing file, or the hub refused: try the next name
                if timed_out(e):
                    raise ClipUnavailable(instructions(timeout_message(f"CLIP weights '{repo}'"))) from None
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
