"""DCI: disentanglement, completeness and informativeness (Eastwood & Williams, 2018).

The definitions follow google-research/disentanglement_lib (``evaluation/metrics/dci.py``):

- one ``sklearn.ensemble.GradientBoostingClassifier()`` (default hyper-parameters) per factor, fit on the raw codes;
- importance matrix ``R`` (D codes, K factors) with ``R[:, k] = |feature_importances_|`` of the k-th classifier;
- disentanglement: per code ``1 - H_K(R[j] / R[j].sum())``, averaged with weights ``R.sum(1) / R.sum()``;
- completeness: per factor ``1 - H_D(R[:, k] / R[:, k].sum())``, averaged with weights ``R.sum(0) / R.sum()``;
- informativeness: mean accuracy of the K classifiers (train and test).

``H_b`` is the entropy in base ``b``. disentanglement_lib adds 1e-11 to every entry before normalising; here the
zeros are handled exactly (0 log 0 = 0) so that the analytic answers (identity -> 1) hold to machine precision.
The two agree to ~1e-9. Rows (columns) that are all zero get weight 0 and cannot produce NaNs; an all-zero matrix
scores 0. With a single factor (K = 1) every code is trivially disentangled (score 1); likewise completeness with D = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

Progress = Callable[[int, int], None] | None


def _check_codes_factors(codes: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"expected codes (N, D) and factors (N, K), got {codes.shape} and {factors.shape}")
    if not np.issubdtype(factors.dtype, np.integer):
        if not np.array_equal(factors, np.round(factors)):
            raise ValueError("factors must be integer class indices (use np.unique(col, return_inverse=True))")
        factors = factors.astype(np.int64)
    return codes, factors


def importance_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    progress: Progress = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """codes (N, D) float, factors (N, K) int -> R (D, K) >= 0, train_acc (K,), test_acc (K,) in [0, 1]."""
    codes_train, factors_train = _check_codes_factors(codes_train, factors_train)
    codes_test, factors_test = _check_codes_factors(codes_test, factors_test)
    n_codes, n_factors = codes_train.shape[1], factors_train.shape[1]
    if codes_test.shape[1] != n_codes or factors_test.shape[1] != n_factors:
        raise ValueError("train and test sets must have the same numbers of codes and factors")
    R = np.zeros((n_codes, n_factors))
    train_acc = np.zeros(n_factors)
    test_acc = np.zeros(n_factors)
    for k in range(n_factors):
        y_train, y_test = factors_train[:, k], factors_test[:, k]
        classes = np.unique(y_train)
        if len(classes) < 2:
            # A constant factor carries no information to predict: no importances, predict the constant.
            train_acc[k] = 1.0
            test_acc[k] = np.mean(y_test == classes[0])
        else:
            # Defaults as in disentanglement_lib; random_state only fixes the tie-breaking feature permutation.
            model = GradientBoostingClassifier(random_state=seed)
            model.fit(codes_train, y_train)
            R[:, k] = np.abs(model.feature_importances_)
            train_acc[k] = np.mean(model.predict(codes_train) == y_train)
            test_acc[k] = np.mean(model.predict(codes_test) == y_test)
        if progress is not None:
            progress(k + 1, n_factors)
    return R, train_acc, test_acc


def _scores_along_rows(R: np.ndarray) -> float:
    """(D, K) >= 0 -> 1 - H_K of each row, averaged with weights R.sum(1) / R.sum(); in [0, 1]."""
    n_cols = R.shape[1]
    row_sums = R.sum(axis=1)
    total = row_sums.sum()
    if total <= 0:
        return 0.0
    if n_cols == 1:
        return 1.0
    P = np.divide(R, row_sums[:, None], out=np.zeros_like(R), where=row_sums[:, None] > 0)  # (D, K)
    plogp = np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)
    entropy = -plogp.sum(axis=1) / np.log(n_cols)  # (D,) in base K
    per_row = np.clip(1.0 - entropy, 0.0, 1.0)
    return float(np.sum(per_row * row_sums / total))


def dci_scores(R: np.ndarray) -> dict:
    """importance matrix R (D codes, K factors) >= 0 -> {disentanglement, completeness} in [0, 1]."""
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2:
        raise ValueError(f"expected an importance matrix (D, K), got shape {R.shape}")
    if np.any(R < 0) or not np.all(np.isfinite(R)):
        raise ValueError("importance matrix must be finite and non-negative")
    return {
        "disentanglement": _scores_along_rows(R),  # per code: spread over factors
        "completeness": _scores_along_rows(R.T),  # per factor: spread over codes
    }


def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    progress: Progress = None,
    seed: int = 0,
) -> dict:
    """codes (N, D) float, factors (N, K) int -> {disentanglement, completeness, informativeness_*,
    importance_matrix}."""
    R, train_acc, test_acc = importance_matrix(
        codes_train, factors_train, codes_test, factors_test, progress=progress, seed=seed
    )
    scores = dci_scores(R)
    return {
        **scores,
        "informativeness_train": float(np.mean(train_acc)),
        "informativeness_test": float(np.mean(test_acc)),
        "importance_matrix": R,
    }
