"""Named sliders that are not straight lines: z-dependent edits (issue 12).

A fixed direction moves every scene by the same vector. Two kinds of slider here read where each scene *is* and
move it from there (both have ``move(z, amount)``, which ``soda.api.move_along`` uses in place of
``z + amount * direction`` for every consumer: the explorer, traversals, recipes, the metric; and ``vector``, a plain
direction for code that needs one):

**HueRotation** turns the colour wheel. A hue is a point on a circle; a fixed direction pushes every scene along one
chord of it, so a scene whose hue lies off the chord barely moves, or passes through colours that are neither end
(docs/EDITS.md: the floor hue slider's effect was stuck at 0.66 from 576k to 752k images)::

    h(u) = (cos 2 pi u / n, sin 2 pi u / n)          a position u on the wheel of n hue classes
    u0   = angle of (z - center) @ read               where the scene's hue is (a ridge regression z -> h)
    u1   = u0 + sign * min(step * |a|, arc to end)     ``a`` units of the slider; end = plus (a > 0) or minus (a < 0)
    z'   = z + (h(u1) - h(u0)) @ write                 write: the least-squares map h -> z (optionally only on the
                                                       sections that carry the hue, or projected through the decoder)

One unit turns the hue by ``step`` classes (default one class, 36 degrees) and never past the named colour; the + and
- colours are opposite on the wheel, so the two signs always turn opposite ways and the edit is continuous through 0.

**ClassSwap** changes a categorical factor (the shape): a logistic regression on z reads each scene's class, and the
scene moves by the difference of the class means, from its own class towards the named one (amount > 0) or, for a
scene of the named class, towards the class it resembles most (amount < 0)::

    z' = z + min(|a| / full, 1) * (mean[target] - mean[current])

so +1 (``full``) makes the object a sphere, fractions blend, and larger amounts change nothing more.

**ClassStep** does the same for an ordered factor (scale, orientation): where the scene lies on the chain of its
class means (the expected class read from z) moves one class per unit towards the named end, never past it, and z
moves by the difference of the chain's points. Everything else in z is left as the scene had it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..eval.edits import CIRCULAR, SliderSpec
from .fit import _unit_std, carrier_mask, side_labels

STEP = 1.0  # classes per unit of a HueRotation or a ClassStep
FULL = 1.0  # the amount at which a ClassSwap reaches the named class's mean
RIDGE = 1e-2  # the read map's ridge, per sample (z is standardised by nothing: the latents' own scale)


def _plane(tensors: dict[str, torch.Tensor], what: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A stored rotation's centre (D,), read map (D, 2) and write map (2, D), shapes checked (a damaged cache fails
    here, not in a slider)."""
    c, r, w = (tensors[k].float() for k in ("center", "read", "write"))
    D = c.shape[0]
    if c.dim() != 1 or tuple(r.shape) != (D, 2) or tuple(w.shape) != (2, D):
        raise ValueError(f"{what} tensors have shapes {tuple(c.shape)}, {tuple(r.shape)}, {tuple(w.shape)}")
    return c, r, w


