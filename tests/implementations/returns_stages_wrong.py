"""Stages with the slips a learner makes on the way: the Jacobian's diagonal alone, and the gradient not divided by N."""

import numpy as np


def softmax_stages(logits, labels):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    jacobian = np.stack([np.diag(p * (1 - p)) for p in probs])  # the off-diagonal −s_j·s_k left out
    grad = probs.copy()
    grad[np.arange(n), labels] -= 1
    return {"probs": probs, "ds_dz": jacobian, "grad": grad}
