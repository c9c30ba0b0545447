"""PSNR and SSIM on images in [0, 1], the pixelNeRF convention.

Inputs are batches of RGB (or grey) images as numpy arrays or torch tensors, either channels-last (N, H, W, C) or
channels-first (N, C, H, W) with C in {1, 3}; the layout is detected from where the size-1/3 axis is, or given with
``channels_last``. Values must lie in [0, data_range] (map model outputs in [-1, 1] with ``(x + 1) / 2`` and clamp).

- PSNR per image: ``10 log10(data_range^2 / MSE)``, MSE over all pixels and channels; identical images give ``inf``.
  The reported mean is the mean of the per-image values (not PSNR of the pooled MSE).
- SSIM per image: ``skimage.metrics.structural_similarity`` with its defaults (7x7 uniform window, sample
  covariance, K1 = 0.01, K2 = 0.03), ``channel_axis=-1`` and ``data_range=1``; images must be at least 7x7.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

_RANGE_SLACK = 1e-3


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float64)


def to_channels_last(x, channels_last: bool | None = None) -> np.ndarray:
    """(N, H, W, C) or (N, C, H, W), C in {1, 3}, numpy or torch -> float64 (N, H, W, C)."""
    x = _to_numpy(x)
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images (N, H, W, C) or (N, C, H, W), got shape {x.shape}")
    if channels_last is None:
        last, first = x.shape[-1] in (1, 3), x.shape[1] in (1, 3)
        if last == first:
            raise ValueError(f"cannot tell the channel axis of shape {x.shape}; pass channels_last=True/False")
        channels_last = last
    return x if channels_last else np.moveaxis(x, 1, -1)


def _pair(a, b, data_range: float, channels_last: bool | None) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_channels_last(a, channels_last), to_channels_last(b, channels_last)
    if a.shape != b.shape:
        raise ValueError(f"image batches differ in shape: {a.shape} vs {b.shape}")
    for name, x in (("a", a), ("b", b)):
        if x.min() < -_RANGE_SLACK or x.max() > data_range + _RANGE_SLACK:
            raise ValueError(
                f"images {name} span [{x.min():.3f}, {x.max():.3f}], outside [0, {data_range}]: "
                "map [-1, 1] outputs with (x + 1) / 2 and clamp"
            )
    return a, b


def psnr(a, b, data_range: float = 1.0, channels_last: bool | None = None) -> dict:
    """images (N, H, W, C) or (N, C, H, W) in [0, data_range] -> {per_image (N,) dB, mean dB}."""
    a, b = _pair(a, b, data_range, channels_last)
    mse = np.mean((a - b) ** 2, axis=(1, 2, 3))  # (N,)
    with np.errstate(divide="ignore"):
        per_image = 10.0 * np.log10(data_range**2 / mse)
    return {"per_image": per_image, "mean": float(np.mean(per_image))}


def ssim(a, b, channels_last: bool | None = None) -> dict:
    """images (N, H, W, C) or (N, C, H, W) in [0, 1] -> {per_image (N,) in [-1, 1], mean}."""
    a, b = _pair(a, b, 1.0, channels_last)
    per_image = np.array(
        [structural_similarity(x, y, channel_axis=-1, data_range=1.0) for x, y in zip(a, b)], dtype=np.float64
    )
    return {"per_image": per_image, "mean": float(np.mean(per_image))}
