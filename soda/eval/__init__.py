"""Evaluation metrics as pure functions on arrays (codes (N, D), factors (N, K), images in [0, 1])."""

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
from soda.eval.sections import section_codes

__all__ = [
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
