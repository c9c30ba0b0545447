"""Edit fidelity: do sliders, section mixing and novel views do what they say, measured on decoded images.

DCI and the probes read z; they do not look at what the decoder draws after an edit. Here every edit is decoded and
the ground-truth factor classifiers of ``soda.clip.factors`` (a small CNN per factor, trained on renders with exact
labels) read the factors of the reconstruction and of the edit, decoded with the same noise seed:

- **effect**: how often the intended factor moves the intended way. An ordered factor's slider has two ends, a class
  the + side moves towards and one the - side moves towards (scale and orientation: the largest and the smallest
  bin; a hue, which is circular, a colour and its opposite); an edit succeeds when the class gets strictly closer to
  the end its sign names (circular distance for hues), counted over the edits that can (the class is not already at
  that end). For ordered factors this is the signed step. A categorical slider ("shape: sphere") succeeds at + when
  the shape becomes the named one (counted where it was another) and at - when a scene of that shape leaves it.
- **preservation**: how often every other factor keeps its class (orientation is compared only where both images
  show a shape whose orientation is visible, the cube or the capsule).
- **changes**: the slider x factor matrix of how often each factor's class changes (what a slider really moves).

Section mixing (one section of scene B put into scene A at a time): the factors the section carries (from the DCI
importance per section) should follow the donor B, the rest should stay A's. Novel views (identity): every factor of
every orbit frame, read by classifiers trained on random cameras, should agree with the decoded source view's.

The scores are pure functions of predicted classes (``slider_scores``, ``mixing_scores``, ``view_identity``); the
``measure_*`` functions decode with any ``decode(z) -> images`` callable, so a model whose z holds the factors and
whose decoder is the renderer (``FactorOracle``) scores about 1 and the same model with permuted directions low
(tests/test_edits.py). ``run_edits`` is the step of ``python -m soda.eval``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..clip.factors import ORIENTATION_VISIBLE, bin_factors, class_counts
from ..data import world

FACTORS = world.FACTOR_NAMES
CIRCULAR = ("floor_hue", "wall_hue", "object_hue")
HUE_NAMES = ("red", "orange", "yellow", "green", "teal", "cyan", "azure", "blue", "purple", "pink")  # hue i/10
SHAPE = FACTORS.index("shape")
ORIENT = FACTORS.index("orientation")
WEAK = 0.5  # a slider whose effect or preservation is below this is marked weak in the app

Decode = Callable[[torch.Tensor], torch.Tensor]  # (B, D) latents -> (B, 3, H, W) images in [-1, 1]
Classify = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) images -> (B, F) classes (binned as class_counts())
Progress = Callable[[float, str], None]


# ------------------------------------------------------------------------------------------------------------
# What a slider promises
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SliderSpec:
    """A slider's promise: ``factor`` moves towards class ``plus`` at positive amounts and towards ``minus`` at
    negative ones (ordered factors); with ``minus`` None it is a categorical slider towards class ``plus``."""

    label: str
    factor: str
    plus: int
    minus: int | None = None

    @property
    def index(self) -> int:
        return FACTORS.index(self.factor)

    @property
    def categorical(self) -> bool:
        return self.minus is None

    def short(self) -> str:
        """What the slider promises, for captions: 'object hue to blue (- yellow)', 'shape: sphere'."""
        if self.categorical:
            return self.label
        name = self.factor.replace("_", " ")
        if self.factor in CIRCULAR:
            return f"{name} to {HUE_NAMES[self.plus]} (- {HUE_NAMES[self.minus]})"
        return f"{name} up (- down)"


def hue_names(spec: SliderSpec) -> tuple[str, str]:
    """A hue slider's (- end, + end) colour names."""
    return HUE_NAMES[spec.minus], HUE_NAMES[spec.plus]


