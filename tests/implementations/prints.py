"""Correct, and prints as it goes: the prints must not reach sce's output."""

import sys

import numpy as np

print("importing my homework")


def softmax_loss(logits, labels):
    print("logits:", logits)
    print('{"passed": false}')
    print("to stderr", file=sys.stderr)
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    sums = np.exp(shifted).sum(axis=1, keepdims=True)
    grad = np.exp(shifted) / sums
    grad[np.arange(n), labels] -= 1
    return np.mean(np.log(sums[:, 0]) - shifted[np.arange(n), labels]), grad / n
