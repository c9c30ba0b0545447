"""Hue sliders that turn the colour wheel: a z-dependent edit (issue 12).

A hue is a point on a circle. A fixed direction in z pushes every scene along one chord of that circle, so a scene
whose hue lies off the chord barely moves, or passes through colours that are neither end (docs/EDITS.md: the floor
hue slider's effect was stuck at 0.66 from 576k to 752k images). ``HueRotation`` instead reads where each scene's
hue lies on the wheel, turns it towards the slider's colour along the shorter arc and writes the change back:

    h(u) = (cos 2 pi u / n, sin 2 pi u / n)          a position u on the wheel of n hue classes
    u0   = angle of (z - center) @ read               where the scene's hue is (a ridge regression z -> h)
    u1   = u0 + sign * min(step * |a|, arc to end)     ``a`` units of the slider; end = plus (a > 0) or minus (a < 0)
    z'   = z + (h(u1) - h(u0)) @ write                 write: the least-squares map h -> z (optionally only on the
                                                       sections that carry the hue)

One unit of the slider turns the hue by ``step`` classes (default one class, 36 degrees) and never past the named
colour; the + and - colours are opposite on the wheel, so the two signs always turn opposite ways and the edit is
continuous through 0. Everything else in z is left as it is. The object has ``move(z, amount)``, which
``soda.api.move_along`` uses in place of ``z + amount * direction`` for every consumer (the explorer, the metric);
``vector`` is its + chord scaled to one std of the data, for code that needs a plain direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..eval.edits import CIRCULAR, SliderSpec
from .fit import _unit_std, carrier_mask, side_labels

STEP = 1.0  # hue classes turned per unit of the slider
RIDGE = 1e-2  # the read map's ridge, per sample (z is standardised by nothing: the latents' own scale)


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
        return {"plus": int(self.plus), "minus": int(self.minus), "n": int(self.n), "step": float(self.step)}

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], meta: dict) -> HueRotation:
        """The inverse of (tensors(), meta()): checks shapes so that a damaged cache fails here, not in a slider."""
        c, r, w = (tensors[k].float() for k in ("center", "read", "write"))
        D = c.shape[0]
        if c.dim() != 1 or tuple(r.shape) != (D, 2) or tuple(w.shape) != (2, D):
            raise ValueError(f"hue rotation tensors have shapes {tuple(c.shape)}, {tuple(r.shape)}, {tuple(w.shape)}")
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
) -> tuple[list[HueRotation], list[SliderSpec]]:
    """HueRotations for the hue sliders among ``specs`` (the others are left out) -> (rotations, their specs).
    'rotate_sec' writes only on the carrying sections and needs the section importance and size; 'rotate_proj'
    needs the model and the factor classifiers (the gradients through the decoder, at 16 of the latents Z)."""
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
        P = projected_directions(model, classifiers, rows, [s for s in kept for _ in range(2)], Z[:16], seed=seed)
        for i, r in enumerate(out):
            r.write, r.vector = P[2 * i : 2 * i + 2].float(), None
            r.vector = _unit_std(r.vector_or_chord(), Z)
    return out, kept
