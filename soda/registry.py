"""Which class builds each ``model.kind``: the one table of model kinds (``soda.config`` validates against it).

The table names classes by import path, so this module imports no model: ``soda.model.io`` (checkpoint folders)
builds any kind through it, while the models inherit ``CheckpointMixin`` from io, and no import circle forms.

Every class listed here has the same interface (see ``soda.model.io.CheckpointMixin``): called on a batch it
returns its training loss; ``encode(x, rays)`` -> z; ``decode(z, rays, ...)`` -> images; ``held_out_times(n)``
-> the diffusion times a held-out loss averages over.
"""

from __future__ import annotations

import importlib

# kind -> "module:Class"
MODEL_CLASSES: dict[str, str] = {
    "soda": "soda.model.soda:SODA",
    "vae": "soda.baselines.autoencoder:Autoencoder",
    "ae": "soda.baselines.autoencoder:Autoencoder",
}
MODEL_KINDS: tuple[str, ...] = tuple(MODEL_CLASSES)


def model_class(kind: str) -> type:
    """``model.kind`` -> its class (ValueError naming the known kinds otherwise)."""
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown model kind '{kind}' (choose from {', '.join(MODEL_KINDS)})")
    module, name = MODEL_CLASSES[kind].split(":")
    return getattr(importlib.import_module(module), name)


def build_model(cfg):
    """ModelConfig -> a fresh model of ``cfg.kind`` (SODA or a baseline), in training mode."""
    return model_class(cfg.kind)(cfg)
