"""Mistake: the logits are capped, but the gradient misses the factor 1 - tanh²(z/c)."""

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
    loss = np.sum(np.log(sums[:, 0]) - shifted[np.arange(n), labels] + Z_LOSS * lse**2) / n
    grad = probabilities * (1 + 2 * Z_LOSS * lse[:, None])
    grad[np.arange(n), labels] -= 1
    return loss, grad / n
