"""Out-of-distribution detector of a checkpoint: is an image like the held-out data the checkpoint knows?

Three signals, each a number that grows as the image looks less like the data:

- ``latent``: Mahalanobis distance of the encoder's z from held-out latents (covariance shrunk towards a scaled
  identity). Alone it is weak: an encoder maps almost anything near its data (a colour wheel scored closer than a
  typical held-out scene on the bundled checkpoint).
- ``recon``: log10 of the mean squared error, in [0, 1] pixel units, between the image and its reconstruction
  ``decode(encode(x))`` at the checkpoint's preview steps and a fixed seed. A checkpoint draws only what it knows.
- ``pixel``: log10 of the mean squared error between the image at 16 x 16 and its projection on the top principal
  components of held-out images: how far the pixels are from anything the data looks like, whatever the network does.

Calibration (``calibrate``, run by soda.precompute per checkpoint): the latent and pixel statistics are fitted on one
set of held-out images; a second, disjoint set gives each signal's median and 99th percentile, which standardise it
to ``u = (s - median) / (q99 - median)`` (``u = 1``: as unusual as the 1 % most unusual held-out image for that
signal). The score of an image is its largest ``u``; the threshold is the ``1 - false_alarm`` quantile of the
calibration set's scores. An image is flagged when its score exceeds the threshold; the signals above the threshold
are the reasons. The detector is stored beside the explorer assets as ``ood.safetensors`` (tensors plus JSON
metadata, nothing pickled) and belongs to the weights it was calibrated on. ``bench/ood.py`` measures it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import api
from .atomic import write_file

OOD_VERSION = 1
FILE_NAME = "ood.safetensors"
FEATURES = ("latent", "recon", "pixel")
PIXEL_RES = 16  # images are average-pooled to this size for the pixel signal
PIXEL_COMPONENTS = 48  # principal components of held-out images kept (at most n_fit // 8)
SHRINK = 0.1  # covariance shrinkage of the latent signal
QUANTILE = 0.99  # each signal's calibration quantile that maps to u = 1
FALSE_ALARM = 0.01  # target false-alarm rate: the threshold is the (1 - FALSE_ALARM) quantile of calibration scores
RECON_SEED = 0  # decoder seed of the reconstruction signal
REASONS = {
    "latent": "its latent code is far from those of the data",
    "recon": "the checkpoint cannot reconstruct it",
    "pixel": "its pixels are unlike the data's images",
}


# ------------------------------------------------------------------------------------------------------------
# Signals (pure functions)
# ------------------------------------------------------------------------------------------------------------


def pixel_vectors(images: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) in [-1,1] -> (B, 3 * 16 * 16) float64 in [0,1] (average-pooled to PIXEL_RES when larger)."""
    x = (images.double() + 1) / 2
    if x.shape[-1] > PIXEL_RES:
        x = F.adaptive_avg_pool2d(x, PIXEL_RES)
    return x.reshape(x.shape[0], -1)


