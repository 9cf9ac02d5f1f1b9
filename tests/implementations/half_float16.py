"""A half-precision kernel: the logits rounded to float16, computed in float32 (as frameworks
compute half types), the answer returned in float16. Correct for float16."""

import numpy as np


def softmax_loss(logits, labels):
    z = np.asarray(logits).astype(np.float16).astype(np.float32)
    n = len(z)
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    p = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = (np.log(e.sum(axis=1)) - shifted[rows, labels]).mean()
    g = p.copy()
    g[rows, labels] -= 1
    return np.float16(loss), (g / np.float32(n)).astype(np.float16)
