"""Evaluation metrics as pure functions on arrays (codes (N, D), factors (N, K), images in [0, 1]).

Names are imported lazily (PEP 562), so that the core trainer can use ``soda.eval.zuse`` (torch only) on a machine
without scikit-learn / scikit-image.
"""

from importlib import import_module

_WHERE = {
    "dci": "dci",
    "dci_scores": "dci",
    "importance_matrix": "dci",
    "LPIPS": "fid",
    "InceptionFeatures": "fid",
    "feature_statistics": "fid",
    "fid_from_features": "fid",
    "frechet_distance": "fid",
    "inception_features": "fid",
    "kid": "fid",
    "load_inception": "fid",
    "load_lpips": "fid",
    "psnr": "image_metrics",
    "ssim": "image_metrics",
    "discretize": "mig",
    "mig": "mig",
    "knn_probe": "probes",
    "linear_probe": "probes",
    "multilabel_probe": "probes",
    "section_codes": "sections",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'soda.eval' has no attribute '{name}'")
    value = getattr(import_module(f"soda.eval.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
