"""Named slider directions for the procedural world, and what each slider measurably does (issue 12).

Every named slider promises something (``soda.eval.edits.SliderSpec``): "object_hue +" moves the object's hue
towards blue (and, at negative amounts, towards the opposite colour), "scale +" makes the object larger, "shape:
sphere" turns it into a sphere. Directions are fitted on held-out latents Z (N, z_dim) with their true factors, in
one of these ways (compared by the edit-fidelity metric of ``soda.eval.edits``; see docs/EDITS.md):

- ``logistic``: the explorer's original directions: a logistic regression on all of z (upper vs lower half of an
  ordered factor's values, one class vs the rest for the shape), normal scaled to one std of Z along it.
- ``sections``: the same regression on the dims of the latent sections that carry the factor (by the DCI importance
  per section: gradient-boosted trees on z, importance summed within each section), zero elsewhere.
- ``mean``: the difference of the class means (towards the + end's classes minus towards the - end's), on the
  carrying sections: the shift that takes the average scene of one side to the other, rather than the boundary's
  normal.
- ``mean_all``: the same difference of class means on all of z.
- ``projected``: ``mean_all`` minus its first-order effect on the factors the slider does not promise, measured
  through the decoder (``projected_directions``: InterFaceGAN's conditional editing with decoder-measured attribute
  gradients).
- ``refined``: a direction tuned through the decoder against the factor classifiers (``refine_direction``).

``choose_directions`` measures every candidate method for every slider on decoded held-out scenes and keeps, per
slider, the direction that does best (the larger of min(effect, preservation), ties by their product): the
directions shipped by ``python -m soda.precompute``. Without a measurement (the app computing assets on first use)
the sliders are the ``SHIPPED`` method's.

All are scaled to one standard deviation of the data along them, so slider amounts mean the same for every method.
``slider_directions`` gives the shipped method's directions; ``measure_sliders_for_assets`` measures them (and the
section-PC sliders) at precompute time and writes the one-line captions the explorer shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .eval.edits import CIRCULAR, FACTORS, ORIENT, SliderSpec, class_distance, default_specs

METHODS = ("logistic", "sections", "mean", "mean_all", "projected", "refined")
FIT_METHODS = METHODS[:4]  # fitted on z alone, no decoding
SHIPPED = "mean"  # the explorer's named sliders before (or without) the per-slider choice by measurement
CANDIDATES = ("logistic", "sections", "mean", "mean_all", "projected")  # what choose_directions measures per slider
WEAK_EFFECT = 0.5  # a named slider that moves its factor the promised way in fewer edits than this is weak
CARRIER_SHARE = 0.5  # a section carries a factor when its importance is at least this share of the top section's

Progress = Callable[[float, str], None]


# ------------------------------------------------------------------------------------------------------------
# Labels of a slider's two sides
# ------------------------------------------------------------------------------------------------------------


def side_labels(spec: SliderSpec, factors: torch.Tensor, original: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid factors (N, 6) -> (y (N,) bool: on the + side, use (N,) bool: rows to fit on). Hues: closer to the +
    colour than to the - colour; scale / orientation: the upper half of the grid values (orientation only on the
    shapes where it is visible, unless ``original``); shape: the named shape vs the rest."""
    from .clip.factors import bin_factors

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
        from .clip.factors import ORIENTATION_VISIBLE

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

    from .clip.factors import bin_factors

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
) -> tuple[torch.Tensor, list[SliderSpec], dict]:
    """Directions chosen by the metric: every ``candidates`` method is fitted on Z (N, z_dim) with its grid factors,
    each slider of each is measured (soda.eval.edits.measure_sliders) on ``n_scenes`` held-out scenes that are
    neither the caption's nor the evaluation's, and each slider keeps the method whose direction does best
    (min(effect, preservation), ties by the product; the SHIPPED method, the best single one, wins unless another
    beats it by more than CHOICE_MARGIN: with a dozen scenes, smaller differences are noise)
    -> (directions (K, z_dim), specs, {"chosen": {label: method},
    "selection": {label: {method: {"effect", "preservation"}}}, sizes})."""
    from . import api
    from .data.views import world_eval_set
    from .eval.edits import measure_sliders

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
    for i, method in enumerate(candidates):
        if method == "projected":
            D, kept = fit_directions(Z, factors, default_specs(), "mean_all", importance, Z.shape[1] // n_sec)
            say(i / len(candidates), "choosing directions: gradients through the decoder")
            D = projected_directions(model, classifiers, D, kept, Z[:16], seed=seed)
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
    dirs = torch.stack([best[s.label][2] for s in order]) if order else torch.zeros(0, Z.shape[1])
    info = {
        "chosen": {s.label: best[s.label][1] for s in order},
        "selection": table,
        "candidates": list(candidates),
        "select_scenes": n_scenes,
        "select_strengths": [float(x) for x in strengths],
    }
    return dirs, order, info


# ------------------------------------------------------------------------------------------------------------
# Refinement through the decoder
# ------------------------------------------------------------------------------------------------------------


def differentiable_decoder(model, steps: int = 4, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """z (B, D) -> images (B,3,H,W): DDIM (eta 0, clipped x0) from the fixed noise of ``seed`` with gradients, as
    soda.api.decode draws it with the same steps (default camera)."""
    from .api import camera_rays
    from .diffusion.process import to_x0, x0_to_eps
    from .diffusion.schedule import alpha_bar

    sched, pred = model.cfg.diffusion.schedule, model.cfg.diffusion.prediction
    noise = torch.randn(1, 3, model.res, model.res, generator=torch.Generator().manual_seed(int(seed)))
    ts = torch.linspace(1.0, 0.0, steps + 1)

    def decode(z: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        rays = camera_rays(model, None, b)
        zs = model.sections(z.float())
        x = noise.expand(b, -1, -1, -1)
        for i in range(steps):
            ab, ab_next = alpha_bar(ts[i], sched).float(), alpha_bar(ts[i + 1], sched).float()
            x0 = to_x0(model.denoise(x, ts[i].expand(b), zs, rays), x, ab.expand(b), pred).clamp(-1, 1)
            if i == steps - 1:
                return x0
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * x0_to_eps(x, x0, ab.expand(b))
        return x

    return decode


def score_gradients(
    model, clf, Z_ref: torch.Tensor, decode_steps: int = 4, seed: int = 0
) -> tuple[torch.Tensor, list[str]]:
    """How each factor's reading moves with z, through the decoder: for each smooth score of the classifiers'
    output (per hue the mean of (cos, sin) of its class angle; the expected scale and orientation bin; each shape's
    log-probability) the gradient with respect to z at every latent of Z_ref (B, D), each made unit length, then
    averaged -> (S, D) and the factor of each score."""
    counts = [int(c) for c in _class_counts()]
    for p in clf.net.parameters():
        p.requires_grad_(False)
    clf.net.eval()
    decode = differentiable_decoder(model, decode_steps, seed)
    z = Z_ref.detach().float().clone().requires_grad_(True)
    with torch.enable_grad():
        probs = [lp.softmax(-1) for lp in clf.net(decode(z)).split(counts, dim=1)]
        scores, owners = [], []
        for j, name in enumerate(FACTORS):
            p = probs[j]
            if name in CIRCULAR:
                ang = torch.arange(counts[j]) * (2 * math.pi / counts[j])
                scores += [(p * ang.cos()).sum(1), (p * ang.sin()).sum(1)]
                owners += [name, name]
            elif name == "shape":
                for c in range(counts[j]):
                    scores.append(p[:, c].clamp(min=1e-6).log())
                    owners.append(name)
            else:
                scores.append((p * torch.arange(counts[j])).sum(1))
                owners.append(name)
        grads = []
        for i, sc in enumerate(scores):
            (g,) = torch.autograd.grad(sc.sum(), z, retain_graph=i < len(scores) - 1)
            grads.append((g / g.norm(dim=1, keepdim=True).clamp(min=1e-12)).mean(0))
    return torch.stack(grads).detach(), owners


def project_out(d: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """d (D,) minus its component in the span of G's rows (S, D), rescaled to d's length."""
    if G.shape[0] == 0:
        return d
    Q, _ = torch.linalg.qr(G.double().T)  # (D, S) orthonormal columns
    out = d.double() - Q @ (Q.T @ d.double())
    return (out * d.double().norm() / out.norm().clamp(min=1e-12)).float()


def projected_directions(
    model, clf, D: torch.Tensor, specs: Sequence[SliderSpec], Z_ref: torch.Tensor, decode_steps: int = 4, seed: int = 0
) -> torch.Tensor:
    """Directions D (K, z_dim) with the first-order effect on the *other* factors' readings removed: each minus its
    component along the decoder-measured gradients (score_gradients at Z_ref) of every factor it does not promise
    (a shape slider keeps orientation free: a sphere has none), kept at its length (InterFaceGAN's conditional
    editing, with attribute directions measured through the decoder instead of fitted on z)."""
    G, owners = score_gradients(model, clf, Z_ref, decode_steps, seed)
    out = []
    for d, spec in zip(D, specs, strict=True):
        free = {spec.factor} | ({"orientation"} if spec.factor == "shape" else set())
        keep = [i for i, o in enumerate(owners) if o not in free]
        out.append(project_out(d, G[keep]))
    return torch.stack(out)


def refine_direction(
    model,
    clf,
    spec: SliderSpec,
    d0: torch.Tensor,
    Z_fit: torch.Tensor,
    Z_data: torch.Tensor,
    steps: int = 20,
    strength: float = 2.0,
    decode_steps: int = 4,
    lr: float = 0.05,
    keep_weight: float = 1.0,
    seed: int = 0,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Tune a direction (z_dim,) through the decoder: Adam on the unit direction u (the slider is u scaled to one
    std of ``Z_data`` along it) so that decoding Z_fit + a * slider (a = +-strength, DDIM with ``decode_steps`` and a
    fixed noise, differentiable) moves the classifiers' reading of the factor towards the slider's end (expected
    class distance to it, or the named shape's log-probability) while the other factors' class distributions stay
    as they are in the reconstruction (KL). Returns the tuned direction, one std long."""
    say = progress or (lambda f, s: None)
    X = Z_data.double() - Z_data.double().mean(0)
    u = (d0.double() / d0.double().norm()).clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    clf.net.eval()
    for p in clf.net.parameters():
        p.requires_grad_(False)
    counts = [int(c) for c in _class_counts()]
    j = spec.index

    decode = differentiable_decoder(model, decode_steps, seed)

    def log_probs(images: torch.Tensor) -> list[torch.Tensor]:
        logits = clf.net(images)
        return [lp.log_softmax(-1) for lp in logits.split(counts, dim=1)]

    with torch.no_grad():
        ref = [lp.detach() for lp in log_probs(decode(Z_fit))]
    dist_to = {}
    if not spec.categorical:
        cls = torch.arange(counts[j])
        for end in (spec.plus, spec.minus):
            dist_to[end] = class_distance(cls, torch.full_like(cls, end), spec.factor).float()
    for step in range(steps):
        with torch.enable_grad():
            unit = u / u.norm()
            d = (unit * (X @ unit).std()).float()
            loss = 0.0
            for sign in (1.0, -1.0):
                lp = log_probs(decode(Z_fit + sign * strength * d))
                if spec.categorical:
                    p_named = lp[j][:, spec.plus].exp()
                    was = ref[j].argmax(1) == spec.plus
                    if sign > 0:
                        loss = loss - lp[j][:, spec.plus][~was].mean() if (~was).any() else loss
                    elif was.any():
                        loss = loss - torch.log1p(-p_named[was].clamp(max=1 - 1e-4)).mean()
                else:
                    end = spec.plus if sign > 0 else spec.minus
                    loss = loss + (lp[j].exp() * dist_to[end]).sum(1).mean()
                for gi in range(len(FACTORS)):
                    if gi == j or (gi == ORIENT and spec.factor == "shape"):
                        continue
                    kl = (ref[gi].exp() * (ref[gi] - lp[gi])).sum(1).mean()
                    loss = loss + keep_weight * kl
            opt.zero_grad()
            loss.backward()
        opt.step()
        say((step + 1) / steps, f"refining {spec.label} ({step + 1}/{steps}): loss {float(loss.detach()):.3f}")
    with torch.no_grad():
        unit = u / u.norm()
        return (unit * (X @ unit).std()).float().detach()


def _class_counts():
    from .clip.factors import class_counts

    return class_counts()


# ------------------------------------------------------------------------------------------------------------
# Captions: what each slider measurably does
# ------------------------------------------------------------------------------------------------------------


def caption(
    effect: float | None, preservation: float, spec: SliderSpec | None = None, weak: float = WEAK_EFFECT
) -> str:
    """One short line: 'object hue to blue (- yellow): moves it in 91%, keeps the rest in 88%' ('weak: ...' below
    ``weak``)."""
    what = spec.short() if spec is not None else "the slider"
    eff = "n/a" if effect is None or (isinstance(effect, float) and math.isnan(effect)) else f"{effect:.0%}"
    line = f"{what}: moves it in {eff}, keeps the rest in {preservation:.0%}"
    bad = effect is None or (isinstance(effect, float) and math.isnan(effect)) or effect < weak
    return ("weak: " if bad else "") + line


# ------------------------------------------------------------------------------------------------------------
# Precompute: measure the shipped sliders and the section-PC sliders once, store captions with the assets
# ------------------------------------------------------------------------------------------------------------

MEASURE_DEFAULTS = {
    "n_scenes": 16,  # held-out scenes for the named sliders
    "pc_scenes": 8,  # held-out scenes for the section-PC sliders (more sliders, a rougher figure)
    "strengths": (-2.0, -1.0, 1.0, 2.0),
    "steps": None,  # decoder steps (default: the model's preview steps)
    "seed": 0,
    "classifier": {},  # settings for soda.clip.factors.load_or_train_factor_classifiers
    "candidates": CANDIDATES,  # direction methods measured per slider before the captions (ensure_measured)
    "select_scenes": 12,  # held-out scenes for that choice (neither the captions' nor soda.eval's)
    "pc_strengths": (-2.0, 2.0),  # the section-PC sliders' strengths
}


def _named(values) -> dict:
    return dict(zip(FACTORS, [None if math.isnan(float(x)) else float(x) for x in values], strict=True))


PC_WEAK = 0.25  # a section-PC slider whose most-moved factor changes in fewer edits than this is weak


def pc_caption(factor: str | None, change: float, preservation: float) -> str:
    """'moves object hue in 63%, keeps the rest in 80%', or 'weak: ...' when the top factor rarely moves."""
    if factor is None:
        return "weak: moves no factor measurably"
    line = f"moves {factor.replace('_', ' ')} in {change:.0%}, keeps the rest in {preservation:.0%}"
    return ("weak: " if change < PC_WEAK else "") + line


def measure_for_assets(
    model,
    named_dirs: torch.Tensor,
    named_labels: Sequence[str],
    section_dirs: torch.Tensor,
    cache=None,
    progress: Progress | None = None,
    **sizes,
) -> dict:
    """Measure the named sliders (effect / preservation against their promise) and every section-PC slider (which
    factor it moves most, how often, and how often the rest is kept) on decoded held-out scenes -> the JSON stored
    as ``slider_effects`` in the explorer assets (captions included). Sizes: MEASURE_DEFAULTS."""
    from . import api
    from .clip.factors import load_or_train_factor_classifiers
    from .data.views import world_eval_set
    from .eval.edits import change_rates, comparable, measure_sliders, spec_for_label
    from .precompute import cache_root

    opt = {**MEASURE_DEFAULTS, **sizes}
    say = progress or (lambda f, s: None)
    steps = opt["steps"] or model.cfg.diffusion.preview_steps
    strengths = [float(s) for s in opt["strengths"]]
    store = cache if cache is not None else cache_root() / "factor-classifiers"
    say(0.0, "factor classifiers")
    clf = load_or_train_factor_classifiers(model.res, store, **opt["classifier"])
    n = max(int(opt["n_scenes"]), int(opt["pc_scenes"]))
    data = world_eval_set(n, model.res, split="test", seed=int(opt["seed"]) + 7, camera="fixed")
    z = api.encode(model, data["images"])

    def decode(zz: torch.Tensor) -> torch.Tensor:
        return api.decode(model, zz, steps=steps, seed=int(opt["seed"]))

    out: dict = {
        "method": SHIPPED,
        "strengths": strengths,
        "n_scenes": int(opt["n_scenes"]),
        "pc_scenes": int(opt["pc_scenes"]),
        "pc_strengths": [float(x) for x in opt["pc_strengths"]],
        "steps": steps,
        "classifier_accuracy": dict(clf.accuracy),
        "named": {},
        "sections": {},
    }
    pairs = [(k, spec_for_label(lab)) for k, lab in enumerate(named_labels)]
    pairs = [(k, s) for k, s in pairs if s is not None]
    if pairs:
        specs = [s for _, s in pairs]
        dirs = named_dirs[[k for k, _ in pairs]]
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
                "caption": caption(eff, pres, s, WEAK_EFFECT),
                "changes": _named(sc.changes[k]),
            }
    # section-PC sliders: no promise; the factor they move most names them
    names, D = [], []
    for k in range(section_dirs.shape[0]):
        for c in range(section_dirs.shape[1]):
            if float(section_dirs[k, c].norm()) > 0:
                names.append(f"section{k}.pc{c + 1}")
                D.append(section_dirs[k, c])
    if D:
        zp = z[: opt["pc_scenes"]]
        rec = decode(zp)
        before = clf.predict(rec)
        pcs = [float(x) for x in opt["pc_strengths"]]
        lat = zp[None, None] + torch.tensor(pcs)[None, :, None, None] * torch.stack(D)[:, None, None, :]
        flat = lat.reshape(-1, zp.shape[1])
        imgs = torch.cat([decode(flat[i : i + 64]) for i in range(0, flat.shape[0], 64)])
        after = clf.predict(imgs).reshape(len(D), len(pcs), zp.shape[0], -1)
        for i, name in enumerate(names):
            b = before[None].expand_as(after[i])
            rates = change_rates(b, after[i])
            moved = rates.nan_to_num(0)
            top = int(moved.argmax()) if float(moved.max()) > 0 else None
            same = (after[i] == b) | ~comparable(b, after[i])
            keep = [g for g in range(len(FACTORS)) if g != top]
            pres = float(same[..., keep].all(-1).float().mean())
            change = float(rates[top]) if top is not None else 0.0
            factor = FACTORS[top] if top is not None else None
            out["sections"][name] = {
                "factor": factor,
                "change": change,
                "preservation": pres,
                "weak": factor is None or change < PC_WEAK,
                "changes": _named(rates.tolist()),
                "caption": pc_caption(factor, change, pres),
            }
            say(0.5 + 0.5 * (i + 1) / len(names), "measuring the section sliders")
    say(1.0, "done")
    return out


def ensure_measured(
    model, assets, force: bool = False, choose: bool = True, progress: Progress | None = None, **sizes
) -> dict | None:
    """Measure the sliders of procedural-world explorer ``assets`` unless they already carry a measurement (or
    ``force``): with ``choose``, the named sliders are first replaced by the directions chosen by the metric
    (choose_directions, on the assets' map latents; the assets are saved again), then every slider is measured on
    other held-out scenes (measure_for_assets). Stored as ``assets.meta["slider_effects"]`` and in the cache folder.
    Other data sets have no ground-truth classifiers: None. Sizes: MEASURE_DEFAULTS."""
    import json
    import os

    cfg = getattr(model, "full_config", None)
    if (cfg is not None and cfg.data.dataset != "world") or list(assets.factor_names) != list(FACTORS):
        return None
    if not force and assets.meta.get("slider_effects"):
        return assets.meta["slider_effects"]
    say = progress or (lambda f, s: None)
    chosen = None
    if choose and assets.map_factors is not None:
        from .clip.factors import load_or_train_factor_classifiers
        from .precompute import cache_root

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
            assets.named_dirs, assets.named_labels = dirs, [s.label for s in specs]
    eff = measure_for_assets(
        model,
        assets.named_dirs,
        assets.named_labels,
        assets.section_dirs,
        progress=lambda f, s: say((0.6 if chosen else 0.0) + (0.4 if chosen else 1.0) * f, s),
        **sizes,
    )
    if chosen:
        eff.update(method="chosen per slider by measured edit fidelity", **chosen)
    assets.meta["slider_effects"] = eff
    if chosen and assets.folder is not None:
        from .precompute import _writable, save_assets

        if _writable(assets.folder):
            try:
                save_assets(assets, assets.folder, assets.fingerprint)
                return eff
            except OSError:
                pass
    if assets.folder is not None:
        from .precompute import META_NAME

        path = assets.folder / META_NAME
        try:
            meta = json.loads(path.read_text())
            meta["slider_effects"] = eff
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(meta, indent=1))
            os.replace(tmp, path)
        except (OSError, ValueError):
            pass  # a read-only folder: the measurement lives in memory for this process
    return eff
