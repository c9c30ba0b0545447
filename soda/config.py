"""Typed, nested configuration: encoder / unet / latent / diffusion / data / train.

A preset is a YAML file (``soda/configs/*.yaml``) holding any subset of these fields; command-line overrides use
dotted keys (``--train.steps=100``). Every field is validated up front and errors name the bad field.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from .diffusion import PREDICTIONS, SCHEDULES, T_SAMPLING
from .registry import MODEL_KINDS

FORMAT_VERSION = 1
PRESET_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range (the message names the field)."""


# ----------------------------------------------------------------------------------------------------------------
# Sections of the config
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class EncoderConfig:
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4)
    blocks_per_stage: int = 1
    use_rays: bool = True  # source camera rays enter as extra input channels (6 = origin + direction)


@dataclass
class UNetConfig:
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (2,)  # indices into channel_mult (0 = full resolution)
    num_heads: int = 4
    dropout: float = 0.0
    groups: int = 32
    use_rays: bool = True  # target camera rays concatenated to the noisy input
    # Beyond the paper (off by default; docs/DATA.md "Spatial z"): every block of the z_spatial lowest-resolution
    # levels (1 = the bottom level and the middle) also adds a zero-initialised linear map of its latent section to a
    # (C, H, W) feature map, so that z can place things (a digit's strokes), not only rescale channels (0 = off).
    z_spatial: int = 0
    # a fixed x/y grid and its sin/cos at 2 frequencies (10 channels) concatenated to the noisy input: the decoder's
    # sense of position where no camera rays give one (single-view data)
    coords: bool = False


@dataclass
class LatentConfig:
    z_dim: int = 112
    n_sections: int = 0  # 0 = one section per UNet stage (2 * levels + 1); 1 = no sections (ablation)
    p_section: float = 0.2  # probability each section is replaced by the learned null during training
    p_drop: float = 0.1  # probability the whole z is replaced (trains the unconditional mode for guidance)
    null_mode: str = "learned"  # "learned" | "zeros"


@dataclass
class DiffusionConfig:
    schedule: str = "inverted_cosine"  # "inverted_cosine" | "cosine" | "linear"
    prediction: str = "eps"  # "eps" | "v"
    sample_steps: int = 50
    preview_steps: int = 8
    guidance: float = 0.0
    # Training-time sampling of t (soda.diffusion.sample_t): "uniform" (the paper) or "low_snr" (a share of the batch
    # with its SNR divided by t_shift, a share exactly at t = 1): the decoder must read z where the noise is high.
    t_sampling: str = "uniform"
    t_shift: float = 16.0
    t_shift_share: float = 0.5
    t_one_share: float = 0.05

    def t_sampling_kwargs(self) -> dict:
        """Keyword arguments of ``soda.diffusion.sample_t`` for training."""
        return {
            "mode": self.t_sampling,
            "shift": self.t_shift,
            "shift_share": self.t_shift_share,
            "one_share": self.t_one_share,
        }


@dataclass
class DataConfig:
    dataset: str = "world"  # "world" | "folder" | "shapes3d"
    res: int = 32
    mode: str = "multiview"  # "multiview" | "identity" | "augment"
    # multiview: probability that the target camera equals the source camera; augment: that the target is the
    # source view itself (same crop and flip)
    p_identity: float = 0.25
    path: str = ""  # folder / file for real data
    n_fourier: int = 0
    # augment: random-resized-crop area range (fraction of the image) and horizontal flips
    crop_scale: tuple[float, ...] = (0.5, 1.0)
    flip: bool = True
    # folder: share of the files held out (stable hash of the relative path; a 'split' column in labels.csv wins)
    test_fraction: float = 0.1


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    out_dir: str = "runs/default"
    log_every: int = 20
    ckpt_every: int = 500
    sample_every: int = 1000
    sample_minutes: float = 10.0  # also write a sample grid at least this often (and at every stop); 0 = off
    keep_checkpoints: int = 2
    max_minutes: float = 0.0  # 0 = no wall-clock limit
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    amp: str = "auto"  # "auto" (bf16 on CUDA and AMX-BF16 CPUs, else off: soda.train.resolve_amp) | "bf16" | "off"
    compile: bool = False
    channels_last: bool = False
    threads: int = 0  # 0 = torch default
    init_from: str = ""  # warm start: a checkpoint folder whose weights (same architecture) initialise a new run
    # After the warm-up: "constant" (the paper) or "cosine" from lr down to lr * lr_final at train.steps
    lr_decay: str = "constant"
    lr_final: float = 0.1
    # The z pathway (encoder, z modulation of every block, the learned null) learns z_lr_mult x faster than the rest.
    z_lr_mult: float = 1.0
    # Layer masking schedule, in images seen: off for mask_warmup images (until z is in use), then its rates ramp
    # linearly to model.latent.p_section / p_drop over mask_ramp images. 0 / 0 = the paper: full rates from the start.
    mask_warmup: int = 0
    mask_ramp: int = 0
    eval_scenes: int = 64  # held-out scenes for the checkpoint metrics (recon / object PSNR, z-use gap); 0 = off


