"""Correct, vectorised numpy: the usual homework answer."""

import numpy as np


def softmax_loss(logits, labels):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True)
    probabilities = exps / sums
    loss = np.mean(np.log(sums[:, 0]) - shifted[np.arange(n), labels])
    grad = probabilities.copy()
    grad[np.arange(n), labels] -= 1
    return loss, grad / n
