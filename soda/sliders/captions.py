"""What each slider measurably does: the one-line captions the explorer shows under its sliders, measured on decoded
held-out scenes at precompute time (``measure_for_assets``) and stored with the explorer assets
(``ensure_measured``, which first lets the metric choose the named sliders' directions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..eval.edits import FACTORS, WEAK, SliderSpec
from .choose import CANDIDATES, choose_directions
from .fit import SHIPPED

WEAK_EFFECT = WEAK  # a named slider that moves its factor the promised way in fewer edits than this is weak
Progress = Callable[[float, str], None]


# ------------------------------------------------------------------------------------------------------------
# Captions: what each slider measurably does
# ------------------------------------------------------------------------------------------------------------


def caption(
    effect: float | None,
    preservation: float,
    spec: SliderSpec | None = None,
    weak: float = WEAK_EFFECT,
    unit: str | None = None,
) -> str:
    """One short line: 'object hue to blue (- yellow): moves it in 91%, keeps the rest in 88%' ('weak: ...' below
    ``weak``); a slider whose amounts are not std of the data (soda.sliders.moves) says its ``unit``."""
    what = spec.short() if spec is not None else "the slider"
    if unit:
        what += f", {unit}"
    eff = "n/a" if effect is None or (isinstance(effect, float) and math.isnan(effect)) else f"{effect:.0%}"
    line = f"{what}: moves it in {eff}, keeps the rest in {preservation:.0%}"
    bad = effect is None or (isinstance(effect, float) and math.isnan(effect)) or effect < weak
    return ("weak: " if bad else "") + line


# ------------------------------------------------------------------------------------------------------------
# Precompute: measure the shipped sliders and the label-free sliders once, store captions with the assets
# ------------------------------------------------------------------------------------------------------------

MEASURE_DEFAULTS = {
    "n_scenes": 16,  # held-out scenes for the named sliders
    "free_scenes": 16,  # held-out scenes for the label-free sliders
    "strengths": (-2.0, -1.0, 1.0, 2.0),
    "steps": None,  # decoder steps (default: the model's preview steps)
    "seed": 0,
    "classifier": {},  # settings for soda.clip.factors.load_or_train_factor_classifiers
    "candidates": CANDIDATES,  # direction methods measured per slider before the captions (ensure_measured)
    "select_scenes": 12,  # held-out scenes for that choice (neither the captions' nor soda.eval's)
    "free_strengths": (-2.0, -1.0, 1.0, 2.0),  # the label-free sliders' strengths (std)
    "mix_pairs": 16,  # scene pairs whose decoded mixes choose each factor's sections (the Mix panel); 0 skips
}


def _named(values) -> dict:
    return dict(zip(FACTORS, [None if math.isnan(float(x)) else float(x) for x in values], strict=True))


FREE_WEAK = 0.25  # a label-free slider whose most-moved factor changes in fewer edits than this is weak


def free_caption(factor: str | None, change: float, preservation: float) -> str:
    """'moves object hue in 63%, keeps the rest in 80%', or 'weak: ...' when the top factor rarely moves."""
    if factor is None:
        return "weak: moves no factor measurably"
    line = f"moves {factor.replace('_', ' ')} in {change:.0%}, keeps the rest in {preservation:.0%}"
    return ("weak: " if change < FREE_WEAK else "") + line


def measure_free(
    decode: Callable, classify: Callable, z: torch.Tensor, free_dirs: Sequence, strengths: Sequence[float]
) -> tuple[dict, dict]:
    """Every label-free slider of ``free_dirs`` (M directions (z_dim,) or sliders with ``move``) decoded at
    ``strengths`` on scenes z -> ({"free{i}": the
    factor it moves most, how often, how often the rest is kept, its caption}, per factor the slider that moves it
    most cleanly (soda.sliders.labelfree.best_per_factor))."""
    from ..eval.edits import edit_latents
    from .labelfree import best_per_factor, direction_outcomes

    names = [f"free{i + 1}" for i in range(len(free_dirs))]
    before = classify(decode(z))
    s = [float(x) for x in strengths]
    lat = edit_latents(z, free_dirs, s).reshape(-1, z.shape[1])
    imgs = torch.cat([decode(lat[i : i + 64]) for i in range(0, lat.shape[0], 64)])
    after = classify(imgs).reshape(len(names), len(s), z.shape[0], -1)
    o = direction_outcomes(before, after)
    out = {}
    for i, name in enumerate(names):
        moved = o["changes"][i].nan_to_num(0)
        top = int(moved.argmax()) if float(moved.max()) > 0 else None
        change = float(moved[top]) if top is not None else 0.0
        pres = float(o["keeps"][i, top]) if top is not None else 1.0
        factor = FACTORS[top] if top is not None else None
        out[name] = {
            "factor": factor,
            "change": change,
            "preservation": pres,
            "weak": factor is None or change < FREE_WEAK,
            "changes": _named(o["changes"][i].tolist()),
            "caption": free_caption(factor, change, pres),
        }
    return out, best_per_factor(o["changes"], o["keeps"], names)


def measure_for_assets(
    model,
    named_dirs,
    named_labels: Sequence[str],
    free_dirs: Sequence | None,
    cache=None,
    progress: Progress | None = None,
    **sizes,
) -> dict:
    """Measure the named sliders (effect / preservation against their promise) and every label-free slider of
    ``free_dirs`` (directions or moves: which factor each moves most, how often, and how often the rest is kept;
    per factor the slider that moves it most cleanly) on decoded held-out scenes -> the JSON stored as
    ``slider_effects`` in the explorer assets (captions included). Sizes: MEASURE_DEFAULTS."""
    from .. import api
    from ..clip.factors import load_or_train_factor_classifiers
    from ..data.views import world_eval_set
    from ..eval.edits import measure_carriers, measure_sliders, spec_for_label
    from ..paths import cache_root

    opt = {**MEASURE_DEFAULTS, **sizes}
    say = progress or (lambda f, s: None)
    steps = opt["steps"] or model.cfg.diffusion.preview_steps
    strengths = [float(s) for s in opt["strengths"]]
    store = cache if cache is not None else cache_root() / "factor-classifiers"
    say(0.0, "factor classifiers")
    clf = load_or_train_factor_classifiers(model.res, store, **opt["classifier"])
    n = max(int(opt["n_scenes"]), int(opt["free_scenes"]), int(opt["mix_pairs"]))
    data = world_eval_set(n, model.res, split="test", seed=int(opt["seed"]) + 7, camera="fixed")
    z = api.encode(model, data["images"])

    def decode(zz: torch.Tensor) -> torch.Tensor:
        return api.decode(model, zz, steps=steps, seed=int(opt["seed"]))

    out: dict = {
        "method": SHIPPED,
        "strengths": strengths,
        "n_scenes": int(opt["n_scenes"]),
        "free_scenes": int(opt["free_scenes"]),
        "free_strengths": [float(x) for x in opt["free_strengths"]],
        "steps": steps,
        "classifier_accuracy": dict(clf.accuracy),
        "named": {},
        "free": {},
    }
    pairs = [(k, spec_for_label(lab)) for k, lab in enumerate(named_labels)]
    pairs = [(k, s) for k, s in pairs if s is not None]
    if pairs:
        specs = [s for _, s in pairs]
        dirs = [named_dirs[k] for k, _ in pairs]  # directions (z_dim,) or z-dependent sliders
        sc, _ = measure_sliders(
            decode, clf.predict, z[: opt["n_scenes"]], dirs, specs, strengths, progress=lambda f, s: say(0.5 * f, s)
        )
        for k, s in enumerate(specs):
            eff = None if math.isnan(sc.effect[k]) else float(sc.effect[k])
            pres = float(sc.preservation[k])
            out["named"][s.label] = {
                "factor": s.factor,
                "effect": eff,
                "preservation": pres,
                "weak": eff is None or eff < WEAK_EFFECT,
                "caption": caption(eff, pres, s, WEAK_EFFECT, unit=getattr(dirs[k], "unit", None)),
                "changes": _named(sc.changes[k]),
            }
    # label-free sliders: no promise; the factor they move most names them, and per factor the slider that moves it
    # most cleanly is the evaluation's figure (soda.sliders.labelfree; labels score here, they never chose)
    if free_dirs is not None and len(free_dirs):
        out["free"], out["free_best"] = measure_free(
            decode, clf.predict, z[: opt["free_scenes"]], free_dirs, opt["free_strengths"]
        )
        say(0.9, "measured the label-free sliders")
    if getattr(model, "n_sections", 1) > 1 and opt["mix_pairs"] > 1:
        # the Mix panel's "take a factor from B": the sections that carry it, measured on decoded mixes of scene
        # pairs (these scenes, each with the next), not read from the encoder's importance
        zm = z[: opt["mix_pairs"]]
        out["mixing"] = measure_carriers(
            decode,
            clf.predict,
            zm,
            zm.roll(1, 0),
            api.section_slices(model),
            progress=lambda f, s: say(0.9 + 0.1 * f, s),
        )
    say(1.0, "done")
    return out


def ensure_measured(
    model,
    assets,
    force: bool = False,
    choose: bool = True,
    progress: Progress | None = None,
    save: Callable | None = None,
    **sizes,
) -> dict | None:
    """Measure the sliders of procedural-world explorer ``assets`` unless they already carry a measurement (or
    ``force``): with ``choose``, the named sliders are first replaced by the directions chosen by the metric
    (choose_directions, on the assets' map latents; the assets are saved again), then every slider is measured on
    other held-out scenes (measure_for_assets). Stored as ``assets.meta["slider_effects"]`` and in the cache folder.
    Other data sets have no ground-truth classifiers: None. Sizes: MEASURE_DEFAULTS. ``save(assets,
    directions_changed=...)`` persists the result (``soda.precompute.persist_measurement``); without it the
    measurement lives in memory."""
    cfg = getattr(model, "full_config", None)
    if (cfg is not None and cfg.data.dataset != "world") or list(assets.factor_names) != list(FACTORS):
        return None
    if not force and assets.meta.get("slider_effects"):
        return assets.meta["slider_effects"]
    say = progress or (lambda f, s: None)
    chosen = None
    if choose and assets.map_factors is not None:
        from ..clip.factors import load_or_train_factor_classifiers
        from ..paths import cache_root

        opt = {**MEASURE_DEFAULTS, **sizes}
        clf = load_or_train_factor_classifiers(
            model.res, cache_root() / "factor-classifiers", lambda f, s: say(0.2 * f, s), **opt["classifier"]
        )
        dirs, specs, chosen = choose_directions(
            model,
            assets.map_latents,
            assets.map_factors,
            clf,
            opt["candidates"],
            opt["select_scenes"],
            opt["strengths"],
            opt["steps"],
            opt["seed"],
            progress=lambda f, s: say(0.2 + 0.4 * f, s),
        )
        if len(specs):
            assets.set_named(dirs, [s.label for s in specs])
    eff = measure_for_assets(
        model,
        assets.named_sliders(),
        assets.named_labels,
        assets.free_sliders(),
        progress=lambda f, s: say((0.6 if chosen else 0.0) + (0.4 if chosen else 1.0) * f, s),
        **sizes,
    )
    if chosen:
        eff.update(method="chosen per slider by measured edit fidelity", **chosen)
    assets.meta["slider_effects"] = eff
    if save is not None:
        save(assets, directions_changed=bool(chosen))
    return eff


def ensure_free_measured(model, assets, progress: Progress | None = None, **sizes) -> bool:
    """Measure the label-free sliders of procedural-world ``assets`` whose stored measurement predates them (the
    named sliders' measurement is kept) -> whether a measurement was added (the caller saves the assets)."""
    eff = assets.meta.get("slider_effects")
    if not eff or assets.free_dirs is None or eff.get("free"):
        return False
    from .. import api
    from ..clip.factors import load_or_train_factor_classifiers
    from ..data.views import world_eval_set
    from ..paths import cache_root

    opt = {**MEASURE_DEFAULTS, **sizes}
    say = progress or (lambda f, s: None)
    clf = load_or_train_factor_classifiers(model.res, cache_root() / "factor-classifiers", **opt["classifier"])
    data = world_eval_set(int(opt["free_scenes"]), model.res, split="test", seed=int(opt["seed"]) + 7, camera="fixed")
    steps = opt["steps"] or model.cfg.diffusion.preview_steps
    say(0.0, "measuring the label-free sliders")
    eff["free"], eff["free_best"] = measure_free(
        lambda zz: api.decode(model, zz, steps=steps, seed=int(opt["seed"])),
        clf.predict,
        api.encode(model, data["images"]),
        assets.free_sliders(),
        opt["free_strengths"],
    )
    eff["free_scenes"], eff["free_strengths"] = int(opt["free_scenes"]), [float(x) for x in opt["free_strengths"]]
    for old in ("sections", "pc_scenes", "pc_strengths"):  # the section-PC sliders' captions: no longer shown
        eff.pop(old, None)
    say(1.0, "done")
    return True
