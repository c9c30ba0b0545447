"""Training-step speed of the world32-cpu model per precision and layout, measured round-robin in one process.

    .venv/bin/python bench/amp_speed.py [--config world32-cpu] [--rounds 8] [--compile] [--threads N]

Variants: fp32 NCHW, fp32 channels_last, bf16 autocast channels_last (and, with --compile, torch.compile of the
fp32 channels_last model; inductor on CPU needs a C++ compiler and takes a minute to warm up). One training step =
forward + v-prediction loss + backward + AdamW, batch from the preset's stream. Variants take turns, one step each,
so that other load on the machine falls on all alike; the figure is the median. Prints img/s, the ratio against fp32
channels_last, and what ``train.amp=auto`` chooses on this machine (``soda.training.setup.resolve_amp``).

Measured (2026-12-01, idle-ish 2-core AMD EPYC with AVX512-BF16, no AMX, by the same round-robin procedure in a
one-off script before this file existed: 6 timed rounds, t uniform): fp32 NCHW 86.5, fp32 channels_last 105.2, bf16
autocast 113.0 img/s (x1.07), so auto stays fp32 there. The Intel Xeon figures with AMX-BF16 (84 fp32 / 97 bf16 / 78
compiled) are an earlier session's, quoted from the checkpoint issue, not rerun here.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from contextlib import nullcontext  # noqa: E402

import torch  # noqa: E402


def main() -> None:
    from soda.config import SODAConfig
    from soda.data.streams import make_stream
    from soda.model import build_model
    from soda.train import _to
    from soda.training.setup import cpu_has_amx_bf16, resolve_amp

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="world32-cpu")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = SODAConfig.from_yaml(a.config)
    d = cfg.model.diffusion
    torch.manual_seed(0)
    batch = next(make_stream(cfg))
    base = build_model(cfg.model)
    variants = {}
    for name, cl, bf, comp in [
        ("fp32 nchw", False, False, False),
        ("fp32 channels_last", True, False, False),
        ("bf16 autocast channels_last", True, True, False),
        *([("fp32 channels_last compiled", True, False, True)] if a.compile else []),
    ]:
        m = copy.deepcopy(base)
        if cl:
            m = m.to(memory_format=torch.channels_last)
        net = torch.compile(m) if comp else m
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        variants[name] = (net, opt, _to(batch, torch.device("cpu"), cl), bf)
    times: dict[str, list[float]] = {k: [] for k in variants}
    g = torch.Generator().manual_seed(0)
    for r in range(a.rounds + 2):  # two warm-up rounds (compilation happens there)
        for k, (net, opt, b, bf) in variants.items():
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16) if bf else nullcontext():
                loss = net(b, g, t_sampling=d.t_sampling_kwargs())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if r >= 2:
                times[k].append(time.perf_counter() - t0)
    bs = batch["tgt"].shape[0]
    ref = bs / statistics.median(times["fp32 channels_last"])
    print(f"config {a.config}, batch {bs}, threads {torch.get_num_threads()}, AMX-BF16: {cpu_has_amx_bf16()}")
    for k, v in times.items():
        ips = bs / statistics.median(v)
        print(f"{k:32s} {ips:7.1f} img/s   ratio vs fp32 channels_last: {ips / ref:.2f}")
    print(f"train.amp=auto chooses: {'bf16' if resolve_amp('auto', torch.device('cpu')) else 'fp32'}")


if __name__ == "__main__":
    main()
