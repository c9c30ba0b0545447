"""Checkpoints on the Hugging Face hub: fetch only the files a SODA checkpoint needs, optionally measured first.

``fetch(repo_id)`` downloads the repository's ``*.json``, ``*.safetensors`` and ``*.md`` (nothing that could be
unpickled). With ``max_bytes`` the repository's file metadata is read first: a download over the limit, or one whose
size the hub does not report, is refused before any file is fetched, and the download is pinned to the commit that
was measured (a push between the two calls cannot slip a larger file in). In offline mode (``HF_HUB_OFFLINE=1``)
nothing is downloaded: the snapshot comes from the local cache or not at all, so there is nothing to measure.

Every request huggingface_hub makes in this process waits at most ``SODA_HUB_TIMEOUT`` seconds (default 10) to
connect and between two reads (``install_timeouts``, called before any hub call of this project): a hub that accepts
connections and never answers fails the call with a ConfigError naming the limit, instead of waiting forever
(huggingface_hub's own client has no timeout for its metadata calls). A download that keeps receiving data is not
cut off, however long it takes.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

from ..config import ConfigError

HUB_PATTERNS = ["*.json", "*.safetensors", "*.md"]
MB = 1 << 20
TIMEOUT_ENV = "SODA_HUB_TIMEOUT"
DEFAULT_TIMEOUT_S = 10.0
_INSTALL_LOCK = threading.Lock()
_installed = False


def hub_timeout() -> float:
    """The longest wait, in seconds, for the hub to accept a connection or send the next bytes
    (``$SODA_HUB_TIMEOUT``, default 10)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        v = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        v = float("nan")
    if not math.isfinite(v) or not 0 < v <= 3600:
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds in (0, 3600], got '{raw[:40]}'")
    return v


def _cap_timeouts(request) -> None:
    """httpx request hook: every timeout of the request (connect, read, write, pool) at most ``hub_timeout()``; none
    left unset (huggingface_hub sends its metadata requests with no timeout at all)."""
    cap = hub_timeout()
    given = request.extensions.get("timeout") or {}
    request.extensions["timeout"] = {
        k: cap if given.get(k) is None else min(float(given[k]), cap) for k in ("connect", "read", "write", "pool")
    }


def install_timeouts() -> None:
    """Make huggingface_hub's HTTP client (one per process, shared by hf_hub_download, snapshot_download, HfApi and
    what open_clip or transformers fetch through them) cap every wait at ``hub_timeout()``. Idempotent; a client
    factory set before (a proxy, custom certificates) is kept and wrapped."""
    global _installed
    with _INSTALL_LOCK:
        if _installed:
            return
        import huggingface_hub
        from huggingface_hub.utils import _http

        previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) or _http.default_client_factory

        def factory():
            client = previous()
            hooks = client.event_hooks
            client.event_hooks = {**hooks, "request": [*hooks.get("request", []), _cap_timeouts]}
            return client

        huggingface_hub.set_client_factory(factory)  # also closes a session made before, so the next one has it
        _installed = True


def timed_out(e: BaseException) -> bool:
    """Whether ``e`` (or an exception it was raised from) is a network timeout."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, TimeoutError) or "Timeout" in type(e).__name__:
            return True
        e = e.__cause__ or e.__context__
    return False


def timeout_message(what: str) -> str:
    from huggingface_hub import constants

    return (
        f"{what}: the hub ({constants.ENDPOINT}) did not answer within the {hub_timeout():g} s timeout "
        f"({TIMEOUT_ENV}); nothing was loaded. Check the network, or set {TIMEOUT_ENV} to wait longer"
    )


def check_answers(repo_id: str, what: str) -> None:
    """One metadata request for ``repo_id`` with the timeout and no retry, before a call that would retry on
    timeouts (hf_hub_download tries a hung hub for minutes): ConfigError (``timeout_message``) when the hub does not
    answer in time; any answer, a refusal included, returns, for the caller's own call to handle."""
    from huggingface_hub import HfApi

    install_timeouts()
    try:
        HfApi().model_info(repo_id, timeout=hub_timeout())
    except Exception as e:
        if timed_out(e):
            raise ConfigError(timeout_message(what)) from None


def download_size(repo_id: str) -> tuple[str | None, int, list[str]]:
    """-> (commit sha, total bytes of the files ``fetch`` would download, names of matching files of unknown size)."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    install_timeouts()
    info = HfApi().model_info(repo_id, files_metadata=True, timeout=hub_timeout())
    files = list(filter_repo_objects(info.siblings or [], allow_patterns=HUB_PATTERNS, key=lambda s: s.rfilename))
    unknown = [s.rfilename for s in files if s.size is None]
    return info.sha, sum(s.size or 0 for s in files), unknown


def fetch(repo_id: str, max_bytes: int | None = None) -> Path:
    """Hub id -> local snapshot folder with the checkpoint's files; over ``max_bytes``: ConfigError, nothing fetched.
    A hub that does not answer within ``hub_timeout()``: ConfigError naming the timeout."""
    install_timeouts()
    try:
        return _fetch(repo_id, max_bytes)
    except ConfigError:
        raise
    except Exception as e:
        if timed_out(e):
            raise ConfigError(timeout_message(f"hub checkpoint '{repo_id}'")) from None
        raise


def _fetch(repo_id: str, max_bytes: int | None) -> Path:
    from huggingface_hub import constants, snapshot_download

    revision = None
    if max_bytes is not None and not constants.HF_HUB_OFFLINE:
        revision, total, unknown = download_size(repo_id)
        if unknown:
            raise ConfigError(
                f"hub checkpoint '{repo_id}' refused: the hub does not report the size of {unknown[0]}, so the "
                f"download limit of {max_bytes / MB:.0f} MB cannot be checked; nothing was downloaded"
            )
        if total > max_bytes:
            raise ConfigError(
                f"hub checkpoint '{repo_id}' refused: {total / MB:.1f} MB to download is over this server's limit "
                f"of {max_bytes / MB:.0f} MB; nothing was downloaded"
            )
    t = hub_timeout()
    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS, etag_timeout=t))
