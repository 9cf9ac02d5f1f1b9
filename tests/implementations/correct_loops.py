"""Correct, row by row with Python loops, as a first attempt often is."""

import numpy as np


def softmax_loss(logits, labels):
    n, k = logits.shape
    loss = 0.0
    grad = np.zeros_like(logits)
    for i in range(n):
        biggest = max(logits[i])
        exps = [np.exp(logits[i, j] - biggest) for j in range(k)]
        total = sum(exps)
        loss += np.log(total) - (logits[i, labels[i]] - biggest)
        for j in range(k):
            grad[i, j] = exps[j] / total - (1.0 if j == labels[i] else 0.0)
    return loss / n, grad / n
