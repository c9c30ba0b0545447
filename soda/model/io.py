"""Checkpoint folders: ``model.safetensors`` (weights) + ``config.json`` (``{"format": "soda", "format_version": 1,
"config": {...}, "weights_sha256": "..."}``). The config alone rebuilds the model; nothing is ever unpickled.

``weights_sha256`` is the sha256 of ``model.safetensors`` (written by ``save_pretrained`` and
``scripts/export_checkpoint.py``); loading checks it, so a damaged or altered weights file is refused with a message
instead of loading silently. Checkpoints saved before it existed have none and load unchecked (a debug log line says
so); saving them again records it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import torch

from ..atomic import recover_dir, replace_dir
from ..config import FORMAT_VERSION, ConfigError, SODAConfig, load_config_json
from ..paths import CHECKPOINTS_ENV, WEIGHTS_FILE, checkpoints_root
from ..registry import build_model

WEIGHTS_NAME = WEIGHTS_FILE
CONFIG_NAME = "config.json"
HASH_KEY = "weights_sha256"  # config.json's record of the sha256 of model.safetensors
SHA256 = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger(__name__)
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")  # "world32": a folder of soda.paths.checkpoints_root


def is_hub_id(s: str) -> bool:
    """Whether ``s`` has the form of a hub repo id (``owner/name``, no ``..``): the one test, for the app too."""
    return bool(HUB_ID.fullmatch(s)) and ".." not in s


class CheckpointMixin:
    """save_pretrained / from_pretrained for modules built as ``cls(cfg.model)``, and the properties every model of
    this project shares (it sets ``cfg``, ``enc_rays`` and ``dec_rays``).

    The interface every model kind implements (soda.registry lists them), so that callers never ask which kind they
    hold:

    - ``model(batch, generator=None, t=None, noise=None, t_sampling=None)`` -> the scalar training loss of a batch
      (``src``/``tgt`` (B,3,H,W) in [-1,1], optional ``src_rays``/``tgt_rays``); called through the module so that
      DDP sees it. ``t``/``noise`` fix the diffusion draws (a deterministic decoder ignores them).
    - ``encode(x (B,3,H,W), rays (B,R,H,W) | None)`` -> z (B, z_dim).
    - ``decode(z, rays=None, steps=None, seed=0, sampler="ddim", guidance=None, callback=None)`` -> images
      (B,3,H,W) in [-1,1] on the model's device (a deterministic decoder ignores the sampling arguments).
    - ``held_out_times(n)`` -> the t values (T,) a held-out loss averages over.
    - ``n_sections``, ``z_parameters()``; and, set by ``from_pretrained``/``load_pretrained`` (None for a model
      built in memory), ``full_config`` (the checkpoint's SODAConfig) and ``checkpoint_dir`` (its folder).
    """

    full_config: SODAConfig | None = None
    checkpoint_dir: Path | None = None
    weights_sha256: str | None = None  # the sha256 of model.safetensors, checked when loaded (recorded_sha256)

    @property
    def z_dim(self) -> int:
        return self.cfg.latent.z_dim

    @property
    def res(self) -> int:
        return self.cfg.res

    @property
    def uses_cameras(self) -> bool:
        return self.enc_rays > 0 or self.dec_rays > 0

    def save_pretrained(
        self, path: str | os.PathLike, full_config: SODAConfig | None = None, extra: dict | None = None
    ) -> Path:
        """Write model.safetensors + config.json into ``path`` atomically (temp folder, then rename). Other files
        already in the folder (model card, explorer caches) are kept. A failed write (disk full, ...) leaves the
        previous folder as it was and no temp folder; a crash (kill -9) is repaired by the next save or by
        ``recover_interrupted_save``."""
        from safetensors.torch import save_file

        path = Path(path)
        recover_interrupted_save(path)
        cfg = (full_config or SODAConfig(model=self.cfg, data=_data_for(self.cfg))).to_dict()
        meta = {"format": "soda", "format_version": FORMAT_VERSION, "config": cfg, **(extra or {})}

        def fill(tmp: Path) -> None:
            state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "soda"})
            meta[HASH_KEY] = file_sha256(tmp / WEIGHTS_NAME)  # of the bytes written, read back
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))

        replace_dir(path, fill, keep_others=True, protected=(WEIGHTS_NAME, CONFIG_NAME))
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
        return _build_and_load(cls, cfg, folder, map_location)


def _data_for(m) -> object:
    from ..config import DataConfig

    return DataConfig(res=m.res)


def read_config(folder: Path) -> SODAConfig:
    try:
        meta = load_config_json(folder / CONFIG_NAME)
        return SODAConfig.from_dict(meta["config"])
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(str(folder)) else f"{folder / CONFIG_NAME}: {msg}") from None
    except (RecursionError, TypeError, ValueError) as e:  # absurdly nested JSON, values of the wrong kind
        raise ConfigError(f"{folder / CONFIG_NAME}: not a usable SODA config ({type(e).__name__})") from None


def file_sha256(path: Path) -> str:
    """The sha256 (64 hex digits) of a file, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def recorded_sha256(folder: Path) -> str | None:
    """The weights hash recorded in ``folder``'s config.json, or None for a checkpoint saved before hashes were
    recorded (ConfigError when the entry is there but is not a sha256)."""
    meta = load_config_json(Path(folder) / CONFIG_NAME)
    got = meta.get(HASH_KEY)
    if got is None:
        return None
    if not isinstance(got, str) or not SHA256.fullmatch(got):
        raise ConfigError(f"{Path(folder) / CONFIG_NAME}: '{HASH_KEY}' must be 64 lowercase hex digits (a sha256)")
    return got


def verify_weights(folder: Path) -> str | None:
    """Check ``folder``'s model.safetensors against the sha256 recorded in its config.json -> the hash (None when
    none is recorded: an older checkpoint, loaded unchecked). A mismatch is a ConfigError naming the file and what
    to do."""
    folder = Path(folder)
    want = recorded_sha256(folder)
    file = folder / WEIGHTS_NAME
    if want is None:
        log.debug("%s: no %s recorded in %s; the weights are not checked", file, HASH_KEY, CONFIG_NAME)
        return None
    try:
        got = file_sha256(file)
    except OSError as e:
        raise ConfigError(f"{file}: cannot be read ({e.strerror or e})") from None
    if got != want:
        raise ConfigError(
            f"{file}: damaged or changed since it was saved (its sha256 is {got[:16]}..., {CONFIG_NAME} records "
            f"{want[:16]}...); refusing to load it. Copy or download the checkpoint again; if the weights were "
            "changed on purpose, save them with save_pretrained (or scripts/export_checkpoint.py), which records "
            "the new hash"
        )
    return got


def _build_and_load(builder, cfg: SODAConfig, folder: Path, map_location: str) -> torch.nn.Module:
    """Check the weights file against the architecture of ``cfg`` (the model is first built on the meta device and
    compared with the safetensors header) and against the sha256 recorded in config.json before anything is
    allocated, then build the model and load them."""
    file = folder / WEIGHTS_NAME
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in builder(cfg.model).state_dict().items()}
    except Exception as e:  # noqa: BLE001 - a config that validates but cannot build (e.g. negative widths)
        raise ConfigError(f"{folder / CONFIG_NAME}: describes a model that cannot be built ({e})") from None
    _check_header(file, shapes)  # first: a file of another kind or architecture gets its own, more precise message
    sha = verify_weights(folder)
    model = builder(cfg.model)
    _load_file(model, file, map_location)
    model.full_config = cfg
    model.checkpoint_dir = folder
    model.weights_sha256 = sha  # checked just now (None: none recorded); soda.precompute reuses it
    return model.eval()


