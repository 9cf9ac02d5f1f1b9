"""Cross-entropy over a vocabulary split into shards equals the loss of the gathered logits."""

from __future__ import annotations

import numpy as np
import pytest

from sce import softmax_cross_entropy
from sce.loss.vocabulary_shards import sharded_cross_entropy

OPTION_SETS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.1},
    {"label_smoothing": 0.2, "smoothing_style": "off-target"},
    {"softcap": 3.0},
    {"z_loss": 1e-3},
    {"weight": "random", "label_smoothing": 0.1},
    {"weight": "random", "z_loss": 1e-2, "label_smoothing": 0.05, "softcap": 5.0},
    {"weight": "random", "z_loss": 1e-2, "reduction": "sum", "smoothing_style": "off-target", "label_smoothing": 0.3},
]


def _problem(seed: int, n: int = 7, widths: tuple[int, ...] = (5, 1, 0, 9)):
    rng = np.random.default_rng(seed)
    v = sum(widths)
    logits = rng.normal(0, 4, (n, v))
    labels = rng.integers(0, v, n)
    labels[1] = -100
    return logits, labels, np.split(logits, np.cumsum(widths)[:-1], axis=1)


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_shards_give_the_gathered_loss_and_gradient(options: dict) -> None:
    logits, labels, shards = _problem(1)
    options = dict(options)
    if options.get("weight") == "random":
        options["weight"] = np.random.default_rng(2).uniform(0.2, 3, logits.shape[1])
    expected = softmax_cross_entropy(logits, labels, **options)
    loss, gradients = sharded_cross_entropy(shards, labels, **options)
    np.testing.assert_allclose(loss, expected.loss, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(np.hstack(gradients), expected.gradient, rtol=1e-12, atol=1e-16)


def test_one_shard_holding_everything_is_the_plain_loss() -> None:
    logits, labels, _ = _problem(3)
    loss, (gradient,) = sharded_cross_entropy([logits], labels)
    expected = softmax_cross_entropy(logits, labels)
    np.testing.assert_allclose(loss, expected.loss, rtol=1e-15)
    np.testing.assert_allclose(gradient, expected.gradient, rtol=1e-13, atol=1e-17)


def test_far_apart_shard_maxima_keep_the_small_shard_probabilities() -> None:
    # One shard's logits 700 above the other's: e^700 overflows no sum, and the low shard's
    # probabilities (e^-700, subnormal-free in float64) are not flushed to 0.
    shards = [np.array([[700.0, 699.0]]), np.array([[0.0, 1.0]])]
    loss, (high, low) = sharded_cross_entropy(shards, np.array([3]))
    expected = softmax_cross_entropy(np.hstack(shards), [3])
    np.testing.assert_allclose(loss, expected.loss, rtol=1e-15)
    np.testing.assert_allclose(low, expected.gradient[:, 2:], rtol=1e-13)
    assert low[0, 0] > 0
