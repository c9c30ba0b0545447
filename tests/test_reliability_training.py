"""Training faults: kill -9 at random moments and at every file-system step of a checkpoint save, and a full disk.

* The trainer (a subprocess, `tiny` preset, a checkpoint every 3 steps) is killed with SIGKILL three times (one kill
  aimed at a checkpoint being written) and resumed each time: after every kill latest.json points at a complete
  checkpoint, every checkpoint on disk loads, at most one checkpoint interval is lost; the run then finishes with each
  step logged once, the losses of the steps that ran twice identical (resume is exact), and no temp file left.
* A crash at each os-level step of ``save_checkpoint`` (a forked child that ``os._exit``s at the n-th rename / unlink
  / rmdir, which is what kill -9 does) leaves a run that loads as it is and that ``recover_run`` tidies completely.
* A full disk (safetensors' real error for ENOSPC, a failing rename, a real EFBIG from RLIMIT_FSIZE) stops training
  with a message naming the path, keeps the previous checkpoint, latest.json and ema/, and leaves no temp folder.

NaN injection is in test_train.py (test_nan_loss_stops_and_keeps_last_good_checkpoint).
"""

from __future__ import annotations

import errno
import functools
import itertools
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from soda.config import SODAConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "OMP_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "PYTHONUNBUFFERED": "1",
}


# ------------------------------------------------------------------------------------------------------------
# What a healthy run folder looks like
# ------------------------------------------------------------------------------------------------------------