def _check_header(file: Path, shapes: dict[str, tuple]) -> None:
    """The tensors named in the safetensors header must be exactly those of the model, with the same shapes."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ConfigError(f"{file}: not a readable safetensors file ({e})") from None
    _check_names(file, shapes, have)


def _check_names(file: Path, own: dict[str, tuple], have: dict[str, tuple]) -> None:
    missing = [k for k in own if k not in have]
    unexpected = [k for k in have if k not in own]
    bad = [k for k in own if k in have and have[k] != own[k]]
    if missing or unexpected or bad:
        raise ConfigError(
            f"{file}: weights do not match the architecture in config.json "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, different shapes {bad[:3]})"
        )


def _load_file(model: torch.nn.Module, file: Path, map_location: str) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(file), device=map_location)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ConfigError(f"{file}: not a readable safetensors file ({e})") from None
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    _check_names(file, own, {k: tuple(v.shape) for k, v in state.items()})
    model.load_state_dict(state)


def load_weights(model: torch.nn.Module, path_or_id: str | os.PathLike, map_location: str = "cpu") -> Path:
    """Load the weights of a checkpoint (folder or hub id) into ``model``, which must have the checkpoint's
    architecture (a ConfigError names the mismatch otherwise): e.g. ``train.init_from``. -> the checkpoint folder."""
    folder = resolve_checkpoint(path_or_id)
    verify_weights(folder)
    _load_file(model, folder / WEIGHTS_NAME, map_location)
    return folder


def recover_interrupted_save(path: str | os.PathLike) -> None:
    """Finish or undo a ``save_pretrained`` of ``path`` that a crash (kill -9, power loss) interrupted: the folder is
    put back (the new one when it was complete, else the previous one), files moved aside return, and the hidden
    temp folders are removed. Nothing happens when no save was interrupted."""
    recover_dir(path, _complete, protected=(WEIGHTS_NAME, CONFIG_NAME))


def _complete(folder: Path) -> bool:
    return (folder / WEIGHTS_NAME).is_file() and (folder / CONFIG_NAME).is_file()


def resolve_checkpoint(path_or_id: str | os.PathLike, max_hub_bytes: int | None = None) -> Path:
    """A local folder with config.json, or a hub id downloaded through huggingface_hub (refused before any download
    when its files total over ``max_hub_bytes``; no limit by default); clear errors otherwise."""
    p = Path(path_or_id)
    try:
        is_dir, exists = p.is_dir(), p.exists()
    except (OSError, ValueError):  # not a usable local path (a name too long, a NUL byte): only a hub id can match
        is_dir = exists = False
    if is_dir:
        if not (p / CONFIG_NAME).exists():
            raise ConfigError(
                f"{p}: not a SODA checkpoint folder (no {CONFIG_NAME}; expected {CONFIG_NAME} + {WEIGHTS_NAME})"
            )
        if not (p / WEIGHTS_NAME).exists():
            raise ConfigError(f"{p}: checkpoint folder has no {WEIGHTS_NAME}")
        return p
    if exists:
        raise ConfigError(f"{p}: expected a checkpoint folder (with {CONFIG_NAME} and {WEIGHTS_NAME}), got a file")
    s = str(path_or_id)
    if CHECKPOINT_NAME.fullmatch(s) and ".." not in s:
        return named_checkpoint(s)
    if not is_hub_id(s):
        shown = s if len(s) <= 200 else s[:200] + "..."
        raise ConfigError(f"checkpoint '{shown}' not found: not a local folder and not a valid hub id (owner/name)")
    try:
        from .hub import fetch

        return fetch(s, max_bytes=max_hub_bytes)
    except ConfigError:  # over the download limit: its own message
        raise
    except Exception as e:  # offline, unknown repo, ...
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(
            f"checkpoint '{s}' is not a local folder and could not be fetched from the hub "
            f"({type(e).__name__}: {first})"
        ) from None


def named_checkpoint(name: str) -> Path:
    """A checkpoint by name (``"world32"``, the bundled one): the folder ``name`` of ``soda.paths.checkpoints_root()``
    (the repository's assets/checkpoints, or ``$SODA_CHECKPOINTS_DIR``), from any working folder. A local folder
    of that name is preferred by ``resolve_checkpoint``, which calls this only when there is none."""
    root = checkpoints_root()
    if root is not None and (root / name).is_dir():
        return resolve_checkpoint(root / name)
    if root is None:
        where = (
            "this install has no assets/checkpoints beside the soda package (a non-editable install copies the "
            "packages only)"
        )
    else:
        have = sorted(p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file()) if root.is_dir() else []
        where = f"no folder '{name}' in {root}" + (f" (it has: {', '.join(have)})" if have else "")
    raise ConfigError(
        f"checkpoint '{name}' not found: not a local folder, not a valid hub id (owner/name), and {where}. Install the "
        f"repository with `pip install -e .`, set {CHECKPOINTS_ENV} to the folder that holds '{name}' (e.g. "
        f"<repo>/assets/checkpoints), or pass the checkpoint folder's path"
    )


def load_pretrained(path_or_id: str | os.PathLike, map_location: str = "cpu") -> torch.nn.Module:
    """Any checkpoint of this project (SODA or a baseline), rebuilt from its own config.json."""
    folder = resolve_checkpoint(path_or_id)
    return _build_and_load(build_model, read_config(folder), folder, map_location)
