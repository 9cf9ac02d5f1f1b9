"""Mistake: the loss as log p[y] (its sign lost), beside the right gradient."""

import numpy as np


def softmax_loss(logits, labels):
    n = logits.shape[0]
    rows = np.arange(n)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True)
    probabilities = exps / sums
    loss = np.mean(np.log(probabilities[rows, labels]) * 0.5)
    grad = probabilities.copy()
    grad[rows, labels] -= 1
    return loss, grad / n
