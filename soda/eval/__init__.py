"""Evaluation metrics as pure functions on arrays (codes (N, D), factors (N, K), images in [0, 1]).

The metric functions need scikit-learn / scikit-image. Without them the package still imports (the core trainer uses
``soda.eval.zuse``, torch only), and asking for a metric raises the missing package's ImportError.
"""

try:
    from soda.eval.dci import dci, dci_scores, importance_matrix
    from soda.eval.fid import (
        LPIPS,
        InceptionFeatures,
        feature_statistics,
        fid_from_features,
        frechet_distance,
        inception_features,
        kid,
        load_inception,
        load_lpips,
    )
    from soda.eval.image_metrics import psnr, ssim
    from soda.eval.mig import discretize, mig
    from soda.eval.probes import knn_probe, linear_probe, multilabel_probe
    from soda.eval.sections import group_rows, section_codes

    _MISSING: ImportError | None = None
except ImportError as e:  # an optional dependency is missing: the metrics fail when asked for, not at import
    _MISSING = e

__all__ = [
    "group_rows",
    "LPIPS",
    "InceptionFeatures",
    "dci",
    "dci_scores",
    "discretize",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "importance_matrix",
    "inception_features",
    "kid",
    "knn_probe",
    "linear_probe",
    "load_inception",
    "load_lpips",
    "mig",
    "multilabel_probe",
    "psnr",
    "section_codes",
    "ssim",
]


def __getattr__(name: str):
    if _MISSING is not None and name in __all__:
        raise ImportError(f"soda.eval.{name} needs an optional package that is not installed: {_MISSING}")
    raise AttributeError(f"module 'soda.eval' has no attribute '{name}'")
