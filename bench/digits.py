"""The folder path on real data that ships with scikit-learn, end to end, as a new user runs it (README "Training on
your own images"): the 1,797 handwritten digits, 32 px, an 80/20 split stratified by digit.

    .venv/bin/python bench/digits.py --minutes 30                 # the issue's budget: 30 min of training
    .venv/bin/python bench/digits.py --minutes 10 --out runs/digits-10m
    .venv/bin/python bench/digits.py --eval-only --out runs/digits  # re-evaluate an existing run

Steps (each an ordinary command, printed before it runs):
1. ``python -m soda.data digits --out DATA`` (PNGs + labels.csv with the digit and the split);
2. ``python -m soda.train --config folder --data.path=DATA --train.out_dir=OUT --train.max_minutes=MINUTES``;
3. ``python -m soda.eval --checkpoint OUT/ema --out OUT/eval``: held-out reconstruction against a shuffled z, and
   linear / kNN probes of the digit on z, on raw pixels and on an untrained encoder of the same architecture.

It ends with the bars of issue 14 (held-out reconstruction >= 18 dB; a shuffled z >= 3 dB worse; linear probe
>= 0.97 and above pixels and the untrained encoder), each with its measured value and met / not met.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], nice: int, ok=(0,)) -> int:
    cmd = [sys.executable, *cmd]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    if rc not in ok:
        raise SystemExit(f"error: the command above failed (exit status {rc})")
    return rc


def bars(m: dict) -> list[tuple[str, float, str, bool]]:
    """Issue 14's bars from soda.eval's metrics.json of a digits checkpoint -> (what, value, bar, met)."""
    r = m["reconstruction"]
    out = [
        ("held-out reconstruction PSNR (dB)", r["psnr"], ">= 18", r["psnr"] >= 18),
        ("true z minus shuffled z, decoded (dB)", r["gap_shuffled_z"], ">= 3", r["gap_shuffled_z"] >= 3),
    ]
    p = m["probes"]["digit"]
    z, u, px = p["z (trained)"]["linear"], p["untrained encoder"]["linear"], p["pixels"]["linear"]
    out += [
        ("linear probe on z", z, ">= 0.97", z >= 0.97),
        (f"linear probe on z above the untrained encoder, best of 3 seeds ({u:.3f})", z - u, "> 0", z > u),
        (f"linear probe on z above raw pixels ({px:.3f})", z - px, "> 0", z > px),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="train.max_minutes (default 30, the issue's budget)")
    p.add_argument("--data", default="runs/digits-data", help="where the digit PNGs go")
    p.add_argument("--out", default="runs/digits", help="the run folder")
    p.add_argument("--eval-only", action="store_true", help="skip writing the data and training")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (train.max_minutes is the total)")
    p.add_argument("--recon", type=int, default=256, help="held-out digits reconstructed (default 256)")
    p.add_argument("--steps", type=int, default=50, help="sampler steps for the reconstructions (default 50)")
    p.add_argument("--nice", type=int, default=0, help="run the commands under nice -n N (added to this script's)")
    p.add_argument("--train-arg", action="append", default=[], help="extra trainer override, e.g. --train.threads=2")
    a = p.parse_args(argv)
    out = Path(a.out)
    if not a.eval_only:
        if not (Path(a.data) / "labels.csv").exists():
            _run(["-m", "soda.data", "digits", "--out", a.data], a.nice)
        train = ["-m", "soda.train", "--config", "folder", f"--data.path={a.data}", f"--train.out_dir={out}"]
        train += [f"--train.max_minutes={a.minutes:g}", *a.train_arg] + (["--resume"] if a.resume else [])
        if _run(train, a.nice, ok=(0, 130)) == 130:  # Ctrl-C / SIGTERM: the trainer saved a checkpoint first
            print("training was interrupted: evaluating its last checkpoint (continue with --resume)", flush=True)
    ev = ["-m", "soda.eval", "--checkpoint", str(out / "ema"), "--out", str(out / "eval")]
    ev += ["--recon", str(a.recon), "--steps", str(a.steps)]
    _run(ev, a.nice)
    m = json.loads((out / "eval" / "metrics.json").read_text())
    print(f"\nimages seen: {m.get('images_seen')}, steps: {m.get('step')}; report: {out / 'eval' / 'report.md'}")
    for what, v, bar, ok in bars(m):
        print(f"{what}: {v:.3f} (bar {bar}): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
