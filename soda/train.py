"""Train SODA: ``python -m soda.train --config soda/configs/<preset>.yaml [--section.key=value ...] [--resume]``.

A flat loop you can read top to bottom. Single process, or multi-process with ``torchrun --nproc_per_node N``
(DDP; gloo on CPU, nccl on CUDA). Everything random is seeded: the batch at step s depends only on (seed, rank, s),
and the noise/time/masking generator is saved in each checkpoint, so ``--resume`` continues bit for bit.

Run folder layout (``train.out_dir``):
  config.yaml            the resolved config
  metrics.jsonl          one JSON line per log step
  checkpoints/step-N/    state.safetensors (model, EMA, optimizer tensors, RNG) + state.json (step, param groups)
  latest.json            pointer to the newest complete checkpoint (written last, atomically)
  ema/                   EMA inference weights (model.safetensors + config.json), what the app and eval load
  samples/step-N.png     rows of source | target | generated
"""

from __future__ import annotations

import argparse
import copy
import errno
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from .atomic import recover_dir, remove_dir, replace_dir, write_file, write_text
from .config import ConfigError, SODAConfig
from .data.streams import make_stream
from .diffusion import SAMPLERS, diffusion_loss, to_eps
from .diffusion.schedule import alpha_bar
from .model import SODA, build_model


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# --------------------------------------------------------------------------------------------------------------
# Distributed helpers
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Checkpoints: safetensors + JSON, written into a temp folder and renamed; latest.json is updated last
# --------------------------------------------------------------------------------------------------------------


STATE_FILES = ("state.safetensors", "state.json")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission, ...). The previous checkpoint, latest.json and
    ema/ are left as they were, with no temp folder."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def _write_error(e: Exception, what: Path, kept: str) -> CheckpointWriteError:
    """OSError or SafetensorError (safetensors reports write failures as 'I/O error: ... (os error N)') -> a clear
    CheckpointWriteError naming the path."""
    code = getattr(e, "errno", None)
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    hit = re.search(r"I/O error: (.*?) \(os error (\d+)\)", str(e))
    if hit:
        reason, code = hit.group(1), int(hit.group(2))
    hint = " (disk full?)" if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
    return CheckpointWriteError(code, f"could not write {what}: {reason}{hint}; training stopped, {kept}")


def recover_run(out: Path) -> list[str]:
    """Clean up after a crash (kill -9, power loss) in ``out``: hidden temp files and folders of interrupted writes
    are removed, a checkpoint that was being replaced is put back, and ema/ is repaired. -> what was done."""
    from .model.io import recover_interrupted_save

    done = []
    ckdir = out / "checkpoints"
    if ckdir.is_dir():
        for p in sorted(ckdir.glob(".step-*.del-*")):  # a pruned checkpoint whose deletion was cut short
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p}")
        for name in sorted({p.name[1:].split(".", 1)[0] for p in ckdir.glob(".step-*")}):
            had = (ckdir / name).exists()
            # a half-written step folder is never finished (latest.json still names the previous checkpoint)
            recover_dir(ckdir / name, lambda folder: False, protected=STATE_FILES)
            back = not had and (ckdir / name).exists()
            done.append(f"restored {ckdir / name}" if back else f"removed the leftovers of {ckdir / name}")
    for pattern in (".latest.json.*", ".config.yaml.*", ".metrics.jsonl.*"):
        for p in out.glob(pattern):
            p.unlink(missing_ok=True)
            done.append(f"removed {p}")
    for p in (out / "samples").glob(".*.tmp"):
        p.unlink(missing_ok=True)
        done.append(f"removed {p}")
    leftovers = [*out.glob(".ema.tmp-*"), *out.glob(".ema.old-*")]
    if leftovers:
        recover_interrupted_save(out / "ema")
        done.append(f"repaired {out / 'ema'}")
    return done


