"""Correct, the gradient only (--returns grad)."""

import numpy as np


def softmax_grad(logits, labels):
    n = len(labels)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), labels] -= 1
    return p / n
