"""The run-state store of a training run: checkpoints (model, EMA, optimizer, RNG) written atomically, restored for
``--resume``, and repaired after a crash.

Run folder layout (``train.out_dir``):
  checkpoints/step-N/    state.safetensors (model, EMA, optimizer tensors, RNG) + state.json (step, param groups)
  latest.json            pointer to the newest complete checkpoint (written last, atomically)
  ema/                   EMA inference weights (model.safetensors + config.json), what the app and eval load
  metrics.jsonl          one JSON line per log step (``trim_metrics`` drops the steps a resume runs again)

Every write goes through soda.atomic: a step folder is built under a hidden name and swapped in, latest.json is
replaced atomically after it, ema/ is swapped by ``save_pretrained``; ``recover_run`` tidies what a kill -9 left.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
from pathlib import Path

import torch

from ..atomic import recover_dir, remove_dir, replace_dir, write_text
from ..config import SODAConfig
from ..model.io import recover_interrupted_save

__all__ = [
    "STATE_FILES",
    "CheckpointWriteError",
    "latest_checkpoint",
    "load_checkpoint",
    "recover_run",
    "save_checkpoint",
    "trim_metrics",
]

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


def trim_metrics(out: Path, step: int) -> None:
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
    model: torch.nn.Module,
    ema: torch.nn.Module,
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


def latest_checkpoint(out: Path) -> Path:
    """The checkpoint folder latest.json points at (FileNotFoundError naming --resume when there is none)."""
    ptr = out / "latest.json"
    if not ptr.exists():
        raise FileNotFoundError(f"--resume: no checkpoint in {out} (missing {ptr})")
    return out / "checkpoints" / json.loads(ptr.read_text())["path"]


def load_checkpoint(
    out: Path,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    folder: Path | None = None,
) -> tuple[int, dict]:
    """Restore the newest complete checkpoint (or the checkpoint ``folder``); returns (step, extra metadata)."""
    from safetensors.torch import load_file

    ck = latest_checkpoint(out) if folder is None else Path(folder)
    meta = json.loads((ck / STATE_FILES[1]).read_text())
    t = load_file(str(ck / STATE_FILES[0]))
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