@dataclass
class HueRotation:
    """A hue slider that turns each scene's hue towards ``plus`` (amount > 0) or ``minus`` (amount < 0)."""

    center: torch.Tensor  # (D,) mean of the latents it was fitted on
    read: torch.Tensor  # (D, 2) z - center -> (cos, sin) of the hue
    write: torch.Tensor  # (2, D) (cos, sin) -> z - center
    plus: int
    minus: int
    n: int = 10  # hue classes on the wheel
    step: float = STEP
    vector: torch.Tensor | None = None  # (D,) the + chord, one std of the data long (for plain-direction readers)

    kind = "hue_rotation"  # how it is stored (load_move)
    unit = "one hue step per unit"  # what the caption says about its amounts

    def position(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B,) where each scene's hue lies on the wheel, in classes [0, n)."""
        h = (z.double() - self.center.double()) @ self.read.double()
        return (torch.atan2(h[:, 1], h[:, 0]) * self.n / (2 * math.pi)) % self.n

    def _h(self, u: torch.Tensor) -> torch.Tensor:
        a = u * (2 * math.pi / self.n)
        return torch.stack([a.cos(), a.sin()], 1)

    def move(self, z: torch.Tensor, amount: float | torch.Tensor) -> torch.Tensor:
        """z (B, D), amount (scalar or (B,)) in slider units -> the edited latents (B, D), same dtype."""
        B = z.shape[0]
        a = torch.as_tensor(amount, dtype=torch.float64).reshape(-1).expand(B)
        u0 = self.position(z)
        end = torch.where(a > 0, float(self.plus), float(self.minus)).double()
        d = torch.remainder(end - u0 + self.n / 2, self.n) - self.n / 2  # signed shorter arc to the end
        turn = torch.sign(d) * torch.minimum(self.step * a.abs(), d.abs())
        dz = (self._h(u0 + turn) - self._h(u0)) @ self.write.double()
        return (z.double() + dz).to(z.dtype)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"center": self.center, "read": self.read, "write": self.write, "vector": self.vector_or_chord()}

    def meta(self) -> dict:
        return {
            "kind": self.kind,
            "plus": int(self.plus),
            "minus": int(self.minus),
            "n": int(self.n),
            "step": float(self.step),
        }

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], meta: dict) -> HueRotation:
        """The inverse of (tensors(), meta()): checks shapes so that a damaged cache fails here, not in a slider."""
        c, r, w = _plane(tensors, "hue rotation")
        n = int(meta.get("n", 10))
        plus, minus, step = int(meta["plus"]), int(meta["minus"]), float(meta.get("step", STEP))
        if not (0 <= plus < n and 0 <= minus < n) or not math.isfinite(step) or step <= 0:
            raise ValueError(f"hue rotation settings out of range: {meta}")
        return cls(c, r, w, plus, minus, n, step, tensors.get("vector"))

    def vector_or_chord(self) -> torch.Tensor:
        if self.vector is not None:
            return self.vector
        return (self._h(torch.tensor([float(self.plus)])) - self._h(torch.tensor([float(self.minus)])))[0].float() @ (
            self.write.float()
        )


def fit_rotation(
    Z: torch.Tensor, classes: torch.Tensor, spec: SliderSpec, dims: torch.Tensor | None = None, step: float = STEP
) -> HueRotation:
    """A HueRotation for hue slider ``spec`` fitted on latents Z (N, D) and the hue's classes (N,) in [0, n):
    the read map is a ridge regression of (cos, sin) of the class on all of z; the write map the least-squares map
    back, kept only on ``dims`` (a bool mask (D,), e.g. the carrying sections) when given."""
    if spec.factor not in CIRCULAR or spec.minus is None:
        raise ValueError(f"slider '{spec.label}' is not a hue slider: only hues turn on a wheel")
    from ..clip.factors import class_counts
    from ..eval.edits import FACTORS

    n = class_counts()[FACTORS.index(spec.factor)]
    X = Z.double() - Z.double().mean(0)
    a = classes.double() * (2 * math.pi / n)
    H = torch.stack([a.cos(), a.sin()], 1)
    lam = RIDGE * X.shape[0]
    read = torch.linalg.solve(X.T @ X + lam * torch.eye(X.shape[1], dtype=X.dtype), X.T @ H)
    write = torch.linalg.lstsq(H, X).solution  # (2, D)
    if dims is not None:
        write = write * dims.double()[None]
    rot = HueRotation(Z.double().mean(0).float(), read.float(), write.float(), spec.plus, spec.minus, n, step)
    rot.vector = _unit_std(rot.vector_or_chord(), Z)
    return rot


# the write map on all of z / on the sections that carry the hue / on all of z minus its first-order effect on the
# other factors, measured through the decoder (as the 'projected' directions: soda.sliders.projected_directions)
ROTATE_METHODS = ("rotate", "rotate_sec", "rotate_proj")
# "swap": ClassSwap, for the categorical sliders; "step": ClassStep, for scale and orientation
MOVE_METHODS = (*ROTATE_METHODS, "swap", "step")


