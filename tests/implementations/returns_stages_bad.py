"""Functions that return stages in the wrong form: not a dict, unknown names, wrong shapes, text."""

import numpy as np


def pair(logits, labels):
    return 1.0, logits


def unknown(logits, labels):
    return {"probs": logits, "softmax": logits}


def empty(logits, labels):
    return {}


def shape(logits, labels):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return {"probs": p.T, "sum_exp": None}


def intkey(logits, labels):
    return {1: logits}


def dlds(logits, labels):
    return {"dL_ds": logits}


def row(z, label):
    s = np.exp(z - z.max())
    s /= s.sum()
    return {
        "probs": s,
        "loss": -np.log(s[label]),
        "ds_dz": np.diag(s) - np.outer(s, s),
        "dL_ds": np.where(np.arange(len(z)) == label, -1 / s, 0.0),
        "sum_exp": np.exp(z - z.max()).sum(),
    }


def targets(logits, q):
    s = np.exp(logits - logits.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    return {"probs": s, "dL_ds": np.where(q > 0, -q / s, 0.0), "grad": (s - q) / len(q)}


def texts(logits, labels):
    return {"probs": "0.1 0.2"}


def nan_probs(logits, labels):
    return {"probs": np.full(logits.shape, np.nan)}
