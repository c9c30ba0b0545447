"""Which factor does each slider move? Factor classifiers trained on procedural-world renders with ground truth.

A small CNN with one head per factor (``world.FACTOR_NAMES``) learns the factors from clean default-camera renders
(with mild noise and blur so it tolerates decoder artefacts). The ordinal factors are binned (scale into 4 bins,
orientation into 5), so a "change" means leaving a bin rather than a one-step wobble; orientation is learned and
counted only for the shapes where it is visible (cube, capsule). Then, for a traversal along a slider, the fraction
of frames whose predicted factor differs from the reference frame's says which factor the slider moves.

No CLIP is involved: this is the ground-truth side of the CLIP naming validation, and a metric on its own.

    clf = load_or_train_factor_classifiers(model.res, cache="runs/clip-cache")
    move = slider_factors(model, dirs, z_ref, clf)     # move.changes (K, 6); move.top() -> [[(factor, frac)]]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import world
from .cache import ResultCache, as_cache, model_fingerprint, tensor_digest
from .traversal import DEFAULT_VALUES, Progress, as_directions, traversal_frames

BINS = {"scale": 4, "orientation": 5}  # ordinal factors: classes are contiguous bins of the grid values
ORIENTATION_VISIBLE = (0, 3)  # cube and capsule (the cylinder and the sphere are symmetric about the vertical axis)
FACTORS_VERSION = 1


def class_counts() -> tuple[int, ...]:
    """Classes per factor after binning, in FACTOR_NAMES order."""
    return tuple(BINS.get(n, s) for n, s in zip(world.FACTOR_NAMES, world.FACTOR_SIZES))


def bin_factors(factors: torch.Tensor) -> torch.Tensor:
    """(N, 6) grid indices -> (N, 6) class indices (ordinal factors binned evenly)."""
    out = factors.long().clone()
    for j, (name, size) in enumerate(zip(world.FACTOR_NAMES, world.FACTOR_SIZES)):
        if name in BINS:
            out[:, j] = out[:, j] * BINS[name] // size
    return out


class FactorNet(nn.Module):
    """(B,3,H,W) in [-1,1] -> concatenated logits of every factor head (B, sum(class_counts()))."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width

        def block(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(3, w, 1),
            *block(w, 2 * w, 2),
            *block(2 * w, 2 * w, 2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * w * 16, 128),
            nn.ReLU(),
        )  # (B, 128): position survives the 4x4 pooling (floor below, wall above, object in the middle)
        self.heads = nn.Linear(128, sum(class_counts()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.features(x))


@dataclass
class FactorClassifiers:
    """Trained factor heads for images of one resolution, with their held-out accuracy per factor."""

    net: FactorNet
    res: int
    accuracy: dict[str, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    names = world.FACTOR_NAMES

    @torch.no_grad()
    def probs(self, images: torch.Tensor, batch_size: int = 256) -> list[torch.Tensor]:
        """(N,3,H,W) in [-1,1] -> per factor (N, C_f) class probabilities."""
        if images.shape[-1] != self.res or images.shape[-2] != self.res:
            images = F.interpolate(images.float(), size=(self.res, self.res), mode="bilinear", antialias=True)
        self.net.eval()
        logits = torch.cat(
            [self.net(images[i : i + batch_size].float()) for i in range(0, images.shape[0], batch_size)]
        )
        return [p.softmax(-1) for p in logits.split(class_counts(), dim=1)]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) in [-1,1] -> (N, 6) predicted classes (binned for scale and orientation)."""
        return torch.stack([p.argmax(-1) for p in self.probs(images)], dim=1)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        return {"res": self.res, "accuracy": self.accuracy, "meta": self.meta}, self.net.state_dict()

    @classmethod
    def from_state(cls, info: dict, tensors: dict[str, torch.Tensor]) -> FactorClassifiers:
        net = FactorNet(int(info["meta"].get("width", 16)))
        net.load_state_dict(tensors)
        return cls(net.eval(), int(info["res"]), dict(info["accuracy"]), dict(info["meta"]))


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Noise of random strength and a random amount of 3x3 blur: decoded images are never perfectly clean."""
    b = x.shape[0]
    blur = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    a = torch.rand(b, 1, 1, 1, generator=g)
    x = x + a * (blur - x)
    return x + 0.08 * torch.rand(b, 1, 1, 1, generator=g) * torch.randn(x.shape, generator=g)


def _accuracy(clf: FactorClassifiers, images: torch.Tensor, factors: torch.Tensor) -> dict[str, float]:
    pred, true = clf.predict(images), bin_factors(factors)
    out = {}
    for j, name in enumerate(world.FACTOR_NAMES):
        keep = torch.ones(len(true), dtype=torch.bool)
        if name == "orientation":
            keep = torch.isin(factors[:, 4], torch.tensor(ORIENTATION_VISIBLE))
        out[name] = float((pred[keep, j] == true[keep, j]).float().mean()) if keep.any() else float("nan")
    return out


def train_factor_classifiers(
    res: int,
    n_train: int = 4000,
    n_test: int = 1000,
    steps: int = 600,
    batch_size: int = 64,
    width: int = 16,
    lr: float = 6e-3,
    seed: int = 0,
    progress: Progress | None = None,
    camera: str = "fixed",
) -> FactorClassifiers:
    """Render n_train training-split scenes at ``res`` (the default camera, or random cameras with
    ``camera="random"``: classifiers for novel views), train the heads for ``steps`` Adam steps, and measure
    accuracy on n_test held-out scenes (test split) seen the same way. Deterministic in ``seed``."""
    from ..data.views import world_eval_set

    say = progress or (lambda f, s: None)
    say(0.0, "rendering labelled scenes")
    train = world_eval_set(n_train, res, split="train", seed=seed, camera=camera)
    X, Y = train["images"], bin_factors(train["factors"])
    visible = torch.isin(train["factors"][:, 4], torch.tensor(ORIENTATION_VISIBLE))
    o = world.FACTOR_NAMES.index("orientation")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FactorNet(width)
    opt = torch.optim.Adam(net.parameters(), lr=lr / 10)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for step in range(steps):
        idx = torch.randint(n_train, (batch_size,), generator=g)
        heads = net(_augment(X[idx], g)).split(class_counts(), dim=1)
        loss = 0.0
        for j, logits in enumerate(heads):
            ce = F.cross_entropy(logits, Y[idx, j], reduction="none")
            loss = loss + (ce[visible[idx]].sum() / max(1, int(visible[idx].sum())) if j == o else ce.mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and step % 25 == 0:
            say(0.05 + 0.85 * step / steps, f"training factor classifiers ({step}/{steps})")
    meta = {"n_train": n_train, "steps": steps, "width": width, "seed": seed, "camera": camera}
    clf = FactorClassifiers(net.eval(), res, meta=meta)
    say(0.9, "held-out accuracy")
    test = world_eval_set(n_test, res, split="test", seed=seed + 1, camera=camera)
    clf.accuracy = _accuracy(clf, test["images"], test["factors"])
    say(1.0, "done")
    return clf


def load_or_train_factor_classifiers(
    res: int, cache: ResultCache | str | os.PathLike | None = None, progress: Progress | None = None, **train_kw
) -> FactorClassifiers:
    """The cached classifiers for this resolution and training setting, training (and storing) them on first use."""
    from ..data.views import world_eval_set

    store = as_cache(cache)
    settings = {"n_train": 4000, "n_test": 1000, "steps": 600, "batch_size": 64, "width": 16, "lr": 6e-3, "seed": 0}
    settings.update(train_kw)
    if settings.get("camera", "fixed") == "fixed":
        settings.pop("camera", None)  # the default-camera key stays as it was before random cameras existed
    key = {
        "kind": "factor_classifiers",
        "version": FACTORS_VERSION,
        "res": res,
        "bins": BINS,
        **settings,
        "renderer": tensor_digest(world_eval_set(4, res, split="test", seed=12345)["images"]),
    }
    hit = store.get("factors", key) if store else None
    if hit is not None:
        return FactorClassifiers.from_state(*hit)
    clf = train_factor_classifiers(res, progress=progress, **settings)
    if store:
        store.put("factors", key, *clf.state())
    return clf


# ------------------------------------------------------------------------------------------------------------
# Sliders measured by the classifiers
# ------------------------------------------------------------------------------------------------------------


@dataclass
class FactorMovement:
    """Per slider direction, the fraction of traversal frames whose predicted factor leaves the reference's class."""

    names: tuple[str, ...]
    changes: torch.Tensor  # (K, F) in [0, 1], mean over reference latents

    def top(self, k: int = 2) -> list[list[tuple[str, float]]]:
        """Per direction, the k most-changed factors as (name, fraction), most first."""
        out = []
        for row in self.changes:
            order = sorted(range(len(self.names)), key=lambda j: (-float(row[j]), j))[:k]
            out.append([(self.names[j], float(row[j])) for j in order])
        return out


def factor_changes(clf: FactorClassifiers, frames: torch.Tensor, anchor: int) -> torch.Tensor:
    """Traversal frames (K, R, S, 3, H, W) and the index of the reference frame in S -> (K, F) fraction of the other
    frames whose predicted class differs from the reference frame's (orientation: only between visible shapes)."""
    K, R, S = frames.shape[:3]
    pred = clf.predict(frames.reshape(-1, *frames.shape[3:])).reshape(K, R, S, -1)  # (K, R, S, F)
    ref = pred[:, :, anchor : anchor + 1]  # (K, R, 1, F)
    changed = (pred != ref).float()
    s, o = world.FACTOR_NAMES.index("shape"), world.FACTOR_NAMES.index("orientation")
    vis = torch.tensor(ORIENTATION_VISIBLE)
    both_visible = torch.isin(pred[..., s], vis) & torch.isin(ref[..., s], vis)
    changed[..., o] *= both_visible.float()
    others = [i for i in range(S) if i != anchor]
    return changed[:, :, others].mean(dim=(1, 2))


def slider_factors(
    model,
    directions,
    z_ref: torch.Tensor,
    classifiers: FactorClassifiers | None = None,
    values: Sequence[float] = DEFAULT_VALUES,
    decode_steps: int | None = None,
    seed: int = 0,
    cache: ResultCache | str | os.PathLike | None = None,
    frames: torch.Tensor | None = None,
    progress: Progress | None = None,
) -> FactorMovement:
    """Directions (K, z_dim) traversed from z_ref (R, z_dim) over ``values`` (0 is added as the reference when
    missing) -> FactorMovement. Pass ``frames`` (K, R, S, ...) decoded at exactly ``values`` to skip decoding."""
    say = progress or (lambda f, s: None)
    vals = [float(v) for v in values]
    if 0.0 not in vals:
        if frames is not None:
            raise ValueError("precomputed frames need 0 among the values (the reference frame)")
        vals = sorted([*vals, 0.0])
    d = as_directions(directions, model.z_dim)
    z_ref = z_ref.reshape(-1, model.z_dim).float()
    store = as_cache(cache)
    clf = classifiers or load_or_train_factor_classifiers(model.res, store, lambda f, s: say(0.4 * f, s))
    key = {
        "kind": "slider_factors",
        "soda": model_fingerprint(model),
        "classifiers": model_fingerprint(clf.net),
        "values": vals,
        "seed": seed,
        "decode_steps": decode_steps or model.cfg.diffusion.preview_steps,
        "directions": tensor_digest(d),
        "z_ref": tensor_digest(z_ref),
    }
    hit = store.get("movement", key) if store else None
    if hit is not None:
        return FactorMovement(tuple(hit[0]["names"]), torch.tensor(hit[0]["changes"]).reshape(d.shape[0], -1))
    if frames is None:
        frames = traversal_frames(
            model, d, z_ref, vals, decode_steps, seed, progress=lambda f, s: say(0.4 + 0.5 * f, s)
        )
    move = FactorMovement(world.FACTOR_NAMES, factor_changes(clf, frames, vals.index(0.0)))
    if store:
        store.put("movement", key, {"names": list(move.names), "changes": move.changes.tolist()})
    say(1.0, "done")
    return move