def fit_rotations(
    Z: torch.Tensor,
    factors: torch.Tensor,
    specs,
    method: str,
    importance=None,
    section_dim: int | None = None,
    model=None,
    classifiers=None,
    seed: int = 0,
    gradients: tuple | None = None,
) -> tuple[list[HueRotation], list[SliderSpec]]:
    """HueRotations for the hue sliders among ``specs`` (the others are left out) -> (rotations, their specs).
    'rotate_sec' writes only on the carrying sections and needs the section importance and size; 'rotate_proj'
    needs the model and the factor classifiers (the gradients through the decoder, at 16 of the latents Z, or the
    ``gradients`` soda.sliders.score_gradients already gave there)."""
    from ..clip.factors import bin_factors

    if method not in ROTATE_METHODS:
        raise ValueError(f"unknown rotation method '{method}' (choose from {', '.join(ROTATE_METHODS)})")
    if method == "rotate_sec" and (importance is None or section_dim is None):
        raise ValueError("method 'rotate_sec' needs the section importance and the section size")
    if method == "rotate_proj" and (model is None or classifiers is None):
        raise ValueError("method 'rotate_proj' needs the model and the factor classifiers")
    classes = bin_factors(factors)
    out, kept = [], []
    for spec in specs:
        if spec.factor not in CIRCULAR or spec.minus is None:
            continue
        y, _ = side_labels(spec, factors)
        if not 0 < int(y.sum()) < len(y):
            continue
        dims = carrier_mask(importance, spec.index, section_dim) if method == "rotate_sec" else None
        out.append(fit_rotation(Z, classes[:, spec.index], spec, dims))
        kept.append(spec)
    if method == "rotate_proj" and out:
        from .decoder import projected_directions

        rows = torch.cat([r.write for r in out])  # each rotation's two write rows, projected like a direction
        specs2 = [s for s in kept for _ in range(2)]
        P = projected_directions(model, classifiers, rows, specs2, Z[:16], seed=seed, gradients=gradients)
        for i, r in enumerate(out):
            r.write, r.vector = P[2 * i : 2 * i + 2].float(), None
            r.vector = _unit_std(r.vector_or_chord(), Z)
    return out, kept


@dataclass
class _ClassReader:
    """What ClassSwap and ClassStep share: the class means and the logistic regression that reads a scene's class
    from z, stored and shape-checked alike."""

    means: torch.Tensor  # (K, D) class means of the latents it was fitted on, in the factor's order
    weight: torch.Tensor  # (D, K) the logistic regression reading the class from z
    bias: torch.Tensor  # (K,)
    plus: int

    def probabilities(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, K) the class each scene is, as read from z."""
        return torch.softmax(z.double() @ self.weight.double() + self.bias.double(), 1)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"means": self.means, "weight": self.weight, "bias": self.bias, "vector": self.vector_or_chord()}

    @staticmethod
    def _parts(tensors: dict[str, torch.Tensor], what: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stored class means (K, D), reader weight (D, K) and bias (K,), shape-checked."""
        M, W, b = (tensors[k].float() for k in ("means", "weight", "bias"))
        K, D = M.shape if M.dim() == 2 else (0, 0)
        if M.dim() != 2 or tuple(W.shape) != (D, K) or tuple(b.shape) != (K,):
            raise ValueError(f"{what} tensors have shapes {tuple(M.shape)}, {tuple(W.shape)}, {tuple(b.shape)}")
        return M, W, b


@dataclass
class ClassSwap(_ClassReader):
    """A categorical slider that moves each scene from its own class's mean to class ``plus``'s (amount > 0), or
    from ``plus`` to the class it resembles most (amount < 0)."""

    full: float = FULL
    vector: torch.Tensor | None = None  # (D,) mean of plus minus the mean of the rest, one std long

    kind = "class_swap"
    unit = "all the way at 1"

    def move(self, z: torch.Tensor, amount: float | torch.Tensor) -> torch.Tensor:
        """z (B, D), amount (scalar or (B,)) -> the edited latents (B, D), same dtype."""
        B = z.shape[0]
        a = torch.as_tensor(amount, dtype=torch.float64).reshape(-1).expand(B)
        P = self.probabilities(z)
        cur = P.argmax(1)
        other = P.clone()
        other[:, self.plus] = -1.0
        away = torch.where(cur == self.plus, other.argmax(1), cur)  # a scene of another class stays where it is
        target = torch.where(a > 0, torch.full_like(cur, self.plus), away)
        w = (a.abs() / self.full).clamp(max=1.0)[:, None]
        M = self.means.double()
        return (z.double() + w * (M[target] - M[cur])).to(z.dtype)

    def meta(self) -> dict:
        return {"kind": self.kind, "plus": int(self.plus), "full": float(self.full)}

    def vector_or_chord(self) -> torch.Tensor:
        if self.vector is not None:
            return self.vector
        rest = [k for k in range(self.means.shape[0]) if k != self.plus]
        return (self.means[self.plus] - self.means[rest].mean(0)).float()

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], meta: dict) -> ClassSwap:
        M, W, b = cls._parts(tensors, "class swap")
        plus, full = int(meta["plus"]), float(meta.get("full", FULL))
        if not 0 <= plus < M.shape[0] or not math.isfinite(full) or full <= 0:
            raise ValueError(f"class swap settings out of range: {meta}")
        return cls(M, W, b, plus, full, tensors.get("vector"))


