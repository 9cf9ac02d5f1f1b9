"""Correct: log-softmax with logaddexp, one-hot via np.eye, float64 throughout."""

import numpy as np


def log_softmax(z):
    return z - np.logaddexp.reduce(z, axis=1, keepdims=True)


def softmax_loss(logits, labels):
    n, k = logits.shape
    one_hot = np.eye(k)[labels]
    log_p = log_softmax(logits)
    loss = -(one_hot * log_p).sum() / n
    return loss, (np.exp(log_p) - one_hot) / n
