"""Forgets the return statement."""

import numpy as np


def softmax_loss(logits, labels):
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    grad = p - np.eye(logits.shape[1])[labels]  # noqa: F841
