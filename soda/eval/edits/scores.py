"""Edit fidelity, the pure part: what each named slider promises (``SliderSpec``, ``default_specs``) and the scores
as functions of predicted classes (``slider_scores``, ``mixing_scores``, ``view_identity``, ``accuracy``).

Classes are (..., F) integer tensors, F = 6 factors in ``FACTORS`` order, binned as ``soda.clip.factors.class_counts``
(hues 10 classes, scale 4, shape 4, orientation 5). Nothing here decodes; see ``soda.eval.edits`` for the metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ...clip.factors import ORIENTATION_VISIBLE, bin_factors, class_counts
from ...data import world

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


def section_groups(n_sections: int, max_size: int = 3) -> list[tuple[int, ...]]:
    """Every set of 1..``max_size`` sections, smallest first: the candidates ``choose_carriers`` decodes."""
    from itertools import combinations

    return [g for r in range(1, min(max_size, n_sections) + 1) for g in combinations(range(n_sections), r)]


def choose_carriers(
    pa: torch.Tensor, pb: torch.Tensor, pgroups: torch.Tensor, groups: Sequence[Sequence[int]], size_cost: float = 0.02
) -> dict:
    """pa, pb (N, F) classes of decoded scenes A and B; pgroups (G, N, F) of A with ``groups[g]``'s sections from B
    -> per factor the group that moves it best: the largest (follow B on the factor, where A and B differ) + (keep A
    on every other factor, mean over the others where they differ), less ``size_cost`` per section (of equals, the
    smaller group). Measured on decoded mixes, not read from the encoder: the decoder may draw a factor from sections
    the encoder's importance does not name (the floor's hue followed the donor in 13% of the importance-named
    mixes). -> {"carriers", "follow", "keep"} keyed by factor (None where no pair differs on it)."""
    G, N, F = pgroups.shape
    follow, stay = np.full((G, F), np.nan), np.full((G, F), np.nan)
    for g in range(G):
        follow[g], stay[g] = _follow_stay(pa, pb, pgroups[g])
    out: dict = {"carriers": {}, "follow": {}, "keep": {}}
    for f, name in enumerate(FACTORS):
        others = np.delete(stay, f, axis=1)
        keep = np.array([np.nanmean(r) if np.isfinite(r).any() else 1.0 for r in others])
        score = follow[:, f] + keep - size_cost * np.array([len(g) for g in groups])
        if not np.isfinite(score).any():
            out["carriers"][name], out["follow"][name], out["keep"][name] = [], None, None
            continue
        best = int(np.nanargmax(score))  # the first of equals: groups are ordered smallest first
        out["carriers"][name] = [int(k) for k in groups[best]]
        out["follow"][name], out["keep"][name] = float(follow[best, f]), float(keep[best])
    return out


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
