"""The decoder steps every caller reads: the choice ``python -m soda.precompute`` measured and stored with a
checkpoint's explorer assets (``soda.steps`` measures and chooses), else the checkpoint config's steps.

Below ``soda.api`` (whose ``decode(steps=None)`` reads it): imports nothing above ``soda.paths``.
"""

from __future__ import annotations

import json
import os
import weakref

META_KEY = "decode_steps"
ENV = "SODA_DECODE_STEPS"  # "config": the checkpoint config's steps win; "P,F": these preview / full steps

_READ: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its stored choice (or None)


def stored(model, assets=None) -> dict | None:
    """The choice stored with the explorer assets of ``model``'s checkpoint (``assets``' meta when given, else the
    cached assets' metadata of its weights, read once per model) or None."""
    if assets is not None:
        return assets.meta.get(META_KEY)
    try:
        if model in _READ:
            return _READ[model]
    except TypeError:  # not weak-referenceable (a stand-in): read every time
        pass
    got = None
    ckpt = getattr(model, "checkpoint_dir", None)
    if ckpt is not None:
        from .paths import ASSETS_META as META_NAME
        from .paths import candidate_dirs, weights_fingerprint

        sha = getattr(model, "weights_sha256", None)  # checked at load time, when the checkpoint records it
        try:
            fp = sha[:16] if sha else weights_fingerprint(ckpt)
        except OSError:
            fp = None
        for d in candidate_dirs(ckpt, fp) if fp else []:
            try:
                meta = json.loads((d / META_NAME).read_text())
            except (OSError, ValueError):
                continue
            if meta.get("fingerprint") == fp and isinstance(meta.get(META_KEY), dict):
                got = meta[META_KEY]
                break
    try:
        _READ[model] = got
    except TypeError:
        pass
    return got


def forget(model) -> None:
    """Drop the choice read for ``model`` (after a new one was stored)."""
    try:
        _READ.pop(model, None)
    except TypeError:  # not weak-referenceable: never remembered
        pass


def _override() -> tuple[int, int] | str | None:
    v = os.environ.get(ENV, "").strip().lower()
    if not v or v == "measured":
        return None
    if v == "config":
        return "config"
    try:
        p, f = (int(x) for x in v.split(","))
    except ValueError:
        raise ValueError(f"{ENV} must be 'measured', 'config' or 'PREVIEW,FULL' (two integers), got '{v}'") from None
    if p < 1 or f < 1:
        raise ValueError(f"{ENV}: steps must be >= 1")
    return p, f


def choice(model, assets=None) -> dict:
    """{"preview": k, "full": k, "sampler": name, "source": "measured" | "config" | ENV} for ``model``: the stored
    measurement when there is one (and ``SODA_DECODE_STEPS`` does not override it), else the checkpoint config."""
    d = getattr(getattr(model, "cfg", None), "diffusion", None)
    if d is None:  # a model without a diffusion decoder (soda.baselines): steps mean nothing to it
        return {"preview": None, "full": None, "sampler": "ddim", "source": "none"}
    over = _override()
    if isinstance(over, tuple):
        return {"preview": over[0], "full": over[1], "sampler": "ddim", "source": ENV}
    got = None if over == "config" else stored(model, assets)
    if got and isinstance(got.get("full"), int) and isinstance(got.get("preview"), int):
        return {
            "preview": got["preview"],
            "full": got["full"],
            "sampler": got.get("sampler", "ddim"),
            "source": "measured",
        }
    return {"preview": int(d.preview_steps), "full": int(d.sample_steps), "sampler": "ddim", "source": "config"}


def steps_for(model, quality: str = "full", assets=None) -> int:
    """The decoder steps of ``quality`` ('preview' or 'full') for ``model`` (``choice``)."""
    return int(choice(model, assets)["preview" if quality == "preview" else "full"])


def edit_steps(model) -> int:
    """The steps the evaluation decodes edits with: the measured full-quality steps (the image the app shows when a
    slider is released), else the config's preview steps (what it decoded with before steps were measured)."""
    c = choice(model)
    return int(c["full"] if c["source"] != "config" else model.cfg.diffusion.preview_steps)