def _trim_metrics(out: Path, step: int) -> None:
    """On resume, drop the metric records written after checkpoint ``step`` (those steps run again) and any line a
    crash cut short, so that metrics.jsonl holds each step once."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int) or rec["step"] <= step:
            keep.append(line)
    write_text(path, "".join(f"{x}\n" for x in keep))


def save_checkpoint(
    out: Path,
    step: int,
    model: SODA,
    ema: SODA,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    cfg: SODAConfig,
    extra: dict,
) -> Path:
    """Write checkpoints/step-N atomically, point latest.json at it, prune old ones, refresh ema/.

    Every step can fail (disk full) or be killed without harm: the folder is written under a hidden temp name and
    renamed, latest.json is replaced atomically after it, and ema/ is swapped atomically. A write error raises
    ``CheckpointWriteError`` naming the path, with the previous checkpoint, latest.json and ema/ intact."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    ckdir = out / "checkpoints"
    try:
        prev = json.loads((out / "latest.json").read_text())["path"]
        kept = f"the previous checkpoint {ckdir / prev} and latest.json are kept"
    except (OSError, ValueError, KeyError, TypeError):
        kept = "no earlier checkpoint exists"
    try:
        ckdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(e, ckdir, kept) from e
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    osd = opt.state_dict()
    for idx, st in osd["state"].items():
        for name, v in st.items():
            tensors[f"opt.{idx}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["rng.gen"] = gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"step": step, "param_groups": osd["param_groups"], "config": cfg.to_dict(), **extra}
    final = ckdir / f"step-{step:08d}"

    def fill(tmp: Path) -> None:
        save_file(tensors, str(tmp / STATE_FILES[0]))
        (tmp / STATE_FILES[1]).write_text(json.dumps(meta, indent=1))

    try:  # the same step again (e.g. interrupted right after a resume) is swapped in, never deleted first
        replace_dir(final, fill)
    except (OSError, SafetensorError) as e:  # the previous folder (if any) is back as it was
        raise _write_error(e, final, kept) from e
    try:
        write_text(out / "latest.json", json.dumps({"step": step, "path": final.name}))
    except OSError as e:
        raise _write_error(e, out / "latest.json", kept) from e
    for stale in sorted(ckdir.glob("step-*"))[: -max(1, cfg.train.keep_checkpoints)]:
        try:
            remove_dir(stale)
        except OSError:
            pass  # pruning is housekeeping; the next checkpoint tries again
    try:
        ema.save_pretrained(out / "ema", full_config=cfg, extra={"train": {"step": step, **extra}})
    except (OSError, SafetensorError) as e:
        raise _write_error(
            e, out / "ema", f"the checkpoint {final} is complete and ema/ keeps its previous weights"
        ) from e
    return final


def load_checkpoint(
    out: Path,
    model: SODA,
    ema: SODA,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    folder: Path | None = None,
) -> tuple[int, dict]:
    """Restore the newest complete checkpoint (or the checkpoint ``folder``); returns (step, extra metadata)."""
    from safetensors.torch import load_file

    if folder is None:
        ptr = out / "latest.json"
        if not ptr.exists():
            raise FileNotFoundError(f"--resume: no checkpoint in {out} (missing {ptr})")
        info = json.loads(ptr.read_text())
        ck = out / "checkpoints" / info["path"]
    else:
        ck = Path(folder)
    meta = json.loads((ck / "state.json").read_text())
    t = load_file(str(ck / "state.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("ema.")})
    state: dict[int, dict] = {}
    for k, v in t.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    gen.set_state(t["rng.gen"])
    torch.set_rng_state(t["rng.torch"])
    if "rng.cuda" in t and torch.cuda.is_available():
        torch.cuda.set_rng_state(t["rng.cuda"])
    return int(meta["step"]), {k: v for k, v in meta.items() if k not in ("param_groups", "config", "step")}


# --------------------------------------------------------------------------------------------------------------
# Samples: rows of source | target | generated
# --------------------------------------------------------------------------------------------------------------


def batch_loss(
    net,
    kind: str,
    batch: dict,
    sched: str,
    pred: str,
    gen: torch.Generator | None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    t_sampling: dict | None = None,
) -> torch.Tensor:
    """The training objective for a batch: SODA's diffusion loss (t drawn per ``t_sampling`` unless given), or a
    baseline's own loss. -> scalar."""
    if kind != "soda":
        return net(batch["src"], batch.get("src_rays"), batch.get("tgt_rays"), batch["tgt"], generator=gen)
    return diffusion_loss(
        lambda x_t, tt: net(x_t, tt, batch["src"], batch.get("src_rays"), batch.get("tgt_rays"), generator=gen),
        batch["tgt"],
        sched,
        pred,
        t=t,
        noise=noise,
        generator=gen,
        t_sampling=t_sampling,
    )


@torch.no_grad()
def generate(
    model, batch: dict, steps: int, seed: int = 0, sampler: str = "ddim", guidance: float = 0.0
) -> torch.Tensor:
    """Decode the target view of ``batch`` from z of its source: -> (B,3,H,W) in [-1,1]."""
    src = batch["src"]
    if model.cfg.kind != "soda":
        return model.reconstruct(model.encode(src, batch.get("src_rays")), batch.get("tgt_rays"))
    zs = model.sections(model.encode(src, batch.get("src_rays")))
    rays = batch.get("tgt_rays")
    sched, pred = model.cfg.diffusion.schedule, model.cfg.diffusion.prediction
    null = model.null_sections(src.shape[0]).to(src.dtype)

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = alpha_bar(t, sched).to(x_t.device)
        eps = to_eps(model.denoise(x_t, t, zs, rays), x_t, ab, pred)
        if guidance:
            eps_u = to_eps(model.denoise(x_t, t, null, rays), x_t, ab, pred)
            eps = eps + guidance * (eps - eps_u)
        return eps

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(src.shape, generator=g).to(src.device)
    return SAMPLERS[sampler](denoise, noise, steps, sched)


@torch.no_grad()
def held_out_loss(model, batch: dict, n_t: int = 8, seed: int = 0) -> float:
    """Loss of ``model`` (eval mode, no masking) on a fixed batch, fixed t grid and fixed noise."""
    was = model.training
    model.eval()
    kind = model.cfg.kind
    sched, pred = model.cfg.diffusion.schedule, model.cfg.diffusion.prediction
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for t_val in torch.linspace(0.05, 0.95, n_t if kind == "soda" else 1):
        t = torch.full((batch["tgt"].shape[0],), float(t_val), device=batch["tgt"].device)
        noise = torch.randn(batch["tgt"].shape, generator=g).to(batch["tgt"].device)
        total += float(batch_loss(model, kind, batch, sched, pred, g, t=t, noise=noise))
    model.train(was)
    return total / (n_t if kind == "soda" else 1)


def save_sample_grid(path: Path, batch: dict, generated: torch.Tensor, n: int = 8) -> None:
    """PNG with one row per example: source | target | generated (skipped with a warning when Pillow is missing)."""
    try:
        from PIL import Image
    except ImportError:
        warnings.warn("Pillow is not installed: sample grids are not written", stacklevel=2)
        return

    def to_u8(x: torch.Tensor) -> torch.Tensor:
        return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()

    rows = [
        torch.cat([to_u8(batch["src"][i]), to_u8(batch["tgt"][i]), to_u8(generated[i])], dim=2)
        for i in range(min(n, generated.shape[0]))
    ]
    grid = torch.cat(rows, dim=1).permute(1, 2, 0).numpy()  # (H*n, 3W, 3)
    write_file(path, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))


# --------------------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------------------


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


def _to(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def train(
    cfg: SODAConfig,
    resume: bool = False,
    stop_at: int | None = None,
    quiet: bool = False,
    stream: Iterator[dict] | None = None,
) -> dict:
    """Run training per ``cfg``; returns a summary dict. ``stop_at`` ends early (as if interrupted) at that step."""
    tc = cfg.train
    device_kind = "cuda" if (tc.device == "cuda" or (tc.device == "auto" and torch.cuda.is_available())) else "cpu"
    rank, world, local_rank = setup_distributed(device_kind)
    device = pick_device(cfg, local_rank)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    is_main = rank == 0
    out = Path(tc.out_dir)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        for msg in recover_run(out):
            print(f"recovered an interrupted write: {msg}", file=sys.stderr)
        write_text(out / "config.yaml", _yaml(cfg.to_dict()))

    torch.manual_seed(tc.seed + rank)
    model = build_model(cfg.model).to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if tc.init_from and not resume:
        from .model.io import _load_weights, resolve_checkpoint

        _load_weights(model, resolve_checkpoint(tc.init_from) / "model.safetensors", str(device))
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = make_optimizer(model, tc)
    gen = torch.Generator().manual_seed(tc.seed * 1000 + rank)  # noise, t, masking
    step, extra = 0, {"images_seen": 0, "train_seconds": 0.0}
    if resume:
        step, extra = load_checkpoint(out, model, ema, opt, gen)
        if is_main:
            _trim_metrics(out, step)
        extra.setdefault("images_seen", 0)
        extra.setdefault("train_seconds", 0.0)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None
        )
    if tc.compile and device.type == "cuda":
        net = torch.compile(net)
    use_bf16 = resolve_amp(tc.amp, device)
    if is_main and not quiet and tc.amp == "auto":
        print(f"train.amp=auto: {'bf16 autocast' if use_bf16 else 'fp32'} on {device.type}", file=sys.stderr)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext

    data = stream if stream is not None else make_stream(cfg, rank=rank, world_size=world, start_step=step)
    fixed = _held_out_batch(cfg, device, quiet) if is_main and stream is None else None
    scenes = None  # held-out scenes with object masks for the checkpoint metrics (procedural world, SODA only)
    if fixed is not None and cfg.data.dataset == "world" and cfg.model.kind == "soda" and tc.eval_scenes > 0:
        from .eval.zuse import held_out_scenes

        scenes = held_out_scenes(tc.eval_scenes, cfg.model.res, seed=tc.seed + 17, n_fourier=cfg.data.n_fourier)
    t_sampling = cfg.model.diffusion.t_sampling_kwargs()
    sched, pred = cfg.model.diffusion.schedule, cfg.model.diffusion.prediction
    last_ckpt = None
    losses: list[float] = []
    history: list[dict] = []
    t_start = time.time()
    t_log, n_log = time.time(), 0
    t_sample, step0, timeup = t_start, step, False
    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    bar = None
    if is_main and not quiet:
        from tqdm import tqdm

        bar = tqdm(total=tc.steps, initial=step, desc="train", dynamic_ncols=True, file=sys.stderr)
    try:
        while step < end:
            batch = _to(next(data), device, tc.channels_last)
            lr = tc.lr * min(1.0, (step + 1) / max(1, tc.warmup))
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_mult", 1.0)
            model.mask_rate = cfg.mask_rate(extra["images_seen"])
            net.train()
            with autocast():
                loss = batch_loss(net, cfg.model.kind, batch, sched, pred, gen, t_sampling=t_sampling)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            lval = loss.detach().float()
            if world > 1:
                dist.all_reduce(lval)
                lval /= world
            lval = float(lval)
            if not math.isfinite(lval):
                where = f"; last good checkpoint: {last_ckpt}" if last_ckpt else " (no checkpoint was written yet)"
                raise TrainingDiverged(
                    f"loss is {lval} at step {step + 1}: training stopped{where}. "
                    "Try a lower train.lr or train.grad_clip."
                )
            opt.step()
            decay = min(tc.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
                    pe.lerp_(p, 1 - decay)
                for be, b in zip(ema.buffers(), model.buffers(), strict=True):
                    be.copy_(b)
            step += 1
            n_img = batch["tgt"].shape[0] * world
            extra["images_seen"] += n_img
            n_log += n_img
            losses.append(lval)
            if bar is not None:
                bar.update(1)
            if step % tc.log_every == 0 or step == end:
                now = time.time()
                ips = n_log / max(now - t_log, 1e-9)
                rec = {
                    "step": step,
                    "loss": sum(losses) / len(losses),
                    "lr": lr,
                    "mask_rate": model.mask_rate,
                    "img_per_s": round(ips, 2),
                    "images_seen": extra["images_seen"],
                    "elapsed_s": round(extra["train_seconds"] + now - t_start, 1),
                }
                history.append(rec)
                if is_main:
                    with open(out / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    if bar is not None:
                        eta = (tc.steps - step) * batch["tgt"].shape[0] * world / max(ips, 1e-9)
                        eta = _follow_time_limit(bar, tc, step, step0, eta, rec["elapsed_s"], now - t_start)
                        bar.set_postfix(loss=f"{rec['loss']:.4f}", img_s=f"{ips:.1f}", eta=f"{eta / 60:.0f}m")
                losses.clear()
                t_log, n_log = now, 0
            timeup = tc.max_minutes and (extra["train_seconds"] + time.time() - t_start) > tc.max_minutes * 60
            if is_main and (step % tc.ckpt_every == 0 or step == end or timeup):
                ex = dict(extra, train_seconds=extra["train_seconds"] + time.time() - t_start)
                last_ckpt = save_checkpoint(out, step, model, ema, opt, gen, cfg, ex)
                if fixed is not None:
                    rec = {
                        "step": step,
                        "images_seen": extra["images_seen"],
                        "val_loss": held_out_loss(ema, fixed),
                        "elapsed_s": round(ex["train_seconds"], 1),
                    }
                    if scenes is not None:
                        from .eval.zuse import scene_metrics

                        rec |= {k: round(v, 3) for k, v in scene_metrics(ema, scenes, steps=20).items()}
                        if bar is not None:
                            bar.write(
                                f"step {step}: held-out recon {rec['recon_psnr']:.2f} dB, object "
                                f"{rec['recon_psnr_object']:.2f} dB, "
                                f"z gap at t=1 (object) {rec['zgap_t1_object']:.2f} dB"
                            )
                    with open(out / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(rec) + "\n")
            due = tc.sample_minutes > 0 and time.time() - t_sample >= tc.sample_minutes * 60
            if is_main and fixed is not None and (step % tc.sample_every == 0 or step == end or timeup or due):
                _write_samples(out, step, ema, fixed, cfg)
                t_sample = time.time()
            if timeup:
                break
    except KeyboardInterrupt:
        if is_main:
            ex = dict(extra, train_seconds=extra["train_seconds"] + time.time() - t_start)
            last_ckpt = save_checkpoint(out, step, model, ema, opt, gen, cfg, ex)
            grid = _write_samples(out, step, ema, fixed, cfg) if fixed is not None else None
            print(f"\ninterrupted: checkpoint saved at step {step} in {last_ckpt}", file=sys.stderr)
            if grid is not None:
                print(f"samples (source | target | generated): {grid}", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    if is_main and not quiet:
        print(_stop_line(cfg, step, extra, time.time() - t_start, out, timeup, fixed is not None), file=sys.stderr)
    return {"step": step, "history": history, "out_dir": str(out), "model": model, "ema": ema}


def _held_out_batch(cfg: SODAConfig, device: torch.device, quiet: bool) -> dict:
    """The fixed batch for the held-out loss and the sample grids: the first batch of the test split (held-out scenes;
    a folder's held-out files). A folder without held-out files (one image) uses a training batch and says so."""
    from .data.streams import EmptySplitError

    try:
        batch = next(make_stream(cfg, rank=0, world_size=1, start_step=0, split="test"))
    except EmptySplitError as e:
        if not quiet:
            print(f"warning: {e}: the held-out loss and sample grids use training images", file=sys.stderr)
        batch = next(make_stream(cfg, rank=0, world_size=1, start_step=0, split="train"))
    return _to(batch, device, False)


def _follow_time_limit(bar, tc, step: int, step0: int, eta: float, elapsed: float, session: float) -> float:
    """When train.max_minutes ends the run before train.steps, the bar's total becomes the step the limit will be
    reached at (projected from this session's overall rate, checkpoints and samples included) and the ETA the time
    left. -> the ETA in seconds."""
    if not tc.max_minutes:
        return eta
    left = max(0.0, tc.max_minutes * 60 - elapsed)
    if left >= eta:
        return eta
    rate = (step - step0) / max(session, 1e-9)
    bar.total = max(step, min(tc.steps, step + int(left * rate)))
    bar.refresh()
    return left


def _write_samples(out: Path, step: int, ema, fixed: dict, cfg: SODAConfig, rows: int = 8) -> Path:
    """samples/step-N.png: the first ``rows`` examples of the held-out batch (only those are decoded)."""
    path = out / "samples" / f"step-{step:08d}.png"
    part = {k: v[:rows] if torch.is_tensor(v) else v for k, v in fixed.items()}
    save_sample_grid(path, part, generate(ema, part, steps=min(20, cfg.model.diffusion.sample_steps)), n=rows)
    return path


def _stop_line(cfg: SODAConfig, step: int, extra: dict, session: float, out: Path, timeup, samples) -> str:
    """Why the run stopped, where it got to, and where to look."""
    tc = cfg.train
    mins = (extra["train_seconds"] + session) / 60
    where = f"step {step} of {tc.steps} ({extra['images_seen']} images, {mins:.1f} min of training)"
    if timeup:
        head = f"time limit reached (train.max_minutes={tc.max_minutes:g}): stopped at {where}"
    elif step >= tc.steps:
        head = f"finished: {where}"
    else:
        head = f"stopped at {where}"
    tail = f"; EMA weights in {out / 'ema'}"
    if samples:
        tail += f", samples in {out / 'samples' / f'step-{step:08d}.png'}"
    return head + tail + ("; continue with --resume and a larger train.max_minutes" if timeup else "")


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m soda.train",
        description=__doc__.split("\n")[0],
        epilog="Overrides: any config field as --section.key=value, e.g. --train.steps=500",
    )
    p.add_argument("--config", required=True, help="preset name or YAML path (soda/configs/*.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from train.out_dir/latest.json")
    args, rest = p.parse_known_args(argv)
    bad = [r for r in rest if not (r.startswith("--") and "=" in r)]
    if bad:
        p.error(f"unrecognised arguments {bad}: overrides look like --train.steps=100")
    import signal

    def _stop(signum, frame):  # SIGTERM (and SIGINT, which background jobs ignore) -> checkpoint, then exit
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        cfg = SODAConfig.from_yaml(args.config, rest)
        train(cfg, resume=args.resume)
    except (ConfigError, FileNotFoundError, TrainingDiverged, CheckpointWriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. the disk filled up while writing metrics or samples
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}; training stopped", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
