"""Slider directions found without labels, the label-blind choice of what the explorer shows, and their scores.

A person who trains on their own images has no factor labels: the sliders they get must come from the latents (and
the decoder) alone. Every method here takes latents Z (N, z_dim) and, for the decoder-based ones, a ``decode(z) ->
images`` callable; none takes labels. Each returns directions (M, z_dim) scaled to one standard deviation of the data
along them, signed so that their largest-magnitude entry is positive (deterministic, solver-independent).

- ``pca_section``: the top principal directions within each latent section (the explorer's sliders until 2026-12).
- ``ica_section``: FastICA within each section (on the section's top principal components).
- ``ica_z``: FastICA on the whole z (``n`` components): independent directions may span several sections, which is
  where the pilot (docs/METHOD.md) found the hues.
- ``sefa``: the decoder's response: the top eigenvectors of sum_scenes J^T J, where J is the Jacobian of the
  one-step decode with respect to the whitened latent (finite differences), i.e. the directions that change the
  image most per standard deviation of the data (SeFa's idea, measured through the decoder instead of read off one
  weight matrix).

``change_maps`` decodes each direction at +-amount on a few scenes and returns where in the image it acts (the
explorer shows it beside the slider). ``labelfree_scores`` is the evaluation: for every factor, the shown direction
that moves it most cleanly (labels score, they never choose).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..eval.edits import FACTORS, change_rates, comparable

Decode = Callable[[torch.Tensor], torch.Tensor]
LABEL_FREE_METHODS = ("pca_section", "ica_section", "ica_z", "sefa", "rings_ica", "ica_rings")
MET_EFFECT, MET_KEEP = 0.8, 0.9  # a factor is "reached" by a slider that moves it in >= 80% and keeps the rest >= 90%


def _signed_unit_std(D: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """Rows of D (M, z_dim) rescaled to one std of Z along each (direction's unit), largest entry positive."""
    D = D.double()
    D = D / D.norm(dim=1, keepdim=True).clamp(min=1e-12)
    std = ((Z.double() - Z.double().mean(0)) @ D.T).std(0)  # (M,)
    sign = torch.where(D.gather(1, D.abs().argmax(1, keepdim=True)) >= 0, 1.0, -1.0).to(D.dtype)
    return (D * sign * std[:, None]).float()


def _ica(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    """FastICA on X (N, d) -> mixing directions (n, d) in X's space (one source's unit move)."""
    from sklearn.decomposition import FastICA

    n = min(n, X.shape[1], X.shape[0])
    ica = FastICA(n_components=n, whiten="unit-variance", random_state=seed, max_iter=1000, tol=1e-4)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: the directions are scored by what they do
        ica.fit(X)
    return ica.mixing_.T  # (n, d)


def fit_label_free(
    Z: torch.Tensor,
    slices: Sequence[slice],
    method: str,
    n: int = 21,
    per_section: int = 3,
    seed: int = 0,
    decode: Decode | None = None,
    jac_scenes: int = 16,
) -> torch.Tensor | list:
    """Label-free directions (M, z_dim) (the ring methods: a list of sliders, RingRotations first) from latents Z
    (N, z_dim): ``method`` in LABEL_FREE_METHODS; ``n`` directions
    for the whole-z methods, ``per_section`` for the per-section ones; ``decode`` (one-step decode, for ``sefa``)."""
    from ..latent_map import pca

    Z = Z.double()
    D_all = Z.shape[1]
    rows: list[torch.Tensor] = []
    if method in ("pca_section", "ica_section"):
        for sl in slices:
            mean, axes, std = pca(Z[:, sl], per_section if method == "pca_section" else max(per_section, 4))
            if method == "pca_section":
                local = axes
            else:  # ICA on the section's top principal components (FastICA whitens them)
                P = ((Z[:, sl] - mean) @ axes.T).numpy()
                local = torch.from_numpy(_ica(P, per_section, seed)) @ axes
            for v in local[:per_section]:
                full = torch.zeros(D_all, dtype=torch.float64)
                full[sl] = v
                rows.append(full)
    elif method == "ica_z":
        mean = Z.mean(0)
        rows = list(torch.from_numpy(_ica((Z - mean).numpy(), n, seed)))
    elif method == "rings_ica":  # ring pursuit first, then FastICA on what the rings leave
        rings, P = fit_rings(Z, seed=seed)
        rest = ((Z - Z.mean(0)) @ P).numpy()
        D = _signed_unit_std(torch.from_numpy(_ica(rest, max(1, n - 2 * len(rings)), seed)), Z)
        return [*rings, *D]
    elif method == "ica_rings":  # FastICA over z; pairs of components whose plane holds a ring become one rotation
        D = _signed_unit_std(torch.from_numpy(_ica((Z - Z.mean(0)).numpy(), n, seed)), Z)
        return ica_rings(Z, D)
    elif method == "sefa":
        if decode is None:
            raise ValueError("method 'sefa' needs the decoder (decode=)")
        mean, axes, std = pca(Z, D_all)
        keep = std > 1e-6 * std.max()
        W = axes[keep] * std[keep, None]  # (d, z_dim): whitened coordinates -> z
        M = torch.zeros(W.shape[0], W.shape[0], dtype=torch.float64)
        eps = 0.5
        for z0 in Z[:jac_scenes].float():
            lat = torch.cat([z0[None] + eps * W.float(), z0[None] - eps * W.float()])  # (2d, z_dim)
            imgs = decode(lat).double().flatten(1)
            J = (imgs[: W.shape[0]] - imgs[W.shape[0] :]) / (2 * eps)  # (d, pixels): rows = d image / d w_i
            M += J @ J.T
        evals, evecs = torch.linalg.eigh(M)
        U = evecs.flip(1).T[:n]  # (n, d), largest response first
        rows = list(U @ W)
    else:
        raise ValueError(f"unknown label-free method {method!r} (one of {', '.join(LABEL_FREE_METHODS)})")
    return _signed_unit_std(torch.stack(rows), Z)


RING_CV = 0.2  # a plane holds a ring when the radius varies less than this (coefficient of variation; a disk: 0.35)
RING_DIMS = 32  # ring pursuit runs in the latents' top principal components, whitened


def ring_pursuit(
    X: torch.Tensor, max_rings: int = 4, restarts: int = 6, steps: int = 250, seed: int = 0
) -> list[tuple[torch.Tensor, float]]:
    """Planes of whitened data X (N, d) in which the points lie on a ring (a circular factor: a hue) -> [(Q (d, 2)
    orthonormal, the radius' coefficient of variation)], best first, each found in the data with the previous planes
    projected out; stops at the first plane whose ring index is above RING_CV. The index: std / mean of the radius
    of the points' projection (0 for a perfect ring, about 0.52 for a Gaussian)."""
    X = X.double()
    g = torch.Generator().manual_seed(seed)
    out: list[tuple[torch.Tensor, float]] = []
    for _ in range(max_rings):
        best: tuple[torch.Tensor, float] | None = None
        for _ in range(restarts):
            W = torch.randn(X.shape[1], 2, generator=g, dtype=torch.float64).requires_grad_(True)
            opt = torch.optim.Adam([W], lr=0.05)
            for _ in range(steps):
                Q, _ = torch.linalg.qr(W)
                P = X @ Q
                r = (P.pow(2).sum(1) + 1e-9).sqrt()
                loss = r.var() / r.mean().pow(2)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                Q, _ = torch.linalg.qr(W.detach())
                r = (X @ Q).norm(dim=1)
                cv = float(r.std() / r.mean())
            if best is None or cv < best[1]:
                best = (Q, cv)
        if best is None or best[1] > RING_CV:
            break
        out.append(best)
        X = X - (X @ best[0]) @ best[0].T  # deflate: look for the next ring elsewhere
    return out


def fit_rings(Z: torch.Tensor, seed: int = 0, max_rings: int = 4) -> tuple[list, torch.Tensor]:
    """Ring rotations (soda.sliders.moves.RingRotation) found by ring pursuit in the top RING_DIMS whitened principal
    components of Z (N, z_dim), and the (z_dim, z_dim) projection that removes their planes from z (for the
    directions fitted on the rest)."""
    from ..latent_map import pca
    from .moves import RingRotation

    Z = Z.double()
    mean, axes, std = pca(Z, min(RING_DIMS, Z.shape[1], Z.shape[0] - 1))
    keep = std > 1e-6 * std.max()
    axes, std = axes[keep], std[keep]
    X = (Z - mean) @ axes.T / std  # whitened (N, d)
    rings, remove = [], torch.zeros(Z.shape[1], Z.shape[1], dtype=torch.float64)
    for Q, _cv in ring_pursuit(X, max_rings=max_rings, seed=seed):
        read = axes.T @ (Q / std[:, None])  # (D, 2): z - mean -> the plane (unit variance per axis)
        write = Q.T @ (axes * std[:, None])  # (2, D): the plane -> z - mean
        rings.append(RingRotation(mean.float(), read.float(), write.float()))
        remove += read @ write  # (D, D): the part of z - mean that lies in this plane
    return rings, torch.eye(Z.shape[1], dtype=torch.float64) - remove


def ica_rings(Z: torch.Tensor, D: torch.Tensor) -> list:
    """Directions D (M, z_dim) -> sliders: every pair of directions whose sources lie on a ring (radius coefficient
    of variation below RING_CV, best pairs first, each direction used once) becomes one RingRotation in their plane;
    the other directions stay."""
    from .moves import RingRotation

    Z = Z.double()
    mean = Z.mean(0)
    Dd = D.double()
    S = torch.linalg.lstsq(Dd.T, (Z - mean).T).solution.T  # (N, M) source coordinates: z - mean ~ S @ D
    sd = S.std(0)
    S = S / sd
    dual = torch.linalg.pinv(Dd)  # (z_dim, M): z - mean -> sources
    pairs = []
    for i in range(D.shape[0]):
        for j in range(i + 1, D.shape[0]):
            r = (S[:, i] ** 2 + S[:, j] ** 2).sqrt()
            pairs.append((float(r.std() / r.mean()), i, j))
    used: set[int] = set()
    rings = []
    for cv, i, j in sorted(pairs):
        if cv > RING_CV:
            break
        if i in used or j in used:
            continue
        used |= {i, j}
        read = dual[:, [i, j]] / sd[[i, j]]  # (D, 2): unit variance per axis
        write = Dd[[i, j]] * sd[[i, j], None]  # (2, D)
        rings.append(RingRotation(mean.float(), read.float(), write.float()))
    return [*rings, *[D[k] for k in range(D.shape[0]) if k not in used]]


@torch.no_grad()
def change_maps(decode: Decode, z: torch.Tensor, D, amount: float = 2.0) -> torch.Tensor:
    """Where each slider acts (D: directions (M, z_dim) or M sliders, soda.api.move_along): mean over scenes z (N,
    z_dim) of |decode(moved +a) - decode(moved -a)| averaged over colour -> (M, H, W) in [0, 2], the same noise
    for both sides (only the move differs)."""
    from .. import api

    out = []
    for d in D:
        lat = torch.cat([api.move_along(z, d, amount), api.move_along(z, d, -amount)])
        imgs = decode(lat)
        n = z.shape[0]
        out.append((imgs[:n] - imgs[n:]).abs().mean(1).mean(0))
    return torch.stack(out) if out else torch.zeros(0)


# ------------------------------------------------------------------------------------------------------------
# Scoring (labels score, never choose)
# ------------------------------------------------------------------------------------------------------------


def direction_outcomes(before: torch.Tensor, after: torch.Tensor) -> dict:
    """before (N, F) classes of the reconstructions, after (M, S, N, F) of the edits -> per direction, for every
    factor f: how often f's class changes (``changes`` (M, F)) and how often every *other* factor keeps its class
    (``keeps`` (M, F))."""
    M, F = after.shape[0], after.shape[-1]
    changes = torch.full((M, F), float("nan"))
    keeps = torch.zeros(M, F)
    for i in range(M):
        b = before[None].expand_as(after[i])
        changes[i] = change_rates(b, after[i])
        same = (after[i] == b) | ~comparable(b, after[i])  # (S, N, F)
        for f in range(F):
            others = [g for g in range(F) if g != f]
            keeps[i, f] = same[..., others].all(-1).float().mean()
    return {"changes": changes, "keeps": keeps}


def best_per_factor(changes: torch.Tensor, keeps: torch.Tensor, names: Sequence[str] | None = None) -> dict:
    """Per factor, the direction with the largest min(change, keep) (ties by the product) -> {factor: {"index",
    "name", "effect", "keeps", "met"}}; met = effect >= MET_EFFECT and keeps >= MET_KEEP."""
    out = {}
    ch = changes.nan_to_num(0.0)
    for f, fac in enumerate(FACTORS):
        score = torch.minimum(ch[:, f], keeps[:, f]) + 1e-6 * ch[:, f] * keeps[:, f]
        i = int(score.argmax())
        e, k = float(ch[i, f]), float(keeps[i, f])
        out[fac] = {
            "index": i,
            "name": names[i] if names is not None else str(i),
            "effect": e,
            "keeps": k,
            "met": bool(e >= MET_EFFECT and k >= MET_KEEP),
        }
    return out


@torch.no_grad()
def labelfree_scores(
    decode: Decode,
    classify: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    D,
    strengths: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
    names: Sequence[str] | None = None,
    batch: int = 64,
) -> dict:
    """Decode every direction of D (M, z_dim) at every strength on scenes z (N, z_dim), read the factors -> {"changes",
    "keeps" (lists, M x F), "best": best_per_factor, "met": how many factors are reached}."""
    from ..eval.edits import edit_latents

    rec = torch.cat([decode(z[i : i + batch]) for i in range(0, z.shape[0], batch)])
    before = classify(rec)
    lat = edit_latents(z, D, strengths).reshape(-1, z.shape[1])
    imgs = torch.cat([decode(lat[i : i + batch]) for i in range(0, lat.shape[0], batch)])
    after = classify(imgs).reshape(len(D), len(strengths), z.shape[0], -1)
    o = direction_outcomes(before, after)
    best = best_per_factor(o["changes"], o["keeps"], names)
    return {
        "changes": [[None if np.isnan(x) else float(x) for x in r] for r in o["changes"].tolist()],
        "keeps": o["keeps"].tolist(),
        "best": best,
        "met": sum(b["met"] for b in best.values()),
    }


# ------------------------------------------------------------------------------------------------------------
# What the explorer ships
# ------------------------------------------------------------------------------------------------------------

# The explorer's label-free sliders: FastICA over the whole z, pairs of components that lie on a ring turned into
# one rotation (docs/METHOD.md "Label-free sliders": on the bundled checkpoint this reached more factors than PCA or
# ICA within sections or the decoder's response, at equal budget; chosen once by that study, never per checkpoint
# by labels).
SHIPPED_FREE = "ica_rings"
N_FREE = 21
MAP_SCENES = 8  # scenes averaged in each direction's change map


def explorer_directions(model, Z: torch.Tensor, seed: int = 0) -> list:
    """The explorer's label-free sliders for ``model``, fitted on latents Z (N, z_dim) alone -> M sliders: ring
    rotations (soda.sliders.moves.RingRotation) first, then directions (z_dim,)."""
    from .. import api

    n = min(N_FREE, Z.shape[1], max(1, Z.shape[0] - 1))
    return list(fit_label_free(Z, api.section_slices(model), SHIPPED_FREE, n=n, seed=seed))


def explorer_change_maps(model, Z: torch.Tensor, D, seed: int = 0) -> torch.Tensor:
    """Where each slider of D (M sliders, or directions (M, z_dim)) acts, on the first MAP_SCENES latents of Z,
    with one-step decodes -> (M, H, W) in [0, 1] (scaled by the largest value of all maps, so that they compare)"""
    from .. import api

    maps = change_maps(lambda z: api.decode(model, z, steps=1, seed=seed), Z[:MAP_SCENES].float(), D)
    return (maps / maps.max().clamp(min=1e-6)).float() if maps.numel() else maps
