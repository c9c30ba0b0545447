"""Edit fidelity with a decoder: decode the reconstructions and the edits (sliders, section mixes, novel views) with
one noise seed, read their factors with the ground-truth classifiers, score them (``soda.eval.edits.scores``).

``measure_sliders`` / ``measure_mixing`` take any ``decode(z (B, D)) -> images (B, 3, H, W) in [-1, 1]`` and
``classify(images) -> classes (B, F)``; ``FactorOracle`` is the perfect decoder (z = the factors, decoder = the
renderer); ``run_edits`` is the step of ``python -m soda.eval``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ...data import world
from .scores import (
    CIRCULAR,
    Classify,
    Decode,
    MixingScores,
    Progress,
    SliderScores,
    SliderSpec,
    _nan_none,
    accuracy,
    carriers_from_importance,
    choose_carriers,
    mixing_scores,
    section_groups,
    slider_scores,
    view_identity,
)

# ------------------------------------------------------------------------------------------------------------
# Measuring with a decoder
# ------------------------------------------------------------------------------------------------------------


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, batch: int, say=None) -> torch.Tensor:
    out = []
    for i in range(0, z.shape[0], batch):
        out.append(fn(z[i : i + batch]))
        if say:
            say(min(1.0, (i + batch) / z.shape[0]))
    return torch.cat(out) if out else torch.zeros(0)


def edit_latents(z: torch.Tensor, directions, strengths: Sequence[float]) -> torch.Tensor:
    """z (N, D), directions (K, D) or K sliders (vectors, or objects with ``move(z, amount)`` such as
    soda.sliders.HueRotation) -> (K, S, N, D): each scene moved by each slider at each strength
    (soda.api.move_along)."""
    from ... import api

    if isinstance(directions, torch.Tensor):
        a = torch.tensor([float(s) for s in strengths], dtype=z.dtype)
        return z[None, None] + a[None, :, None, None] * directions.to(z.dtype)[:, None, None, :]
    rows = [torch.stack([api.move_along(z, d, float(s)) for s in strengths]) for d in directions]
    return torch.stack(rows) if rows else z.new_zeros(0, len(strengths), *z.shape)


def measure_sliders(
    decode: Decode,
    classify: Classify,
    z: torch.Tensor,
    directions,
    specs: Sequence[SliderSpec],
    strengths: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
    batch: int = 64,
    examples: int = 1,
    progress: Progress | None = None,
) -> tuple[SliderScores, dict]:
    """Decode the reconstructions z (N, D) and every edit of z by slider k (``directions``: (K, D), or K sliders as
    ``edit_latents`` takes them) at strength s, classify both -> (SliderScores,
    {"before": (N, F), "after": (K, S, N, F), "recon": images of the first ``examples`` scenes,
    "edited": (K, S, examples, 3, H, W)})."""
    say = progress or (lambda f, s: None)
    K, S, N = len(directions), len(strengths), z.shape[0]
    rec = _batched(decode, z, batch)
    before = classify(rec)
    lat = edit_latents(z, directions, strengths).reshape(-1, z.shape[1])
    imgs = _batched(decode, lat, batch, lambda f: say(f, "decoding slider edits"))
    after = classify(imgs).reshape(K, S, N, -1)
    scores = slider_scores(before, after, specs, strengths)
    ex = {
        "before": before,
        "after": after,
        "recon": rec[:examples],
        "edited": imgs.reshape(K, S, N, *imgs.shape[1:])[:, :, :examples],
    }
    return scores, ex


def measure_mixing(
    decode: Decode,
    classify: Classify,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    section_slices: Sequence[slice],
    carriers: Sequence[Sequence[int]],
    batch: int = 64,
    progress: Progress | None = None,
) -> tuple[MixingScores, dict]:
    """Scenes A and B (N, D): A with one section from B at a time, and A with each factor's carrying sections from
    B, decoded and classified -> MixingScores."""
    say = progress or (lambda f, s: None)
    pa, pb = classify(_batched(decode, z_a, batch)), classify(_batched(decode, z_b, batch))

    def mixed(sections) -> torch.Tensor:
        m = z_a.clone()
        for k in sections:
            m[:, section_slices[k]] = z_b[:, section_slices[k]]
        return m

    groups = [[k] for k in range(len(section_slices))] + [list(c) for c in carriers]
    lat = torch.cat([mixed(g) for g in groups])
    imgs = _batched(decode, lat, batch, lambda f: say(f, "decoding section mixes"))
    pred = classify(imgs).reshape(len(groups), z_a.shape[0], -1)
    K = len(section_slices)
    return mixing_scores(pa, pb, pred[:K], pred[K:], carriers), {"pa": pa, "pb": pb, "pmix": pred}


def measure_carriers(
    decode: Decode,
    classify: Classify,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    section_slices: Sequence[slice],
    max_size: int = 3,
    batch: int = 64,
    progress: Progress | None = None,
) -> dict:
    """Scenes A and B (N, D): A with every set of up to ``max_size`` sections from B, decoded and classified -> the
    sections that carry each factor by what the decoder draws (``scores.choose_carriers``), with "n_pairs" and
    "groups" (how many sets were decoded)."""
    say = progress or (lambda f, s: None)
    pa, pb = classify(_batched(decode, z_a, batch)), classify(_batched(decode, z_b, batch))
    groups = section_groups(len(section_slices), max_size)
    lat = []
    for g in groups:
        m = z_a.clone()
        for k in g:
            m[:, section_slices[k]] = z_b[:, section_slices[k]]
        lat.append(m)
    imgs = _batched(decode, torch.cat(lat), batch, lambda f: say(f, "decoding section sets for the mix carriers"))
    out = choose_carriers(pa, pb, classify(imgs).reshape(len(groups), z_a.shape[0], -1), groups)
    return out | {"n_pairs": int(z_a.shape[0]), "groups": len(groups)}


# ------------------------------------------------------------------------------------------------------------
# The oracle: z is the factors, the decoder is the renderer
# ------------------------------------------------------------------------------------------------------------


class FactorOracle:
    """A perfect "model" of the procedural world: z holds the factors (each hue as a point on the unit circle, scale
    and orientation as grid indices, the shape one-hot) and decoding rounds z to the nearest factors and renders
    them. Its ``directions(specs)`` move exactly the factor each slider names, so the metric must score it about 1.
    """

    def __init__(self, res: int):
        self.res = res
        self.renderer = world.FixedCameraRenderer(res)
        self.dims = {"floor_hue": [0, 1], "wall_hue": [2, 3], "object_hue": [4, 5], "scale": [6]}
        self.dims |= {"shape": [7, 8, 9, 10], "orientation": [11]}
        self.z_dim = 12
        self.section_slices = [slice(*((d[0], d[-1] + 1))) for d in self.dims.values()]  # one section per factor

    def encode(self, factors: torch.Tensor) -> torch.Tensor:
        f = factors.long()
        z = torch.zeros(f.shape[0], self.z_dim)
        for j, name in enumerate(CIRCULAR):
            ang = f[:, j].float() * (2 * math.pi / 10)
            z[:, self.dims[name]] = torch.stack([ang.cos(), ang.sin()], 1)
        z[:, 6] = f[:, 3].float()
        z[:, 7:11] = torch.nn.functional.one_hot(f[:, 4], 4).float()
        z[:, 11] = f[:, 5].float()
        return z

    def factors(self, z: torch.Tensor) -> torch.Tensor:
        """The nearest grid factors of latents (B, 12) -> (B, 6)."""
        out = torch.zeros(z.shape[0], 6, dtype=torch.long)
        for j, name in enumerate(CIRCULAR):
            c, s = z[:, self.dims[name][0]], z[:, self.dims[name][1]]
            out[:, j] = torch.round(torch.atan2(s, c) / (2 * math.pi / 10)).long() % 10
        out[:, 3] = z[:, 6].round().clamp(0, world.FACTOR_SIZES[3] - 1).long()
        out[:, 4] = z[:, 7:11].argmax(1)
        out[:, 5] = z[:, 11].round().clamp(0, world.FACTOR_SIZES[5] - 1).long()
        return out

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.renderer(self.factors(z)) * 2 - 1

    def directions(self, specs: Sequence[SliderSpec]) -> torch.Tensor:
        """One direction per slider that moves its factor and nothing else: a unit of strength takes a hue or the
        shape past its class border and scale or orientation across half its range."""
        out = torch.zeros(len(specs), self.z_dim)
        for k, spec in enumerate(specs):
            if spec.factor in CIRCULAR:  # 1.5 x the circle's radius: one unit turns a hue past the class border
                ang = spec.plus * 2 * math.pi / 10
                out[k, self.dims[spec.factor]] = 1.5 * torch.tensor([math.cos(ang), math.sin(ang)])
            elif spec.factor == "shape":
                out[k, 7 + spec.plus] = 1.5
            else:
                sign = 1.0 if spec.plus > (spec.minus or 0) else -1.0
                out[k, self.dims[spec.factor][0]] = sign * world.FACTOR_SIZES[spec.index] / 2
        return out


# ------------------------------------------------------------------------------------------------------------
# The step of python -m soda.eval
# ------------------------------------------------------------------------------------------------------------


def classifier_fn(clf) -> Classify:
    return lambda images: clf.predict(images)


def run_edits(
    model,
    n_scenes: int = 16,
    strengths: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
    steps: int | None = None,
    seed: int = 0,
    view_scenes: int = 8,
    view_frames: int = 6,
    section_importance: np.ndarray | None = None,
    sliders: tuple[torch.Tensor, list[SliderSpec], str] | None = None,
    carriers: tuple[list[list[int]], str] | None = None,
    cache=None,
    progress: Progress | None = None,
) -> tuple[dict, dict]:
    """Edit fidelity of a procedural-world SODA checkpoint -> (metrics, figure arrays). ``sliders`` = (directions
    (K, D), specs, where they came from): the named sliders to judge (``soda.eval.shipped.shipped_sliders`` gives the
    ones the explorer ships; required); they are measured on ``n_scenes``
    other held-out scenes at ``strengths`` (std), decoded with ``steps`` (default: ``soda.chosen_steps.edit_steps``, the
    measured full-quality steps) and one noise seed. Section mixing swaps one section at a time between those scenes
    and n_scenes others; the sections expected to carry each factor are ``carriers`` = (per factor the sections, where
    they came from: the explorer's, chosen on other scenes by decoded mixes, ``soda.eval.shipped.shipped_carriers``),
    else those of ``section_importance`` (n_sections, F); with neither there is no mixing step."""
    from ... import api
    from ...chosen_steps import edit_steps
    from ...clip.factors import load_or_train_factor_classifiers
    from ...data.views import world_eval_set
    from ...paths import cache_root

    say = progress or (lambda f, s: None)
    t0 = time.time()
    steps = steps or edit_steps(model)
    store = cache if cache is not None else cache_root() / "factor-classifiers"
    say(0.0, "factor classifiers")
    clf = load_or_train_factor_classifiers(model.res, store)
    classify = classifier_fn(clf)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return api.decode(model, z, steps=steps, seed=seed)

    say(0.05, "slider directions")
    if sliders is None:
        raise ValueError("run_edits needs the sliders to judge: soda.eval.shipped.shipped_sliders(model)")
    dirs, specs, source = sliders
    data = world_eval_set(2 * n_scenes, model.res, split="test", seed=seed + 5, camera="fixed")
    z = api.encode(model, data["images"])
    z_a, z_b = z[:n_scenes], z[n_scenes:]
    m: dict = {"n_scenes": n_scenes, "steps": steps, "seed": seed, "strengths": [float(s) for s in strengths]}
    m["directions_from"] = source
    m["classifier_accuracy_clean"] = dict(clf.accuracy)
    scores, ex = measure_sliders(
        decode, classify, z_a, dirs, specs, strengths, progress=lambda f, s: say(0.1 + 0.6 * f, s)
    )
    m["classifier_accuracy_decoded"] = accuracy(ex["before"], data["factors"][:n_scenes])
    m["sliders"] = scores.to_json()
    figs = {"sliders": scores, "slider_examples": (ex["recon"], ex["edited"])}

    # the ceiling: the same sliders, scenes and classifiers with the renderer as a perfect decoder
    oracle = FactorOracle(model.res)
    o_scores, _ = measure_sliders(
        oracle.decode, classify, oracle.encode(data["factors"][:n_scenes]), oracle.directions(specs), specs, strengths
    )
    m["oracle"] = {
        "effect": dict(zip(scores.labels, _nan_none(o_scores.effect), strict=True)),
        "preservation": dict(zip(scores.labels, _nan_none(o_scores.preservation), strict=True)),
    }

    if hasattr(model, "n_sections") and model.n_sections > 1 and (carriers or section_importance is not None):
        say(0.7, "section mixing")
        if carriers is not None:  # measured on decoded mixes of other scenes (the explorer's)
            chosen, where = [list(c) for c in carriers[0]], carriers[1]
        else:  # the caller's importance matrix (the runner's DCI)
            chosen = carriers_from_importance(section_importance)
            where = "the DCI importance matrix of z summed within each section"
        mix, _ = measure_mixing(decode, classify, z_a, z_b, api.section_slices(model), chosen)
        m["mixing"] = mix.to_json()
        m["mixing"]["carriers_from"] = where
        if section_importance is not None:
            m["mixing"]["importance"] = np.asarray(section_importance).tolist()
        figs["mixing"] = mix

    if model.uses_cameras and view_scenes > 0 and view_frames > 0:
        say(0.8, "novel-view identity")
        m["views"], figs["views"] = _view_step(model, clf.res, view_scenes, view_frames, steps, seed, store)
    m["seconds"] = round(time.time() - t0, 1)
    say(1.0, "done")
    return m, figs


def _view_step(model, res: int, n: int, v: int, steps: int, seed: int, store) -> tuple[dict, tuple]:
    """Orbit frames of n held-out scenes (v cameras across the training azimuths), decoded from the source latent,
    read by classifiers trained on random cameras; the same frames rendered by the renderer give the ceiling."""
    from ... import api
    from ...clip.factors import load_or_train_factor_classifiers
    from ...data.views import world_eval_set
    from ...data.world import render, spherical_camera

    vclf = load_or_train_factor_classifiers(res, store, camera="random")
    data = world_eval_set(n, model.res, split="test", seed=seed + 6, camera="fixed")
    z = api.encode(model, data["images"])
    cams = api.orbit_cameras(v)
    src = api.decode(model, z, steps=steps, seed=seed)
    frames, truth = [], []
    for c in cams:
        frames.append(api.decode(model, z, camera=c, steps=steps, seed=seed))
        K, c2w = spherical_camera(c.azimuth, c.elevation, c.radius, model.res, batch=n)
        truth.append(render(data["factors"], K, c2w, model.res) * 2 - 1)
    fr = torch.stack(frames, 1)  # (n, v, 3, H, W)
    tr = torch.stack(truth, 1)
    p_src, p_fr = vclf.predict(src), vclf.predict(fr.flatten(0, 1)).reshape(n, v, -1)
    p_true_src = vclf.predict(data["images"])
    p_tr = vclf.predict(tr.flatten(0, 1)).reshape(n, v, -1)
    out = {
        "decoded": view_identity(p_src, p_fr),
        "renderer": view_identity(p_true_src, p_tr),
        "cameras": [[c.azimuth, c.elevation, c.radius] for c in cams],
        "classifier_accuracy_clean": dict(vclf.accuracy),
        "n_scenes": n,
    }
    return out, (src, fr, p_src, p_fr)
