"""Determinism: the same checkpoint, image, edits and seed give the same output, in fresh processes.

Two fresh processes, each at torch threads 1 and then 2, read the same upload with the app's reader, encode it, move the
latent along two directions, and decode it (the default camera, another camera, and in a batch of three), on two
checkpoints: the `tiny` preset and the architecture of the bundled world32 checkpoint (random weights: the arithmetic,
not the training, decides determinism).

What is promised, on any x86-64 processor torch supports (docs/RELIABILITY.md, section 4, has the measurements):

* same machine, same environment, same thread count, same inputs and batch composition: bit-identical, every tensor
  and so every uint8 image, also across fresh processes. The kernels (ATen's vectorised loops, oneDNN convolutions,
  MKL matrix products) are chosen from the processor's instruction set, its cache sizes, the tensor shapes and the
  thread count, and then split the work the same way every time (asserted);
* 1 vs 2 threads: within stated tolerances, not bit-identical. With another thread count a kernel may split a
  convolution or matrix product into other blocks and add the partial sums in another order (float addition is not
  associative). Whether it does depends on the processor: on the AMD EPYC where this was written, encoding and the
  tiny model's single-image decode came out bit-identical, on an Intel Xeon (AVX-512/AMX) the encoding differed by
  6e-8. Asserted: z within ENCODE_BOUND, decoded pixels within THREAD_BOUND, and uint8 images within one level
  (an implication of THREAD_BOUND, which is far below one level: a value that moves by less than a level can cross
  at most one rounding boundary; identical uint8 is not promised, since a pixel whose value lies within ~1e-5 of a
  boundary flips);
* one latent decoded alone vs inside a batch of three: within BATCH_BOUND (batched kernels block the sums differently).
  The app's decode cache then serves whichever version was computed first.

The numbers are printed and quoted in docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4
# Tolerances for a different partial-sum order (observed maxima across processors and instruction sets: RELIABILITY.md)
ENCODE_BOUND = 1e-5  # max |difference| of z (entries of order 1), 1 vs 2 threads
THREAD_BOUND = 1e-3  # max |difference| of decoded pixels in [-1, 1], 1 vs 2 threads (8x below one uint8 level)
BATCH_BOUND = 2e-3  # max |difference| of one image decoded alone vs inside a batch of three (as tests/test_api.py)
LEVEL = 2 / 255  # one uint8 level in [-1, 1]

WORKER = r"""
import json, sys
import numpy as np, torch
steps, out, image, ckpts = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
from app.uploads import read_image
from soda import api
res = {}
for threads in (1, 2):
    torch.set_num_threads(threads)
    for k, name in enumerate(ckpts):
        m = api.load_model(name)
        x = read_image(image, m.res)
        cam = api.default_camera() if m.uses_cameras else None
        with torch.no_grad():
            z = api.encode(m, api.from_uint8(x[None]), camera=cam)
            dirs = torch.randn(2, m.z_dim, generator=torch.Generator().manual_seed(1))
            z2 = api.move_along(api.move_along(z, dirs[0], 1.5), dirs[1], -0.7)
            img = api.decode(m, z2, camera=cam, steps=steps, seed=123)
            view = api.decode(m, z2, camera=api.Camera(40.0, 25.0, 4.0), steps=steps, seed=123)
            batch = api.decode(m, torch.cat([z2, z, 0.5 * z2]), camera=cam, steps=steps, seed=123)
        res[f"{name}|{threads}"] = f"{out}-{k}-{threads}.npz"
        np.savez(res[f"{name}|{threads}"], z=z.numpy(), img=img.numpy(), view=view.numpy(), batch=batch.numpy(),
                 u8=api.to_uint8(img))
print(json.dumps(res))
"""


def _world32_checkpoint(folder: Path) -> Path:
    """The bundled checkpoint's architecture (soda/configs/world32-cpu.yaml) with random weights that make the
    output depend on z."""
    from helpers import make_tiny_checkpoint

    return make_tiny_checkpoint(folder, seed=0, preset="world32-cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from helpers import make_tiny_checkpoint

    d = tmp_path_factory.mktemp("determinism")
    ckpts = [str(make_tiny_checkpoint(d / "tiny")), str(_world32_checkpoint(d / "world32"))]
    rng = np.random.default_rng(3)
    image = d / "photo.jpg"
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(image, quality=90)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("OMP_NUM_THREADS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(STEPS), str(d / f"run{k}"), str(image), *ckpts],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for k in range(2)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr.decode()[-3000:]
        files = json.loads(stdout.decode().strip().splitlines()[-1])
        out.append({(Path(k.split("|")[0]).name, int(k.split("|")[1])): dict(np.load(v)) for k, v in files.items()})
    return out


@pytest.mark.parametrize("ckpt", ["tiny", "world32"])
def test_two_fresh_processes_give_bit_identical_outputs(runs, ckpt):
    for threads in (1, 2):
        a, b = runs[0][ckpt, threads], runs[1][ckpt, threads]
        for key in ("z", "img", "view", "batch", "u8"):
            assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), f"{ckpt} {key} {threads} threads"


@pytest.mark.parametrize("ckpt", ["tiny", "world32"])
def test_one_vs_two_threads_within_tolerance(runs, ckpt):
    one, two = runs[0][ckpt, 1], runs[0][ckpt, 2]
    diffs = {k: float(np.abs(one[k].astype(np.float64) - two[k]).max()) for k in ("z", "img", "view", "batch")}
    u8 = int(np.abs(one["u8"].astype(int) - two["u8"]).max())
    print(f"\n{ckpt}: 1 vs 2 threads max |diff| {diffs}, uint8 {u8}; max |z| {np.abs(one['z']).max():.2f}")
    assert diffs["z"] <= ENCODE_BOUND, diffs
    assert all(diffs[k] <= THREAD_BOUND for k in ("img", "view", "batch")), diffs
    assert THREAD_BOUND < LEVEL  # so a pixel can cross one rounding boundary at most: uint8 within one level
    assert u8 <= 1


@pytest.mark.parametrize("ckpt", ["tiny", "world32"])
def test_alone_vs_in_a_batch_within_tolerance(runs, ckpt):
    for threads in (1, 2):
        r = runs[0][ckpt, threads]
        diff = float(np.abs(r["batch"][0].astype(np.float64) - r["img"][0]).max())
        print(f"\n{ckpt}, {threads} threads: alone vs in a batch of 3 max |diff| {diff:.2e}")
        assert diff <= BATCH_BOUND
