"""Hangs only with a thousand classes: the other cases still run."""

import time

import numpy as np


def softmax_loss(logits, labels):
    if logits.shape[1] >= 1000:
        time.sleep(60)
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    sums = np.exp(shifted).sum(axis=1, keepdims=True)
    grad = np.exp(shifted) / sums
    grad[np.arange(n), labels] -= 1
    return np.mean(np.log(sums[:, 0]) - shifted[np.arange(n), labels]), grad / n
