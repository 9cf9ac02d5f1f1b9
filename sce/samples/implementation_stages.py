"""A derivation written stage by stage, each intermediate returned by its name, with one slip to find.

sce test implementation_stages.py:softmax_stages --returns stages
"""

import numpy as np


def softmax_stages(logits, labels):
    n, k = logits.shape
    rows = np.arange(n)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1)
    probs = exp / sum_exp[:, None]
    loss = np.mean(np.log(sum_exp) - shifted[rows, labels])
    ds_dz = np.stack([np.diag(s * (1 - s)) for s in probs])  # ds_j/dz_k = s_j(1 - s_j)
    grad = probs.copy()
    grad[rows, labels] -= 1
    return {
        "shifted": shifted,
        "exp": exp,
        "sum_exp": sum_exp,
        "probs": probs,
        "loss": loss,
        "ds_dz": ds_dz,
        "grad": grad / n,
    }
