"""Mistake: the z-loss is summed over the rows where the mean divides it by N."""

import numpy as np

CAP = 30.0
Z_LOSS = 1e-4


def softmax_loss(logits, labels):
    n = logits.shape[0]
    x = logits / CAP
    capped = CAP * np.tanh(x)
    shifted = capped - capped.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True)
    probabilities = exps / sums
    lse = capped.max(axis=1) + np.log(sums[:, 0])
    loss = np.mean(np.log(sums[:, 0]) - shifted[np.arange(n), labels]) + Z_LOSS * np.sum(lse**2)
    grad = probabilities.copy()
    grad[np.arange(n), labels] -= 1
    grad = grad / n + 2 * Z_LOSS * lse[:, None] * probabilities
    return loss, grad / np.cosh(x) ** 2
