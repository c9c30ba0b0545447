"""Train SODA: ``python -m soda.train --config soda/configs/<preset>.yaml [--section.key=value ...] [--resume]``.

A flat loop you can read top to bottom. Single process, or multi-process with ``torchrun --nproc_per_node N``
(DDP; gloo on CPU, nccl on CUDA). Everything random is seeded: the batch at step s depends only on (seed, rank, s),
and the noise/time/masking generator is saved in each checkpoint, so ``--resume`` continues bit for bit. Any model
kind trains through the common model interface (calling the model on a batch gives its loss). The loss stays on the
device between log and checkpoint steps: it is read back (and, with DDP, averaged over processes) only there.

Run folder layout (``train.out_dir``; the checkpoint store is soda.training.checkpoints):
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
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from .atomic import write_text
from .config import ConfigError, SODAConfig
from .data.streams import make_stream
from .model import build_model
from .model.io import load_weights
from .training.checkpoints import CheckpointWriteError, load_checkpoint, recover_run, save_checkpoint, trim_metrics
from .training.samples import held_out_loss, write_samples
from .training.setup import make_optimizer, pick_device, resolve_amp, setup_distributed


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class _Losses:
    """Per-step losses kept on the device and read back in one go (one sync point per read instead of one per step).
    ``read()`` averages them over the DDP processes (every process must call it at the same steps), checks that
    each is finite and returns them as floats."""

    def __init__(self, world: int):
        self.world, self.pending, self.steps = world, [], []

    def add(self, step: int, loss: torch.Tensor) -> None:
        self.pending.append(loss.detach().float())
        self.steps.append(step)

    def read(self, last_ckpt: Path | None, collective: bool = True) -> list[float]:
        if not self.pending:
            return []
        vals = torch.stack(self.pending)
        if collective and self.world > 1:
            dist.all_reduce(vals)
            vals /= self.world
        out, steps = vals.tolist(), self.steps
        self.pending, self.steps = [], []
        for step, v in zip(steps, out, strict=True):
            if not math.isfinite(v):
                where = f"; last good checkpoint: {last_ckpt}" if last_ckpt else " (no checkpoint was written yet)"
                raise TrainingDiverged(
                    f"loss is {v} at step {step}: training stopped{where}. Try a lower train.lr or train.grad_clip."
                )
        return out


def train(
    cfg: SODAConfig,
    resume: bool = False,
    stop_at: int | None = None,
    quiet: bool = False,
    stream: Iterator[dict] | None = None,
) -> dict:
    """Run training per ``cfg``; returns a summary dict. ``stop_at`` ends early (as if interrupted) at that step."""
    # ---- processes, device, run folder ----
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

    # ---- model, EMA, optimizer, generator; restored on --resume ----
    torch.manual_seed(tc.seed + rank)
    model = build_model(cfg.model).to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if tc.init_from and not resume:
        load_weights(model, tc.init_from, str(device))
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = make_optimizer(model, tc)
    gen = torch.Generator().manual_seed(tc.seed * 1000 + rank)  # noise, t, masking
    step, extra = 0, {"images_seen": 0, "train_seconds": 0.0}
    if resume:
        step, extra = load_checkpoint(out, model, ema, opt, gen)
        if is_main:
            trim_metrics(out, step)
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

    # ---- data: the training stream, a fixed held-out batch, held-out scenes for the checkpoint metrics ----
    data = stream if stream is not None else make_stream(cfg, rank=rank, world_size=world, start_step=step)
    fixed = _held_out_batch(cfg, device, quiet) if is_main and stream is None else None
    # held-out scenes with object masks (procedural world) or the first held-out files of a folder (no masks); SODA
    # only: the z-use gap needs a sampler
    scenes = None
    if fixed is not None and cfg.model.kind == "soda" and tc.eval_scenes > 0:
        from .eval.zuse import held_out_files, held_out_scenes

        if cfg.data.dataset == "world":
            scenes = held_out_scenes(tc.eval_scenes, cfg.model.res, seed=tc.seed + 17, n_fourier=cfg.data.n_fourier)
        elif cfg.data.dataset == "folder":
            try:
                scenes = held_out_files(cfg, tc.eval_scenes)
            except ValueError as e:  # a folder too small for the z-use gap: train on, without these metrics
                if not quiet:
                    print(f"note: no held-out reconstruction metrics: {e}", file=sys.stderr)
    t_sampling = cfg.model.diffusion.t_sampling_kwargs()

    # ---- the loop ----
    last_ckpt = None
    pending = _Losses(world)
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
            # one optimizer step
            batch = _to(next(data), device, tc.channels_last)
            lr = cfg.lr_at(step)
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_mult", 1.0)
            model.mask_rate = cfg.mask_rate(extra["images_seen"])
            net.train()
            with autocast():
                loss = net(batch, gen, t_sampling=t_sampling)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            decay = min(tc.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
                    pe.lerp_(p, 1 - decay)
                for be, b in zip(ema.buffers(), model.buffers(), strict=True):
                    be.copy_(b)
            step += 1
            pending.add(step, loss)
            n_img = batch["tgt"].shape[0] * world
            extra["images_seen"] += n_img
            n_log += n_img
            if bar is not None:
                bar.update(1)

            # read the losses back (every process at the same steps), log
            log_now = step % tc.log_every == 0 or step == end
            if log_now or step % tc.ckpt_every == 0:
                losses += pending.read(last_ckpt)
            if log_now:
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

            # checkpoint (+ held-out metrics), samples, time limit
            timeup = tc.max_minutes and (extra["train_seconds"] + time.time() - t_start) > tc.max_minutes * 60
            if is_main and (step % tc.ckpt_every == 0 or step == end or timeup):
                losses += pending.read(last_ckpt, collective=False)  # never save weights a NaN step produced
                ex = dict(extra, train_seconds=extra["train_seconds"] + time.time() - t_start)
                last_ckpt = save_checkpoint(out, step, model, ema, opt, gen, cfg, ex)
                if fixed is not None:
                    _log_held_out(out, step, ema, fixed, scenes, ex, bar)
            due = tc.sample_minutes > 0 and time.time() - t_sample >= tc.sample_minutes * 60
            if is_main and fixed is not None and (step % tc.sample_every == 0 or step == end or timeup or due):
                write_samples(out, step, ema, fixed, cfg)
                t_sample = time.time()
            if timeup:
                break
    except KeyboardInterrupt:
        if is_main:
            pending.read(last_ckpt, collective=False)
            ex = dict(extra, train_seconds=extra["train_seconds"] + time.time() - t_start)
            last_ckpt = save_checkpoint(out, step, model, ema, opt, gen, cfg, ex)
            grid = write_samples(out, step, ema, fixed, cfg) if fixed is not None else None
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


def _log_held_out(out: Path, step: int, ema, fixed: dict, scenes: dict | None, ex: dict, bar) -> None:
    """Append the held-out loss of the fixed batch (and, with held-out scenes, reconstruction PSNR and the z-use
    gap) at checkpoint ``step`` to metrics.jsonl."""
    rec = {
        "step": step,
        "images_seen": ex["images_seen"],
        "val_loss": held_out_loss(ema, fixed),
        "elapsed_s": round(ex["train_seconds"], 1),
    }
    if scenes is not None:
        from .eval.zuse import scene_metrics

        rec |= {k: round(v, 3) for k, v in scene_metrics(ema, scenes, steps=20).items()}
        if bar is not None:
            where = "object" if "zgap_t1_object" in rec else "all pixels"
            obj = f", object {rec['recon_psnr_object']:.2f} dB" if "recon_psnr_object" in rec else ""
            bar.write(
                f"step {step}: held-out recon {rec['recon_psnr']:.2f} dB{obj}, "
                f"z gap at t=1 ({where}) {rec.get('zgap_t1_object', rec['zgap_t1']):.2f} dB"
            )
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")


def _to(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


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
