"""Mistake: right to within an ulp of the operands, but a confident row's tiny values of the wrong sign:
a loss below 0 and p − 1 positive at the label, which no rounding gives."""

import numpy as np


def softmax_loss(logits, labels):
    n = logits.shape[0]
    rows = np.arange(n)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True)
    probabilities = exps / sums
    losses = np.log(sums[:, 0]) - shifted[rows, labels]
    losses = np.where(losses < 1e-15, -1e-17, losses)  # a confident row's 4e-18 "rounded" below 0
    grad = probabilities.copy()
    grad[rows, labels] -= 1
    tiny = np.abs(grad[rows, labels]) < 1e-15
    grad[rows, labels] = np.where(tiny, 1e-17, grad[rows, labels])  # p − 1 "rounded" above 0
    return np.mean(losses), grad / n
