"""The named sliders and the mix carriers the explorer ships for a checkpoint, for the evaluation to judge
(``soda.eval.edits.run_edits``).

Lives above both ``soda.precompute`` (the cached explorer assets) and ``soda.sliders`` (the fitted directions), so that
neither ``soda.eval.edits`` nor ``soda.sliders`` imports the other's caller.
"""

from __future__ import annotations

import torch

from .edits import SliderSpec, default_specs, spec_for_label


def shipped_sliders(model, fit_latents=None, seed: int = 0) -> tuple[torch.Tensor | list, list[SliderSpec], str]:
    """The named sliders the explorer ships for ``model``: those of its explorer assets when they are cached for
    these weights, else fitted with soda.sliders' shipped method on ``fit_latents`` (Z, factors) (default: 2000
    encoded held-out scenes) -> (sliders, specs, where they came from). The sliders are K directions (D,) or
    z-dependent sliders from the cache, a (K, D) tensor when fitted here."""
    from .. import api, precompute, sliders
    from ..data.views import world_eval_set

    ckpt = getattr(model, "checkpoint_dir", None)
    if ckpt is not None:
        for assets in precompute.cached_assets(ckpt):
            pairs = [(k, spec_for_label(lab)) for k, lab in enumerate(assets.named_labels)]
            pairs = [(k, sp) for k, sp in pairs if sp is not None]
            if len(pairs) == len(default_specs()):
                method = assets.meta.get("slider_effects", {}).get("method", "as stored")
                named = assets.named_sliders()  # directions or z-dependent sliders (soda.sliders.moves)
                dirs = [named[k] for k, _ in pairs]
                where = f"the explorer's cached sliders ({assets.folder}; method {method})"
                return dirs, [sp for _, sp in pairs], where
    if fit_latents is None:
        fit = world_eval_set(2000, model.res, split="test", seed=seed + 11, camera="fixed")
        fit_latents = (api.encode(model, fit["images"]), fit["factors"])
    Z, fac = fit_latents
    dirs, specs = sliders.slider_directions(model, Z, fac)
    return dirs, specs, f"fitted here on {Z.shape[0]} held-out latents (soda.sliders, method '{sliders.SHIPPED}')"


def shipped_carriers(model) -> tuple[list[list[int]], str] | None:
    """The sections the explorer's Mix panel takes from B for each factor (chosen by ``soda.precompute`` on decoded
    mixes of its own held-out scenes, ``soda.eval.edits.measure_carriers``): (per factor of FACTORS, in order, the
    sections; where they came from), or None when the cached assets hold none for these weights."""
    from .. import precompute
    from .edits import FACTORS

    ckpt = getattr(model, "checkpoint_dir", None)
    for assets in precompute.cached_assets(ckpt) if ckpt is not None else ():
        mix = (assets.meta.get("slider_effects") or {}).get("mixing")
        if mix and all(mix["carriers"].get(f) for f in FACTORS):
            where = f"the explorer's mix carriers ({assets.folder}; chosen on {mix['n_pairs']} other pairs by decoded"
            where += " mixes)"
            return [list(mix["carriers"][f]) for f in FACTORS], where
    return None


def shipped_free_sliders(model, latents: torch.Tensor) -> tuple[list, str]:
    """The label-free sliders the explorer shows for ``model``: those of its cached explorer assets for these
    weights, else fitted here on ``latents`` (N, z_dim) alone by soda.sliders.labelfree's shipped method -> (M
    sliders: directions (z_dim,) or moves, where they came from). Nothing here reads a label."""
    from .. import precompute
    from ..sliders.labelfree import SHIPPED_FREE, explorer_directions

    ckpt = getattr(model, "checkpoint_dir", None)
    for assets in precompute.cached_assets(ckpt) if ckpt is not None else ():
        if assets.free_dirs is not None:
            return assets.free_sliders(), f"the explorer's label-free sliders ({assets.folder})"
    D = explorer_directions(model, latents)
    return D, f"fitted here on {latents.shape[0]} held-out latents without labels (method '{SHIPPED_FREE}')"
