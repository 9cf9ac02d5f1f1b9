"""Mistake: a loop whose last row's gradient ends up in every row."""

import numpy as np


def softmax_loss(logits, labels):
    n = logits.shape[0]
    loss = 0.0
    for i in range(n):
        z = logits[i] - logits[i].max()
        p = np.exp(z) / np.exp(z).sum()
        loss += np.log(np.exp(z).sum()) - z[labels[i]]
        g = p.copy()
        g[labels[i]] -= 1
    grad = np.tile(g, (n, 1))
    return loss / n, grad / n
