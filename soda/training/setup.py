"""Setting up a training run: processes and devices, mixed precision, the optimizer."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..config import ConfigError, SODAConfig

__all__ = ["cpu_has_amx_bf16", "make_optimizer", "pick_device", "resolve_amp", "setup_distributed"]


def setup_distributed(device_kind: str) -> tuple[int, int, int]:
    """(rank, world_size, local_rank); initialises the process group when launched by torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, 0
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def pick_device(cfg: SODAConfig, local_rank: int) -> torch.device:
    want = cfg.train.device
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("config field 'train.device' is 'cuda' but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def cpu_has_amx_bf16() -> bool:
    """True on x86 CPUs with AMX-BF16 tiles (Intel Sapphire Rapids and later), from /proc/cpuinfo's flags."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def resolve_amp(amp: str, device: torch.device) -> bool:
    """train.amp -> use bf16 autocast? ``auto`` picks what bench/amp_speed.py measured to be faster: bf16 on CUDA and
    on CPUs with AMX-BF16 (97 vs 84 img/s on world32); fp32 elsewhere (AVX512-BF16 alone: +7%, not worth the
    precision; no bf16 at all: several times slower). A fixed rule per machine, never a timing taken at start-up,
    so that a resumed run makes the same choice."""
    if amp != "auto":
        return amp == "bf16"
    return device.type == "cuda" or cpu_has_amx_bf16()


def make_optimizer(model, tc) -> torch.optim.AdamW:
    """AdamW with two parameter groups: the rest of the model at train.lr, the z pathway (``model.z_parameters()``)
    at train.lr x train.z_lr_mult; each group's ``lr_mult`` is applied by the loop's learning-rate schedule."""
    z_ids = {id(p) for p in model.z_parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in z_ids], "lr_mult": 1.0},
        {"params": [p for p in model.parameters() if id(p) in z_ids], "lr_mult": tc.z_lr_mult},
    ]
    return torch.optim.AdamW(groups, lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.99))
