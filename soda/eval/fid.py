"""FID, KID and LPIPS, from explicitly given local weights only.

This project ships no pretrained feature networks and downloads none. ``load_inception`` and ``load_lpips`` take a
path to weights that you put on disk yourself; with no path, or a missing file, they raise ``FileNotFoundError``
naming the file expected. No other network is ever substituted.

Weights (load with ``safetensors`` or ``torch.load(weights_only=True)``; nothing is unpickled):

- Inception: torchvision's Inception-v3 ImageNet weights, ``inception_v3_google-0cc3c7bd.pth``
  (torchvision ``Inception_V3_Weights.IMAGENET1K_V1``). Features are the 2048-d pool outputs for images resized to
  299x299 (bilinear) and mapped to [-1, 1]. Scores computed with it must be labelled "FID (torchvision Inception-v3)":
  they are close to, but not numerically comparable with, FID from the TensorFlow Inception graph
  (``pt_inception-2015-12-05``) that papers report, whose network differs in its pooling; those weights are refused.
- LPIPS (v0.1, AlexNet): the linear-layer weights ``alex.pth`` of richzhang/PerceptualSimilarity
  (``lpips/weights/v0.1/alex.pth``) and torchvision's AlexNet ImageNet weights ``alexnet-owt-7be5be79.pth``.

Pure functions on features: ``frechet_distance`` (from Gaussian statistics) and ``kid`` (unbiased polynomial-kernel
MMD^2 averaged over subsets, Binkowski et al. 2018).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"
LPIPS_LIN_FILE = "alex.pth"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"

INCEPTION_NOTE = (
    "FID/KID on torchvision Inception-v3 (IMAGENET1K_V1) pool features, 299 px bilinear; "
    "not numerically comparable with TF-Inception FID reported in papers"
)


# ----------------------------------------------------------------------------------------------------------------------
# Pure metrics on features
# ----------------------------------------------------------------------------------------------------------------------


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """(d, d) symmetric PSD -> its symmetric PSD square root (negative eigenvalues from round-off clipped)."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """means (d,), covariances (d, d) -> ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) >= 0."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {sigma1.shape}/{sigma2.shape}")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    # Tr (S1 S2)^(1/2) = Tr (S1^(1/2) S2 S1^(1/2))^(1/2): the inner matrix is symmetric PSD, so eigvalsh is stable.
    root1 = _psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    tr_cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)))
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_cross
    return float(max(value, 0.0))


def feature_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features (N, d) -> mean (d,), covariance (d, d) (unbiased, rows are samples)."""
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def fid_from_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """features (N1, d), (N2, d) -> Frechet distance between their Gaussian fits."""
    return frechet_distance(*feature_statistics(feats1), *feature_statistics(feats2))


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """(m, d), (m, d) -> unbiased MMD^2 with kernel k(a, b) = (a.b / d + 1)^3."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    same = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(same - 2.0 * k_xy.mean())


def kid(feats1: np.ndarray, feats2: np.ndarray, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> dict:
    """features (N1, d), (N2, d) -> {mean, std} of unbiased polynomial-kernel MMD^2 over random subsets."""
    feats1, feats2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if feats1.ndim != 2 or feats2.ndim != 2 or feats1.shape[1] != feats2.shape[1]:
        raise ValueError(f"expected features (N1, d) and (N2, d), got {feats1.shape} and {feats2.shape}")
    m = min(subset_size, len(feats1), len(feats2))
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            _polynomial_mmd2(
                feats1[rng.choice(len(feats1), m, replace=False)], feats2[rng.choice(len(feats2), m, replace=False)]
            )
            for _ in range(n_subsets)
        ]
    )
    return {"mean": float(values.mean()), "std": float(values.std()), "subset_size": m, "n_subsets": n_subsets}


# ----------------------------------------------------------------------------------------------------------------------
# Loading weights from explicit local files
# ----------------------------------------------------------------------------------------------------------------------


def _require_file(path: str | Path | None, expected: str, what: str) -> Path:
    hint = f"put {what} at a local path and pass it explicitly; this project ships and downloads no such weights"
    if path is None:
        raise FileNotFoundError(f"no weights given: expected the file '{expected}' ({hint})")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing weights file '{path}': expected '{expected}' ({hint})")
    return path


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors only: safetensors, or torch.load(weights_only=True), which refuses arbitrary pickled objects."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"'{path}' is not a state_dict of tensors")
    return state


# Inception-v3 layers up to the 2048-d global pool, in order (the auxiliary head, dropout and classifier are unused).
_INCEPTION_TRUNK = (
    *("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2"),
    *("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"),
    *("Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"),
)