def default_specs(hue_plus: int = 7) -> list[SliderSpec]:
    """The procedural world's named sliders, labelled as the explorer names them: one per hue (``hue_plus`` at +, the
    opposite colour at -; 7, blue, is where the upper half of the hues (5..9) is centred), scale and orientation (the
    largest / smallest bin), and one per shape."""
    n = class_counts()
    specs = [SliderSpec(f"{f} +", f, hue_plus % 10, (hue_plus + 5) % 10) for f in CIRCULAR]
    specs.append(SliderSpec("scale +", "scale", n[FACTORS.index("scale")] - 1, 0))
    specs += [SliderSpec(f"shape: {s}", "shape", k) for k, s in enumerate(world.SHAPE_NAMES)]
    specs.append(SliderSpec("orientation +", "orientation", n[ORIENT] - 1, 0))
    return specs


def spec_for_label(label: str) -> SliderSpec | None:
    """The SliderSpec of an explorer label ('object_hue +', 'shape: sphere'), None for any other label."""
    for spec in default_specs():
        if spec.label == label:
            return spec
    return None


# ------------------------------------------------------------------------------------------------------------
# Pure scores on predicted classes
# ------------------------------------------------------------------------------------------------------------


def class_distance(a: torch.Tensor, b: torch.Tensor, factor: str) -> torch.Tensor:
    """Distance between classes of one factor: circular for the hues, absolute difference otherwise."""
    d = (a.long() - b.long()).abs()
    if factor in CIRCULAR:
        n = class_counts()[FACTORS.index(factor)]
        d = torch.minimum(d, n - d)
    return d


def _visible(shape: torch.Tensor) -> torch.Tensor:
    return torch.isin(shape, torch.tensor(ORIENTATION_VISIBLE))


