"""Linear, kNN and multi-label probes on data whose answers are known."""

import numpy as np
import pytest

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
