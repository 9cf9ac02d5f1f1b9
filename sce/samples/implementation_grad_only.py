"""Only the gradient: f(logits, labels) -> grad (N×K), as a backward pass computes it.

    sce test implementation_grad_only.py:softmax_backward --returns grad
"""

import numpy as np


def softmax_backward(logits, labels):
    n = logits.shape[0]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), labels] -= 1
    return p / n
