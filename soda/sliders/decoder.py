"""Slider directions through the decoder: a differentiable DDIM decode, the factor classifiers' smooth scores and
their gradients with respect to z (``score_gradients``), directions with their first-order effect on the other
factors removed (``projected_directions``), and directions tuned by gradient descent against the classifiers
(``refine_direction``). Latents are (B, z_dim), images (B, 3, H, W) in [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch

from ..eval.edits import CIRCULAR, FACTORS, ORIENT, SliderSpec, class_distance

Progress = Callable[[float, str], None]


# ------------------------------------------------------------------------------------------------------------
# Refinement through the decoder
# ------------------------------------------------------------------------------------------------------------


@contextmanager
def frozen(*modules: torch.nn.Module):
    """No parameter gradients inside (only the latent or direction is optimised): backward passes skip the weights'
    gradients, which are most of their cost; the previous flags come back after."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)


def differentiable_decoder(model, steps: int = 4, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """z (B, D) -> images (B,3,H,W): DDIM (eta 0, clipped x0) from the fixed noise of ``seed`` with gradients, as
    soda.api.decode draws it with the same steps (default camera)."""
    from ..api import camera_rays
    from ..diffusion.process import to_x0, x0_to_eps
    from ..diffusion.schedule import alpha_bar

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
    clf.net.eval()
    decode = differentiable_decoder(model, decode_steps, seed)
    z = Z_ref.detach().float().clone().requires_grad_(True)
    with frozen(model, clf.net), torch.enable_grad():
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
    """d (D,) minus its component in the span of G's rows (S, D), rescaled to d's length. Rows that are zero (a
    factor the decoder does not draw from z) or dependent add nothing to the span."""
    if G.shape[0] == 0:
        return d
    _, S, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    Q = Vh[S > 1e-8 * S.max().clamp(min=1e-300)].T  # (D, rank) orthonormal columns; none when G is all zero
    out = d.double() - Q @ (Q.T @ d.double())
    return (out * d.double().norm() / out.norm().clamp(min=1e-12)).float()


def projected_directions(
    model,
    clf,
    D: torch.Tensor,
    specs: Sequence[SliderSpec],
    Z_ref: torch.Tensor,
    decode_steps: int = 4,
    seed: int = 0,
    gradients: tuple | None = None,
) -> torch.Tensor:
    """Directions D (K, z_dim) with the first-order effect on the *other* factors' readings removed: each minus its
    component along the decoder-measured gradients (score_gradients at Z_ref) of every factor it does not promise
    (a shape slider keeps orientation free: a sphere has none), kept at its length (InterFaceGAN's conditional
    editing, with attribute directions measured through the decoder instead of fitted on z). ``gradients``: the
    (G, owners) score_gradients already gave for these Z_ref, decode steps and seed (computed here without)."""
    G, owners = gradients if gradients is not None else score_gradients(model, clf, Z_ref, decode_steps, seed)
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
    steps: int = 12,
    strengths: Sequence[float] = (2.0, 1.0),
    decode_steps: int = 2,
    lr: float = 0.05,
    keep_weight: float = 1.0,
    seed: int = 1,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Tune a slider direction d0 (z_dim,) through the decoder against the factor classifiers -> the tuned direction
    (z_dim,), one std of Z_data (N, z_dim) along it.

    Adam on the unit direction u: at each step both signs of one strength a (cycling through ``strengths``, in std)
    are decoded from Z_fit (B, z_dim) + a * slider differentiably (``decode_steps`` DDIM steps from the fixed noise
    of ``seed``; 1 is the one-step x0 prediction from pure noise, the image's layout and colours; the default 2
    also sees part of what the later steps decide, such as the object's orientation: both a fraction of a full
    decode's cost). The loss is the classifiers' expected class distance of the slider's
    factor to the end its sign names (for a shape: the named shape's log-probability at +, leaving it at -) plus
    ``keep_weight`` x the KL divergence of every other factor's class distribution from the reconstruction's
    (orientation only where the reconstruction shows a cube or a capsule; free for a shape slider). Use a ``seed``
    other than the one the sliders are measured with, and Z_fit disjoint from the measured scenes."""
    from ..clip.factors import ORIENTATION_VISIBLE

    say = progress or (lambda f, s: None)
    X = Z_data.double() - Z_data.double().mean(0)
    u = (d0.double() / d0.double().norm()).clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    counts = [int(c) for c in _class_counts()]
    j = spec.index
    decode = differentiable_decoder(model, decode_steps, seed)
    Z_fit = Z_fit.detach().float()

    def log_probs(images: torch.Tensor) -> list[torch.Tensor]:
        return [lp.log_softmax(-1) for lp in clf.net(images).split(counts, dim=1)]

    def slider(unit: torch.Tensor) -> torch.Tensor:
        return (unit * (X @ unit).std()).float()

    clf.net.eval()
    with frozen(model, clf.net):
        with torch.no_grad():
            ref = [lp.detach() for lp in log_probs(decode(Z_fit))]
        visible = torch.isin(ref[FACTORS.index("shape")].argmax(1), torch.tensor(ORIENTATION_VISIBLE)).float()
        was = ref[j].argmax(1) == spec.plus
        dist_to = {}
        if not spec.categorical:
            cls = torch.arange(counts[j])
            for end in (spec.plus, spec.minus):
                dist_to[end] = class_distance(cls, torch.full_like(cls, end), spec.factor).float()
        for step in range(steps):
            a = float(strengths[step % len(strengths)])
            with torch.enable_grad():
                d = slider(u / u.norm())
                loss = torch.zeros((), dtype=torch.float32)
                for sign in (1.0, -1.0):
                    lp = log_probs(decode(Z_fit + sign * a * d))
                    if spec.categorical:  # + reaches the named shape where it was another, - leaves it
                        rows = ~was if sign > 0 else was
                        if rows.any():
                            p = lp[j][rows, spec.plus]
                            loss = loss + (-p if sign > 0 else -torch.log1p(-p.exp().clamp(max=1 - 1e-4))).mean()
                    else:
                        loss = loss + (lp[j].exp() * dist_to[spec.plus if sign > 0 else spec.minus]).sum(1).mean()
                    for g in range(len(FACTORS)):
                        if g == j or (g == ORIENT and spec.factor == "shape"):
                            continue
                        kl = (ref[g].exp() * (ref[g] - lp[g])).sum(1)
                        w = visible if g == ORIENT else torch.ones_like(kl)
                        loss = loss + keep_weight * (kl * w).sum() / w.sum().clamp(min=1)
                opt.zero_grad()
                loss.backward()
            opt.step()
            say((step + 1) / steps, f"refining {spec.label} ({step + 1}/{steps}): loss {float(loss.detach()):.3f}")
    with torch.no_grad():
        return slider(u / u.norm()).detach()


def _class_counts():
    from ..clip.factors import class_counts

    return class_counts()
