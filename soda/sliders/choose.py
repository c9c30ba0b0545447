"""Directions chosen by the metric: every candidate method is measured on decoded held-out scenes and each slider
keeps the one that does best (``choose_directions``, used by ``python -m soda.precompute``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..eval.edits import SliderSpec, default_specs
from .decoder import projected_directions, score_gradients
from .fit import SHIPPED, fit_directions, section_importance
from .moves import ROTATE_METHODS, fit_rotations, fit_steps, fit_swaps

# what choose_directions measures per slider (the rotations only for the hue sliders, the swap for the shapes, the
# step for scale and orientation)
CANDIDATES = ("logistic", "sections", "mean", "mean_all", "projected", *ROTATE_METHODS, "swap", "step")
Progress = Callable[[float, str], None]


CHOICE_MARGIN = 0.05  # another method replaces SHIPPED for a slider only when it beats it by more than this


def _score(effect: float | None, preservation: float) -> tuple[float, float]:
    e = 0.0 if effect is None or math.isnan(effect) else float(effect)
    return min(e, preservation), e * preservation


def choose_directions(
    model,
    Z: torch.Tensor,
    factors: torch.Tensor,
    classifiers,
    candidates: Sequence[str] = CANDIDATES,
    n_scenes: int = 12,
    strengths: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
    steps: int | None = None,
    seed: int = 0,
    importance: np.ndarray | None = None,
    progress: Progress | None = None,
) -> tuple[list, list[SliderSpec], dict]:
    """Directions chosen by the metric: every ``candidates`` method is fitted on Z (N, z_dim) with its grid factors,
    each slider of each is measured (soda.eval.edits.measure_sliders) on ``n_scenes`` held-out scenes that are
    neither the caption's nor the evaluation's, and each slider keeps the method whose direction does best
    (min(effect, preservation), ties by the product; the SHIPPED method, the best single one, wins unless another
    beats it by more than CHOICE_MARGIN: with a dozen scenes, smaller differences are noise)
    -> (sliders: K directions (z_dim,) or z-dependent sliders (soda.sliders.moves), specs, {"chosen": {label: method},
    "selection": {label: {method: {"effect", "preservation"}}}, sizes})."""
    from .. import api
    from ..data.views import world_eval_set
    from ..eval.edits import measure_sliders

    say = progress or (lambda f, s: None)
    n_sec = max(1, int(getattr(model, "n_sections", 1) or 1))
    if importance is None:
        say(0.0, "section importance")
        importance = section_importance(Z, factors, n_sec)
    steps = steps or model.cfg.diffusion.preview_steps
    data = world_eval_set(n_scenes, model.res, split="test", seed=seed + 9, camera="fixed")
    z = api.encode(model, data["images"])

    def decode(zz: torch.Tensor) -> torch.Tensor:
        return api.decode(model, zz, steps=steps, seed=seed)

    best: dict[str, tuple] = {}
    table: dict[str, dict] = {}
    grads: list = []  # the decoder-measured gradients, computed once for 'projected' and 'rotate_proj'

    def gradients(i: int) -> tuple:
        if not grads:
            say(i / len(candidates), "choosing directions: gradients through the decoder")
            grads.append(score_gradients(model, classifiers, Z[:16], 4, seed))
        return grads[0]

    for i, method in enumerate(candidates):
        if method == "projected":
            D, kept = fit_directions(Z, factors, default_specs(), "mean_all", importance, Z.shape[1] // n_sec)
            D = projected_directions(model, classifiers, D, kept, Z[:16], seed=seed, gradients=gradients(i))
        elif method in ("swap", "step"):
            D, kept = (fit_swaps if method == "swap" else fit_steps)(Z, factors, default_specs())
        elif method in ROTATE_METHODS:
            g = gradients(i) if method == "rotate_proj" else None
            sd = Z.shape[1] // n_sec
            D, kept = fit_rotations(Z, factors, default_specs(), method, importance, sd, model, classifiers, seed, g)
        else:
            D, kept = fit_directions(Z, factors, default_specs(), method, importance, Z.shape[1] // n_sec)
        sc, _ = measure_sliders(
            decode,
            classifiers.predict,
            z,
            D,
            kept,
            strengths,
            progress=lambda f, s, i=i, m=method: say((i + f) / len(candidates), f"choosing directions: {m}"),
        )
        for k, spec in enumerate(kept):
            eff = None if math.isnan(sc.effect[k]) else float(sc.effect[k])
            pres = float(sc.preservation[k])
            table.setdefault(spec.label, {})[method] = {"effect": eff, "preservation": pres}
            score = _score(eff, pres)
            if method == SHIPPED:  # a few scenes decide: the best single method keeps its place unless clearly beaten
                score = (score[0] + CHOICE_MARGIN, score[1])
            if spec.label not in best or score > best[spec.label][0]:
                best[spec.label] = (score, method, D[k], spec)
    order = [s for s in default_specs() if s.label in best]
    dirs = [best[s.label][2] for s in order]
    info = {
        "chosen": {s.label: best[s.label][1] for s in order},
        "selection": table,
        "candidates": list(candidates),
        "select_scenes": n_scenes,
        "select_strengths": [float(x) for x in strengths],
    }
    return dirs, order, info
