"""Correct for any options, read from the environment (the tests set them): the issue's formula
(1/T)·(1 − tanh²(z/c))·[(1 + 2λ·lse)·p − q], in float64 or float32."""

import os
import numpy as np

CAP = float(os.environ.get("CAP", "30"))
Z = float(os.environ.get("ZL", "0"))
T = float(os.environ.get("TT", "1"))
EPS = float(os.environ.get("EPS", "0"))
STYLE = os.environ.get("STYLE", "uniform")
DT = np.dtype(os.environ.get("DT", "float64"))


def softmax_loss(logits, labels):
    logits = logits.astype(DT)
    n, k = logits.shape
    x = logits / DT.type(CAP)
    a = DT.type(CAP) * np.tanh(x)
    b = a / DT.type(T)
    top = b.max(axis=1, keepdims=True)
    shifted = b - top
    sums = np.exp(shifted).sum(axis=1, keepdims=True)
    logp = shifted - np.log(sums)
    p = np.exp(logp)
    one = np.eye(k, dtype=DT)[labels]
    q = (1 - EPS) * one + (EPS / k if STYLE == "uniform" else EPS / (k - 1) * (1 - one))
    lse = (top + np.log(sums))[:, 0]
    loss = (-(q * logp).sum(axis=1) + Z * lse**2).sum() / n
    with np.errstate(over="ignore"):
        factor = 1 / np.cosh(x) ** 2
    grad = ((1 + 2 * Z * lse[:, None]) * p - q) / DT.type(T) * factor / n
    return loss.astype(DT), grad.astype(DT)
