"""Correct, but changes numpy's global state (in its own process only)."""

import numpy as np

np.seterr(all="raise")
np.set_printoptions(precision=1)


def softmax_loss(logits, labels):
    np.seterr(all="ignore")
    np.random.seed(1)
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    sums = np.exp(shifted).sum(axis=1, keepdims=True)
    grad = np.exp(shifted) / sums
    grad[np.arange(n), labels] -= 1
    return np.mean(np.log(sums[:, 0]) - shifted[np.arange(n), labels]), grad / n
