"""Every hub call has a timeout (issue 25 item 5): a hub that accepts connections and never answers fails the call
within a bound, with a message naming the timeout, instead of waiting forever."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from soda.config import ConfigError
from soda.model import hub

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 2.0

# run in a fresh process: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when it is imported
CALLS = r"""
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
threading.Thread(target=lambda: (time.sleep(90), print(json.dumps({"hung": True}), flush=True), os._exit(3)),
                 daemon=True).start()
from soda import api
from soda.clip import specs
calls = {
    "load_model": lambda: api.load_model("owner/name"),
    "load_model with a download limit (the page)": lambda: api.load_model("owner/name", max_download_mb=200),
    "CLIP weights from the hub": lambda: specs._hub_file("owner/clip", ("open_clip_model.safetensors",), True),
}
out = {}
for name, call in calls.items():
    t = time.monotonic()
    try:
        call()
        out[name] = {"seconds": time.monotonic() - t, "error": None}
    except Exception as e:
        out[name] = {"seconds": time.monotonic() - t, "error": f"{type(e).__name__}: {e}"}
print(json.dumps(out), flush=True)
"""


@pytest.fixture
def silent_hub():
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte -> its URL."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    srv.close()
    for c in held:
        c.close()


def test_a_hub_that_never_answers_fails_within_the_timeout(silent_hub, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SODA_OFFLINE")}
    env |= {"HF_ENDPOINT": silent_hub, "HF_HOME": str(tmp_path / "hf"), hub.TIMEOUT_ENV: str(TIMEOUT_S)}
    env.pop("HF_HUB_CACHE", None)
    r = subprocess.run(
        [sys.executable, "-c", CALLS, str(ROOT)], env=env, capture_output=True, text=True, timeout=150, cwd=tmp_path
    )
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "hung" not in out, "a hub call was still waiting after 90 s"
    for name, got in out.items():
        assert got["error"] is not None, name
        # the call waited for the timeout (not refused for another reason), then gave up soon after it
        assert TIMEOUT_S * 0.9 <= got["seconds"] <= 2 * TIMEOUT_S + 5, (name, got)
        assert f"did not answer within the {TIMEOUT_S:g} s timeout ({hub.TIMEOUT_ENV})" in got["error"], (name, got)
        assert silent_hub in got["error"] and "Traceback" not in got["error"]


def test_every_request_gets_a_capped_timeout(monkeypatch):
    class Request:
        extensions = {"timeout": {"connect": None, "read": 60.0, "write": 1.0, "pool": None}}

    monkeypatch.setenv(hub.TIMEOUT_ENV, "7")
    r = Request()
    hub._cap_timeouts(r)
    assert r.extensions["timeout"] == {"connect": 7.0, "read": 7.0, "write": 1.0, "pool": 7.0}
    monkeypatch.delenv(hub.TIMEOUT_ENV)
    assert hub.hub_timeout() == hub.DEFAULT_TIMEOUT_S == 10.0
    for bad in ("0", "-1", "nan", "inf", "soon"):
        monkeypatch.setenv(hub.TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=hub.TIMEOUT_ENV):
            hub.hub_timeout()


def test_the_hook_is_on_huggingface_hubs_client():
    from huggingface_hub import get_session

    hub.install_timeouts()
    hub.install_timeouts()  # idempotent
    hooks = get_session().event_hooks["request"]
    assert hooks.count(hub._cap_timeouts) == 1 and len(hooks) >= 2  # huggingface_hub's own hook is kept
