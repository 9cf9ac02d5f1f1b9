"""Odd things a function can do: broken __array__ and __str__, complex output, upcasting, writing into the labels."""

import numpy as np


class Bad:
    def __array__(self, *a, **k):
        raise RuntimeError("no array for you")


class BadError(Exception):
    def __str__(self):
        raise ValueError("nope")


def bad_array(logits, labels):
    return 0.0, Bad()


def bad_error(logits, labels):
    raise BadError()


def complex_out(logits, labels):
    return 0.0, logits.astype(complex)


def upcast(logits, labels):
    z = np.asarray(logits, dtype=np.float64)
    n = z.shape[0]
    s = z - z.max(axis=1, keepdims=True)
    e = np.exp(s)
    t = e.sum(axis=1, keepdims=True)
    g = e / t
    g[np.arange(n), labels] -= 1
    return np.mean(np.log(t[:, 0]) - s[np.arange(n), labels]), g / n


def labels_in_place(logits, labels):
    labels += 0
    labels[0] = labels[0]
    labels *= 1
    labels.sort()
    return upcast(logits, labels)


class Softmax:
    def __init__(self, a, b):
        pass


def kwonly(logits, *, labels):
    return 0, 0


def defaults(logits, labels, reg=0.0):
    return upcast(logits, labels)


def row_as_batch(z, label):
    s = z - np.max(z)
    g = np.exp(s) / np.exp(s).sum()
    g[label] -= 1
    return np.log(np.exp(s).sum()) - s[label], g
