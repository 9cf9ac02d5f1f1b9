"""Stages right up to the gradient, which is summed over the rows instead of averaged (no division by N)."""

import numpy as np


def softmax_stages(logits, labels):
    n = logits.shape[0]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    grad = probs.copy()
    grad[np.arange(n), labels] -= 1.0
    return {"probs": probs, "grad": grad}
