"""Stages in float16, under a temperature, and a loss per row."""

import numpy as np


def half(logits, labels):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return {"probs": (e / e.sum(axis=1, keepdims=True)).astype(np.float16)}


def tempered(logits, labels):
    b = logits / 2.0
    shifted = b - b.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    s = exp / exp.sum(axis=1, keepdims=True)
    k = s.shape[1]
    jac = (np.einsum("nj,jk->njk", s, np.eye(k)) - np.einsum("nj,nk->njk", s, s)) / 2.0
    return {"shifted": shifted, "exp": exp, "sum_exp": exp.sum(axis=1), "probs": s, "ds_dz": jac}


def summed(logits, labels):
    n = len(labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e / e.sum(axis=1, keepdims=True)
    losses = np.log(e.sum(axis=1)) - shifted[np.arange(n), labels]
    g = s.copy()
    g[np.arange(n), labels] -= 1
    return {"loss": losses, "grad": g}


def capped(logits, labels):
    """Under a softcap of 30: the stages of the capped logits, and ∂s/∂z with the cap's factor."""
    a = 30.0 * np.tanh(logits / 30.0)
    shifted = a - a.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    s = exp / exp.sum(axis=1, keepdims=True)
    k = s.shape[1]
    factor = 1 / np.cosh(logits / 30.0) ** 2
    jacobian = (np.einsum("nj,jk->njk", s, np.eye(k)) - np.einsum("nj,nk->njk", s, s)) * factor[:, None, :]
    return {"shifted": shifted, "exp": exp, "probs": s, "ds_dz": jacobian}


def capped_grad_loses_digits(logits, labels):
    """The gradient under a softcap of 30 with 1 − tanh² as 1 minus a number near 1 (0 for large z/c)."""
    n = logits.shape[0]
    x = logits / 30.0
    capped = 30.0 * np.tanh(x)
    exp = np.exp(capped - capped.max(axis=1, keepdims=True))
    s = exp / exp.sum(axis=1, keepdims=True)
    grad = s.copy()
    grad[np.arange(n), labels] -= 1
    grad *= 1 - np.tanh(x) ** 2
    return {"probs": s, "grad": grad / n}
