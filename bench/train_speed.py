"""Training speed of our decoder against diffusers' UNet2DModel at the same FLOPs per image.

    .venv/bin/python bench/train_speed.py            # 32 and 64 px, 2 threads: ~2 min on 2 idle cores
    .venv/bin/python bench/train_speed.py --quick    # smoke run, 1 timed step per variant: ~1 min
    (on a machine busy with other work, both take up to twice as long)

What is measured, per resolution (fp32, batch 32, one training step = forward + MSE loss + backward + AdamW step):

* ours: ``soda.model.UNet`` exactly as the ``world32-cpu`` preset builds it (its ``res`` set to the resolution),
  input = noisy image + 6 target-ray channels, t, and the latent sections z (B, K, d) (z requires grad, as it does
  when the encoder is trained through it);
* theirs: ``diffusers.UNet2DModel`` with the same input channels, its block_out_channels / layers_per_block /
  attention placement searched so that its training FLOPs per image (``torch.utils.flop_counter``, forward +
  backward) are within 10% of ours and its parameter count within 20% of ours;
* both in NCHW and in channels_last. The four variants are timed round-robin (one step each in turn) so that the
  load of other processes on the machine falls on all of them alike; the figure is the median step. Each step's
  process CPU time (all threads) is recorded too: the ratio and the share of sgemm are also given on CPU time,
  a check that the load of other processes does not move.

It prints ``ratio: X`` (ours / theirs, images per second, each model at its faster layout) per resolution, our
achieved GFLOP/s against this machine's fp32 sgemm GFLOP/s (``torch.mm`` on 1024..2048 square matrices, measured
in the same rounds and with the same threads), and where the step's time goes (torch.profiler, self CPU time grouped
into conv / group_norm / modulation+elementwise / attention / optimizer / other, ours beside theirs, and our top
ops).
"""

from __future__ import annotations

import os

# Before torch is imported: with OpenMP's default spin-waiting, 2 threads on a loaded 2-core machine are up to 60x
# slower on small convolutions (soda/__init__.py sets the same).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from soda.config import SODAConfig  # noqa: E402
from soda.model import SODA  # noqa: E402

PRESET = "world32-cpu"


# ------------------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------------------


def build_ours(res: int, seed: int = 0):
    """(unet, in_channels, K, d, config) of the preset's decoder at resolution ``res``."""
    cfg = SODAConfig.from_yaml(PRESET, [f"--model.res={res}", f"--data.res={res}"])
    torch.manual_seed(seed)
    unet = SODA(cfg.model).unet  # exactly the decoder the trainer builds (the encoder is not part of the timing)
    in_ch = unet.stem.in_channels
    return unet, in_ch, cfg.model.sections, cfg.model.section_dim, cfg


class Theirs(torch.nn.Module):
    """diffusers.UNet2DModel behind the same call signature as ours (z is ignored: it has no conditioning input)."""

    def __init__(self, in_ch: int, out_ch: int, res: int, spec: dict):
        super().__init__()
        from diffusers import UNet2DModel

        self.spec = spec
        self.net = UNet2DModel(sample_size=res, in_channels=in_ch, out_channels=out_ch, **diffusers_kwargs(spec))

    def forward(self, x, t, z):
        return self.net(x, t * 1000.0).sample


