"""Named slider directions fitted on latents alone (no decoding): the two sides of each slider's promise, the
sections that carry each factor (DCI-style importance per section), and the methods ``logistic``, ``sections``,
``mean`` and ``mean_all`` (see ``soda.sliders``). Latents Z are (N, z_dim), factors the world's grid factors (N, 6);
every direction is (z_dim,) long one std of Z along it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..eval.edits import CIRCULAR, FACTORS, ORIENT, SliderSpec, class_distance, default_specs

METHODS = ("logistic", "sections", "mean", "mean_all", "projected", "refined")
FIT_METHODS = METHODS[:4]  # fitted on z alone, no decoding
SHIPPED = "mean"  # the explorer's named sliders before (or without) the per-slider choice by measurement
CARRIER_SHARE = 0.5  # a section carries a factor when its importance is at least this share of the top section's


# ------------------------------------------------------------------------------------------------------------
# Labels of a slider's two sides
# ------------------------------------------------------------------------------------------------------------


def side_labels(spec: SliderSpec, factors: torch.Tensor, original: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid factors (N, 6) -> (y (N,) bool: on the + side, use (N,) bool: rows to fit on). Hues: closer to the +
    colour than to the - colour; scale / orientation: the upper half of the grid values (orientation only on the
    shapes where it is visible, unless ``original``); shape: the named shape vs the rest."""
    from ..clip.factors import bin_factors

    f = factors.long()
    use = torch.ones(f.shape[0], dtype=torch.bool)
    j = spec.index
    if spec.categorical:
        return f[:, j] == spec.plus, use
    if spec.factor in CIRCULAR:
        c = bin_factors(f)[:, j]
        dp = class_distance(c, torch.full_like(c, spec.plus), spec.factor)
        dm = class_distance(c, torch.full_like(c, spec.minus), spec.factor)
        y = dp < dm
        if not original:
            use = dp != dm
        return y, use
    col = f[:, j].float()
    y = col > col.median()
    if spec.plus < spec.minus:
        y = ~y
    if j == ORIENT and not original:
        from ..clip.factors import ORIENTATION_VISIBLE

        use = torch.isin(f[:, FACTORS.index("shape")], torch.tensor(ORIENTATION_VISIBLE))
    return y, use