def hidden_leftovers(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*") if any(s in p.name for s in (".tmp", ".old-", ".del-", ".latest.json."))]


@functools.lru_cache(maxsize=1)
def _expected_tensors() -> dict[str, tuple]:
    from soda.model import SODA

    own = {k: tuple(v.shape) for k, v in SODA(SODAConfig.from_yaml("tiny").model).state_dict().items()}
    return {**{f"model.{k}": s for k, s in own.items()}, **{f"ema.{k}": s for k, s in own.items()}}


def load_state(ck: Path, full: bool = False) -> int:
    """A training checkpoint folder is complete: state.json parses and state.safetensors loads with every model and
    EMA tensor at its shape, plus optimizer and RNG state (``full``: restored into a fresh model / EMA / optimizer
    by soda.train.load_checkpoint, as --resume does) -> its step."""
    from safetensors.torch import load_file

    meta = json.loads((ck / "state.json").read_text())
    t = load_file(str(ck / "state.safetensors"))
    want = _expected_tensors()
    assert {k: tuple(v.shape) for k, v in t.items() if k in want} == want, ck
    assert "rng.gen" in t and any(k.startswith("opt.") for k in t), ck
    if full:
        from soda.model import SODA
        from soda.training.checkpoints import load_checkpoint
        from soda.training.setup import make_optimizer

        cfg = SODAConfig.from_dict(meta["config"])
        model, ema = SODA(cfg.model), SODA(cfg.model)
        rng = torch.get_rng_state()
        try:
            step, _ = load_checkpoint(
                ck.parent.parent, model, ema, make_optimizer(model, cfg.train), torch.Generator(), folder=ck
            )
        finally:
            torch.set_rng_state(rng)
        assert step == meta["step"]
    return int(meta["step"])


def check_run(run: Path, full: bool = False) -> dict:
    """Every invariant that must hold at any moment, even right after a kill -9 -> facts about the run."""
    from soda.model import load_pretrained

    facts: dict = {"latest": 0, "ema": None, "steps": []}
    ptr = run / "latest.json"
    if ptr.exists():
        info = json.loads(ptr.read_text())  # never a half-written pointer
        ck = run / "checkpoints" / info["path"]
        assert ck.is_dir(), f"latest.json points at a missing {ck}"
        meta = json.loads((ck / "state.json").read_text())
        assert meta["step"] == info["step"]
        facts["latest"] = info["step"]
    for ck in sorted((run / "checkpoints").glob("step-*")) if (run / "checkpoints").is_dir() else []:
        step = load_state(ck, full)  # every visible checkpoint is complete
        assert ck.name == f"step-{step:08d}"
        facts["steps"].append(step)
    if (run / "ema").exists():
        model = load_pretrained(run / "ema")
        facts["ema"] = json.loads((run / "ema" / "config.json").read_text())["train"]["step"]
        assert model.z_dim == 20
    return facts


def logged_steps(run: Path) -> dict[int, float]:
    """step -> loss of the complete lines of metrics.jsonl."""
    out = {}
    path = run / "metrics.jsonl"
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "loss" in rec:
            out[rec["step"]] = rec["loss"]
    return out


# ------------------------------------------------------------------------------------------------------------
# kill -9 at random moments
# ------------------------------------------------------------------------------------------------------------

STEPS, EVERY, KILLS = 18, 3, 3  # the kills land by step 15, so the run cannot finish first


def _wait(cond, timeout: float, poll: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(poll)
    return False


def _armed(run: Path, start: int, p: subprocess.Popen) -> bool:
    done = p.poll() is not None
    return done or (max(logged_steps(run), default=0) > start and (run / "latest.json").exists())


def _reached(run: Path, step: int, p: subprocess.Popen) -> bool:
    return p.poll() is not None or max(logged_steps(run), default=0) >= step


def _writing(run: Path) -> bool:
    ck = run / "checkpoints"
    return bool((ck.is_dir() and any(ck.glob(".step-*"))) or any(run.glob(".ema.*")))


@pytest.mark.slow
def test_kill_9_at_random_moments_and_resume(tmp_path):
    seed = int(os.environ.get("SODA_KILL_SEED", time.time_ns() % 2**31))
    rng = random.Random(seed)
    print(f"\nkill seed {seed} (SODA_KILL_SEED={seed} repeats these moments)")
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "soda.train",
        "--config",
        "tiny",
        f"--train.out_dir={run}",
        f"--train.steps={STEPS}",
        f"--train.ckpt_every={EVERY}",
        "--train.log_every=1",
        "--train.sample_every=100000",
        "--train.threads=1",
    ]
    seen: dict[int, float] = {}  # losses logged before each kill
    kills, log = [], tmp_path / "stderr.txt"
    while True:
        resume = (run / "latest.json").exists()
        start = json.loads((run / "latest.json").read_text())["step"] if resume else 0
        with open(log, "a") as err:
            p = subprocess.Popen(cmd + ["--resume"] * resume, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        try:
            if len(kills) < KILLS:
                # armed once the trainer has moved past where it started (and has a first checkpoint: a kill before
                # it just means starting again from scratch)
                progressed = _wait(functools.partial(_armed, run, start, p), 180)
                assert progressed, "the trainer made no progress in 3 minutes"
                aimed = len(kills) == 1  # the second kill waits for a checkpoint being written
                if aimed:
                    hit = _wait(lambda p=p: _writing(run) or p.poll() is not None, 30, poll=0.0005)
                else:  # a random step within the next two intervals, and a random moment inside it
                    target = rng.randint(start + 1, start + 2 * EVERY)
                    _wait(functools.partial(_reached, run, target, p), 180)
                    time.sleep(rng.uniform(0.0, 0.4))
                    hit = None
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(timeout=30)
                    after = check_run(run)  # right after the kill, before any repair
                    last = max(logged_steps(run), default=0)
                    kills.append({"last_logged": last, "latest": after["latest"], "while_writing": hit})
                    assert last - after["latest"] <= EVERY, f"lost {last - after['latest']} steps: {kills[-1]}"
                    seen.update(logged_steps(run))
                    continue
            assert p.wait(timeout=300) == 0, log.read_text()[-3000:]
            break
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    print(f"kills: {kills}")
    assert len(kills) == KILLS, f"the run finished before {KILLS} kills: {kills}"
    facts = check_run(run, full=True)
    assert facts["latest"] == STEPS and facts["ema"] == STEPS
    assert facts["steps"] == [STEPS - EVERY, STEPS]  # keep_checkpoints = 2
    final = logged_steps(run)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == list(range(1, STEPS + 1))  # each step once
    rerun = {s: loss for s, loss in seen.items() if s in final}
    assert rerun and all(final[s] == loss for s, loss in rerun.items()), "a resumed step gave another loss"
    assert not hidden_leftovers(run), hidden_leftovers(run)
    assert "Traceback" not in log.read_text()


# ------------------------------------------------------------------------------------------------------------
# A crash at every file-system step of a checkpoint save
# ------------------------------------------------------------------------------------------------------------

HOOKED = ("replace", "rename", "unlink", "rmdir")


def _save_crashing_at(n: int, folder: Path, model, ema, opt, gen, cfg) -> int:
    """Fork; the child runs save_checkpoint(step 9) and dies with os._exit(137) at its n-th rename / unlink / rmdir
    (what kill -9 does: no except / finally block runs). The child runs no parallel torch op (saving only reads
    contiguous CPU tensors), so forking a process with torch threads is safe here. -> the child's exit code
    (0: the save finished before its n-th call)."""
    from soda.training.checkpoints import save_checkpoint

    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            calls = [0]
            for name in HOOKED:
                real = getattr(os, name)

                def hook(*a, _real=real, **k):
                    calls[0] += 1
                    if calls[0] == n:
                        os._exit(137)
                    return _real(*a, **k)

                setattr(os, name, hook)
            save_checkpoint(folder, 9, model, ema, opt, gen, cfg, {})
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_crash_at_every_step_of_a_checkpoint_save(tmp_path):
    import shutil

    from soda.model import SODA
    from soda.training.checkpoints import recover_run, save_checkpoint
    from soda.training.setup import make_optimizer

    cfg = SODAConfig.from_yaml("tiny", [f"--train.out_dir={tmp_path}"])
    torch.manual_seed(0)
    model, ema = SODA(cfg.model), SODA(cfg.model)
    opt = make_optimizer(model, cfg.train)
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e-3)
    opt.step()  # so that the optimizer has state to save
    gen = torch.Generator().manual_seed(0)
    base = tmp_path / "base"
    for step in (3, 6):
        save_checkpoint(base, step, model, ema, opt, gen, cfg, {})
    (base / "ema" / "README.md").write_text("model card")  # a file of ema/ that every save must carry over
    codes = []
    for n in range(1, 40):
        run = tmp_path / f"crash-{n}"
        shutil.copytree(base, run)
        codes.append(_save_crashing_at(n, run, model, ema, opt, gen, cfg))
        before = check_run(run)  # as the crash left it: what is visible loads (ema/ may be mid-swap: see after)
        assert before["latest"] in (6, 9) and set(before["steps"]) <= {3, 6, 9}, (n, before)
        recover_run(run)
        after = check_run(run, full=n % 4 == 0)
        assert after["latest"] in (6, 9) and after["ema"] in (6, 9) and after["latest"] in after["steps"], (n, after)
        assert (run / "ema" / "README.md").read_text() == "model card", n
        assert not hidden_leftovers(run), (n, hidden_leftovers(run))
        shutil.rmtree(run)
        if codes[-1] == 0:  # the save completed before its n-th call: every crash point has been covered
            break
    assert codes[-1] == 0 and codes[:-1] == [137] * (len(codes) - 1) and len(codes) >= 9, codes
    print(f"\n{len(codes) - 1} crash points of a checkpoint save, each recovered")


# ------------------------------------------------------------------------------------------------------------
# A full disk
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch():
    from soda.data.streams import make_stream

    cfg = SODAConfig.from_yaml("tiny")
    return next(make_stream(cfg))


def _cfg(tmp_path: Path, steps: int = 6) -> SODAConfig:
    return SODAConfig.from_yaml(
        "tiny", [f"--train.out_dir={tmp_path / 'run'}", f"--train.steps={steps}", "--train.ckpt_every=2"]
    )


def _failing_at_second_checkpoint(monkeypatch, where: str):
    """Make the write of checkpoint 4 fail the way a full disk does: ``where`` is state (safetensors' own
    ENOSPC error), rename (os.replace of the step folder), latest (latest.json), ema (ema/model.safetensors) or
    ema_swap (moving the new ema/ into place, after the old one was moved aside)."""
    import safetensors.torch

    real_save, real_replace = safetensors.torch.save_file, os.replace
    from safetensors import SafetensorError

    def save_file(tensors, filename, metadata=None):
        name = Path(filename)
        state = where == "state" and name.name == "state.safetensors" and ".step-00000004" in name.parent.name
        ema_write = where == "ema" and name.parent.name.startswith(".ema.tmp-") and _at(4)
        if state or ema_write:
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real_save(tensors, filename, metadata=metadata)

    step_seen = {"n": 0}

    def _at(n):
        return step_seen["n"] >= n

    def replace(src, dst, *a, **k):
        d = Path(dst)
        if d.name.startswith("step-"):
            step_seen["n"] = int(d.name[5:])
        swap = where == "ema_swap" and d.name == "ema" and Path(src).name.startswith(".ema.tmp-") and _at(4)
        if (
            swap
            or (where == "rename" and d.name == "step-00000004")
            or (where == "latest" and d.name == "latest.json" and step_seen["n"] == 4)
        ):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    monkeypatch.setattr(os, "replace", replace)


def _stream_adding_a_model_card(batch, run: Path):
    """Batches; after checkpoint 2, a README.md appears in ema/ (a model card every later save must keep)."""
    for i in itertools.count():
        if i == 3:
            (run / "ema" / "README.md").write_text("model card")
        yield batch


@pytest.mark.parametrize("where", ["state", "rename", "latest", "ema", "ema_swap"])
def test_a_full_disk_stops_with_a_clear_message_and_keeps_the_last_checkpoint(where, tmp_path, batch, monkeypatch):
    from soda.train import train
    from soda.training.checkpoints import CheckpointWriteError

    cfg = _cfg(tmp_path)
    run = tmp_path / "run"
    _failing_at_second_checkpoint(monkeypatch, where)
    with pytest.raises(CheckpointWriteError) as err:
        train(cfg, quiet=True, stream=_stream_adding_a_model_card(batch, run))
    msg = str(err.value)
    assert msg.startswith("could not write ") and "training stopped" in msg and "Traceback" not in msg
    facts = check_run(run)
    assert (run / "ema" / "README.md").read_text() == "model card"
    if where.startswith("ema"):  # the training checkpoint got written; ema/ keeps the weights of step 2
        assert str(run / "ema") in msg and "No space left on device (disk full?)" in msg
        assert facts["latest"] == 4 and facts["ema"] == 2
    else:
        named = run / "latest.json" if where == "latest" else run / "checkpoints" / "step-00000004"
        assert str(named) in msg and "No space left on device" in msg
        assert f"the previous checkpoint {run / 'checkpoints' / 'step-00000002'}" in msg
        assert facts["latest"] == 2 and facts["ema"] == 2 and 2 in facts["steps"]
    assert not hidden_leftovers(run), hidden_leftovers(run)
    monkeypatch.undo()  # space again: resuming finishes the run (a step folder that exists is replaced safely)
    out = train(cfg, resume=True, quiet=True, stream=itertools.repeat(batch))
    assert out["step"] == 6 and check_run(run)["latest"] == 6 and not hidden_leftovers(run)
    assert (run / "ema" / "README.md").read_text() == "model card"


def test_a_real_write_error_through_the_command_line(tmp_path, batch, capsys, monkeypatch):
    """No mock at the write: RLIMIT_FSIZE makes the kernel refuse files over 1 MB (EFBIG), as a full disk would
    refuse any; the training state (3.4 MB) of checkpoint 4 cannot be written, ema/ (0.9 MB) could. Through main()."""
    import soda.train as tr

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    batches = itertools.count()

    def stream(*a, **k):
        for i in batches:
            if i == 3:  # after checkpoint 2 was written: the disk "fills up"
                resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, limit[1]))
            yield batch

    monkeypatch.setattr(tr, "make_stream", stream)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        rc = tr.main(
            ["--config", "tiny", f"--train.out_dir={tmp_path / 'run'}", "--train.steps=6", "--train.ckpt_every=2"]
        )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, old)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "error: could not write " in err and "step-00000004: File too large" in err and "Traceback" not in err
    run = tmp_path / "run"
    assert check_run(run)["latest"] == 2 and not hidden_leftovers(run)