def diffusers_kwargs(spec: dict) -> dict:
    ch, attn = spec["channels"], spec["attn"]
    n = len(ch)
    down = tuple("AttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(n))
    up = tuple("AttnUpBlock2D" if i in attn else "UpBlock2D" for i in reversed(range(n)))
    return dict(
        block_out_channels=tuple(ch),
        layers_per_block=spec["layers"],
        down_block_types=down,
        up_block_types=up,
        norm_num_groups=spec["groups"],
        attention_head_dim=spec["head_dim"],
        add_attention=spec["mid_attn"],
        norm_eps=1e-6,
    )


def describe(spec: dict) -> str:
    return (
        f"block_out_channels={tuple(spec['channels'])} layers_per_block={spec['layers']} "
        f"attn_levels={list(spec['attn'])} mid_attn={spec['mid_attn']} head_dim={spec['head_dim']} "
        f"groups={spec['groups']}"
    )


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def train_flops_per_image(
    model, in_ch: int, res: int, k: int, d: int, device: str = "cpu", by_op: dict | None = None
) -> int:
    """Forward + backward FLOPs of one image (batch 2, divided), as torch.utils.flop_counter counts them.

    ``by_op``, when given, receives the per-op counts (per image), e.g. convolution vs convolution_backward.
    """
    b = 2
    x = torch.randn(b, in_ch, res, res, device=device)
    t = torch.rand(b, device=device)
    z = torch.randn(b, k, d, device=device, requires_grad=True)
    with FlopCounterMode(display=False) as fc:
        model(x, t, z).float().pow(2).mean().backward()
    model.zero_grad(set_to_none=True)
    if by_op is not None:
        by_op.update({str(op): n // b for op, n in fc.get_flop_counts()["Global"].items()})
    return fc.get_total_flops() // b


def fwd_flops(model, in_ch: int, res: int) -> int:
    """Forward FLOPs of one image (no autograd): the cheap estimate used to rank search candidates."""
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.randn(1, in_ch, res, res), torch.rand(1), None)
    return fc.get_total_flops()


def fits(f: float, p: float, f_ref: float, p_ref: float) -> bool:
    return abs(f / f_ref - 1) <= 0.10 and abs(p / p_ref - 1) <= 0.20


def search_theirs(
    ours_flops: int, ours_params: int, in_ch: int, res: int, k: int, d: int, groups: int
) -> tuple[dict, int, int, int]:
    """Search diffusers' width / depth / attention for the same training FLOPs (<10%) and params (<20%).

    Parameter counts come from models built on the meta device (no init, no memory); the candidates within 20%
    are ranked by 3 x their forward FLOPs (a forward costs ~1/3 of a training step's FLOPs), and the best ones are
    then counted exactly (forward + backward) until one fits. Returns (spec, exact FLOPs, params, #candidates).
    """
    bases = (24, 32, 40, 48)
    mults = ((1, 2, 2), (1, 2, 4), (1, 1, 2), (1, 2, 3))
    cands = []
    for base in bases:
        for mult in mults:
            for layers in (1, 2):
                for attn in ((), (len(mult) - 1,)):
                    ch = tuple(base * m for m in mult)
                    if any(c % groups for c in ch):
                        continue
                    spec = dict(
                        channels=ch, layers=layers, attn=attn, mid_attn=True, head_dim=ch[-1] // 4, groups=groups
                    )
                    with torch.device("meta"):
                        p = n_params(Theirs(in_ch, 3, res, spec))
                    if abs(p / ours_params - 1) <= 0.20:
                        cands.append((spec, p))
    ranked = []
    for spec, p in cands:
        f_est = 3 * fwd_flops(Theirs(in_ch, 3, res, spec), in_ch, res)
        ranked.append((abs(math.log(f_est / ours_flops)) + 0.5 * abs(math.log(p / ours_params)), spec, p))
    ranked.sort(key=lambda r: r[0])
    for _, spec, p in ranked[:4]:
        f = train_flops_per_image(Theirs(in_ch, 3, res, spec), in_ch, res, k, d)
        if fits(f, p, ours_flops, ours_params):
            return spec, f, p, len(cands)
    raise SystemExit(
        f"no diffusers config within 10% FLOPs / 20% params of ours at {res} px among {len(cands)} "
        f"candidates with the right parameter count"
    )


# ------------------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------------------


class Variant:
    """One model + layout + AdamW, with fixed inputs; ``step()`` is one full training step."""

    def __init__(self, name: str, model, channels_last: bool, batch: int, in_ch: int, res: int, k: int, d: int):
        self.name, self.channels_last = name, channels_last
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(memory_format=fmt).train()
        # as soda.train builds it (torch's default AdamW implementation for CPU tensors)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.0, betas=(0.9, 0.99))
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(batch, in_ch, res, res, generator=g).contiguous(memory_format=fmt)
        self.target = torch.randn(batch, 3, res, res, generator=g).contiguous(memory_format=fmt)
        self.t = torch.rand(batch, generator=g)
        self.z = torch.randn(batch, k, d, generator=g, requires_grad=True)
        self.times: list[float] = []
        self.cpu: list[float] = []  # process CPU seconds (all threads) per step

    def step(self) -> None:
        out = self.model(self.x, self.t, self.z)
        loss = F.mse_loss(out, self.target)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.z.grad = None

    def timed_step(self) -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        self.step()
        self.times.append(time.perf_counter() - t0)
        self.cpu.append(time.process_time() - c0)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


class Sgemm:
    """fp32 ``torch.mm`` on square matrices of 1024, 1536 and 2048; ``probe()`` times one product of each size.

    It is probed in the same round-robin as the models, so it sees the same background load; the machine's
    figure is the best size's median GFLOP/s.
    """

    SIZES = (1024, 1536, 2048)

    def __init__(self):
        g = torch.Generator().manual_seed(2)
        self.mats = {n: (torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)) for n in self.SIZES}
        self.times: dict[int, list[float]] = {n: [] for n in self.SIZES}
        self.cpu: dict[int, list[float]] = {n: [] for n in self.SIZES}
        for a, b in self.mats.values():  # warm-up
            torch.mm(a, b)

    def probe(self) -> None:
        for n, (a, b) in self.mats.items():
            c0, t0 = time.process_time(), time.perf_counter()
            torch.mm(a, b)
            self.times[n].append(time.perf_counter() - t0)
            self.cpu[n].append(time.process_time() - c0)

    def gflops(self) -> dict[int, float]:
        return {n: 2 * n**3 / statistics.median(ts) / 1e9 for n, ts in self.times.items() if ts}

    def peak(self) -> float:
        return max(self.gflops().values())

    def peak_per_cpu_s(self) -> float:
        """GFLOP per CPU-second (all threads): the same machine figure with the background load taken out."""
        return max(2 * n**3 / statistics.median(ts) / 1e9 for n, ts in self.cpu.items() if ts)

    def line(self) -> str:
        return ", ".join(f"{n}: {g:.1f}" for n, g in self.gflops().items())


def sgemm_gflops(reps: int = 3) -> Sgemm:
    s = Sgemm()
    for _ in range(reps):
        s.probe()
    return s


# ------------------------------------------------------------------------------------------------------------
# Profile breakdown
# ------------------------------------------------------------------------------------------------------------

GROUPS = ("conv", "group_norm", "modulation/elementwise", "attention", "optimizer (AdamW)", "other")


ELEMENTWISE = {
    "aten::mul",
    "aten::mul_",
    "aten::add",
    "aten::add_",
    "aten::silu",
    "aten::silu_",
    "aten::silu_backward",
    "aten::sum",
    "aten::sub",
    "aten::div",
    "aten::sigmoid",
    "aten::fill_",
    "aten::zero_",
    "aten::neg",
}


def op_group(name: str) -> str:
    n = name.lower()
    if n.startswith("adamw:") or n.startswith("optimizer."):
        return "optimizer (AdamW)"
    if "conv" in n:
        return "conv"
    if "group_norm" in n:
        return "group_norm"
    if "scaled_dot_product" in n or "attention" in n or "softmax" in n or "bmm" in n:
        return "attention"
    if n in ELEMENTWISE:  # modulation h * (1 + s) + b, SiLU, residual adds, their backward and bias-grad sums
        return "modulation/elementwise"
    return "other"  # incl. linear layers (addmm/mm), cat/copy, upsampling, loss


def profile_steps(v: Variant, steps: int):
    """Per-op {name: [self us, calls]}, total self us, per-group self us over ``steps`` training steps.

    Ops run inside ``optimizer.step()`` are counted as "AdamW: <op>" (found through the profiler's event tree).
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            v.step()
    ops: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for e in prof.events():
        if e.self_cpu_time_total <= 0:
            continue
        name, p = e.name, e
        while p is not None:
            if p.name.startswith("Optimizer.step"):
                name = name if name.startswith("Optimizer.") else f"AdamW: {name}"
                break
            p = p.cpu_parent
        ops[name][0] += e.self_cpu_time_total
        ops[name][1] += 1
    by_group: dict[str, float] = defaultdict(float)
    for name, (t, _) in ops.items():
        by_group[op_group(name)] += t
    return ops, sum(t for t, _ in ops.values()), by_group


def profile_breakdown(
    v: Variant, ref: Variant | None, steps: int, top: int, conv_flops: tuple[float, float], sgemm: float
) -> list[str]:
    """Self-CPU-time breakdown of ours (and, side by side, of ``ref``); ``conv_flops`` = ours' (fwd, bwd)/step."""
    ops, total, by_group = profile_steps(v, steps)
    r_total, r_group = profile_steps(ref, steps)[1:] if ref is not None else (0.0, {})
    conv_t = [0.0, 0.0]  # forward, backward (us)
    for name, (t, _) in ops.items():
        if op_group(name) == "conv":
            conv_t["backward" in name] += t
    ms = 1e3 * steps
    head = f"  where the step's time goes (torch.profiler self CPU time, ms/step): ours ({v.name}) {total / ms:.0f}"
    lines = [head + (f" | theirs ({ref.name}) {r_total / ms:.0f}" if ref is not None else "")]
    for g in GROUPS:
        row = f"    {g:<24s} ours {by_group[g] / ms:7.1f} ({100 * by_group[g] / total:4.1f}%)"
        if ref is not None:
            row += f"   theirs {r_group.get(g, 0.0) / ms:7.1f} ({100 * r_group.get(g, 0.0) / r_total:4.1f}%)"
        lines.append(row)
    rates = [conv_flops[i] * steps / (conv_t[i] / 1e6) / 1e9 if conv_t[i] else 0.0 for i in (0, 1)]
    lines.append(
        f"  our conv kernels alone: forward {rates[0]:.1f} GFLOP/s ({100 * rates[0] / sgemm:.0f}% of sgemm), "
        f"backward {rates[1]:.1f} GFLOP/s ({100 * rates[1] / sgemm:.0f}% of sgemm); "
        f"even if every non-conv op took no time, ours would be at most "
        f"{total / max(by_group['conv'], 1e-9):.2f}x faster"
    )
    lines.append(f"  our top {top} ops by self CPU time:")
    for name, (t, n) in sorted(ops.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(
            f"    {name[:56]:<56s} {100 * t / total:5.1f}%  {t / ms:7.1f} ms/step  "
            f"calls/step {n // steps:4d}  [{op_group(name)}]"
        )
    return lines


# ------------------------------------------------------------------------------------------------------------


def run_resolution(res: int, args, prev_spec: dict | None) -> dict:
    ours, in_ch, k, d, cfg = build_ours(res)
    u = cfg.model.unet
    ops_ours: dict = {}
    f_ours = train_flops_per_image(ours, in_ch, res, k, d, by_op=ops_ours)
    p_ours = n_params(ours)
    t0 = time.perf_counter()
    found = None
    if prev_spec is not None:  # the config found at the previous resolution, if it still fits here
        torch.manual_seed(0)
        m = Theirs(in_ch, 3, res, prev_spec)
        f, p = train_flops_per_image(m, in_ch, res, k, d), n_params(m)
        if fits(f, p, f_ours, p_ours):
            found = (prev_spec, f, p, 0)
    how = "the previous resolution's match, still within bounds"
    if found is None:
        found = search_theirs(f_ours, p_ours, in_ch, res, k, d, u.groups)
        how = f"best of {found[3]} searched configs within 20% params"
    spec, f_theirs, p_theirs, _ = found
    how += f", {time.perf_counter() - t0:.0f} s"
    torch.manual_seed(0)
    theirs = Theirs(in_ch, 3, res, spec)
    print(f"\n=== {res} px, batch {args.batch}, fp32, {torch.get_num_threads()} threads ===")
    print(
        f"ours   : soda UNet ({PRESET}: base {u.base_channels}, mult {list(u.channel_mult)}, "
        f"{u.num_res_blocks} res block/level, attn levels {list(u.attention_levels)}, groups {u.groups}; "
        f"input {in_ch} ch = 3 + {in_ch - 3} ray ch; z ({k}, {d}))"
    )
    print(f"theirs : diffusers UNet2DModel ({describe(spec)}; {how})")
    print(
        f"train FLOPs/image (fwd+bwd): ours {f_ours / 1e9:.3f} GFLOP, theirs {f_theirs / 1e9:.3f} GFLOP "
        f"({100 * (f_theirs / f_ours - 1):+.1f}%)"
    )
    print(f"parameters: ours {p_ours:,}, theirs {p_theirs:,} ({100 * (p_theirs / p_ours - 1):+.1f}%)")

    variants = []
    for cl in (False, True):
        lay = "channels_last" if cl else "NCHW"
        variants.append(Variant(f"ours/{lay}", copy.deepcopy(ours), cl, args.batch, in_ch, res, k, d))
        variants.append(Variant(f"theirs/{lay}", copy.deepcopy(theirs), cl, args.batch, in_ch, res, k, d))
    sg = Sgemm()
    for v in variants:
        for _ in range(args.warmup):
            v.step()
    for _ in range(args.steps):  # round-robin: background load falls on every variant (and on sgemm) alike
        for v in variants:
            v.timed_step()
        sg.probe()
    peak = sg.peak()

    ips = {v.name: args.batch / v.median for v in variants}
    nt = torch.get_num_threads()
    for v in variants:
        f = f_ours if v.name.startswith("ours") else f_theirs
        spread = f"{min(v.times):.2f}-{max(v.times):.2f} s"
        print(
            f"  {v.name:<22s} {1e3 * v.median:8.1f} ms/step ({spread})  {ips[v.name]:6.1f} img/s  "
            f"{f * ips[v.name] / 1e9:6.1f} GFLOP/s   CPU {v.median_cpu:5.2f} s/step "
            f"({100 * v.median_cpu / (v.median * nt):3.0f}% of {nt} threads x wall)"
        )
    print(f"  fp32 sgemm (torch.mm, same rounds), GFLOP/s: {sg.line()}")
    best_ours = max(("ours/NCHW", "ours/channels_last"), key=ips.get)
    best_theirs = max(("theirs/NCHW", "theirs/channels_last"), key=ips.get)
    ratio = ips[best_ours] / ips[best_theirs]
    r_nchw = ips["ours/NCHW"] / ips["theirs/NCHW"]
    r_cl = ips["ours/channels_last"] / ips["theirs/channels_last"]
    print(
        f"ratio: {ratio:.2f}  ({res} px, ours/theirs img/s, each at its faster layout: {best_ours} vs "
        f"{best_theirs}; same layout: NCHW {r_nchw:.2f}, channels_last {r_cl:.2f}; target >= 1.5)"
    )
    gf = f_ours * ips[best_ours] / 1e9
    print(
        f"ours achieved: {gf:.1f} GFLOP/s = {100 * gf / peak:.0f}% of fp32 sgemm {peak:.1f} GFLOP/s "
        f"({res} px, {best_ours}; target >= 50%)"
    )
    # The same two figures on CPU time (process user+sys, all threads): other processes' load taken out.
    cpu = {v.name: v.median_cpu for v in variants}
    c_ours = min(("ours/NCHW", "ours/channels_last"), key=cpu.get)
    c_theirs = min(("theirs/NCHW", "theirs/channels_last"), key=cpu.get)
    ratio_cpu = cpu[c_theirs] / cpu[c_ours]
    gf_cpu, sg_cpu = f_ours * args.batch / cpu[c_ours] / 1e9, sg.peak_per_cpu_s()
    print(
        f"  on CPU time instead of wall time (load-independent check): ratio {ratio_cpu:.2f} "
        f"({c_ours} vs {c_theirs}); ours {gf_cpu:.1f} GFLOP per CPU-second = {100 * gf_cpu / sg_cpu:.0f}% of "
        f"sgemm's {sg_cpu:.1f}"
    )
    best_v = next(v for v in variants if v.name == best_ours)
    if args.profile_steps > 0:
        conv_f = (
            ops_ours.get("aten.convolution", 0) * args.batch,
            ops_ours.get("aten.convolution_backward", 0) * args.batch,
        )
        ref = next(v for v in variants if v.name == best_theirs)
        print("\n".join(profile_breakdown(best_v, ref, args.profile_steps, args.top, conv_f, peak)))
    return dict(
        res=res,
        ratio=ratio,
        gflops=gf,
        sgemm=peak,
        ips=ips,
        best=best_ours,
        spec=spec,
        ratio_cpu=ratio_cpu,
        frac_cpu=gf_cpu / sg_cpu,
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 3; --quick 1)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per variant (default 1)")
    ap.add_argument("--res", type=int, nargs="+", default=[32, 64], help="resolutions (default 32 64)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--profile-steps", type=int, default=None, help="profiled steps of ours (default 1)")
    ap.add_argument("--top", type=int, default=12, help="ops listed in the breakdown")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 timed step per variant (~1 minute)")
    args = ap.parse_args(argv)
    args.steps = args.steps if args.steps is not None else (1 if args.quick else 3)
    args.profile_steps = args.profile_steps if args.profile_steps is not None else 1

    torch.set_num_threads(args.threads)
    import diffusers

    t_start = time.time()
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, threads {torch.get_num_threads()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, cpu count {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"fp32 sgemm (torch.mm) at the start, GFLOP/s: {sgemm_gflops().line()}")
    results, spec = [], None
    for r in args.res:
        results.append(run_resolution(r, args, spec))
        spec = results[-1]["spec"]
    print(f"\nsummary (load average {os.getloadavg()[0]:.2f}):")
    for r in results:
        print(
            f"  {r['res']} px: ratio {r['ratio']:.2f}, ours {r['gflops']:.1f} GFLOP/s = "
            f"{100 * r['gflops'] / r['sgemm']:.0f}% of sgemm {r['sgemm']:.1f} GFLOP/s ({r['best']}); "
            f"on CPU time: ratio {r['ratio_cpu']:.2f}, {100 * r['frac_cpu']:.0f}% of sgemm"
        )
    print(f"total wall time {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