@dataclass
class ClassStep(_ClassReader):
    """An ordered factor's slider (scale, orientation) that moves each scene along the chain of its class means:
    where the scene lies (the expected class read from z) moves ``step`` classes per unit towards ``plus``
    (amount > 0) or ``minus`` (amount < 0), never past the end, and z moves by the difference of the chain's points
    (the means, linearly interpolated between neighbouring classes)."""

    minus: int
    step: float = STEP
    vector: torch.Tensor | None = None  # (D,) mean of plus minus mean of minus, one std long

    kind = "class_step"
    unit = "one class per unit"

    def position(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B,) the expected class read from z, in [0, K - 1]."""
        P = self.probabilities(z)
        return (P * torch.arange(P.shape[1], dtype=P.dtype)).sum(1)

    def _chain(self, u: torch.Tensor) -> torch.Tensor:
        K = self.means.shape[0]
        u = u.clamp(0, K - 1)
        k = u.floor().long().clamp(max=K - 2)
        f = (u - k)[:, None]
        M = self.means.double()
        return M[k] * (1 - f) + M[k + 1] * f

    def move(self, z: torch.Tensor, amount: float | torch.Tensor) -> torch.Tensor:
        B = z.shape[0]
        a = torch.as_tensor(amount, dtype=torch.float64).reshape(-1).expand(B)
        u0 = self.position(z)
        end = torch.where(a > 0, float(self.plus), float(self.minus)).double()
        d = end - u0
        u1 = u0 + torch.sign(d) * torch.minimum(self.step * a.abs(), d.abs())
        return (z.double() + self._chain(u1) - self._chain(u0)).to(z.dtype)

    def meta(self) -> dict:
        return {"kind": self.kind, "plus": int(self.plus), "minus": int(self.minus), "step": float(self.step)}

    def vector_or_chord(self) -> torch.Tensor:
        if self.vector is not None:
            return self.vector
        return (self.means[self.plus] - self.means[self.minus]).float()

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], meta: dict) -> ClassStep:
        M, W, b = cls._parts(tensors, "class step")
        K = M.shape[0]
        plus, minus, step = int(meta["plus"]), int(meta["minus"]), float(meta.get("step", STEP))
        if K < 2 or not (0 <= plus < K and 0 <= minus < K) or not math.isfinite(step) or step <= 0:
            raise ValueError(f"class step settings out of range: {meta}")
        return cls(M, W, b, plus, minus, step, tensors.get("vector"))


@dataclass
class RingRotation:
    """A label-free slider that turns the scene around a ring found in the latents (soda.sliders.labelfree's ring
    pursuit): (z - center) @ read gives a point on the ring, the slider turns it by ``step`` radians per unit and
    writes the change back through ``write``. No colour is named: + turns one way, - the other."""

    center: torch.Tensor  # (D,)
    read: torch.Tensor  # (D, 2) z - center -> the ring's plane (whitened: the ring's radius is about 1)
    write: torch.Tensor  # (2, D) the plane -> z - center
    step: float = 2 * math.pi / 10  # radians per unit (a tenth of a turn)
    vector: torch.Tensor | None = None  # (D,) a chord of the ring, one std of the data long

    kind = "ring_rotation"
    unit = "a tenth of a turn per unit"

    def move(self, z: torch.Tensor, amount: float | torch.Tensor) -> torch.Tensor:
        """z (B, D), amount (scalar or (B,)) in slider units -> the edited latents (B, D), same dtype."""
        B = z.shape[0]
        a = torch.as_tensor(amount, dtype=torch.float64).reshape(-1).expand(B) * self.step
        p = (z.double() - self.center.double()) @ self.read.double()  # (B, 2)
        c, s = a.cos(), a.sin()
        q = torch.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1]], 1)
        return (z.double() + (q - p) @ self.write.double()).to(z.dtype)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"center": self.center, "read": self.read, "write": self.write, "vector": self.vector_or_chord()}

    def meta(self) -> dict:
        return {"kind": self.kind, "step": float(self.step)}

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], meta: dict) -> RingRotation:
        c, r, w = _plane(tensors, "ring rotation")
        step = float(meta.get("step", 2 * math.pi / 10))
        if not math.isfinite(step) or step <= 0:
            raise ValueError(f"ring rotation settings out of range: {meta}")
        return cls(c, r, w, step, tensors.get("vector"))

    def vector_or_chord(self) -> torch.Tensor:
        if self.vector is not None:
            return self.vector
        return self.write[0].float()  # the ring's first axis: one std of the data along it


KINDS = {c.kind: c for c in (HueRotation, ClassSwap, ClassStep, RingRotation)}


def load_move(tensors: dict[str, torch.Tensor], meta: dict):
    """A stored slider (tensors(), meta()) -> the HueRotation, ClassSwap or ClassStep it was; ValueError when it is
    damaged."""
    kind = meta.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown slider kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind].from_parts(tensors, meta)


def _fit_reader(Z: torch.Tensor, y: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Class means (K, D) and a logistic regression reading the class from z (weight (D, K), bias (K,)) fitted on
    latents Z and classes y in [0, K); None when a class has no rows."""
    from sklearn.linear_model import LogisticRegression

    if any(not bool((y == k).any()) for k in range(K)):
        return None
    X = Z.double()
    mean, scale = X.mean(0), X.std(0).clamp(min=1e-8)
    clf = LogisticRegression(C=1.0, max_iter=3000).fit(((X - mean) / scale).numpy(), y.numpy())
    W = torch.from_numpy(clf.coef_).T / scale[:, None]  # on z itself: (D, K)
    b = torch.from_numpy(clf.intercept_) - (mean[:, None] * W).sum(0)
    if K == 2:  # sklearn's binary form: one row for class 1
        W, b = torch.cat([-W / 2, W / 2], 1), torch.stack([-b[0] / 2, b[0] / 2])
    M = torch.stack([X[y == k].mean(0) for k in range(K)])
    return M.float(), W.float(), b.float()


