"""Procedural-world data speed: how many images per second the renderer and the training stream deliver.

    python bench/data_speed.py [--threads 2] [--seconds 2] [--json out.json]

Cases (all with shadows and 2x2 supersampling):
- training: random scenes from random cameras, ``world.render`` on batches of 256 (also per CPU-second of this
  process, a figure that other load on the machine disturbs less than wall-clock time);
- pairs: ``WorldPairs`` multiview batches of 64 (two renders per pair plus both ray maps), counted in pairs/s;
- fixed camera: ``FixedCameraRenderer`` with a warm geometry cache (the disentanglement setting);
- peer: the same renderer called one image at a time, measured in the same run, so the ratio shows what batching buys;
- workers: ``DataLoader(WorldPairs(mode="identity"), batch_size=None, num_workers=2)``, two processes of one thread
  each (how a trainer uses 2 cores for data; counted in images/s of the training case plus ray maps).
The last line is ``images/s: X``, the 64 px training case (the issue's target: >= 500 on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from soda.data import views, world  # noqa: E402


def rate(fn, items_per_call: int, seconds: float, repeats: int = 3, clock=time.perf_counter) -> float:
    """Best items/s over `repeats` timed windows of at least `seconds` each (after one warm-up call).
    clock=time.process_time gives items per CPU-second of this process (all its threads)."""
    fn()
    best = 0.0
    for _ in range(repeats):
        calls, t0, w0 = 0, clock(), time.perf_counter()
        while True:
            fn()
            calls += 1
            if time.perf_counter() - w0 >= seconds:
                break
        best = max(best, calls * items_per_call / max(clock() - t0, 1e-9))
    return best


def measure(res: int, dev: torch.device, seconds: float, g: torch.Generator) -> dict:
    """images/s of every case at one resolution."""
    f = world.sample_factors(256, g)
    K, c2w = (t.to(dev) for t in world.sample_cameras(256, g, res))
    out = {"training": rate(lambda: world.render(f, K, c2w, res, device=dev), 256, seconds)}
    out["cpu"] = rate(lambda: world.render(f, K, c2w, res, device=dev), 256, seconds, clock=time.process_time)

    def one_at_a_time():
        for i in range(16):
            world.render(f[i : i + 1], K[i : i + 1], c2w[i : i + 1], res, device=dev)

    out["peer"] = rate(one_at_a_time, 16, seconds, repeats=1)
    fixed = world.FixedCameraRenderer(res, device=dev)
    fixed(world.unravel_factors(torch.arange(0, world.N_COMBINATIONS, 1000)))  # warm the geometry cache
    fixed(f)
    out["fixed"] = rate(lambda: fixed(f), 256, seconds)
    stream = iter(views.WorldPairs(res=res, batch_size=64, device=dev))
    out["pairs"] = rate(lambda: next(stream), 64, seconds)
    if dev.type == "cpu":
        loader = iter(
            DataLoader(views.WorldPairs(res=res, batch_size=64, mode="identity"), batch_size=None, num_workers=2)
        )
        out["workers"] = rate(lambda: next(loader), 64, seconds)
        del loader
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--json", default=None, help="also write the figures here (the README's: bench/results/data_speed.json)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}, load average {load:.2f}")
    g = torch.Generator().manual_seed(0)
    results = {}
    for res in (32, 64):
        r = results[res] = measure(res, dev, args.seconds, g)
        print(
            f"{res:3d} px  training {r['training']:6.0f} images/s ({r['cpu']:.0f} per CPU-second) "
            f"| one-at-a-time peer {r['peer']:6.0f} images/s "
            f"(batched x{r['training'] / r['peer']:.1f}) | fixed camera {r['fixed']:8.0f} images/s "
            f"(x{r['fixed'] / r['training']:.1f}) | WorldPairs multiview {r['pairs']:6.0f} pairs/s"
            + (f" | 2 workers x 1 thread {r['workers']:6.0f} images/s" if "workers" in r else "")
        )
    print(f"images/s: {results[64]['training']:.0f}")
    if args.json:
        out = {"threads": torch.get_num_threads(), "device": str(dev), "load_average": [load, os.getloadavg()[0]]}
        with open(args.json, "w") as fh:
            json.dump({**out, **{f"{res} px": r for res, r in results.items()}}, fh, indent=1)


if __name__ == "__main__":
    main()
