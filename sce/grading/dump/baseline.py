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

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sce.grading.dump import ulp_kernel
from sce.io.arrays.dump import bfloat16_dtype
from sce.loss import SoftmaxCrossEntropyResult
from sce.options import LossOptions

#: Mantissa bits (after the point) and the smallest normal exponent of each type.
_FORMAT = {"float16": (10, -14), "bfloat16": (7, -126), "float32": (23, -126), "float64": (52, -1022)}
_NUMPY_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        return bfloat16_dtype()
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
    # An exact value beyond the type's largest (by half an ulp or more) rounds to ±inf in it:
    # a float16 sum loss above 65,520 is inf, correctly.
    rounds_to = np.sign(expected) * np.inf
    beyond = np.abs(expected) >= _rounds_to_infinity(dtype_name)
    same = (given == expected) | (np.isnan(given) & np.isnan(expected)) | (beyond & (given == rounds_to))
    error = np.where(same, 0.0, error)
    return np.where(np.isfinite(given) & np.isfinite(expected) | same, error, np.inf)


def _rounds_to_infinity(dtype_name: str) -> float:
    """The smallest magnitude that rounds to infinity in the type: its largest plus half an ulp."""
    mantissa, _ = _FORMAT[dtype_name]
    largest = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38, "float32": 3.4028234663852886e38}
    if dtype_name not in largest:
        return math.inf
    _, exponent = math.frexp(largest[dtype_name])  # largest = m·2^exponent, 0.5 ≤ m < 1
    return largest[dtype_name] + 2.0 ** (exponent - 1 - mantissa - 1)


def ulp_format(dtype_name: str) -> tuple[int, int]:
    """The type's mantissa bits and lowest normal exponent."""
    return _FORMAT[dtype_name]


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
    """Each row's loss is Σ_j c_j·(−log p_j) (+ λ·lse² with a z-loss): c (B×K), its row sums s,
    the factor a (1/(T·D) for 'mean', 1/T otherwise) that turns s·p − c into the gradient, and
    the z-loss's: 2λ/(T·D_z) per counted row (``z_scale``; D_z the counted rows for 'mean', else 1)."""

    c: np.ndarray
    s: np.ndarray
    a: float
    counted: np.ndarray | None = None
    """Which rows are counted (B, bool); None: all of them."""
    z_scale: float = 0.0


def coefficients(
    labels: np.ndarray | None,
    targets: np.ndarray | None,
    classes: int,
    options: LossOptions,
    denominator: float,
    z_denominator: float = 1.0,
) -> RowCoefficients:
    """PyTorch's weights, smoothing (either style) and ignore index as one coefficient matrix
    (float64); ``z_denominator`` is what a 'mean' z-loss divides by (the counted rows)."""
    weights = np.ones(classes) if options.weight is None else np.asarray(options.weight, dtype=np.float64)
    label_share, smoothed = _smoothing_masses(options, classes)
    counted = None
    if labels is not None:
        counted = labels != options.ignore_index
        safe = np.where(counted, labels, 0)
        c = np.zeros((len(labels), classes))
        c += smoothed * weights
        rows = np.arange(len(labels))
        if options.smoothing_style == "off-target":
            c[rows, safe] = label_share * weights[safe]
        else:
            c[rows, safe] += label_share * weights[safe]
        c[~counted] = 0.0
    else:
        assert targets is not None
        given = np.asarray(targets, dtype=np.float64)
        if options.smoothing_style == "off-target":
            c = (label_share * given + smoothed * (1 - given)) * weights
        else:
            c = (label_share * given + smoothed) * weights
    scale = 1.0 / options.temperature
    if options.reduction == "mean":
        scale = 0.0 if denominator == 0 else scale / denominator
    z_scale = 0.0
    if options.z_loss:
        z_count = z_denominator if options.reduction == "mean" else 1.0
        z_scale = 0.0 if z_count == 0 else 2 * options.z_loss / (options.temperature * z_count)
    return RowCoefficients(c, c.sum(axis=1), scale, counted, z_scale)


