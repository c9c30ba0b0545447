"""Statistics of a map of latents (N, z_dim): principal axes, label directions, the Gaussian OOD model, the t-SNE
layout (cached beside the explorer assets). Pure functions of the latents, used by soda.precompute and soda.api.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .atomic import is_writable, write_file

__all__ = [
    "TSNE_NAME",
    "label_direction",
    "named_directions",
    "ood_model",
    "pca",
    "principal_axes",
    "tsne_fingerprint",
    "tsne_map",
]

TSNE_NAME = "tsne.safetensors"
SHRINK = 0.1  # covariance shrinkage towards a scaled identity for the OOD distance


def label_direction(Z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Latents (N, z_dim) and binary labels (N,) -> the logistic-regression normal in z, scaled to one std of Z along
    it, pointing towards the positive class. (z_dim,)"""
    from sklearn.linear_model import LogisticRegression

    X = Z.double()
    mean, scale = X.mean(0), X.std(0).clamp(min=1e-8)
    clf = LogisticRegression(C=1.0, max_iter=500)
    clf.fit(((X - mean) / scale).numpy(), y.numpy().astype(int))
    w = torch.from_numpy(clf.coef_[0]) / scale  # normal in z units: w . (z - mean) / scale
    w = w / w.norm().clamp(min=1e-12)
    std = ((X - mean) @ w).std()
    return (w * std).float()


def named_directions(
    Z: torch.Tensor, factors: torch.Tensor, names: list[str], classes: dict[str, dict[int, str]] | None = None
) -> tuple[torch.Tensor, list[str]]:
    """One direction per ordered factor (upper half vs lower half of its values) and one per class of a categorical
    factor (that class vs the rest). ``classes``: {factor: {value: class name}} for the categorical factors (default:
    the procedural world's shape). -> ((N, z_dim), labels)."""
    dirs, labels = [], []
    for j, name in enumerate(names):
        f = factors[:, j]
        named = classes.get(name) if classes is not None else dict(enumerate(_class_names(name) or [])) or None
        if named is not None:
            for c, cname in named.items():
                y = f == c
                if 0 < int(y.sum()) < len(y):
                    dirs.append(label_direction(Z, y))
                    labels.append(f"{name}: {cname}")
            continue
        y = f > f.float().median()
        if not y.any():  # the median is the largest value (e.g. a 0/1 label with more ones)
            y = f >= f.float().median()
        if 0 < int(y.sum()) < len(y):
            dirs.append(label_direction(Z, y))
            labels.append(f"{name} +")
    if not dirs:
        return torch.zeros(0, Z.shape[1]), []
    return torch.stack(dirs), labels


def pca(Z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The one PCA of the project. (N, D) -> float64 (mean (D,), the top k' = min(k, N, D) principal directions as
    orthonormal rows (k', D), largest variance first, each signed so that its largest-magnitude entry is positive,
    and the data's standard deviation along each (k',), with the N - 1 normalisation)."""
    mean = Z.double().mean(0)
    X = Z.double() - mean
    evals, evecs = torch.linalg.eigh(X.T @ X)  # (D, D): cheaper than an SVD of the tall (N, D) matrix
    k = min(k, X.shape[0], X.shape[1])
    Vh = evecs.flip(1).T[:k]  # rows, largest variance first
    sign = torch.where(Vh.gather(1, Vh.abs().argmax(1, keepdim=True)) >= 0, 1.0, -1.0).to(Vh.dtype)
    std = evals.flip(0)[:k].clamp(min=0).sqrt() / math.sqrt(max(1, X.shape[0] - 1))
    return mean, Vh * sign, std


def principal_axes(Z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) -> (mean (D,), k orthonormal rows (k, D)) as float32 (``pca``)."""
    mean, axes, _ = pca(Z, k)
    return mean.float(), axes.float()


def ood_model(Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, D) -> (mean, precision of the shrunk covariance, each row's distance (N,))."""
    X = Z.double()
    mean = X.mean(0)
    C = torch.cov((X - mean).T).reshape(X.shape[1], X.shape[1])
    d = C.shape[0]
    C = (1 - SHRINK) * C + SHRINK * (torch.trace(C) / d).clamp(min=1e-8) * torch.eye(d, dtype=C.dtype)
    P = torch.linalg.inv(C)
    dist = (((X - mean) @ P) * (X - mean)).sum(1).clamp(min=0).sqrt()
    return mean.float(), P.float(), dist.float()


def _class_names(name: str) -> list[str] | None:
    if name == "shape":
        from .data.world import SHAPE_NAMES

        return list(SHAPE_NAMES)
    return None


def tsne_fingerprint(file: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            return (f.metadata() or {}).get("fingerprint")
    except (OSError, ValueError, RuntimeError):
        return None


def tsne_map(assets, seed: int = 0) -> torch.Tensor:
    """(M, 2) t-SNE of the map latents of ``assets`` (soda.precompute.ExplorerAssets; sklearn), read from the cache
    folder when present, else computed and stored there (``tsne.safetensors``, tagged with the weights' hash).
    Assets shipped with a checkpoint are only read: a t-SNE computed for them goes to the user cache
    (``assets.save_folder()``)."""
    from safetensors.torch import load_file, save_file

    fp = assets.fingerprint
    save_to = assets.save_folder() if hasattr(assets, "save_folder") else assets.folder
    file = save_to / TSNE_NAME if save_to is not None else None
    for f in dict.fromkeys(d / TSNE_NAME for d in (assets.folder, save_to) if d is not None):
        if not f.exists():
            continue
        try:
            if tsne_fingerprint(f) == fp:
                t = load_file(str(f))["tsne"]
                if t.shape[0] == assets.map_latents.shape[0]:
                    return t
        except (OSError, ValueError, RuntimeError):
            pass
    from sklearn.manifold import TSNE

    Z = assets.map_latents.double().numpy()
    perplexity = float(min(30.0, max(2.0, (Z.shape[0] - 1) / 3.5)))
    Y = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=1).fit_transform(Z)
    out = torch.from_numpy(Y).float()
    if file is not None and is_writable(file.parent):
        try:
            write_file(file, lambda tmp: save_file({"tsne": out.contiguous()}, str(tmp), metadata={"fingerprint": fp}))
        except OSError:
            pass  # a cache: computed again next time
    return out
