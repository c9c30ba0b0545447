"""Linear, kNN and multi-label probes on data whose answers are known."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from soda.eval.probes import knn_probe, linear_probe, multilabel_probe


def _clusters(rng, n_per, n_classes=4, dim=8, spread=0.1):
    centres = rng.standard_normal((n_classes, dim)) * 3
    y = np.repeat(np.arange(n_classes), n_per)
    return centres[y] + spread * rng.standard_normal((len(y), dim)), y


def test_linearly_separable_data_is_probed_perfectly():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(5)
    z = rng.standard_normal((400, 5))
    y = (z @ w > 0).astype(int)
    keep = np.abs(z @ w) > 0.2  # a margin
    z, y = z[keep], y[keep]
    result = linear_probe(z[:250], y[:250], z[250:], y[250:])
    assert result["accuracy"] == 1.0
    assert result["train_accuracy"] == 1.0
    assert result["n_classes"] == 2


def test_random_labels_are_near_chance():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2000, 10))
    y = rng.integers(0, 4, 2000)
    result = linear_probe(z[:1000], y[:1000], z[1000:], y[1000:])
    assert abs(result["accuracy"] - 0.25) < 0.06
    assert result["chance"] == pytest.approx(np.mean(y[1000:] == np.bincount(y[:1000]).argmax()))


def test_knn_on_clustered_data():
    rng = np.random.default_rng(2)
    z, y = _clusters(rng, 50)
    order = rng.permutation(len(y))
    z, y = z[order], y[order]
    result = knn_probe(z[:150], y[:150], z[150:], y[150:], k=20)
    assert result["accuracy"] == 1.0
    assert result["k"] == 20


def test_knn_uses_directions_not_norms():
    # Two classes along two directions with random lengths: only the L2-normalised codes separate them.
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    directions = np.array([[1.0, 0.2], [0.2, 1.0]])
    z = directions[y] * rng.uniform(0.1, 100.0, size=(300, 1))
    assert knn_probe(z[:200], y[:200], z[200:], y[200:])["accuracy"] == 1.0
    assert knn_probe(z[:5], y[:5], z[200:], y[200:], k=20)["k"] == 5


def test_multilabel_probe_on_informative_and_random_attributes():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((1200, 6))
    informative = np.where(z[:, :2] > 0, 1, -1)  # CelebA-style +-1 labels read from two code dims
    noise = np.where(rng.standard_normal((1200, 1)) > 0, 1, -1)
    Y = np.concatenate([informative, noise], axis=1)  # (N, 3)
    result = multilabel_probe(z[:800], Y[:800], z[800:], Y[800:])
    assert result["per_attribute_auroc"][:2] == pytest.approx([1.0, 1.0], abs=0.01)
    assert result["per_attribute_f1"][:2] == pytest.approx([1.0, 1.0], abs=0.05)
    assert abs(result["per_attribute_auroc"][2] - 0.5) < 0.1
    assert result["auroc"] == pytest.approx(np.mean(result["per_attribute_auroc"]))
    assert result["f1"] == pytest.approx(np.mean(result["per_attribute_f1"]))


def test_multilabel_probe_constant_attribute():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((100, 3))
    Y = np.stack([(z[:, 0] > 0).astype(int), np.zeros(100, dtype=int)], axis=1)
    result = multilabel_probe(z[:60], Y[:60], z[60:], Y[60:])
    assert np.isnan(result["per_attribute_auroc"][1])  # undefined with one class in the test set
    assert result["per_attribute_accuracy"][1] == 1.0
    assert np.isfinite(result["auroc"])


def _digits(n_train: int):
    from sklearn.datasets import load_digits  # ships with scikit-learn: real data, no download

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    return x[:n_train], y[:n_train], x[1000:], y[1000:]


def test_cross_validated_c_reads_the_test_set_nearly_as_well_as_the_best_c_of_the_grid():
    """On 300 real 8x8 digits the grid's test accuracies run from 0.79 (C = 0.001) to 0.945: the C that 5-fold
    cross-validation picks on the training codes alone lands within two points of the best (a selector that took the
    worst fold score, or the first C of the grid, would not)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from soda.eval.probes import C_GRID

    a = _digits(300)
    grid = [
        make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(a[0], a[1]).score(a[2], a[3])
        for c in C_GRID
    ]
    assert max(grid) - min(grid) > 0.1  # the choice matters here
    tuned, fixed = linear_probe(*a, cv=5), linear_probe(*a)
    assert tuned["accuracy"] >= max(grid) - 0.02, (tuned, grid)
    assert fixed["C"] == 1.0 and fixed["cv_accuracy"] is None
    assert 0.85 < tuned["cv_accuracy"] <= 1.0


def test_the_test_labels_never_choose_c():
    a = _digits(150)
    tuned = linear_probe(*a, cv=5)
    scrambled = linear_probe(a[0], a[1], a[2], np.random.default_rng(1).permutation(a[3]), cv=5)
    assert scrambled["C"] == tuned["C"] and scrambled["cv_accuracy"] == tuned["cv_accuracy"]
    assert scrambled["accuracy"] < 0.3 < tuned["accuracy"]


def test_cross_validation_falls_back_to_c_one_when_a_class_has_too_few_examples():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((40, 4))
    y = np.r_[np.zeros(20, int), np.ones(17, int), np.full(3, 2)]  # class 2: 3 training codes, fewer than 5 folds
    result = linear_probe(z, y, z, y, cv=5)
    assert result["C"] == 1.0 and result["cv_accuracy"] is None