def _smoothing_masses(options: LossOptions, classes: int) -> tuple[float, float]:
    """(the label's share, each smoothed class's mass): (1 − ε, ε/K) uniform, (1 − ε, ε/(K − 1))
    off-target (where the label's entry is set, not added to), (1, 0) without smoothing or K = 1."""
    eps = options.label_smoothing
    if options.smoothing_style == "off-target":
        return (1.0, 0.0) if eps == 0 or classes == 1 else (1 - eps, eps / (classes - 1))
    return 1 - eps, eps / classes


def autograd_route_applies(targets: np.ndarray | None, options: LossOptions) -> bool:
    """Where PyTorch forms the gradient through log-softmax's backward with a sum over the
    classes of the incoming gradient (smoothing, probability targets): see :func:`baseline`."""
    return targets is not None or options.label_smoothing > 0


#: Bytes of the vector registers whose lanes a vectorized sum keeps apart (AVX-512's 64: 16
#: float32 or 8 float64 lanes), each summed in order: PyTorch's CPU reductions (its
#: log-softmax's Σe among them). Over K = 32,000 classes a float32 sum's error is that of 2,000
#: terms added one by one. AVX2's registers, half as wide, make errors ~2.5× larger, within
#: the margin; sizing the lanes by float type keeps a float64 sum's chains as long as a float32's.
VECTOR_BYTES = 64


