"""Subnormal results flushed to zero: what fast-math kernels return, excused where it is all they can.

A GPU kernel built with fast math (CUDA's ``-ftz=true``, the default of
``--use_fast_math``; x86's FTZ and DAZ flags) replaces every subnormal result by
zero: a probability below the type's smallest normal, or a gradient entry
whose product falls below it. Such an entry is 0 where the exact value is
below 1.2e-38 in float32, and its error, counted in ulps of the subnormal
range (2^-149), is millions of ulps. Only those zeros are excused: a zero
where the exact value is a normal number the type can hold (times what
multiplies a flushed probability: 1/T, the weights, the z-loss's 2λ·lse), and
any other wrong value, keeps its error.
"""

from __future__ import annotations

import numpy as np

from sce.grading.dump.baseline import RowCoefficients, RowScale, ulp_format
from sce.loss import SoftmaxCrossEntropyResult

#: How far above the smallest normal a flushed value may be exactly: a kernel's own rounding (a
#: probability ~40 ulp off at a vocabulary's K) may bring it under the threshold.
ROUNDING_ROOM = 1 + 2.0**-6


def flush_bounds(dtype: str, coef: RowScale, z_terms: np.ndarray | None = None) -> np.ndarray:
    """Each row's bound below which an exact gradient entry may come out of a flushing kernel as 0.

    The smallest normal of ``dtype``, times (for float32 and float64, whose kernels compute the
    probabilities in the type) max(1, |a|·s + |z|) per row, what multiplies a probability that
    was flushed on its way to the gradient. Half types are computed in float32, as frameworks
    do: only their result is flushed, below the half type's own smallest normal.

    Parameters
    ----------
    dtype : str
        The claimed type.
    coef : RowScale
        The rows' coefficients: the factor ``a`` and the row sums ``s``.
    z_terms : numpy.ndarray, optional
        Each row's z-loss factor 2λ·lse/(T·D_z) (B), where there is a z-loss.

    Returns
    -------
    numpy.ndarray
        The bound of each row (B×1).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> rows = SimpleNamespace(a=0.5, s=np.array([1.0, 8.0]))
    >>> flush_bounds("float32", rows)[:, 0] / np.finfo(np.float32).tiny / ROUNDING_ROOM
    array([1., 4.])
    >>> flush_bounds("float16", rows)[:, 0] * 2**14 / ROUNDING_ROOM
    array([1., 1.])
    """
    _, lowest = ulp_format(dtype)
    smallest = np.ldexp(ROUNDING_ROOM, lowest)
    s = np.asarray(coef.s, dtype=np.float64)
    if dtype not in ("float32", "float64"):
        return np.full((len(s), 1), smallest)
    factor = abs(coef.a) * s
    if z_terms is not None:
        factor = factor + np.abs(z_terms)
    return (smallest * np.maximum(1.0, factor))[:, None]


def z_terms(exact: SoftmaxCrossEntropyResult, coef: RowScale) -> np.ndarray | None:
    """Each row's z-loss factor 2λ·lse/(T·D_z) (B), where there is a z-loss; else None."""
    lse = exact.log_sum_exp
    if not isinstance(coef, RowCoefficients) or not coef.z_scale or lse is None:
        return None
    return coef.z_scale * np.asarray(lse, dtype=np.float64)


def excused(given: np.ndarray, expected: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The answer with each zero a flushing kernel may return (|exact| below its row's bound) put
    back as the exact value in the answer's type; the answer itself where there is none (no copy).

    Examples
    --------
    >>> tiny = float(np.finfo(np.float32).tiny)
    >>> given = np.array([[0.0, 0.0, 0.5]], np.float32)
    >>> exact = np.array([[tiny / 4, 2 * tiny, 0.5]])
    >>> out = excused(given, exact, np.array([[tiny]]))
    >>> bool(out[0, 0] == np.float32(tiny / 4)), float(out[0, 1])  # the second is a normal value: not excused
    (True, 0.0)
    """
    zeros = given == 0
    if not zeros.any():
        return given
    with np.errstate(invalid="ignore"):
        flushed = zeros & (np.abs(expected) < bounds)
    if not flushed.any():
        return given
    kept = np.array(given, copy=True)
    kept[flushed] = expected[flushed].astype(given.dtype)
    return kept
