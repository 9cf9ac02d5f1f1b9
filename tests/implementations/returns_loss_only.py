"""Returns only the loss where (loss, grad) is expected."""

import numpy as np


def softmax_loss(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_sums = np.log(np.exp(shifted).sum(axis=1))
    return np.mean(log_sums - shifted[np.arange(len(labels)), labels])
