"""Large uploads do not pile up in memory (issue 25 item 3): 50 uploads of an 8190 x 8190 PNG (200 KB on disk, 201 MB
decoded), 25 at a time, against the real app (`python app.py` in its own process, measured through /proc)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import make_tiny_checkpoint, new_client, upload
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_bad_inputs import solid_png  # noqa: E402

N_UPLOADS, AT_ONCE = 50, 25
SIDE = 8190
MB = 1 << 20
# the bounds this test holds the server to, above its resident memory before the uploads
AFTER_BOUND = 250 * MB  # resident once they are done
PEAK_BOUND = 1000 * MB  # at any moment while they run (DECODE_SLOTS = 2 decodes of 201 MB at once, and their buffers)


def status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc")
def test_resident_memory_after_50_large_uploads_stays_bounded(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    big = tmp_path / "big.png"
    big.write_bytes(solid_png(SIDE, SIDE, (200, 30, 30)))
    assert big.stat().st_size < 300_000 and Image.open(big).size == (SIDE, SIDE)
    port = free_port()
    env = {**os.environ, "SODA_CACHE": str(tmp_path / "cache"), "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--checkpoint", str(ckpt), "--port", str(port), "--n-map", "32"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the app did not start within 300 s"
                time.sleep(1)
        clients = [new_client(url, tmp_path / "downloads" / str(i)) for i in range(AT_ONCE)]
        clients[0].predict(upload(big), api_name="/upload", quality="preview")  # warm: first-use allocations
        time.sleep(1)
        before = status(server.pid, "VmRSS")
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], status(server.pid, "VmRSS"))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results, errors = [], []

        def client_uploads(c, n):
            for _ in range(n):
                try:
                    inp = c.predict(upload(big), api_name="/upload", quality="preview")[0]
                    results.append(np.asarray(Image.open(inp).convert("RGB")))
                except Exception as e:  # noqa: BLE001 - counted and shown below
                    errors.append(repr(e)[:300])

        t0 = time.monotonic()
        threads = [threading.Thread(target=client_uploads, args=(c, N_UPLOADS // AT_ONCE)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
        time.sleep(2)
        done.set()
        sampler.join()
        after = status(server.pid, "VmRSS")
        print(
            f"\n{N_UPLOADS} uploads of a {SIDE} x {SIDE} PNG, {AT_ONCE} at a time, in {took:.0f} s: server resident "
            f"{before / MB:.0f} MB before, peak {peak[0] / MB:.0f} MB (+{(peak[0] - before) / MB:.0f}), "
            f"{after / MB:.0f} MB 2 s after (+{(after - before) / MB:.0f})"
        )
        assert not errors, errors[:3]
        assert len(results) == N_UPLOADS
        assert all(abs(r.reshape(-1, 3).mean(0) - (200, 30, 30)).max() < 2 for r in results)  # the image's colour
        assert after - before < AFTER_BOUND, f"resident memory grew by {(after - before) / MB:.0f} MB"
        assert peak[0] - before < PEAK_BOUND, f"peak resident memory {(peak[0] - before) / MB:.0f} MB above idle"
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def old_reader(path: Path, res: int) -> np.ndarray:
    """The reader before the change (whole-image conversion, then LANCZOS): the reference for large images."""
    from PIL import ImageOps

    from app.uploads import _to_rgb_square

    im = ImageOps.exif_transpose(Image.open(path))
    im.load()
    return _to_rgb_square(im, res)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "I;16", "L", "F"])
def test_a_large_image_reduced_in_strips_matches_the_whole_image_path(tmp_path, mode):
    from app.uploads import LARGE_PIXELS, read_image

    side = 2100  # just over LARGE_PIXELS, so that the strip reduction is used
    assert side * side > LARGE_PIXELS
    yy, xx = np.mgrid[0:side, 0:side]
    rgb = np.stack([xx * 255 // side, yy * 255 // side, (xx + yy) * 127 // side], -1).astype(np.uint8)
    alpha = np.where(xx < side // 2, 0, 255).astype(np.uint8)
    im = {
        "RGB": lambda: Image.fromarray(rgb),
        "RGBA": lambda: Image.fromarray(np.dstack([rgb, alpha])),
        "P": lambda: Image.fromarray(rgb).quantize(64),
        "I;16": lambda: Image.fromarray((xx * 60000 // side).astype(np.uint16)),
        "L": lambda: Image.fromarray(rgb[..., 0]),
        "F": lambda: Image.fromarray((yy / side).astype(np.float32)),
    }[mode]()
    path = tmp_path / ("big.tif" if mode == "F" else "big.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the small image is turned, as the whole one was
    im.save(path, exif=exif)
    got, want = read_image(path, 32).astype(int), old_reader(path, 32).astype(int)
    assert got.shape == want.shape == (32, 32, 3)
    assert np.abs(got - want).max() <= 4 and np.abs(got - want).mean() < 0.5, (np.abs(got - want).max(), mode)


def test_large_decodes_wait_for_a_slot(tmp_path, monkeypatch):
    from app import uploads

    big = tmp_path / "big.png"
    Image.new("RGB", (2100, 2100), (10, 20, 30)).save(big)
    small = tmp_path / "small.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(small)
    real, now, most, trims = uploads._decode, [0], [0], []
    lock = threading.Lock()

    def decode(im, res):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.2)
        try:
            return real(im, res)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(uploads, "_decode", decode)
    monkeypatch.setattr(uploads, "give_memory_back", lambda: trims.append(1))
    threads = [threading.Thread(target=uploads.read_image, args=(big, 32)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == uploads.DECODE_SLOTS == 2 and len(trims) == 6  # each large decode gives its memory back
    uploads.read_image(small, 32)
    assert len(trims) == 6  # a small one needs no slot and no trim
