"""Mistake: shifts the caller's logits in place (right numbers otherwise)."""

import numpy as np


def softmax_loss(logits, labels):
    n = logits.shape[0]
    rows = np.arange(n)
    logits -= logits.max(axis=1, keepdims=True)
    exps = np.exp(logits)
    sums = exps.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(sums[:, 0]) - logits[rows, labels])
    grad = exps / sums
    grad[rows, labels] -= 1
    return loss, grad / n