def lane_sum(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Each row's sum as a vectorized kernel forms it in ``dtype``: VECTOR_BYTES / itemsize
    running sums, each over every so-many-th entry in order, then added together (B×1)."""
    if np.dtype(dtype) == np.float32 and ulp_kernel.lane_sum_width() == VECTOR_BYTES // 4:
        compiled = ulp_kernel.lane_sum_f32(np.asarray(values, np.float32))
        if compiled is not None:  # the same sums, without the transposed copy (tested)
            return compiled
    return numpy_lane_sum(values, dtype)


def numpy_lane_sum(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """:func:`lane_sum` by numpy."""
    rows, classes = values.shape
    width = VECTOR_BYTES // np.dtype(dtype).itemsize
    padded = -(-classes // width) * width
    lanes = np.ascontiguousarray(values, dtype=dtype)
    if padded != classes:  # the last lanes' missing entries are 0
        lanes = np.zeros((rows, padded), dtype=dtype)
        lanes[:, :classes] = values
    # Reducing over the outer axis, numpy adds the rows of lanes one after the other: each step
    # adds every row's lanes at once (rows × width entries; a reduce over the middle axis of
    # (rows, K / width, width) took a loop of width entries a step, 25 % longer).
    steps = np.ascontiguousarray(lanes.reshape(rows, padded // width, width).transpose(1, 0, 2))
    running = np.add.reduce(steps.reshape(padded // width, rows * width), axis=0, dtype=dtype)
    return running.reshape(rows, width).sum(axis=1, keepdims=True, dtype=dtype)


@dataclass(frozen=True)
class Baseline:
    gradients: tuple[np.ndarray, ...]
    """The gradient by each route, in the claimed type (B×K)."""
    losses: tuple[np.ndarray, ...]
    """Each row's loss by each route, in the claimed type (B), the z-loss's term included."""
    z_losses: np.ndarray | None = None
    """Each row's z-loss term λ·lse² in the claimed type (B), where there is a z-loss."""


def baseline(
    logits: np.ndarray, coef: RowCoefficients, options: LossOptions, dtype_name: str, autograd: bool = False
) -> Baseline:
    """The straightforward computations in ``dtype_name`` (half types summed in float32): the
    cap a = c·tanh(z/c), a/T, max-shifted softmax by e/Σe (numpy's: Σ pairwise) and by
    exp(log-softmax) (PyTorch's CPU kernel: Σ in lanes, :func:`lane_sum`), (p·s − c)·a, plus
    2λ·lse·p/(T·D_z), times 1/cosh²(z/c); the loss from that log-softmax. With ``autograd`` a
    third route, PyTorch's through log-softmax's backward: g = c·a − p·Σ_k (c·a)_k with the sum
    in the type, in lanes.

    The lanes matter at a vocabulary's K: a sum of 128,000 terms in 8 lanes adds 16,000 terms
    one after another in each, and is some 40 ulp off where numpy's pairwise sum is 1 or 2;
    every probability of the row inherits that error. PyTorch's own float32 gradient at
    K = 256,000 is 206 ulp off, where the pairwise route alone would allow 152: a right answer
    would fail."""
    dtype = numpy_dtype(dtype_name)
    work = np.dtype(np.float32) if dtype.itemsize == 2 else dtype
    # copy=False throughout: a stage already in the type is not copied (in float32 most are).
    with np.errstate(all="ignore"):
        x = np.asarray(logits).astype(dtype, copy=False)
        x, cap_factor = _capped(x, options, dtype)
        if options.temperature != 1.0:
            x = (x / dtype.type(options.temperature)).astype(dtype, copy=False)
        top = x.max(axis=1, keepdims=True)
        shifted = (x - top).astype(dtype, copy=False).astype(work, copy=False)
        exponentials = np.exp(shifted)
        total = exponentials.sum(axis=1, keepdims=True)
        direct = (exponentials / total).astype(dtype, copy=False)
        log_p = (shifted - np.log(lane_sum(exponentials, work))).astype(dtype, copy=False)
        via_log = np.exp(log_p.astype(work, copy=False)).astype(dtype, copy=False)
        c = coef.c.astype(dtype, copy=False)
        s = coef.s.astype(dtype, copy=False)[:, None]
        a = dtype.type(coef.a)
        gradients = [
            (((p * s).astype(dtype, copy=False) - c).astype(dtype, copy=False) * a).astype(dtype, copy=False)
            for p in (direct, via_log)
        ]
        probabilities = [direct, via_log]
        if autograd:
            incoming = (c * a).astype(dtype, copy=False)  # −∂L/∂log p, in the type
            summed = lane_sum(incoming.astype(work, copy=False), work).astype(dtype, copy=False)
            gradients.append(((via_log * summed).astype(dtype, copy=False) - incoming).astype(dtype, copy=False))
            probabilities.append(via_log)
        loss = (-(log_p.astype(work, copy=False) * c.astype(work, copy=False)).sum(axis=1)).astype(dtype, copy=False)
        z_losses = None
        if options.z_loss:
            lse = (top.astype(work) + np.log(total)).astype(dtype, copy=False)
            gradients = _with_z_loss(gradients, probabilities, lse, coef, dtype)
            z_losses = _z_losses(lse[:, 0], coef, options, dtype)
            loss = (loss + z_losses).astype(dtype, copy=False)
        if cap_factor is not None:
            gradients = [(g * cap_factor).astype(dtype, copy=False) for g in gradients]
    return Baseline(tuple(gradients), (loss,), z_losses)


def _capped(x: np.ndarray, options: LossOptions, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """a = c·tanh(z/c) and its derivative 1/cosh²(z/c) in the type (as sce test's straightforward
    answer: the form that keeps its digits where |z/c| is large); x itself without a softcap."""
    if options.softcap is None:
        return x, None
    cap = dtype.type(options.softcap)
    ratio = (x / cap).astype(dtype, copy=False)
    capped = (cap * np.tanh(ratio)).astype(dtype, copy=False)
    factor = (dtype.type(1) / np.square(np.cosh(ratio)).astype(dtype, copy=False)).astype(dtype, copy=False)
    return capped, factor


def _counted(coef: RowCoefficients, rows: int) -> np.ndarray:
    return np.ones(rows, dtype=bool) if coef.counted is None else coef.counted


def _with_z_loss(
    gradients: list[np.ndarray],
    probabilities: list[np.ndarray],
    lse: np.ndarray,
    coef: RowCoefficients,
    dtype: np.dtype,
) -> list[np.ndarray]:
    """Each route plus 2λ·lse·p/(T·D_z) on the counted rows, in the type."""
    factor = (dtype.type(coef.z_scale) * lse).astype(dtype, copy=False)
    factor = np.where(_counted(coef, len(lse))[:, None], factor, dtype.type(0)).astype(dtype, copy=False)
    return [
        (g + (factor * p).astype(dtype, copy=False)).astype(dtype, copy=False)
        for g, p in zip(gradients, probabilities, strict=True)
    ]


def _z_losses(lse: np.ndarray, coef: RowCoefficients, options: LossOptions, dtype: np.dtype) -> np.ndarray:
    """λ·lse² on the counted rows, 0 on the others, in the type."""
    term = (dtype.type(options.z_loss) * np.square(lse).astype(dtype, copy=False)).astype(dtype, copy=False)
    return np.where(_counted(coef, len(lse)), term, dtype.type(0)).astype(dtype, copy=False)


def gradient_magnitude(
    probabilities: np.ndarray, coef: RowCoefficients, log_sum_exp: np.ndarray | None = None
) -> np.ndarray:
    """a·max(s·p, c): the size of the operands of each gradient entry's subtraction; with a
    z-loss (given ``log_sum_exp``) its term |2λ·lse/(T·D_z)|·p is added to s·p's side.

    A softcap's factor 1 − tanh²(z/c) does not scale it: frameworks form the factor from
    tanh's result, as 1 minus a number near 1 (PyTorch's autograd of c·tanh(z/c)), so that
    its error is counted in ulps of 1, as the label's p − 1 is."""
    magnitude = coef.a * np.maximum(coef.s[:, None] * probabilities, coef.c)
    if coef.z_scale and log_sum_exp is not None:
        counted = _counted(coef, len(log_sum_exp))
        z_term = np.where(counted, np.abs(coef.z_scale * log_sum_exp.astype(np.float64)), 0.0)
        scaled = (coef.a * coef.s + z_term)[:, None] * probabilities
        magnitude = np.maximum(scaled, coef.a * coef.c)
    return magnitude


def loss_magnitude(losses: np.ndarray, coef: RowScale, z_losses: np.ndarray | None = None) -> np.ndarray:
    """max(|loss|, s): a row's loss is log Σe − z_y, computed at the scale of 1 at least; with a
    z-loss, max(|loss|, s + λ·lse²)."""
    if z_losses is None:
        return np.maximum(np.abs(losses), coef.s)
    return np.maximum(np.abs(losses), coef.s + np.abs(z_losses))


def result_magnitudes(result: SoftmaxCrossEntropyResult, coef: RowCoefficients) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gradient_magnitude` and :func:`loss_magnitude` of an exact result, with the
    z-loss's terms (its lse, its row terms) where there is one."""
    z_loss = bool(result.options.z_loss)
    gradient = gradient_magnitude(result.probabilities, coef, result.log_sum_exp if z_loss else None)
    return gradient, loss_magnitude(result.losses, coef, result.z_losses if z_loss else None)


def operand_sizes(
    result: SoftmaxCrossEntropyResult, targets: np.ndarray | None, denominators: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`result_magnitudes` of ``result`` from its own labels (or ``targets``) and the mean's
    ``denominators`` (cross-entropy, z-loss), an overflow counted as 0: the sizes a type's rounding
    is counted in ulps of, gradient (N×K) and loss (N)."""
    labels = None if result.labels is None else np.asarray(result.labels)
    coef = coefficients(labels, targets, result.num_classes, result.options, *denominators)
    with np.errstate(all="ignore"):
        gradient, loss = result_magnitudes(result, coef)
    return np.where(np.isfinite(gradient), gradient, 0.0), np.where(np.isfinite(loss), loss, 0.0)