class InceptionFeatures(nn.Module):
    """Inception-v3 pool features: (N, 3, H, W) in [0, 1] -> (N, 2048)."""

    note = INCEPTION_NOTE

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 2048)."""
        x = F.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0  # the Google Inception weights expect [-1, 1]
        for name in _INCEPTION_TRUNK:
            x = getattr(self.net, name)(x)
        return torch.flatten(x, 1)  # (N, 2048)


def load_inception(path: str | Path | None, device: str | torch.device = "cpu") -> InceptionFeatures:
    """local torchvision Inception-v3 weights file -> InceptionFeatures; FileNotFoundError if None or missing."""
    path = _require_file(path, INCEPTION_FILE, "torchvision's Inception-v3 ImageNet weights")
    state = _load_state_dict(path)
    fc = state.get("fc.weight")
    if fc is not None and fc.shape[0] == 1008:
        raise ValueError(
            f"'{path}' holds the TF-FID Inception port (1008 classes), whose network differs from torchvision's "
            f"Inception-v3; this project does not implement it. Use '{INCEPTION_FILE}'."
        )
    import torchvision  # imported here: it is slow to import and only needed with weights

    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    if not any(k.startswith("AuxLogits.") for k in state):
        net.AuxLogits = None
    net.load_state_dict(state, strict=True)
    return InceptionFeatures(net).to(device)


@torch.no_grad()
def inception_features(
    model: InceptionFeatures,
    images,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """images (N, 3, H, W) in [0, 1] (numpy or torch) -> features (N, 2048) float64."""
    images = torch.as_tensor(images)
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        out.append(model(images[start : start + batch_size].to(device)).cpu().double().numpy())
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    return np.concatenate(out, axis=0)


class LPIPS(nn.Module):
    """LPIPS v0.1 on AlexNet (Zhang et al. 2018): two (N, 3, H, W) batches in [0, 1] -> distances (N,)."""

    # AlexNet `features` is cut after each ReLU: conv1, conv2, conv3, conv4, conv5.
    cuts = (2, 5, 8, 10, 12)
    channels = (64, 192, 384, 256, 256)

    def __init__(self, features: nn.Sequential, lin_weights: list[torch.Tensor]):
        super().__init__()
        self.features = features.eval()
        self.lin = nn.ParameterList([nn.Parameter(w.float(), requires_grad=False) for w in lin_weights])
        # Input scaling of the LPIPS network, applied to images in [-1, 1].
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def _layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((2.0 * x.float() - 1.0) - self.shift) / self.scale
        taps, start = [], 0
        for stop in self.cuts:
            for layer in self.features[start:stop]:
                x = layer(x)
            taps.append(x / (x.norm(dim=1, keepdim=True) + 1e-10))  # unit length along channels
            start = stop
        return taps

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] twice -> (N,) >= 0 when the linear weights are >= 0."""
        total = 0.0
        for fa, fb, w in zip(self._layers(a), self._layers(b), self.lin):
            total = total + F.conv2d((fa - fb) ** 2, w).mean(dim=(1, 2, 3))  # weighted channel sum, spatial mean
        return total


def load_lpips(
    path: str | Path | None, backbone_path: str | Path | None = None, device: str | torch.device = "cpu"
) -> LPIPS:
    """LPIPS weights (a folder with alex.pth + AlexNet file, or alex.pth itself) -> LPIPS;
    FileNotFoundError if missing."""
    if path is not None and Path(path).is_dir():
        folder = Path(path)
        path, backbone_path = folder / LPIPS_LIN_FILE, backbone_path or folder / ALEXNET_FILE
    lin_path = _require_file(path, LPIPS_LIN_FILE, "the LPIPS v0.1 AlexNet linear weights (PerceptualSimilarity)")
    if backbone_path is None:
        backbone_path = lin_path.parent / ALEXNET_FILE
    alex_path = _require_file(backbone_path, ALEXNET_FILE, "torchvision's AlexNet ImageNet weights")

    lin_state = _load_state_dict(lin_path)
    lin_weights = []
    for i, channels in enumerate(LPIPS.channels):
        keys = [k for k in lin_state if re.fullmatch(rf"(.*\.)?lin{i}\.(.*\.)?weight", k)]
        if len(keys) != 1 or tuple(lin_state[keys[0]].shape) != (1, channels, 1, 1):
            raise ValueError(f"'{lin_path}' has no LPIPS weight 'lin{i}...weight' of shape (1, {channels}, 1, 1)")
        lin_weights.append(lin_state[keys[0]])

    import torchvision

    alex_state = _load_state_dict(alex_path)
    features = torchvision.models.alexnet(weights=None).features
    feature_state = {k[len("features.") :]: v for k, v in alex_state.items() if k.startswith("features.")}
    features.load_state_dict(feature_state, strict=True)
    return LPIPS(features, lin_weights).to(device)
