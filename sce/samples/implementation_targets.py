"""Probability targets: f(logits, targets) -> (loss, grad), with targets N×K rows that sum to 1.

    sce test implementation_targets.py:soft_cross_entropy --targets
"""

import numpy as np


def soft_cross_entropy(logits, targets):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -(targets * log_p).sum() / n
    return loss, (np.exp(log_p) - targets) / n