def fit_swaps(Z: torch.Tensor, factors: torch.Tensor, specs) -> tuple[list[ClassSwap], list[SliderSpec]]:
    """ClassSwaps for the categorical sliders among ``specs`` (the others, and a factor with a class missing from
    the data, are left out), fitted on latents Z (N, D) and their grid factors -> (swaps, their specs)."""
    from ..clip.factors import class_counts

    out, kept, fitted = [], [], {}
    for spec in specs:
        if not spec.categorical:
            continue
        j = spec.index
        if j not in fitted:  # every class of the factor, present in the data or not (then None: left out)
            fitted[j] = _fit_reader(Z, factors[:, j].long(), class_counts()[j])
        if fitted[j] is None:
            continue
        swap = ClassSwap(*fitted[j], spec.plus)
        swap.vector = _unit_std(swap.vector_or_chord(), Z)
        out.append(swap)
        kept.append(spec)
    return out, kept


def fit_steps(Z: torch.Tensor, factors: torch.Tensor, specs) -> tuple[list[ClassStep], list[SliderSpec]]:
    """ClassSteps for the ordered sliders among ``specs`` that are not hues (scale, orientation; the others are
    left out), on the factors' classes (soda.clip.factors.bin_factors) and the rows where the factor shows
    (orientation: the shapes where it is visible) -> (steps, their specs)."""
    from ..clip.factors import bin_factors, class_counts

    classes = bin_factors(factors)
    out, kept = [], []
    for spec in specs:
        if spec.categorical or spec.factor in CIRCULAR:
            continue
        _, use = side_labels(spec, factors)
        j = spec.index
        parts = _fit_reader(Z[use], classes[use, j], class_counts()[j])
        if parts is None:
            continue
        st = ClassStep(*parts, spec.plus, spec.minus)
        st.vector = _unit_std(st.vector_or_chord(), Z)
        out.append(st)
        kept.append(spec)
    return out, kept
