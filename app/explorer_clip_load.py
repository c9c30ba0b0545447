"""CLIP weights for the explorer, loaded lazily in a background thread.

The CLIP spec is resolved per checkpoint (``clip_spec``, i.e. ``python app.py --clip``, else ``$SODA_CLIP``, else the
``clip:`` entry of the checkpoint's model card). The weights are loaded in a background thread on first use, so
neither importing the app nor serving the page waits for them, and offline-ness is decided by soda.clip before
anything touches the network. Without usable weights ``ClipModels.model`` raises ClipMissing (an ExplorerError) with
soda.clip's instructions (``str(ClipUnavailable)``).

``ClipModels`` needs the spec, the device and the shared call counter; it works on the ``Loaded`` it is given.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from soda import clip as sc

from .loaded import ExplorerError, Loaded, Progress

log = logging.getLogger("soda.app")

LOAD_TIMEOUT = 900.0  # seconds an operation waits for the background load


class ClipMissing(ExplorerError):
    """No usable CLIP weights for this checkpoint; the message says what to provide (soda.clip's instructions)."""


class _ClipJob:
    """One background load of a resolved spec: ``done`` is set when ``model`` or ``error`` is."""

    def __init__(self, spec: str, checkpoint_dir, device: str):
        self.spec = spec
        self.started = time.monotonic()
        self.done = threading.Event()
        self.model: sc.ClipModel | None = None
        self.error: str | None = None
        self.thread = threading.Thread(
            target=self._run, args=(checkpoint_dir, device), daemon=True, name="soda-clip-load"
        )
        self.thread.start()

    def _run(self, checkpoint_dir, device: str) -> None:
        try:
            self.model = sc.load_clip(self.spec, device, checkpoint_dir=checkpoint_dir)
        except sc.ClipUnavailable as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - a broken install or file must not take the app down
            log.exception("loading CLIP from %s failed", self.spec)
            self.error = f"CLIP weights '{self.spec}' failed to load ({type(e).__name__}: {e})"
        finally:
            self.done.set()


class ClipModels:
    """One background load per resolved spec, shared by every checkpoint that resolves to it."""

    def __init__(self, clip_spec: str | None, device: str, calls: Counter):
        self.clip_spec = clip_spec or None
        self.device = device
        self.calls = calls
        self._lock = threading.Lock()
        self._jobs: dict[str, _ClipJob] = {}

    @staticmethod
    def _ckpt_dir(m: Loaded):
        d = getattr(m.model, "checkpoint_dir", None)
        return str(d) if d is not None else None

    def spec_for(self, m: Loaded) -> str | None:
        """The CLIP spec in force for checkpoint ``m``: --clip, else $SODA_CLIP, else its model card."""
        return sc.resolve_spec(self.clip_spec, self._ckpt_dir(m))

    def _job(self, m: Loaded, spec: str) -> _ClipJob:
        with self._lock:
            job = self._jobs.get(spec)
            if job is None:
                self.calls["clip_load"] += 1
                job = self._jobs[spec] = _ClipJob(spec, self._ckpt_dir(m), self.device)
            return job

    def _forget_failed(self, job: _ClipJob) -> None:
        """A failed load is reported once per request and retried by the next one (the user may fix the file)."""
        with self._lock:
            if self._jobs.get(job.spec) is job:
                del self._jobs[job.spec]

    def _no_spec_message(self, m: Loaded) -> str:
        try:
            sc.load_clip(None, self.device, checkpoint_dir=self._ckpt_dir(m))  # raises at once with instructions
        except sc.ClipUnavailable as e:
            return str(e)
        return "a CLIP spec appeared while checking; try again"

    def status(self, m: Loaded) -> tuple[str, str]:
        """('ready' | 'loading' | 'unavailable', text to show) for checkpoint ``m``; starts loading the weights in
        the background when a spec is given and nothing is loaded yet. Never waits for the load."""
        spec = self.spec_for(m)
        if spec is None:
            return "unavailable", self._no_spec_message(m)
        job = self._job(m, spec)
        if not job.done.is_set():
            waited = time.monotonic() - job.started
            return "loading", f"Loading CLIP weights '{spec}' in the background ({waited:.0f} s)…"
        if job.error is not None:
            self._forget_failed(job)
            return "unavailable", job.error
        c = job.model
        return "ready", (
            f"CLIP ready: {c.spec} (embedding {c.embed_dim}, input {c.image_size[0]} px, on {c.device}). "
            "Name the sliders, turn a prompt into a slider, or colour the latent map by a prompt."
        )

    def model(self, m: Loaded, progress: Progress | None = None) -> sc.ClipModel:
        """The CLIP model for checkpoint ``m``, waiting for its background load; ClipMissing with the instructions
        when there is none."""
        spec = self.spec_for(m)
        if spec is None:
            raise ClipMissing(self._no_spec_message(m))
        job = self._job(m, spec)
        while not job.done.wait(0.5):
            if progress:
                progress(None, f"loading CLIP weights '{spec}'")
            if time.monotonic() - job.started > LOAD_TIMEOUT:
                raise ExplorerError(f"CLIP weights '{spec}' are still loading after {LOAD_TIMEOUT:.0f} s")
        if job.error is not None:
            self._forget_failed(job)
            raise ClipMissing(job.error)
        return job.model
