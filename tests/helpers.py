"""What several test modules share: a tiny checkpoint factory, the one in-process app server of a test session,
gradio_client helpers, and the bad-input corpus (scripts/make_bad_inputs.py). Test modules import from here, never
from each other."""

from __future__ import annotations

import atexit
import functools
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from conftest import randomise_output_layer
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
N_MAP, N_EXAMPLES = 64, 8
# The Mix panel's carriers in the app tests' checkpoint: written over the measured ones (a random tiny model carries a
# factor on 3 pairs or not depending on the processor's rounding), so the browser test has a known answer.
KNOWN_CARRIERS = {"floor_hue": [0, 2], "object_hue": [4]}

# Gradio keeps uploads and outputs under GRADIO_TEMP_DIR (default /tmp/gradio, shared by every Gradio process on the
# machine). A private folder lets these tests see exactly what the app leaves behind. Set before any server starts.
if "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="soda-gradio-test-")
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], True)


# ------------------------------------------------------------------------------------------------------------
# A tiny checkpoint and one app server for the whole session
# ------------------------------------------------------------------------------------------------------------


def make_tiny_checkpoint(folder: Path, seed: int = 0, preset: str = "tiny") -> Path:
    """A preset (default `tiny`) with random output and z-modulation weights (so that images depend on z), saved."""
    from soda.config import SODAConfig
    from soda.model import SODA

    cfg = SODAConfig.from_yaml(preset)
    torch.manual_seed(seed)
    model = SODA(cfg.model)
    randomise_output_layer(model)
    for blk in model.modules():
        if getattr(blk, "z_mod", None) is not None:
            torch.nn.init.normal_(blk.z_mod.weight, std=0.5)
    model.save_pretrained(folder, full_config=cfg)
    return folder


def measure_sliders(ckpt: Path, known_carriers: dict[str, list[int]] | None = None) -> None:
    """Precompute the checkpoint's explorer assets and measure its sliders on decoded images at toy sizes, with
    briefly trained factor classifiers (the captions under the sliders; `python -m soda.precompute` does this).
    ``known_carriers`` replaces the measured Mix carriers (factor -> sections) with a known answer."""
    from soda import api, precompute, sliders

    model = api.load_model(str(ckpt))
    assets = precompute.load_or_compute(model, N_EXAMPLES, N_MAP, 3)
    quick = {"n_train": 200, "n_test": 50, "steps": 15, "batch_size": 16}
    sliders.ensure_measured(
        model,
        assets,
        n_scenes=2,
        free_scenes=2,
        mix_pairs=3,
        strengths=(2.0,),
        classifier=quick,
        save=precompute.persist_measurement,
    )
    if known_carriers is not None:
        assets.meta["slider_effects"]["mixing"]["carriers"] = {f: list(c) for f, c in known_carriers.items()}
        precompute.persist_measurement(assets, directions_changed=False)


@functools.lru_cache(maxsize=1)
def app_server():
    """-> (url, explorer, demo, workdir): launched once per test session, closed at exit."""
    import atexit
    import tempfile

    from app.explorer import Explorer
    from app.ui import build_demo, launch_options

    work = Path(tempfile.mkdtemp(prefix="soda-app-test-"))
    os.environ["SODA_CACHE"] = str(work / "cache")
    ckpt = make_tiny_checkpoint(work / "tiny")
    foreign = work / "foreign"  # a folder with a config.json that is not a SODA checkpoint
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    (foreign / "model.safetensors").write_bytes(b"not safetensors")
    second = make_tiny_checkpoint(work / "tiny2", seed=1)
    measure_sliders(ckpt, KNOWN_CARRIERS)
    ex = Explorer(str(ckpt), allowed=[str(second), str(foreign)], n_map=N_MAP, n_examples=N_EXAMPLES)
    ex.get()
    demo = build_demo(ex)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options())
    atexit.register(demo.close)
    return demo.local_url, ex, demo, work


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def upload(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def app_error():
    from gradio_client.exceptions import AppError

    return AppError


# ------------------------------------------------------------------------------------------------------------
# The bad-input corpus and the app's folders
# ------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def corpus_script():
    """scripts/make_bad_inputs.py as a module."""
    spec = importlib.util.spec_from_file_location("make_bad_inputs", ROOT / "scripts" / "make_bad_inputs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_bad_inputs"] = mod
    spec.loader.exec_module(mod)
    return mod


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[Path, Path, dict[str, Path]]:
    """The corpus, generated once per session -> (folder, sentinel path, {case: path})."""
    folder = Path(tempfile.mkdtemp(prefix="soda-bad-inputs-"))
    atexit.register(shutil.rmtree, folder, True)
    sentinel = folder / "sentinel" / "UNPICKLED"  # created by the pickle payload if anything ever unpickles it
    sentinel.parent.mkdir()
    return folder, sentinel, corpus_script().make_corpus(folder / "corpus", sentinel)


def server():
    """(url, explorer, demo, workdir) of the shared in-process app."""
    return app_server()


def new_client(url: str, downloads: Path):
    """A gradio_client session whose downloads go to ``downloads`` (not into the server's cache folder). Its HTTP
    timeout is 2 minutes (httpx's default of 5 s is shorter than an upload waits on a busy 2-core machine)."""
    from gradio_client import Client

    downloads.mkdir(parents=True, exist_ok=True)
    return Client(
        url, verbose=False, download_files=str(downloads), analytics_enabled=False, httpx_kwargs={"timeout": 120}
    )


def app_dirs(srv) -> dict[str, Path]:
    """The folders the app writes to: Gradio's cache, the explorer's downloads, the asset cache, the checkpoints."""
    from app import media

    _, ex, demo, work = srv
    return {
        "gradio": Path(demo.GRADIO_CACHE),
        "downloads": media.out_dir(),
        "assets": Path(os.environ.get("SODA_CACHE", work / "cache")),
        "checkpoints": work,
    }


def snapshot(dirs: dict[str, Path]) -> dict[Path, int]:
    files = {}
    for d in dirs.values():
        if d.is_dir():
            for p in d.rglob("*"):
                if p.is_file():
                    files[p] = p.stat().st_size
    return files


def gradio_stray_tmp(p: Path, dirs: dict[str, Path]) -> bool:
    """An empty ``tmpXXXXXXXX`` file directly in Gradio's cache: gr.File(type='filepath') preprocessing creates one
    per request with tempfile.NamedTemporaryFile(delete=False) and never removes it (gradio 6.31,
    components/file.py). Not written by this app; see docs/RELIABILITY.md."""
    return p.parent == dirs["gradio"] and p.name.startswith("tmp") and p.stat().st_size == 0


def leftovers(before: dict[Path, int], dirs: dict[str, Path], sent: list[Path]) -> list[Path]:
    """New files since ``before`` that are neither a copy of a file the client sent (Gradio keeps uploads in its
    cache, removed after an hour by delete_cache) nor Gradio's own stray temp file."""
    sent_bytes = {Path(s).read_bytes() for s in sent}
    out = []
    for p in snapshot(dirs).keys() - before.keys():
        if p.is_relative_to(dirs["gradio"]) and (p.read_bytes() in sent_bytes or gradio_stray_tmp(p, dirs)):
            continue
        out.append(p)
    return out


def assert_clear_refusal(err: Exception, words: str) -> str:
    msg = str(err)
    assert re.search(words, msg), f"message {msg!r} lacks {words!r}"
    assert "Traceback" not in msg and 'File "' not in msg and "Unexpected error" not in msg, msg
    return msg


def still_answering(client) -> None:
    info = client.predict(0, api_name="/load_example", quality="preview")[3]
    assert "example 0" in info
