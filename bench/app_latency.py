"""Latency of the explorer's operations against the targets of APP.md (2 CPU cores, bundled checkpoint).

    python bench/app_latency.py [--checkpoint assets/checkpoints/world32 | tiny] [--reps 10] [--threads N]

Measures, through the same code the app runs (app.explorer): the slider preview and the full render at the
checkpoint's measured steps (soda.steps; the config's when not measured), the 50-step reference render of the same
edits in the same run (Quality 'reference': what the measured steps are compared with, and what both used to be
measured against), the uncertainty map (8 noise seeds), encoding an upload (decode the file, resize, encode), the PCA
map of 5000 latents (fit, projection and the plotly figure sent to the browser) and a 24-frame orbit GIF at the
Novel views panel's default orbit steps. Prints p50 / p95, the ratio to each target (absolute, and for preview and
full render the share of the reference render they may take) and the load average before and after. Threads: the
app's own setting (cores / 2) unless ``--threads``. ``--checkpoint tiny`` builds a random `tiny` model in a temporary
folder (a smoke run, not a speed figure).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

TARGETS = {  # seconds (docs/APP.md, live editing; idle 2-core machine)
    "preview": 0.040,
    "full render": 0.150,
    "reference render": None,
    "uncertainty map": None,
    "encode upload": 0.10,
    "PCA map 5k": 1.0,
    "orbit 24 frames": 2.0,
}
OF_REFERENCE = {"preview": 1 / 20, "full render": 1 / 6}  # the share of a 50-step render, measured in the same run
CONCURRENT_RENDERS = 2  # app/ui.py: the app gives each of its concurrent renders cores / 2 threads


def tiny_checkpoint(folder: Path) -> str:
    from soda.config import SODAConfig
    from soda.model import SODA

    cfg = SODAConfig.from_yaml("tiny")
    torch.manual_seed(0)
    model = SODA(cfg.model)
    for p in model.unet.out[-1].parameters():
        torch.nn.init.normal_(p, std=0.1)
    model.save_pretrained(folder, full_config=cfg)
    return str(folder)


def timeit(fn, reps: int, warmup: int = 1) -> list[float]:
    for i in range(warmup):
        fn(-1 - i)
    out = []
    for i in range(reps):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="assets/checkpoints/world32")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--orbit-reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = the app's: cores / 2)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads or max(1, (os.cpu_count() or 1) // CONCURRENT_RENDERS))
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="soda-bench-"))
    os.environ.setdefault("SODA_CACHE", str(tmp / "cache"))
    ckpt = tiny_checkpoint(tmp / "tiny") if a.checkpoint == "tiny" else a.checkpoint
    if not Path(ckpt).exists():
        print(f"error: checkpoint {ckpt} not found (pass --checkpoint PATH, or --checkpoint tiny)", file=sys.stderr)
        return 2

    from app.explorer import Explorer, make_loaded
    from app.map_panel import figure_json
    from app.uploads import read_image
    from soda import api
    from soda import steps as decode_steps
    from soda.latent_map import principal_axes

    ex = Explorer(ckpt)
    t = time.perf_counter()
    m = ex.get(progress=lambda f, s: None)
    load_s = time.perf_counter() - t
    state = ex.load_example(ex.new_state(), 0, 0, "preview")
    n = len(m.slots)
    first = m.slots.index(next(s for s in m.slots if s))

    def values(i: int) -> list[float]:
        v = [0.0] * n
        v[first] = 0.05 * (i % 60) - 1.5  # a new value each call: no cache hits
        return v

    res: dict[str, list[float]] = {}
    res["preview"] = timeit(lambda i: ex.preview(state, values(i), 0), a.reps)
    res["full render"] = timeit(lambda i: ex.render(state, values(i + 1000), 0, "full"), a.reps)
    res["reference render"] = timeit(lambda i: ex.render(state, values(i + 2000), 0, "reference"), max(3, a.reps // 3))
    res["uncertainty map"] = timeit(lambda i: ex.uncertainty(state, 8, i + 1, "full"), max(3, a.reps // 2))

    photo = tmp / "upload.jpg"
    rng = np.random.default_rng(0)
    from PIL import Image

    Image.fromarray((rng.random((480, 640, 3)) * 255).astype(np.uint8)).save(photo, quality=90)

    def encode(i: int) -> None:
        img = read_image(photo, m.model.res)
        api.encode(m.model, api.from_uint8(img[None]), camera=m.camera)

    res["encode upload"] = timeit(encode, a.reps)

    # 5000 map latents: the checkpoint's map latents, repeated with a little noise to reach 5000
    Z = m.assets.map_latents
    reps = -(-5000 // Z.shape[0])
    g = torch.Generator().manual_seed(0)
    Z5 = (Z.repeat(reps, 1)[:5000] + 0.01 * torch.randn(5000, Z.shape[1], generator=g)).contiguous()
    F5 = m.assets.map_factors.repeat(reps, 1)[:5000] if m.assets.map_factors is not None else None

    def pca_map(i: int) -> None:
        mean, axes = principal_axes(Z5, 8)
        big = dataclasses.replace(
            m.assets, map_latents=Z5, map_factors=F5, pca_mean=mean, pca_axes=axes, map_pca=(Z5 - mean) @ axes[:2].T
        )
        ex._loaded["bench-5k"] = make_loaded("bench-5k", m.model, big)
        figure_json(ex, "bench-5k", "PCA", (big.factor_names or ["none"])[0])
        del ex._loaded["bench-5k"]

    res["PCA map 5k"] = timeit(pca_map, a.reps)
    cam = api.default_camera()
    orbit_steps = orbit_default(ex, m)
    res["orbit 24 frames"] = (
        timeit(
            lambda i: list(ex.orbit(state, 24, cam.elevation, cam.radius, i + 1, orbit_steps)), a.orbit_reps, warmup=0
        )
        if m.model.uses_cameras
        else []
    )
    load_after = os.getloadavg()

    steps = {q: ex.steps(m, q) for q in ("preview", "full", "reference")}
    print(
        f"\ncheckpoint {ckpt}: res {m.model.res}, z {m.model.z_dim}, steps {steps['preview']} preview / "
        f"{steps['full']} full / {steps['reference']} reference ({ex.renderer.sampler(m)}; "
        f"{decode_steps.choice(m.model, m.assets)['source']}), orbit {orbit_steps} steps, "
        f"{sum(p.numel() for p in m.model.parameters()) / 1e6:.2f} M params"
    )
    loads = f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (1-minute load average)"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, load average "
        f"{loads}; first load incl. assets {load_s:.1f} s"
    )
    ref = statistics.median(res["reference render"])
    print(f"{'operation':<18}{'p50':>10}{'p95':>10}{'target':>10}{'p50/target':>12}{'of ref.':>9}{'bar':>7}")
    out = {}
    for k, xs in res.items():
        if not xs:
            print(f"{k:<18}{'n/a (no cameras)':>42}")
            continue
        p50 = statistics.median(xs)
        out[k] = {"p50_s": p50, "p95_s": p95(xs), "target_s": TARGETS[k], "n": len(xs)}
        target = f"{TARGETS[k] * 1000:>8.0f}ms{p50 / TARGETS[k]:>11.2f}x" if TARGETS[k] else f"{'':>22}"
        share = f"{p50 / ref:>9.3f}{OF_REFERENCE[k]:>7.3f}" if k in OF_REFERENCE else ""
        print(f"{k:<18}{p50 * 1000:>8.0f}ms{p95(xs) * 1000:>8.0f}ms{target}{share}")
        if k in OF_REFERENCE:
            out[k] |= {"of_reference": p50 / ref, "of_reference_bar": OF_REFERENCE[k]}
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {
                    "checkpoint": ckpt,
                    "threads": torch.get_num_threads(),
                    "steps": steps,
                    "orbit_steps": orbit_steps,
                    "load_average": {"before": list(load_before), "after": list(load_after)},
                    **out,
                },
                indent=1,
            )
        )
    return 0


def orbit_default(ex, m) -> int:
    """The Novel views panel's default orbit steps for ``m``."""
    from app.views_panel import orbit_steps_default

    return orbit_steps_default(ex, m)


if __name__ == "__main__":
    raise SystemExit(main())