def recon_error(images: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Two (B,3,H,W) batches in [-1,1] -> (B,) log10 MSE in [0,1] pixel units (-PSNR / 10)."""
    mse = (((images.double() - recon.double()) / 2) ** 2).mean((1, 2, 3))
    return torch.log10(mse.clamp(min=1e-10))


def latent_stats(Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (N, D) -> (mean (D,), precision (D, D)) of the covariance shrunk towards a scaled identity, float64."""
    X = Z.double()
    mean = X.mean(0)
    d = X.shape[1]
    C = torch.cov((X - mean).T).reshape(d, d)
    C = (1 - SHRINK) * C + SHRINK * (torch.trace(C) / d).clamp(min=1e-12) * torch.eye(d, dtype=C.dtype)
    return mean, torch.linalg.inv(C)


def pixel_stats(P: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel vectors (N, P) -> (mean (P,), k orthonormal principal axes (k, P)), float64."""
    mean = P.double().mean(0)
    _, _, Vh = torch.linalg.svd(P.double() - mean, full_matrices=False)
    return mean, Vh[:k]


def standardise(raw: torch.Tensor, center: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(B, F) raw signals -> (B, F) u = (raw - center) / scale."""
    return (raw.double() - center.double()) / scale.double()


def fit_standardisation(calib: torch.Tensor, quantile: float = QUANTILE) -> tuple[torch.Tensor, torch.Tensor]:
    """Calibration signals (N, F) -> (center = median, scale = quantile - median, at least 1e-6 of the spread)."""
    c = calib.double()
    center = c.median(0).values
    spread = (c.max(0).values - c.min(0).values).clamp(min=1e-9)
    scale = torch.maximum(torch.quantile(c, quantile, dim=0) - center, 1e-6 * spread).clamp(min=1e-9)
    return center, scale


def fit_threshold(scores: torch.Tensor, false_alarm: float = FALSE_ALARM) -> float:
    """Calibration scores (N,) -> the threshold: their (1 - false_alarm) quantile, so that at most
    ``floor(false_alarm * N)`` of them (the false alarms on the calibration set) lie above it."""
    s = torch.sort(scores.double()).values
    n = s.shape[0]
    k = min(n - 1, max(0, math.ceil((1 - false_alarm) * n) - 1))  # the k-th smallest: n - 1 - k scores above it
    return float(s[k])


# ------------------------------------------------------------------------------------------------------------
# The detector
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """One image's result: the score, the threshold, whether it is flagged, and why (signal names)."""

    score: float
    threshold: float
    flagged: bool
    reasons: list[str]
    signals: dict[str, float]  # standardised u of each signal
    psnr: float  # of the reconstruction used by the recon signal, dB


@dataclass
class OODDetector:
    """A calibrated detector (see the module docstring). Tensors are float64 on the CPU."""

    latent_mean: torch.Tensor  # (D,)
    latent_precision: torch.Tensor  # (D, D)
    pixel_mean: torch.Tensor  # (P,)
    pixel_axes: torch.Tensor  # (k, P)
    center: torch.Tensor  # (F,)
    scale: torch.Tensor  # (F,)
    threshold: float
    steps: int  # decoder steps of the reconstruction
    seed: int = RECON_SEED
    calib_raw: torch.Tensor | None = None  # (N, F) the calibration set's raw signals
    meta: dict = field(default_factory=dict)  # false_alarm, n_fit, n_calib, data, fingerprint, psnr percentiles

    # signals ---------------------------------------------------------------------------------------------------
    def raw(self, images: torch.Tensor, z: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Images and reconstructions (B,3,H,W) in [-1,1], latents (B, D) -> raw signals (B, 3) in FEATURES order."""
        d = z.double() - self.latent_mean
        latent = ((d @ self.latent_precision) * d).sum(1).clamp(min=0).sqrt()
        recon_s = recon_error(images, recon)
        p = pixel_vectors(images) - self.pixel_mean
        resid = p - (p @ self.pixel_axes.T) @ self.pixel_axes
        pixel = torch.log10((resid**2).mean(1).clamp(min=1e-12))
        return torch.stack([latent, recon_s, pixel], 1)

    def scores(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, F) raw signals -> (B,) scores (the largest standardised signal)."""
        return standardise(raw, self.center, self.scale).max(1).values

    def verdicts(self, raw: torch.Tensor) -> list[Verdict]:
        u = standardise(raw, self.center, self.scale)
        out = []
        for row, r in zip(u, raw, strict=True):
            score = float(row.max())
            reasons = [f for f, v in zip(FEATURES, row.tolist(), strict=True) if v > self.threshold]
            out.append(
                Verdict(
                    score=score,
                    threshold=self.threshold,
                    flagged=score > self.threshold,
                    reasons=reasons,
                    signals=dict(zip(FEATURES, [float(v) for v in row], strict=True)),
                    psnr=float(-10 * r[1]),
                )
            )
        return out

    def assess(self, model, images: torch.Tensor, camera: api.Camera | None = None, batch: int = 128) -> list[Verdict]:
        """Images (B,3,H,W) in [-1,1] -> a Verdict each (encodes and reconstructs them with ``model``)."""
        z, recon = measure_parts(model, images, self.steps, self.seed, camera, batch)
        return self.verdicts(self.raw(images, z, recon))

    def warning(self, v: Verdict) -> str:
        """What a flagged image means for the user, in plain words."""
        knows, nearest = self.meta.get("data_knows", "its training data"), self.meta.get("data_nearest", "image")
        why = "; ".join(REASONS[r] for r in v.reasons) or "it is unlike the data"
        p50 = self.meta.get("psnr_p50")
        recon = f" (reconstruction {v.psnr:.1f} dB; held-out images: about {p50:.0f} dB)" if p50 is not None else ""
        return (
            f"This image does not look like what this checkpoint was trained on: {why}{recon}. This checkpoint only "
            f"knows {knows}; what you see is the nearest {nearest} it can draw, and edits move that {nearest}, not "
            "your image."
        )

    # storage ---------------------------------------------------------------------------------------------------
    def save(self, path: Path, fingerprint: str) -> Path:
        """Write ``path`` (safetensors with JSON metadata) atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {k: getattr(self, k).float().contiguous() for k in ("latent_precision", "pixel_axes")}  # the bulk
        tensors |= {k: getattr(self, k).double().contiguous() for k in ("latent_mean", "pixel_mean", "center", "scale")}
        if self.calib_raw is not None:
            tensors["calib_raw"] = self.calib_raw.double().contiguous()
        meta = {
            **self.meta,
            "format": "soda-ood",
            "version": OOD_VERSION,
            "fingerprint": fingerprint,
            "features": list(FEATURES),
            "threshold": self.threshold,
            "steps": self.steps,
            "seed": self.seed,
        }
        return write_file(path, lambda tmp: save_file(tensors, str(tmp), metadata={"ood": json.dumps(meta)}))

    @classmethod
    def load(cls, path: Path, fingerprint: str | None = None) -> OODDetector | None:
        """Read ``path``; None when it is missing, damaged, of another version or of other weights."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("ood", "{}"))
                t = {k: f.get_tensor(k).double() for k in f.keys()}
        except Exception:  # noqa: BLE001 - missing or damaged (safetensors raises its own error type): recalibrate
            return None
        if meta.get("format") != "soda-ood" or meta.get("version") != OOD_VERSION:
            return None
        if meta.get("features") != list(FEATURES):
            return None
        if fingerprint is not None and meta.get("fingerprint") != fingerprint:
            return None
        try:
            return cls(
                latent_mean=t["latent_mean"],
                latent_precision=t["latent_precision"],
                pixel_mean=t["pixel_mean"],
                pixel_axes=t["pixel_axes"],
                center=t["center"],
                scale=t["scale"],
                threshold=float(meta["threshold"]),
                steps=int(meta["steps"]),
                seed=int(meta["seed"]),
                calib_raw=t.get("calib_raw"),
                meta={k: v for k, v in meta.items() if k not in ("threshold", "steps", "seed")},
            )
        except (KeyError, TypeError, ValueError):
            return None


# ------------------------------------------------------------------------------------------------------------
# Measuring and calibrating
# ------------------------------------------------------------------------------------------------------------


def measure_parts(
    model, images: torch.Tensor, steps: int, seed: int = RECON_SEED, camera=None, batch: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B,3,H,W) in [-1,1] -> (latents (B, D), reconstructions (B,3,H,W)) as the detector sees them."""
    zs, recs = [], []
    for i in range(0, images.shape[0], batch):
        x = images[i : i + batch]
        z = api.encode(model, x, camera=camera)
        zs.append(z)
        recs.append(api.decode(model, z, camera=camera, steps=steps, seed=seed))
    return torch.cat(zs), torch.cat(recs)


def describe_data(model) -> tuple[str, str]:
    """(what the checkpoint knows, what it draws instead) in plain words, from its training config."""
    cfg = model.full_config
    dataset = cfg.data.dataset if cfg is not None else "world"
    if dataset == "world":
        return "procedural rooms: a floor, a wall and one object (cube, cylinder, sphere or capsule)", "room"
    where = Path(str(getattr(cfg.data, "path", "") or "")).name
    return f"images like its training data ({dataset}{': ' + where if where else ''})", "such image"


def calibrate(
    model,
    fit_images: torch.Tensor,
    fit_latents: torch.Tensor,
    calib_images: torch.Tensor,
    camera=None,
    false_alarm: float = FALSE_ALARM,
    progress=None,
) -> OODDetector:
    """Fit the latent and pixel statistics on ``fit_images`` (with their latents) and standardise and threshold on
    ``calib_images`` (held-out images disjoint from the fit set). Images (N,3,H,W) in [-1,1]."""
    say = progress or (lambda f, s: None)
    steps = int(model.cfg.diffusion.preview_steps)
    l_mean, l_prec = latent_stats(fit_latents)
    P = pixel_vectors(fit_images)
    k = max(1, min(PIXEL_COMPONENTS, P.shape[0] // 8, P.shape[1]))
    p_mean, p_axes = pixel_stats(P, k)
    knows, nearest = describe_data(model)
    det = OODDetector(
        latent_mean=l_mean,
        latent_precision=l_prec,
        pixel_mean=p_mean,
        pixel_axes=p_axes,
        center=torch.zeros(len(FEATURES), dtype=torch.float64),
        scale=torch.ones(len(FEATURES), dtype=torch.float64),
        threshold=math.inf,
        steps=steps,
        meta={"data_knows": knows, "data_nearest": nearest},
    )
    zs, recs = [], []
    n, bs = calib_images.shape[0], 64
    for i in range(0, n, bs):
        say(i / n, f"calibrating the out-of-distribution detector on {n} held-out images")
        z, r = measure_parts(model, calib_images[i : i + bs], steps, det.seed, camera, bs)
        zs.append(z)
        recs.append(r)
    raw = det.raw(calib_images, torch.cat(zs), torch.cat(recs))
    det.center, det.scale = fit_standardisation(raw)
    det.threshold = fit_threshold(det.scores(raw), false_alarm)
    det.calib_raw = raw
    psnr = (-10 * raw[:, 1]).numpy()
    det.meta |= {
        "false_alarm": false_alarm,
        "quantile": QUANTILE,
        "n_fit": int(fit_images.shape[0]),
        "n_calib": int(n),
        "pixel_components": int(k),
        "psnr_p05": float(np.percentile(psnr, 5)),
        "psnr_p50": float(np.percentile(psnr, 50)),
        "calib_false_alarms": float((det.scores(raw) > det.threshold).double().mean()),
    }
    say(1.0, "out-of-distribution detector calibrated")
    return det
