"""The row convention: f(z, label) -> (loss, grad) for one vector of K logits.

    sce test implementation_row.py:row_loss_and_gradient --convention row

This is the function the textbook derivation gives: L = −log s_c and
∂L/∂z = s − y. sce calls it once per row of each case.
"""

import numpy as np


def row_loss_and_gradient(z, label):
    shifted = z - np.max(z)
    exps = np.exp(shifted)
    total = exps.sum()
    grad = exps / total
    grad[label] -= 1
    return np.log(total) - shifted[label], grad
