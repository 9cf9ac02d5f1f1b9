"""Mistake: the z-loss is left out of the loss and the gradient."""

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
    loss = np.sum(np.log(sums[:, 0]) - shifted[np.arange(n), labels] + 0.0) / n
    grad = probabilities.copy()
    grad[np.arange(n), labels] -= 1
    grad *= 1 / np.cosh(x) ** 2  # 1 - tanh², keeping its digits where tanh is near 1
    return loss, grad / n
