"""Evaluation metrics as pure functions on arrays (codes (N, D), factors (N, K), images in [0, 1]).

The metric functions are imported eagerly where scikit-learn / scikit-image are installed; where they are not, the
package still imports (the core trainer uses ``soda.eval.zuse``, torch only) and each name is loaded on first use
(PEP 562), raising the missing package's ImportError there. Eager binding matters: importing a submodule later
(``soda.eval.dci``) must not replace the function ``soda.eval.dci`` with the module of the same name.
"""

from importlib import import_module

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
    from soda.eval.sections import section_codes
except ImportError:  # an optional dependency is missing: the names below load (and fail) on first use
    pass

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
assert sorted(__all__) == sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'soda.eval' has no attribute '{name}'")
    value = getattr(import_module(f"soda.eval.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
