"""Prompts as sliders and as map colours: CLIP scores a held-out set, the extremes become pseudo-labels, and a linear
classifier on the SODA latents turns them into a direction in z.

    emb = image_embeddings(clip, images, cache=folder)              # (N, D), cached per CLIP weights and images
    s = prompt_scores(clip, "a red object", embeddings=emb)          # (N,) cosine similarity: colour the map with it
    d, info = prompt_direction(clip, "a red object", Z, images)      # (z_dim,) one std of Z along it; diagnostics
    z_edit = api.move_along(z, d, 1.5)

The image embeddings are the only expensive part (one CLIP forward per image); with them cached a new prompt costs
one text encoding and a logistic regression (milliseconds).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from .cache import ResultCache, as_cache, tensor_digest
from .loading import ClipModel
from .naming import DEFAULT_TEMPLATE


def image_embeddings(
    clip: ClipModel, images: torch.Tensor, cache: ResultCache | str | os.PathLike | None = None, batch_size: int = 64
) -> torch.Tensor:
    """(N,3,H,W) in [-1,1] -> (N, D) unit-norm CLIP embeddings, cached per (CLIP weights, image contents)."""
    store = as_cache(cache)
    key = {"kind": "image_embeddings", "clip": clip.key, "images": tensor_digest(images)}
    hit = store.get("embeddings", key) if store else None
    if hit is not None and "embeddings" in hit[1]:
        return hit[1]["embeddings"]
    emb = clip.encode_images(images, batch_size)
    if store:
        store.put("embeddings", key, {"n": int(emb.shape[0]), "dim": int(emb.shape[1])}, {"embeddings": emb})
    return emb


def prompt_scores(
    clip: ClipModel,
    prompt: str,
    images: torch.Tensor | None = None,
    *,
    embeddings: torch.Tensor | None = None,
    negative: str | None = None,
    template: str | None = DEFAULT_TEMPLATE,
    cache: ResultCache | str | os.PathLike | None = None,
) -> torch.Tensor:
    """Images (N,3,H,W) in [-1,1] (or their embeddings (N, D)) -> (N,) cosine similarity to the prompt, minus the
    similarity to ``negative`` when given. ``template`` wraps the prompt ('{}' alone or None: as typed)."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise ValueError("type a prompt, e.g. 'a red object'")
    if embeddings is None:
        if images is None:
            raise ValueError("give images or their embeddings")
        embeddings = image_embeddings(clip, images, cache)
    texts = [prompt] + ([negative.strip()] if negative and negative.strip() else [])
    text = clip.encode_text([template.format(t) if template else t for t in texts])  # (1 or 2, D)
    sims = embeddings.float() @ text.T  # (N, 1 or 2)
    return sims[:, 0] - sims[:, 1] if sims.shape[1] == 2 else sims[:, 0]


def fit_direction(Z: torch.Tensor, y: torch.Tensor, C: float = 1.0) -> tuple[torch.Tensor, float]:
    """Latents (N, z_dim) and binary labels (N,) -> (the logistic-regression normal in z as a unit vector pointing to
    the positive class (z_dim,), training accuracy). L2-regularised like sklearn's default (C = 1) on standardised
    z, solved by L-BFGS in float64 (deterministic, no sklearn import)."""
    X = Z.double()
    mean, scale = X.mean(0), X.std(0).clamp(min=1e-8)
    Xs = (X - mean) / scale  # (N, z_dim)
    t = y.double()
    w = torch.zeros(X.shape[1] + 1, dtype=torch.float64, requires_grad=True)  # weights and bias
    opt = torch.optim.LBFGS([w], lr=1, max_iter=200, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = Xs @ w[:-1] + w[-1]
        loss = C * F.binary_cross_entropy_with_logits(logits, t, reduction="sum") + 0.5 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w = w.detach()
    acc = float((((Xs @ w[:-1] + w[-1]) > 0).double() == t).double().mean())
    normal = w[:-1] / scale  # the decision function is w . (z - mean) / scale: its normal in z units
    return (normal / normal.norm().clamp(min=1e-12)).float(), acc


def prompt_direction(
    clip: ClipModel,
    prompt: str,
    z_set: torch.Tensor,
    images: torch.Tensor | None = None,
    quantile: float = 0.2,
    *,
    embeddings: torch.Tensor | None = None,
    negative: str | None = None,
    template: str | None = DEFAULT_TEMPLATE,
    cache: ResultCache | str | os.PathLike | None = None,
) -> tuple[torch.Tensor, dict]:
    """A prompt -> a slider: the top / bottom ``quantile`` of the images by CLIP score become positive / negative
    pseudo-labels, a logistic regression on their latents z_set (N, z_dim) gives the normal. Returns (direction
    (z_dim,) scaled to one std of z_set along it, info with n_pos, n_neg, train_accuracy, score thresholds,
    pos_index / neg_index and corr: the correlation of every latent's projection with its CLIP score)."""
    if not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile}")
    n = z_set.shape[0]
    if (embeddings if embeddings is not None else images) is None:
        raise ValueError("give images or their embeddings")
    if (embeddings if embeddings is not None else images).shape[0] != n:
        raise ValueError("z_set and the images must have the same number of rows")
    m = int(round(quantile * n))
    if m < 2:
        raise ValueError(f"{n} images at quantile {quantile} give fewer than 2 per class: use more images")
    store = as_cache(cache)
    key = {
        "kind": "prompt_direction",
        "clip": clip.key,
        "prompt": prompt,
        "negative": negative,
        "template": template,
        "quantile": quantile,
        "z": tensor_digest(z_set),
        "images": tensor_digest(embeddings if embeddings is not None else images),
    }
    hit = store.get("prompt", key) if store else None
    if hit is not None and "direction" in hit[1]:
        return hit[1]["direction"], hit[0]
    s = prompt_scores(clip, prompt, images, embeddings=embeddings, negative=negative, template=template, cache=store)
    order = torch.argsort(s, stable=True)
    neg, pos = order[:m].sort().values, order[-m:].sort().values
    idx = torch.cat([pos, neg])
    y = torch.cat([torch.ones(m), torch.zeros(m)])
    unit, acc = fit_direction(z_set[idx].float(), y)
    proj = (z_set.double() - z_set.double().mean(0)) @ unit.double()  # (N,) every latent on the normal
    direction = (unit.double() * proj.std()).float()  # one std of the whole set along it (api.section_directions)
    corr = float(torch.corrcoef(torch.stack([proj, s.double()]))[0, 1]) if s.std() > 0 and proj.std() > 0 else 0.0
    info = {
        "prompt": prompt,
        "negative": negative,
        "quantile": quantile,
        "n_pos": m,
        "n_neg": m,
        "train_accuracy": acc,
        "score_low": float(s[neg].max()),
        "score_high": float(s[pos].min()),
        "score_mean": float(s.mean()),
        "score_std": float(s.std()),
        "corr": corr,
        "pos_index": pos.tolist(),
        "neg_index": neg.tolist(),
    }
    if store:
        store.put("prompt", key, info, {"direction": direction, "scores": s.float()})
    return direction, info