def comparable(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(..., F) x 2 -> (..., F) bool: which factors can be compared (orientation only between visible shapes)."""
    ok = torch.ones(torch.broadcast_shapes(before.shape, after.shape), dtype=torch.bool)
    ok[..., ORIENT] = _visible(before[..., SHAPE]) & _visible(after[..., SHAPE])
    return ok


def change_rates(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(..., F) x 2 -> (F,) fraction of comparable pairs whose class differs (NaN where none is comparable)."""
    ok = comparable(before, after).reshape(-1, len(FACTORS)).float()
    diff = (before != after).reshape(-1, len(FACTORS)).float()
    return (diff * ok).sum(0) / ok.sum(0)  # 0/0 -> NaN


def slider_outcomes(
    before: torch.Tensor, after: torch.Tensor, spec: SliderSpec, strengths: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One slider. before (N, F) classes of the reconstructions, after (S, N, F) of the edits at ``strengths``
    -> (eligible, success, kept), each (S, N) bool: whether the edit can move the factor the intended way, whether
    it did, and whether every other factor kept its class."""
    S, N = after.shape[:2]
    j = spec.index
    sign = torch.tensor([float(s) for s in strengths]).reshape(S, 1)
    b = before[None].expand(S, N, -1)
    if spec.categorical:
        was = b[..., j] == spec.plus
        now = after[..., j] == spec.plus
        eligible = torch.where(sign > 0, ~was, was) & (sign != 0)
        success = torch.where(sign > 0, now, ~now) & eligible
    else:
        end = torch.where(sign > 0, spec.plus, spec.minus).expand(S, N)
        d0 = class_distance(b[..., j], end, spec.factor)
        d1 = class_distance(after[..., j], end, spec.factor)
        eligible = (d0 > 0) & (sign != 0)
        success = eligible & (d1 < d0)
        if j == ORIENT:  # orientation is read only on a visible shape, before and after
            eligible = eligible & _visible(b[..., SHAPE])
            success = success & eligible & _visible(after[..., SHAPE])
    same = (after == b) | ~comparable(b, after)
    others = [g for g in range(len(FACTORS)) if g != j]
    kept = same[..., others].all(-1)
    return eligible, success, kept


@dataclass
class SliderScores:
    """Effect / preservation per slider (pooled over strengths and per strength) and the change matrix."""

    labels: list[str]
    strengths: list[float]
    effect: np.ndarray  # (K,) successes / eligible edits (NaN when none is eligible)
    preservation: np.ndarray  # (K,) fraction of edits that keep every other factor
    effect_by_strength: np.ndarray  # (K, S)
    preservation_by_strength: np.ndarray  # (K, S)
    changes: np.ndarray  # (K, F) fraction of edits that change each factor's class
    n_eligible: np.ndarray  # (K,)
    n_edits: int  # per slider
    specs: list[SliderSpec] = field(default_factory=list)

    def to_json(self) -> dict:
        def clean(a):
            return [None if (isinstance(x, float) and math.isnan(x)) else x for x in np.asarray(a, float).tolist()]

        return {
            "strengths": self.strengths,
            "n_edits": self.n_edits,
            "sliders": {
                lab: {
                    "factor": spec.factor,
                    "effect": clean([self.effect[k]])[0],
                    "preservation": clean([self.preservation[k]])[0],
                    "effect_by_strength": clean(self.effect_by_strength[k]),
                    "preservation_by_strength": clean(self.preservation_by_strength[k]),
                    "changes": dict(zip(FACTORS, clean(self.changes[k]), strict=True)),
                    "n_eligible": int(self.n_eligible[k]),
                }
                for k, (lab, spec) in enumerate(zip(self.labels, self.specs, strict=True))
            },
        }


def slider_scores(
    before: torch.Tensor, after: torch.Tensor, specs: Sequence[SliderSpec], strengths: Sequence[float]
) -> SliderScores:
    """before (N, F) classes of the reconstructions; after (K, S, N, F) classes of slider k's edit at strength s of
    scene n -> SliderScores. Pure: any classes in, the fractions out (see the module docstring)."""
    K, S = after.shape[:2]
    eff, pres = np.full(K, np.nan), np.zeros(K)
    eff_s, pres_s = np.full((K, S), np.nan), np.zeros((K, S))
    n_el, changes = np.zeros(K, int), np.zeros((K, len(FACTORS)))
    for k, spec in enumerate(specs):
        el, ok, kept = slider_outcomes(before, after[k], spec, strengths)
        n_el[k] = int(el.sum())
        if n_el[k]:
            eff[k] = float(ok.sum()) / n_el[k]
        pres[k] = float(kept.float().mean())
        for s in range(S):
            if el[s].any():
                eff_s[k, s] = float(ok[s].sum()) / float(el[s].sum())
            pres_s[k, s] = float(kept[s].float().mean())
        changes[k] = change_rates(before[None].expand_as(after[k]), after[k]).numpy()
    return SliderScores(
        [s.label for s in specs],
        [float(s) for s in strengths],
        eff,
        pres,
        eff_s,
        pres_s,
        changes,
        n_el,
        int(after.shape[1] * after.shape[2]),
        list(specs),
    )


def carriers_from_importance(importance: np.ndarray, share: float = 0.5) -> list[list[int]]:
    """DCI importance per section (n_sections, F) -> per factor, the sections that carry it: those with at least
    ``share`` of the largest section's importance for that factor."""
    imp = np.asarray(importance, float)
    return [[int(k) for k in np.flatnonzero(imp[:, f] >= share * imp[:, f].max())] for f in range(imp.shape[1])]


@dataclass
class MixingScores:
    """Sections of scene B swapped into scene A: one section at a time (the follow / stay matrices), and for each
    factor the sections that carry it, together (effect / preservation)."""

    follow: np.ndarray  # (K, F): section k alone; among pairs whose classes differ, how often the mix takes B's class
    stay: np.ndarray  # (K, F): ... how often it keeps A's class
    carriers: list[list[int]]  # per factor, the sections expected to carry it
    effect: np.ndarray  # (F,) its carrying sections swapped: how often the factor follows B (where A and B differ)
    preservation: np.ndarray  # (F,) ... how often every factor carried elsewhere keeps A's class (NaN: none is)
    n_pairs: int

    def to_json(self) -> dict:
        return {
            "carriers": dict(zip(FACTORS, self.carriers, strict=True)),
            "effect": dict(zip(FACTORS, _nan_none(self.effect), strict=True)),
            "preservation": dict(zip(FACTORS, _nan_none(self.preservation), strict=True)),
            "follow": [_nan_none(r) for r in self.follow],
            "stay": [_nan_none(r) for r in self.stay],
            "n_pairs": self.n_pairs,
        }


def _nan_none(a) -> list:
    return [None if math.isnan(x) else x for x in np.asarray(a, float).reshape(-1).tolist()]


def _follow_stay(pa: torch.Tensor, pb: torch.Tensor, pm: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    ok = comparable(pa, pm) & comparable(pb, pm) & (pa != pb)
    n = ok.float().sum(0)
    return ((pm == pb) & ok).float().sum(0).div(n).numpy(), ((pm == pa) & ok).float().sum(0).div(n).numpy()


def mixing_scores(
    pa: torch.Tensor,
    pb: torch.Tensor,
    pmix: torch.Tensor,
    pgroup: torch.Tensor,
    carriers: Sequence[Sequence[int]],
) -> MixingScores:
    """pa, pb (N, F) classes of the decoded scenes A and B; pmix (K, N, F) of A with section k from B; pgroup
    (F, N, F) of A with all of factor f's carrying sections (``carriers[f]``) from B -> MixingScores."""
    K, N, F = pmix.shape
    follow, stay = np.full((K, F), np.nan), np.full((K, F), np.nan)
    for k in range(K):
        follow[k], stay[k] = _follow_stay(pa, pb, pmix[k])
    eff, pres = np.full(F, np.nan), np.full(F, np.nan)
    for f in range(F):
        eff[f] = _follow_stay(pa, pb, pgroup[f])[0][f]
        rest = [g for g in range(F) if not set(carriers[g]) & set(carriers[f])]  # carried by untouched sections
        same = (pgroup[f] == pa) | ~comparable(pa, pgroup[f])
        if rest:
            pres[f] = float(same[:, rest].all(-1).float().mean())
    return MixingScores(follow, stay, [list(map(int, c)) for c in carriers], eff, pres, N)


def view_identity(ref: torch.Tensor, frames: torch.Tensor) -> dict:
    """ref (N, F) classes of each source, frames (N, V, F) of its other views -> {"all": fraction of frames where
    every factor agrees, "per_factor": {factor: agreement}, "per_frame": (V,) all-factor agreement}."""
    r = ref[:, None].expand_as(frames)
    ok = comparable(r, frames)
    same = (frames == r) | ~ok
    per_factor = ((frames == r) & ok).float().sum((0, 1)) / ok.float().sum((0, 1))
    return {
        "all": float(same.all(-1).float().mean()),
        "per_factor": dict(zip(FACTORS, _nan_none(per_factor), strict=True)),
        "per_frame": same.all(-1).float().mean(0).tolist(),
        "n": int(frames.shape[0] * frames.shape[1]),
    }


def accuracy(pred: torch.Tensor, factors: torch.Tensor) -> dict[str, float]:
    """Predicted classes (N, F) against true grid factors (N, F) (binned here) -> accuracy per factor (orientation
    on the truly visible shapes)."""
    true = bin_factors(factors)
    out = {}
    for j, name in enumerate(FACTORS):
        keep = _visible(factors[:, SHAPE]) if j == ORIENT else torch.ones(len(true), dtype=torch.bool)
        out[name] = float((pred[keep, j] == true[keep, j]).float().mean()) if keep.any() else float("nan")
    return out


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


def edit_latents(z: torch.Tensor, directions: torch.Tensor, strengths: Sequence[float]) -> torch.Tensor:
    """z (N, D), directions (K, D) -> (K, S, N, D) = z + strength * direction."""
    a = torch.tensor([float(s) for s in strengths], dtype=z.dtype)
    return z[None, None] + a[None, :, None, None] * directions.to(z.dtype)[:, None, None, :]


def measure_sliders(
    decode: Decode,
    classify: Classify,
    z: torch.Tensor,
    directions: torch.Tensor,
    specs: Sequence[SliderSpec],
    strengths: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
    batch: int = 64,
    examples: int = 1,
    progress: Progress | None = None,
) -> tuple[SliderScores, dict]:
    """Decode the reconstructions z (N, D) and every edit z + s * directions[k], classify both -> (SliderScores,
    {"before": (N, F), "after": (K, S, N, F), "recon": images of the first ``examples`` scenes,
    "edited": (K, S, examples, 3, H, W)})."""
    say = progress or (lambda f, s: None)
    K, S, N = directions.shape[0], len(strengths), z.shape[0]
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
    fit_latents: tuple[torch.Tensor, torch.Tensor] | None = None,
    cache=None,
    progress: Progress | None = None,
) -> tuple[dict, dict]:
    """Edit fidelity of a procedural-world SODA checkpoint -> (metrics, figure arrays). The named sliders are the
    ones the explorer ships (``shipped_sliders``: its cached assets, else soda.sliders' method fitted on
    ``fit_latents`` = (Z, factors) of held-out scenes, default 2000 encoded here); they are measured on ``n_scenes``
    other held-out scenes at ``strengths`` (std), decoded with ``steps`` (default: the model's preview steps) and
    one noise seed. Section mixing swaps one section at a time between those scenes and n_scenes others; the
    section expected to carry each factor comes from ``section_importance`` (n_sections, F) when given."""
    from .. import api, precompute
    from ..clip.factors import load_or_train_factor_classifiers
    from ..data.views import world_eval_set

    say = progress or (lambda f, s: None)
    t0 = time.time()
    steps = steps or model.cfg.diffusion.preview_steps
    store = cache if cache is not None else precompute.cache_root() / "factor-classifiers"
    say(0.0, "factor classifiers")
    clf = load_or_train_factor_classifiers(model.res, store)
    classify = classifier_fn(clf)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return api.decode(model, z, steps=steps, seed=seed)

    say(0.05, "slider directions")
    if fit_latents is None:
        fit = world_eval_set(2000, model.res, split="test", seed=seed + 11, camera="fixed")
        fit_latents = (api.encode(model, fit["images"]), fit["factors"])
    dirs, specs, source = shipped_sliders(model, fit_latents, seed)
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

    if hasattr(model, "n_sections") and model.n_sections > 1:
        say(0.7, "section mixing")
        imp, where = section_importance, "the DCI importance matrix of z summed within each section"
        if imp is None:
            from ..sliders import section_importance as forest_importance

            imp = forest_importance(fit_latents[0], fit_latents[1], model.n_sections)
            where = "random-forest importance of z summed within each section (soda.sliders.section_importance)"
        mix, _ = measure_mixing(decode, classify, z_a, z_b, api.section_slices(model), carriers_from_importance(imp))
        m["mixing"] = mix.to_json()
        m["mixing"]["carriers_from"] = where
        m["mixing"]["importance"] = np.asarray(imp).tolist()
        figs["mixing"] = mix

    if model.uses_cameras and view_scenes > 0 and view_frames > 0:
        say(0.8, "novel-view identity")
        m["views"], figs["views"] = _view_step(model, clf.res, view_scenes, view_frames, steps, seed, store)
    m["seconds"] = round(time.time() - t0, 1)
    say(1.0, "done")
    return m, figs


def shipped_sliders(model, fit_latents=None, seed: int = 0) -> tuple[torch.Tensor, list[SliderSpec], str]:
    """The named sliders the explorer ships for ``model``: those of its explorer assets when they are cached for
    these weights, else fitted with soda.sliders' shipped method on ``fit_latents`` (Z, factors) (default: 2000
    encoded held-out scenes) -> (directions (K, D), specs, where they came from)."""
    from .. import api, precompute, sliders
    from ..data.views import world_eval_set

    ckpt = getattr(model, "checkpoint_dir", None)
    if ckpt is not None:
        fp = precompute.weights_fingerprint(ckpt)
        for folder in precompute.candidate_dirs(ckpt, fp):
            assets = precompute.load_assets(folder, fp)
            if assets is None:
                continue
            pairs = [(k, spec_for_label(lab)) for k, lab in enumerate(assets.named_labels)]
            pairs = [(k, sp) for k, sp in pairs if sp is not None]
            if len(pairs) == len(default_specs()):
                method = assets.meta.get("slider_effects", {}).get("method", "as stored")
                dirs = assets.named_dirs[[k for k, _ in pairs]]
                return dirs, [sp for _, sp in pairs], f"the explorer's cached sliders ({folder}; method {method})"
    if fit_latents is None:
        fit = world_eval_set(2000, model.res, split="test", seed=seed + 11, camera="fixed")
        fit_latents = (api.encode(model, fit["images"]), fit["factors"])
    Z, fac = fit_latents
    dirs, specs = sliders.slider_directions(model, Z, fac)
    return dirs, specs, f"fitted here on {Z.shape[0]} held-out latents (soda.sliders, method '{sliders.SHIPPED}')"


def _view_step(model, res: int, n: int, v: int, steps: int, seed: int, store) -> tuple[dict, tuple]:
    """Orbit frames of n held-out scenes (v cameras across the training azimuths), decoded from the source latent,
    read by classifiers trained on random cameras; the same frames rendered by the renderer give the ceiling."""
    from .. import api
    from ..clip.factors import load_or_train_factor_classifiers
    from ..data.views import world_eval_set
    from ..data.world import render, spherical_camera

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


# ------------------------------------------------------------------------------------------------------------
# Figures and the report section
# ------------------------------------------------------------------------------------------------------------


def _heatmap(M: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 + 0.75 * len(cols), 0.9 + 0.32 * len(rows)))
    ax.imshow(np.nan_to_num(M, nan=0.0), cmap="magma", vmin=0, vmax=1, aspect="auto")
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            v = M[i, j]
            ax.text(
                j,
                i,
                "-" if np.isnan(v) else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if (not np.isnan(v) and v > 0.6) else "white",
            )
    ax.set_xticks(range(len(cols)), [c.replace("_", " ") for c in cols], rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def edit_figures(figs: dict, out) -> dict[str, str]:
    """The Edits section's PNGs in ``out`` -> {name: filename} (names start with 'edits_')."""
    from pathlib import Path

    from .report import _grid

    out = Path(out)
    files = {}
    sc: SliderScores = figs["sliders"]
    title = "how often each slider changes each factor's class"
    _heatmap(sc.changes, sc.labels, FACTORS, title, out / "edits_matrix.png")
    files["edits_matrix"] = "edits_matrix.png"
    rec, edited = figs["slider_examples"]  # (E,3,H,W), (K, S, E, 3, H, W)
    K, S = edited.shape[:2]
    neg = [i for i, s in enumerate(sc.strengths) if s < 0]
    pos = [i for i, s in enumerate(sc.strengths) if s > 0]
    cols = [edited[:, i, 0] for i in neg] + [rec[:1].expand(K, -1, -1, -1)] + [edited[:, i, 0] for i in pos]
    _grid(cols, out / "edits_examples.png")
    files["edits_examples"] = "edits_examples.png"
    if "mixing" in figs:
        mx: MixingScores = figs["mixing"]
        rows = [f"section {k}" for k in range(mx.follow.shape[0])]
        title = "section k from B: how often each factor follows B"
        _heatmap(mx.follow, rows, FACTORS, title, out / "edits_mixing.png")
        files["edits_mixing"] = "edits_mixing.png"
    if "views" in figs:
        src, fr, p_src, p_fr = figs["views"]
        n = min(6, src.shape[0])
        tiles = [src[:n]] + [fr[:n, v] for v in range(fr.shape[1])]
        _grid(tiles, out / "edits_views.png")
        files["edits_views"] = "edits_views.png"
    return files


def _pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def edits_section(e: dict, files: dict[str, str]) -> list[str]:
    """The report's "Edits" section (lines) from run_edits' metrics and edit_figures' files."""
    sl = e["sliders"]
    strengths = ", ".join(f"{s:+g}" for s in sl["strengths"])
    acc_c = ", ".join(f"{k} {v:.2f}" for k, v in e["classifier_accuracy_clean"].items())
    acc_d = ", ".join(f"{k} {v:.2f}" for k, v in e["classifier_accuracy_decoded"].items())
    lines = [
        "## Edits (what sliders, mixing and novel views do to the decoded image)",
        "",
        f"Each edit is decoded ({e['steps']} DDIM steps, noise seed {e['seed']}, the same for the reconstruction "
        f"and the edit) and ground-truth factor classifiers (soda.clip.factors, trained on renders) read every factor "
        f"of both. Sliders: {e['n_scenes']} held-out scenes x strengths {strengths} std; directions: "
        f"{e.get('directions_from', '?')}. **Effect**: how often the slider's factor moves the promised way (ordered "
        "factors: one step closer to the end the sign names, circularly for hues; shape: reaching the named shape at "
        "+, leaving it at -), over the edits that can. **Preservation**: how often every other factor keeps its "
        "class (orientation read only on the cube and capsule). The oracle columns are the same measurement with the "
        "renderer as a perfect decoder of a factor-valued z: the ceiling these classifiers allow.",
        "",
        f"Classifier accuracy on clean held-out renders: {acc_c}. On this checkpoint's decoded reconstructions "
        f"(against the true factors; decoder and classifier errors together): {acc_d}.",
        "",
        "| slider | promise | effect | preservation | effect by strength | oracle effect / preservation |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    specs = {s.label: s for s in default_specs()}
    for lab, r in sl["sliders"].items():
        promise = specs[lab].short() if lab in specs else r["factor"]
        by = " / ".join(_pct(x) for x in r["effect_by_strength"])
        o = e.get("oracle", {})
        lines.append(
            f"| {lab} | {promise} | {_pct(r['effect'])} | {_pct(r['preservation'])} | {by} | "
            f"{_pct(o.get('effect', {}).get(lab))} / {_pct(o.get('preservation', {}).get(lab))} |"
        )
    lines += ["", "**What each slider really moves** (fraction of edits that change each factor's class)", ""]
    lines += [f"![edits_matrix]({files['edits_matrix']})", ""] if "edits_matrix" in files else []
    if "edits_examples" in files:
        lines += [
            f"**Before / after** (one held-out scene; columns: strengths {strengths} with the reconstruction in the "
            "middle; one row per slider in the table's order)",
            "",
            f"![edits_examples]({files['edits_examples']})",
            "",
        ]
    if "mixing" in e:
        mx = e["mixing"]
        lines += [
            f"**Section mixing** ({mx['n_pairs']} pairs of held-out scenes A, B). The sections that carry each factor "
            f"(at least half the top section's share of {mx['carriers_from']}) are taken from B together. Follows "
            "donor: among pairs whose classes differ, how often the mix takes B's class; others kept: how often every "
            "factor carried only by other sections keeps A's class. The matrix below swaps one section at a time.",
            "",
            "| factor | carrying sections | follows donor | others kept |",
            "| --- | --- | --- | --- |",
        ]
        for f in FACTORS:
            where = ", ".join(map(str, mx["carriers"][f]))
            lines.append(f"| {f} | {where} | {_pct(mx['effect'][f])} | {_pct(mx['preservation'][f])} |")
        lines += [""]
        if "edits_mixing" in files:
            lines += [f"![edits_mixing]({files['edits_mixing']})", ""]
    if "views" in e:
        v = e["views"]
        pf = v["decoded"]["per_factor"]
        rf = v["renderer"]["per_factor"]
        lines += [
            f"**Novel-view identity** ({v['n_scenes']} held-out scenes, {len(v['cameras'])} orbit cameras across the "
            "training azimuths). Classifiers trained on random-camera renders read each decoded orbit frame and the "
            "decoded source view; identity = every factor agrees. The renderer row is the same for true renders (the "
            f"classifiers' own ceiling; their held-out accuracy: "
            f"{', '.join(f'{k} {x:.2f}' for k, x in v['classifier_accuracy_clean'].items())}).",
            "",
            "| frames | all factors agree | " + " | ".join(FACTORS) + " |",
            "| --- " * (len(FACTORS) + 2) + "|",
            f"| decoded | {_pct(v['decoded']['all'])} | " + " | ".join(_pct(pf[f]) for f in FACTORS) + " |",
            f"| renderer | {_pct(v['renderer']['all'])} | " + " | ".join(_pct(rf[f]) for f in FACTORS) + " |",
            "",
        ]
        if "edits_views" in files:
            lines += [
                "Decoded source view | orbit frames (one row per scene)",
                "",
                f"![edits_views]({files['edits_views']})",
                "",
            ]
    lines += [f"Edit fidelity took {e.get('seconds', '?')} s.", ""]
    return lines
