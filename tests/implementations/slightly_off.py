"""Adds 1e-12 to every gradient entry: far more than float64 rounding."""

import numpy as np


def softmax_loss(logits, labels):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    sums = np.exp(shifted).sum(axis=1, keepdims=True)
    grad = np.exp(shifted) / sums
    grad[np.arange(n), labels] -= 1
    return np.mean(np.log(sums[:, 0]) - shifted[np.arange(n), labels]), grad / n + 1e-12
