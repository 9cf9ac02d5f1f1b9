"""What a straightforward correct implementation gets in a given float type, and errors in
units in the last place (ulps) of that type.

The baseline is the textbook computation: max-shifted softmax, then
p·Σc − c (p − onehot without options), the same reduction. It is computed
two ways, both common in frameworks: softmax p = e / Σe, and p = exp(log
softmax) rounded from the log-probabilities (what PyTorch's backward does,
and why its float32 gradient is up to ~60 ulp off where e / Σe is ~20);
the verdict allows whichever errs more. For float16 and bfloat16 the
exponentials are summed in float32, as every framework does for half types,
and each stage's result is rounded to the half type.

Errors are measured in ulps at the magnitude of the operands, not of the
result: the label's entry p − 1 of a confident row is tiny, but it is computed
from numbers near 1, so its error is counted in ulps of 1 (times the
reduction's scale). Without this, a float32 gradient that prints 0 for a true
−4e-18 would be 2^23 ulps off, and so would every float32 implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..options import LossOptions

#: Mantissa bits (after the point) and the smallest normal exponent of each type.
_FORMAT = {"float16": (10, -14), "bfloat16": (7, -126), "float32": (23, -126), "float64": (52, -1022)}
_NUMPY_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def ulps(given: np.ndarray, expected: np.ndarray, magnitude: np.ndarray, dtype_name: str) -> np.ndarray:
    """|given − expected| in ulps of ``dtype_name`` at ``magnitude``; 0 where both are the same
    NaN or infinity, inf where only one of them is not finite."""
    mantissa, min_exponent = _FORMAT[dtype_name]
    given = np.asarray(given, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    _, exponent = np.frexp(np.abs(np.asarray(magnitude, dtype=np.float64)))
    exponent = np.maximum(exponent.astype(np.int64) - 1, min_exponent)
    unit = np.ldexp(1.0, exponent - mantissa)
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(given - expected) / unit
    same = (given == expected) | (np.isnan(given) & np.isnan(expected))
    error = np.where(same, 0.0, error)
    return np.where(np.isfinite(given) & np.isfinite(expected) | same, error, np.inf)


def ulp_unit(magnitude: np.ndarray, dtype_name: str) -> np.ndarray:
    """One ulp of ``dtype_name`` at each ``magnitude`` (a power of two; the smallest normal's
    ulp below it): :func:`ulps`' unit, from the exponent bits rather than ``frexp``."""
    mantissa, min_exponent = _FORMAT[dtype_name]
    # The mask leaves out the sign bit: no abs needed. In place in one new array, for speed.
    bits = np.bitwise_and(np.asarray(magnitude, dtype=np.float64).view(np.int64), np.int64(0x7FF0000000000000))
    power = bits.view(np.float64)
    np.maximum(power, 2.0**min_exponent, out=power)
    power *= 2.0**-mantissa
    return power


def ulps_if_finite(given: np.ndarray, expected: np.ndarray, unit: np.ndarray) -> np.ndarray | None:
    """|given − expected| / unit where every entry is finite (the common case, one pass cheaper
    than :func:`ulps`), else None: the caller then asks :func:`ulps`, which knows NaN and infinity."""
    if given.dtype not in _NUMPY_FLOATS:
        given = given.astype(np.float64)  # bfloat16 (ml_dtypes) has no mixed-type subtraction
    error = np.subtract(given, expected, dtype=np.float64)
    np.abs(error, out=error)
    with np.errstate(invalid="ignore", over="ignore"):
        error /= unit
    return error if np.isfinite(error.max(initial=0.0)) else None


class RowScale(Protocol):
    """What a row's loss magnitude needs of its coefficients (dense or kept sparse)."""

    @property
    def s(self) -> np.ndarray: ...

    @property
    def a(self) -> float: ...


@dataclass(frozen=True)
class RowCoefficients:
    """Each row's loss is Σ_j c_j·(−log p_j): c (B×K), its row sums s, and the factor a
    (1/(T·D) for 'mean', 1/T otherwise) that turns s·p − c into the gradient."""

    c: np.ndarray
    s: np.ndarray
    a: float


def coefficients(
    labels: np.ndarray | None, targets: np.ndarray | None, classes: int, options: LossOptions, denominator: float
) -> RowCoefficients:
    """PyTorch's weights, smoothing and ignore index as one coefficient matrix (float64)."""
    weights = np.ones(classes) if options.weight is None else np.asarray(options.weight, dtype=np.float64)
    eps = options.label_smoothing
    if labels is not None:
        counted = labels != options.ignore_index
        safe = np.where(counted, labels, 0)
        c = np.zeros((len(labels), classes))
        c += (eps / classes) * weights
        c[np.arange(len(labels)), safe] += (1 - eps) * weights[safe]
        c[~counted] = 0.0
    else:
        assert targets is not None
        c = ((1 - eps) * np.asarray(targets, dtype=np.float64) + eps / classes) * weights
    scale = 1.0 / options.temperature
    if options.reduction == "mean":
        scale = 0.0 if denominator == 0 else scale / denominator
    return RowCoefficients(c, c.sum(axis=1), scale)


@dataclass(frozen=True)
class Baseline:
    gradients: tuple[np.ndarray, ...]
    """The gradient by each route, in the claimed type (B×K)."""
    losses: tuple[np.ndarray, ...]
    """Each row's loss by each route, in the claimed type (B)."""


def baseline(logits: np.ndarray, coef: RowCoefficients, options: LossOptions, dtype_name: str) -> Baseline:
    """The two straightforward computations in ``dtype_name`` (half types summed in float32)."""
    dtype = numpy_dtype(dtype_name)
    work = np.dtype(np.float32) if dtype.itemsize == 2 else dtype
    # copy=False throughout: a stage already in the type is not copied (in float32 most are).
    with np.errstate(all="ignore"):
        x = np.asarray(logits).astype(dtype, copy=False)
        if options.temperature != 1.0:
            x = (x / dtype.type(options.temperature)).astype(dtype, copy=False)
        shifted = (x - x.max(axis=1, keepdims=True)).astype(dtype, copy=False).astype(work, copy=False)
        exponentials = np.exp(shifted)
        total = exponentials.sum(axis=1, keepdims=True)
        direct = (exponentials / total).astype(dtype, copy=False)
        log_p = (shifted - np.log(total)).astype(dtype, copy=False)
        via_log = np.exp(log_p.astype(work, copy=False)).astype(dtype, copy=False)
        c = coef.c.astype(dtype, copy=False)
        s = coef.s.astype(dtype, copy=False)[:, None]
        a = dtype.type(coef.a)
        gradients = tuple(
            (((p * s).astype(dtype, copy=False) - c).astype(dtype, copy=False) * a).astype(dtype, copy=False)
            for p in (direct, via_log)
        )
        loss = (-(log_p.astype(work, copy=False) * c.astype(work, copy=False)).sum(axis=1)).astype(dtype, copy=False)
    return Baseline(gradients, (loss,))


def gradient_magnitude(probabilities: np.ndarray, coef: RowCoefficients) -> np.ndarray:
    """a·max(s·p, c): the size of the operands of each gradient entry's subtraction."""
    return coef.a * np.maximum(coef.s[:, None] * probabilities, coef.c)


def loss_magnitude(losses: np.ndarray, coef: RowScale) -> np.ndarray:
    """max(|loss|, s): a row's loss is log Σe − z_y, computed at the scale of 1 at least."""
    return np.maximum(np.abs(losses), coef.s)