@dataclass
class ModelConfig:
    kind: str = "soda"  # "soda" | "vae" (beta-VAE baseline) | "ae" (plain autoencoder baseline)
    beta: float = 4.0  # beta-VAE KL weight (kind: vae)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    res: int = 32
    ray_channels: int = 6  # channels of one camera-ray image (cameras.ray_channel_count(data.n_fourier))

    @property
    def num_stages(self) -> int:
        return 2 * len(self.unet.channel_mult) + 1

    @property
    def sections(self) -> int:
        return self.latent.n_sections or self.num_stages

    @property
    def section_dim(self) -> int:
        return self.latent.z_dim // self.sections


@dataclass
class SODAConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "soda"

    def to_dict(self) -> dict:
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> SODAConfig:
        cfg = _build(cls, d, "")
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> SODAConfig:
        import yaml

        path = Path(path)
        if not path.exists():
            alt = PRESET_DIR / f"{path.stem}.yaml"
            if alt.exists():
                path = alt
            else:
                names = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
                raise ConfigError(f"config file {path} not found (presets: {names})")
        try:
            d = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        for ov in overrides or []:
            apply_override(d, ov)
        return cls.from_dict(d)

    def validate(self) -> None:
        m, lat, u = self.model, self.model.latent, self.model.unet
        _check(m.kind in MODEL_KINDS, "model.kind", f"must be {_one_of(MODEL_KINDS)}")
        _check(m.beta >= 0, "model.beta", "must be >= 0")
        _check(m.res in (16, 32, 64, 128, 256), "model.res", "must be one of 16, 32, 64, 128, 256")
        _check(self.data.res == m.res, "data.res", f"must equal model.res ({m.res})")
        _check(lat.z_dim > 0, "model.latent.z_dim", "must be positive")
        _check(0 < m.sections <= m.num_stages, "model.latent.n_sections", f"must be 0 (auto) or 1..{m.num_stages}")
        _check(
            lat.z_dim % m.sections == 0,
            "model.latent.z_dim",
            f"({lat.z_dim}) must be divisible by the number of sections ({m.sections})",
        )
        _check(0 <= lat.p_section < 1, "model.latent.p_section", "must be in [0, 1)")
        _check(0 <= lat.p_drop < 1, "model.latent.p_drop", "must be in [0, 1)")
        _check(lat.null_mode in ("learned", "zeros"), "model.latent.null_mode", "must be 'learned' or 'zeros'")
        _check(len(u.channel_mult) >= 1, "model.unet.channel_mult", "needs at least one level")
        _check(
            m.res % (2 ** (len(u.channel_mult) - 1)) == 0, "model.unet.channel_mult", "too many levels for model.res"
        )
        _check(
            all(0 <= a < len(u.channel_mult) for a in u.attention_levels),
            "model.unet.attention_levels",
            f"indices must be in 0..{len(u.channel_mult) - 1}",
        )
        for c in (u.base_channels * k for k in u.channel_mult):
            _check(c % u.groups == 0, "model.unet.groups", f"must divide every stage width (got width {c})")
        _check(u.num_res_blocks >= 1, "model.unet.num_res_blocks", "must be >= 1")
        _check(
            0 <= u.z_spatial <= len(u.channel_mult),
            "model.unet.z_spatial",
            f"must be between 0 (off) and the number of levels ({len(u.channel_mult)})",
        )
        _check(self.model.encoder.base_channels % 8 == 0, "model.encoder.base_channels", "must be a multiple of 8")
        d = m.diffusion
        _check(d.schedule in SCHEDULES, "model.diffusion.schedule", f"must be {_one_of(SCHEDULES)}")
        _check(d.prediction in PREDICTIONS, "model.diffusion.prediction", f"must be {_one_of(PREDICTIONS, quote=True)}")
        _check(d.sample_steps >= 1 and d.preview_steps >= 1, "model.diffusion.sample_steps", "must be >= 1")
        _check(d.t_sampling in T_SAMPLING, "model.diffusion.t_sampling", f"must be {_one_of(T_SAMPLING)}")
        _check(d.t_shift >= 1, "model.diffusion.t_shift", "must be >= 1 (the SNR is divided by it)")
        _check(
            0 <= d.t_shift_share and 0 <= d.t_one_share and d.t_shift_share + d.t_one_share <= 1,
            "model.diffusion.t_shift_share",
            "and t_one_share must be >= 0 with a sum <= 1",
        )
        _check(
            self.data.dataset in ("world", "folder", "shapes3d"), "data.dataset", "must be world, folder or shapes3d"
        )
        _check(
            self.data.mode in ("multiview", "identity", "augment"),
            "data.mode",
            "must be multiview, identity or augment",
        )
        _check(
            self.data.dataset == "world" or self.data.mode != "multiview",
            "data.mode",
            "multiview needs camera data (data.dataset: world)",
        )
        _check(0 <= self.data.p_identity <= 1, "data.p_identity", "must be in [0, 1]")
        cs = self.data.crop_scale
        _check(len(cs) == 2 and 0 < cs[0] <= cs[1] <= 1, "data.crop_scale", "must be [low, high], 0 < low <= high <= 1")
        _check(0 <= self.data.test_fraction < 1, "data.test_fraction", "must be in [0, 1)")
        from .data.cameras import ray_channel_count  # the one 6 + 12 * n formula (imports torch: only here)

        rays = ray_channel_count(self.data.n_fourier)
        _check(m.ray_channels == rays, "model.ray_channels", f"must be 6 + 12 * data.n_fourier = {rays}")
        if self.data.dataset in ("folder", "shapes3d"):
            _check(bool(self.data.path), "data.path", f"is required for dataset '{self.data.dataset}'")
            _check(
                not (m.encoder.use_rays or m.unet.use_rays),
                "model.encoder.use_rays",
                "must be false (with unet.use_rays) for data without cameras",
            )
        t = self.train
        _check(t.steps >= 1, "train.steps", "must be >= 1")
        _check(t.batch_size >= 1, "train.batch_size", "must be >= 1")
        _check(t.lr > 0, "train.lr", "must be positive")
        _check(0 <= t.ema_decay < 1, "train.ema_decay", "must be in [0, 1)")
        _check(t.ckpt_every >= 1 and t.log_every >= 1, "train.ckpt_every", "must be >= 1")
        _check(t.device in ("auto", "cpu", "cuda"), "train.device", "must be auto, cpu or cuda")
        _check(t.amp in ("auto", "bf16", "off"), "train.amp", "must be auto, bf16 or off")
        _check(t.z_lr_mult > 0, "train.z_lr_mult", "must be positive")
        _check(t.lr_decay in ("constant", "cosine"), "train.lr_decay", "must be constant or cosine")
        _check(0 <= t.lr_final <= 1, "train.lr_final", "must be in [0, 1] (a fraction of train.lr)")
        _check(t.mask_warmup >= 0 and t.mask_ramp >= 0, "train.mask_warmup", "and train.mask_ramp must be >= 0")

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based): linear warm-up over train.warmup steps, then
        constant or a cosine from train.lr to train.lr * train.lr_final at train.steps."""
        t = self.train
        lr = t.lr * min(1.0, (step + 1) / max(1, t.warmup))
        if t.lr_decay == "cosine" and step >= t.warmup:
            frac = min(1.0, (step - t.warmup) / max(1, t.steps - t.warmup))
            lr *= t.lr_final + (1 - t.lr_final) * 0.5 * (1 + math.cos(math.pi * frac))
        return lr

    def mask_rate(self, images_seen: int) -> float:
        """Fraction of the configured masking rates in force after ``images_seen`` training images (0..1)."""
        t = self.train
        if images_seen < t.mask_warmup:
            return 0.0
        if t.mask_ramp <= 0:
            return 1.0
        return min(1.0, (images_seen - t.mask_warmup) / t.mask_ramp)


# ----------------------------------------------------------------------------------------------------------------
# Helpers: building dataclasses from dicts with clear errors, overrides
# ----------------------------------------------------------------------------------------------------------------


def _one_of(choices: tuple[str, ...], quote: bool = False) -> str:
    """("a", "b", "c") -> "a, b or c" (quoted with ``quote``)."""
    c = [f"'{x}'" if quote else x for x in choices]
    return c[0] if len(c) == 1 else f"{', '.join(c[:-1])} or {c[-1]}"


def _check(ok: bool, name: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"config field '{name}' {msg}")


def _to_plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_plain(v) for v in x]
    return x


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"config field '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {d!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, val in d.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (known: {', '.join(names)})"
            raise ConfigError(f"unknown config field '{prefix}{key}'{hint}")
        kwargs[key] = _coerce(hints[key], val, prefix + key)
    return cls(**kwargs)


def _coerce(tp: Any, val: Any, name: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, val, name + ".")
    origin = getattr(tp, "__origin__", None)
    if origin is tuple:
        if isinstance(val, (int, float)):
            val = [val]
        if not isinstance(val, (list, tuple)):
            raise ConfigError(f"config field '{name}' must be a list, got {val!r}")
        inner = tp.__args__[0]
        return tuple(_coerce(inner, v, name) for v in val)
    if tp is bool:
        if isinstance(val, bool):
            return val
        if isinstance(val, str) and val.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return val.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"config field '{name}' must be true/false, got {val!r}")
    if tp in (int, float):
        if isinstance(val, bool) or not isinstance(val, (int, float, str)):
            raise ConfigError(f"config field '{name}' must be a number, got {val!r}")
        try:
            out = tp(float(val)) if tp is float else int(str(val), 0) if isinstance(val, str) else val
        except ValueError:
            raise ConfigError(f"config field '{name}' must be a number, got {val!r}") from None
        if tp is int and isinstance(out, float):
            if not out.is_integer():
                raise ConfigError(f"config field '{name}' must be an integer, got {val!r}")
            out = int(out)
        if tp is float and out != out:
            raise ConfigError(f"config field '{name}' must not be NaN")
        return out
    if tp is str:
        if not isinstance(val, (str, int, float)):
            raise ConfigError(f"config field '{name}' must be a string, got {val!r}")
        return str(val)
    return val


def apply_override(d: dict, override: str) -> None:
    """Apply one ``key.sub=value`` override (value parsed as YAML) to a nested dict in place."""
    import yaml

    s = override[2:] if override.startswith("--") else override
    if "=" not in s:
        raise ConfigError(f"override '{override}' must look like --section.key=value")
    key, raw = s.split("=", 1)
    try:
        val = yaml.safe_load(raw)
    except yaml.YAMLError:
        val = raw
    if isinstance(val, bool) and raw.strip().lower() not in ("true", "false"):
        val = raw.strip()  # on/off/yes/no: YAML 1.1 booleans, but words for string fields (--train.amp=off)
    parts = key.split(".")
    cur = d
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
        if not isinstance(cur, dict):
            raise ConfigError(f"override '{override}': '{p}' is not a section")
    cur[parts[-1]] = val


def load_config_json(path: str | Path) -> dict:
    """Read a checkpoint's config.json and check its format (clear message for foreign or old files)."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable JSON config ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != "soda":
        raise ConfigError(f'{path}: not a SODA checkpoint config (missing "format": "soda")')
    ver = meta.get("format_version")
    if ver != FORMAT_VERSION:
        raise ConfigError(
            f"{path}: checkpoint format version {ver} is not supported by this code (expects {FORMAT_VERSION}); "
            "re-export it with a matching version of soda"
        )
    if not isinstance(meta.get("config"), dict):
        raise ConfigError(f"{path}: missing the 'config' mapping")
    return meta
