"""Every stage of the derivation, robustly: the loss from the log-sum-exp, so that no probability's log is taken."""

import numpy as np


def softmax_stages(logits, labels):
    n, k = logits.shape
    rows = np.arange(n)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1)
    probs = exp / sum_exp[:, None]
    loss = np.mean(np.log(sum_exp) - shifted[rows, labels])
    one_hot = np.zeros_like(probs)
    one_hot[rows, labels] = 1.0
    with np.errstate(divide="ignore"):
        dl_ds = np.where(one_hot > 0, -1.0 / probs, 0.0)
    ds_dz = np.einsum("nj,jk->njk", probs, np.eye(k)) - np.einsum("nj,nk->njk", probs, probs)
    grad = (probs - one_hot) / n
    return {
        "shifted": shifted,
        "exp": exp,
        "sum_exp": sum_exp,
        "probs": probs,
        "loss": loss,
        "dL_ds": dl_ds,
        "ds_dz": ds_dz,
        "grad": grad,
    }