def _unit_std(w: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """A direction (D,) -> the same direction scaled to one std of Z along it."""
    X = Z.double() - Z.double().mean(0)
    u = w.double() / w.double().norm().clamp(min=1e-12)
    return (u * (X @ u).std()).float()


def logistic_direction(Z: torch.Tensor, y: torch.Tensor, dims: torch.Tensor | None = None) -> torch.Tensor:
    """The logistic-regression normal on z (or only on ``dims``: a bool mask (D,)), one std long (D,)."""
    from sklearn.linear_model import LogisticRegression

    X = Z.double()
    keep = dims if dims is not None else torch.ones(X.shape[1], dtype=torch.bool)
    Xs = X[:, keep]
    mean, scale = Xs.mean(0), Xs.std(0).clamp(min=1e-8)
    clf = LogisticRegression(C=1.0, max_iter=500)
    clf.fit(((Xs - mean) / scale).numpy(), y.numpy().astype(int))
    w = torch.zeros(X.shape[1], dtype=torch.float64)
    w[keep] = torch.from_numpy(clf.coef_[0]) / scale
    return _unit_std(w, Z)


def mean_direction(Z: torch.Tensor, y: torch.Tensor, dims: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the + side minus mean of the - side (only on ``dims``), one std long (D,)."""
    X = Z.double()
    w = X[y].mean(0) - X[~y].mean(0)
    if dims is not None:
        w = w * dims.double()
    return _unit_std(w, Z)


# ------------------------------------------------------------------------------------------------------------
# Which sections carry which factor
# ------------------------------------------------------------------------------------------------------------


def section_importance(
    Z: torch.Tensor, factors: torch.Tensor, n_sections: int, n_max: int = 2000, seed: int = 0, trees: str = "forest"
) -> np.ndarray:
    """DCI importance per section -> (n_sections, F), each factor's column summing to 1: tree-ensemble feature
    importances on z for each factor (binned classes), summed within each section. ``trees="gbt"`` is
    disentanglement_lib's DCI classifier (gradient-boosted trees: minutes on two cores for 10-class factors);
    the default ``"forest"`` is the random-forest importance of the original DCI paper (seconds). ``n_max`` rows."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    from ..clip.factors import bin_factors

    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(Z.shape[0], generator=g)[: min(n_max, Z.shape[0])]
    X, Y = Z[idx].double().numpy(), bin_factors(factors[idx]).numpy()
    d = Z.shape[1] // n_sections
    out = np.zeros((n_sections, Y.shape[1]))
    for k in range(Y.shape[1]):
        if len(np.unique(Y[:, k])) < 2:
            continue
        if trees == "gbt":
            clf = GradientBoostingClassifier(random_state=seed)
        else:
            clf = RandomForestClassifier(n_estimators=60, min_samples_leaf=2, random_state=seed, n_jobs=1)
        imp = np.abs(clf.fit(X, Y[:, k]).feature_importances_)
        out[:, k] = imp[: n_sections * d].reshape(n_sections, d).sum(1)
        out[:, k] /= max(out[:, k].sum(), 1e-12)
    return out


def carrier_mask(importance: np.ndarray, j: int, section_dim: int, share: float = CARRIER_SHARE) -> torch.Tensor:
    """Bool mask (z_dim,) of the sections whose importance for factor j is >= share x the largest."""
    col = np.asarray(importance)[:, j]
    keep = col >= share * col.max()
    return torch.from_numpy(np.repeat(keep, section_dim))


# ------------------------------------------------------------------------------------------------------------
# Directions
# ------------------------------------------------------------------------------------------------------------


def fit_directions(
    Z: torch.Tensor,
    factors: torch.Tensor,
    specs: Sequence[SliderSpec],
    method: str,
    importance: np.ndarray | None = None,
    section_dim: int | None = None,
) -> tuple[torch.Tensor, list[SliderSpec]]:
    """Directions (K, z_dim) for ``specs`` by ``method`` (one of METHODS except 'refined', which starts from one of
    these: see refine_direction), and the specs they belong to (a slider whose two sides are not both present in
    the data is left out). 'sections' and 'mean' need the per-section importance and the section size."""
    if method not in FIT_METHODS:
        raise ValueError(f"unknown direction method '{method}' (choose from {', '.join(FIT_METHODS)})")
    if method in ("sections", "mean") and (importance is None or section_dim is None):
        raise ValueError(f"method '{method}' needs the section importance and the section size")
    out, kept = [], []
    for spec in specs:
        y, use = side_labels(spec, factors, original=method == "logistic")
        if not 0 < int(y[use].sum()) < int(use.sum()):
            continue
        dims = carrier_mask(importance, spec.index, section_dim) if method in ("sections", "mean") else None
        fit = logistic_direction if method in ("logistic", "sections") else mean_direction
        out.append(_unit_std(fit(Z[use], y[use], dims), Z))  # one std of *all* the data along it
        kept.append(spec)
    return (torch.stack(out) if out else torch.zeros(0, Z.shape[1])), kept


def slider_directions(
    model,
    Z: torch.Tensor,
    factors: torch.Tensor,
    method: str = SHIPPED,
    importance: np.ndarray | None = None,
) -> tuple[torch.Tensor, list[SliderSpec]]:
    """The explorer's named sliders of a procedural-world checkpoint: (directions (K, z_dim), specs) by ``method``
    (default: the shipped one), fitted on held-out latents Z (N, z_dim) and their grid factors (N, 6)."""
    n_sec = max(1, int(getattr(model, "n_sections", 1) or 1))
    if method in ("sections", "mean") and importance is None:
        importance = section_importance(Z, factors, n_sec)
    return fit_directions(Z, factors, default_specs(), method, importance, Z.shape[1] // n_sec)
