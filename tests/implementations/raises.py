"""A bug that raises: the report shows this file's line."""

import numpy as np


def softmax_loss(logits, labels):
    n = logits.shape[0]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    scale = 1 / (n - len(labels))
    return 0.0, p * scale
