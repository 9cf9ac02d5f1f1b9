"""The core as it was before it worked in row blocks: the reference path.

A frozen copy of ``sce/loss/cross_entropy.py`` and ``log_softmax.py`` at the
commit that made the core layout-independent, every N×K intermediate formed
for all rows at once. ``tests/test_loss_row_blocks.py`` checks that the public
core gives the same results as this, bit for bit. Do not "improve" it: it
is the definition of the digits the core must keep.

``reference_softmax_cross_entropy(logits, labels, targets=..., options=...)``
returns the result's fields as a dict.
"""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from sce.loss.validation import (
    checked_labels,
    checked_logits,
    checked_targets,
    class_weights,
    validated_options,
)
from sce.loss.reduction import warn_about_infinite_losses
from sce.loss.result import InvalidInput, LossWarning
from sce.options import LossOptions


@dataclass(frozen=True)
class LogSoftmax:
    max_logit: np.ndarray
    """M = max_j z_j, of the logits as given (N)."""
    argmax: np.ndarray
    """The first maximal logit's class (N)."""
    shifted: np.ndarray
    """(z - M) / T, rounded (N×K)."""
    exp_shifted: np.ndarray
    """exp((z - M) / T), with the rounding of the shift and the division compensated (N×K)."""
    others_sum: np.ndarray
    """S = Σ_{j ≠ argmax} exp((z_j - M) / T) (N)."""
    exp_sum: np.ndarray
    """1 + S (N)."""
    log_probabilities: np.ndarray
    """log softmax(z / T) (N×K)."""

    @property
    def complement_of_max(self) -> np.ndarray:
        """1 - p_max = S / (1 + S), without the cancellation of 1 - p_max (N)."""
        return self.others_sum / self.exp_sum


def log_softmax(z: np.ndarray, temperature: float = 1.0) -> LogSoftmax:
    """Row-wise log-softmax of z / T, accurate to a few ulp even far from the maximum.

    Four choices keep the last digits:

    * The shift comes before the scaling: (z - M) / T, never z / T - M / T,
      so a small T cannot overflow what the result does not need (z / T
      overflows for T = 1e-310 where every (z_j - M) / T of interest is
      -inf or 0), and the largest term is exactly e^0 = 1.
    * The rounding error of z_j - M is recovered exactly with Knuth's TwoSum,
      and that of the division by T with Dekker's TwoProduct, and both are
      applied as a factor (1 + err): without it a logit 600 below the
      maximum loses two digits in exp((z_j - M) / T), because the rounding
      of the exponent is multiplied by its size.
    * The term 1 of the maximum is kept out of the sum S of the others, and
      log Σ = log1p(S), so that a confident prediction keeps its tiny loss
      (logits [0, 40], label 1: 4.2e-18 where log(1 + S) rounds to 0).
    * Where an exponent overflows (-inf) its term is 0 and its correction is
      dropped rather than turned into NaN.
    """
    rows = np.arange(z.shape[0])
    argmax = np.argmax(z, axis=1)
    max_logit = z[rows, argmax]
    shifted, err = _shift_and_scale(z, max_logit, temperature)
    exp_shifted = np.exp(shifted) * np.maximum(1 + err, 0)  # never -0.0: see sce.loss.log_softmax
    exp_shifted[rows, argmax] = 0
    others_sum = exp_shifted.sum(axis=1)
    exp_shifted[rows, argmax] = 1
    exp_sum = 1 + others_sum
    log_probabilities = (shifted - np.log1p(others_sum)[:, None]) + err
    log_probabilities[rows, argmax] = -np.log1p(others_sum)
    return LogSoftmax(max_logit, argmax, shifted, exp_shifted, others_sum, exp_sum, log_probabilities)


def _shift_and_scale(z: np.ndarray, max_logit: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(z - M) / T rounded, and the error e with rounded + e = (z - M) / T to first order."""
    neg_max = -max_logit[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        difference = z + neg_max
        # TwoSum: difference + err == z - M exactly (NaN or inf only where the
        # logit is -inf or the difference overflows; those terms are 0).
        virtual = difference - z
        err = (z - (difference - virtual)) + (neg_max - virtual)
        if temperature != 1.0:
            t = z.dtype.type(temperature)
            quotient = difference / t
            product, product_err = _two_product(quotient, t)
            # difference - product is exact (Sterbenz: they agree to the last
            # bits), so the remainder of the division is known exactly.
            err = ((difference - product) - product_err + err) / t
            difference = quotient
    err = np.where(np.isfinite(err) & np.isfinite(difference), err, 0).astype(z.dtype, copy=False)
    return difference, err


def _two_product(a: np.ndarray, b: np.floating) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's TwoProduct: a·b = product + error exactly (numpy has no fma)."""
    product = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(np.asarray(b))
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    return product, error


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp's split of x into a high half and a low half (each fits half the mantissa)."""
    factor = x.dtype.type(134217729.0 if x.dtype == np.float64 else 4097.0)  # 2^27 + 1, 2^12 + 1
    scaled = factor * x
    high = scaled - (scaled - x)
    return high, x - high

@dataclass(frozen=True)
class _RowTerms:
    """What each kind of target gives, before the reduction."""

    losses: np.ndarray
    """Each row's own loss (N)."""
    gradient: np.ndarray
    """∂(row loss)/∂(z/T), before the factors 1/T and 1/D (N×K)."""
    target: np.ndarray
    """The effective target distribution (N×K)."""
    counted: np.ndarray
    """Rows that count (N)."""
    denominator: float
    """What 'mean' divides these rows by: the counted label weights, or N."""


def _compute(
    logits: ArrayLike,
    labels: ArrayLike | None,
    targets: ArrayLike | None,
    options: LossOptions,
    mean_denominator: float | None,
) -> dict:
    dtype, weights = validated_options(options)
    z = checked_logits(logits, dtype)
    n_rows, n_classes = z.shape
    weight_vec = class_weights(weights, n_classes, dtype)
    if labels is not None and targets is not None:
        raise _neither_or_both()
    ls = log_softmax(z, options.temperature)
    probabilities = ls.exp_shifted / ls.exp_sum[:, None]
    eps = dtype.type(options.label_smoothing)
    label_vec = None
    if targets is not None:
        y = checked_targets(targets, n_rows, n_classes, dtype)
        terms = _soft_target_terms(ls, probabilities, y, weight_vec, eps)
    elif labels is not None:
        label_vec = checked_labels(labels, n_rows, n_classes, options.ignore_index)
        terms = _hard_label_terms(ls, probabilities, label_vec, weight_vec, eps, options.ignore_index)
    else:
        raise _neither_or_both()
    warn_about_infinite_losses(terms.losses, weight_vec)  # the words, not the digits: shared
    denominator = terms.denominator if mean_denominator is None else float(mean_denominator)
    loss, gradient, denominator = _reduce(terms, options.reduction, denominator, dtype.type(options.temperature))
    _warn_about_overflowing_gradients(gradient, options.temperature)
    with np.errstate(over="ignore"):
        scaled = z / dtype.type(options.temperature) if options.temperature != 1.0 else z
    return dict(
        logits=z,
        scaled_logits=scaled,
        max_logit=ls.max_logit,
        argmax=ls.argmax,
        shifted_logits=ls.shifted,
        exp_shifted=ls.exp_shifted,
        exp_sum=ls.exp_sum,
        probabilities=probabilities,
        log_probabilities=ls.log_probabilities,
        labels=label_vec,
        target=terms.target,
        counted=terms.counted,
        losses=terms.losses,
        loss=loss,
        denominator=denominator,
        gradient=gradient.astype(dtype, copy=False),
        options=options,
    )


def _neither_or_both() -> InvalidInput:
    return InvalidInput(
        "give either class-index labels or probability targets, not both or neither",
        field="labels",
    )


def _hard_label_terms(
    ls: LogSoftmax,
    probabilities: np.ndarray,
    labels: np.ndarray,
    weight_vec: np.ndarray,
    eps: np.floating,
    ignore_index: int,
) -> _RowTerms:
    """Class-index targets, smoothed or not: the target row is q = (1 - ε)·e_c + ε/K
    and the gradient p·Σ_j w_j q_j - w ⊙ q, formed without the dense one-hot."""
    n_rows, n_classes = probabilities.shape
    dtype = probabilities.dtype
    counted = labels != ignore_index
    rows = np.arange(n_rows)
    safe_labels = np.where(counted, labels, 0)
    label_weight = np.where(counted, weight_vec[safe_labels], 0).astype(dtype)
    uniform = eps / dtype.type(n_classes)  # ε/K, the smoothed mass of every class
    one_hot_weight = (1 - eps) * label_weight  # (1 - ε)·w_c, the label's own share

    nll = -ls.log_probabilities[rows, safe_labels]
    # A label of weight 0 (or an ignored row) contributes 0, even where -log p_c
    # is infinite: never 0·∞, which is NaN.
    losses = np.multiply(one_hot_weight, nll, out=np.zeros_like(nll), where=one_hot_weight > 0)
    if uniform > 0:  # fixed after the freeze: an ε/K that underflows to 0 adds nothing (never 0·∞)
        # PyTorch adds ε/K times the "smooth loss" Σ_j w_j (-log p_j); a class
        # of weight 0 adds nothing, even where its -log p_j is infinite.
        losses = losses + uniform * _weighted_sum(-ls.log_probabilities, weight_vec)
    losses = np.where(counted, losses, 0).astype(dtype) + 0.0  # + 0.0: no -0.0

    # w ⊙ q summed, for each row, over all classes and over all but the argmax.
    mass = one_hot_weight + uniform * weight_vec.sum(dtype=dtype)
    mass_but_max = np.where(safe_labels != ls.argmax, one_hot_weight, 0)
    if eps > 0:
        mass_but_max = mass_but_max + uniform * _sums_leaving_one_out(weight_vec)[ls.argmax]
    gradient = probabilities * mass[:, None]
    if eps > 0:
        gradient -= uniform * weight_vec
    gradient[rows, safe_labels] -= one_hot_weight
    target_at_max = np.where(safe_labels == ls.argmax, one_hot_weight, 0) + uniform * weight_vec[ls.argmax]
    gradient[rows, ls.argmax] = _gradient_at_max(ls, probabilities, mass_but_max, target_at_max)
    gradient[~counted] = 0
    target = _smoothed_one_hot(safe_labels, counted, eps, n_classes, dtype)
    # The weight sum correctly rounded (sce's core since the batch review: a row sum rounds
    # differently however the rows are split), here exactly, with fractions.
    exact = sum((Fraction(float(w)) for w in label_weight[counted]), Fraction(0))
    return _RowTerms(losses, gradient, target, counted, float(exact) if math.isfinite(label_weight.sum()) else math.inf)


def _smoothed_one_hot(
    labels: np.ndarray, counted: np.ndarray, eps: np.floating, n_classes: int, dtype: np.dtype
) -> np.ndarray:
    rows = np.arange(len(labels))
    target = np.zeros((len(labels), n_classes), dtype)
    target[rows[counted], labels[counted]] = 1
    if eps > 0:
        target = np.where(counted[:, None], (1 - eps) * target + eps / n_classes, 0).astype(dtype)
    return target


def _soft_target_terms(
    ls: LogSoftmax,
    probabilities: np.ndarray,
    target: np.ndarray,
    weight_vec: np.ndarray,
    eps: np.floating,
) -> _RowTerms:
    n_rows, n_classes = probabilities.shape
    dtype = probabilities.dtype
    rows = np.arange(n_rows)
    if eps > 0:
        target = ((1 - eps) * target + eps / n_classes).astype(dtype)
    weighted_target = weight_vec * target
    # 0·log 0 = 0: a class the target (or its weight) gives no mass contributes
    # nothing, even when its logit is -inf (where frameworks produce NaN).
    with np.errstate(invalid="ignore"):
        terms = np.where(weighted_target > 0, weighted_target * ls.log_probabilities, 0)
    losses = -terms.sum(axis=1).astype(dtype) + 0.0  # + 0.0: a loss of 0 is not -0.0
    mass = weighted_target.sum(axis=1)
    at_max = weighted_target[rows, ls.argmax]
    weighted_target[rows, ls.argmax] = 0
    mass_but_max = weighted_target.sum(axis=1)
    weighted_target[rows, ls.argmax] = at_max
    gradient = probabilities * mass[:, None] - weighted_target
    gradient[rows, ls.argmax] = _gradient_at_max(ls, probabilities, mass_but_max, at_max)
    return _RowTerms(losses, gradient, target, np.ones(n_rows, dtype=bool), float(n_rows))


def _gradient_at_max(
    ls: LogSoftmax, probabilities: np.ndarray, mass_but_max: np.ndarray, target_at_max: np.ndarray
) -> np.ndarray:
    """p_m·Σ_j w_j q_j - w_m q_m at the argmax m, as p_m·Σ_{j≠m} w_j q_j - w_m q_m·(1 - p_m).

    The direct form subtracts two numbers near w_m q_m when the target's mass
    sits on the predicted class and cancels to 0 for a confident prediction
    ([0, 40] with target (0, 1): -4.2e-18 becomes 0); in this form each
    product keeps its digits and 1 - p_m = S / (1 + S) is never formed by a
    subtraction.
    """
    p_max = probabilities[np.arange(len(mass_but_max)), ls.argmax]
    return p_max * mass_but_max - target_at_max * ls.complement_of_max


def _weighted_sum(values: np.ndarray, weight_vec: np.ndarray) -> np.ndarray:
    """Σ_j w_j·values_j per row, leaving out classes of weight 0 (0·∞ is 0 here, not NaN).

    numpy's row-wise (pairwise) sum, not a matrix-vector product: BLAS splits
    that work by the number of rows and threads, so a row's last bits would
    depend on the rows computed with it.
    """
    products = np.multiply(values, weight_vec, out=np.zeros_like(values), where=weight_vec > 0)
    return products.sum(axis=1)


def _sums_leaving_one_out(values: np.ndarray) -> np.ndarray:
    """Σ_{j≠k} values_j for every k, accurately even where values_k is nearly the whole sum.

    The total is kept as an unevaluated sum high + low (Neumaier); high - v_k
    is then exact where it would cancel (Sterbenz), and low restores the rest.
    """
    high = values.sum(dtype=np.float64)
    low = math.fsum([*values.astype(np.float64).tolist(), -high])
    return ((high - values.astype(np.float64)) + low).astype(values.dtype)


def _reduce(
    terms: _RowTerms, reduction: str, denominator: float, temperature: np.floating
) -> tuple[float | np.ndarray, np.ndarray, float]:
    """The loss as PyTorch returns it, the gradient of that loss, and D (1 unless 'mean')."""
    dtype = terms.losses.dtype
    with np.errstate(over="ignore"):  # an overflow to ±inf is reported by the caller's warning
        gradient = terms.gradient / temperature if temperature != 1.0 else terms.gradient
    gradient += 0.0  # -0.0 (from -w·0 or 0·-1) reads as a sign where there is none
    if reduction == "none":
        return terms.losses, gradient, 1.0
    if reduction == "sum":
        return _rounded_once(terms.losses, 1.0), gradient, 1.0
    if denominator == 0:
        warnings.warn(
            LossWarning(
                "every row is ignored or has weight 0, so the mean divides by 0: "
                "the loss is NaN (as in PyTorch) and the gradient is 0",
                tuple(np.flatnonzero(~terms.counted)[:1].tolist()),
            ),
            stacklevel=4,
        )
        return float("nan"), np.zeros_like(gradient), 0.0
    loss = _rounded_once(terms.losses, denominator)
    return loss, gradient / dtype.type(denominator), denominator


def _rounded_once(losses: np.ndarray, denominator: float) -> float:
    """Σ losses / denominator, exactly in fractions, then rounded to nearest (ties to even) in
    the losses' type: the reduction sce promises, whatever the grouping of the rows."""
    values = losses.astype(np.float64).tolist()
    if any(math.isnan(v) for v in values) or (math.inf in values and -math.inf in values):
        return math.nan
    if math.inf in values or -math.inf in values:
        return math.inf if math.inf in values else -math.inf
    exact = sum((Fraction(v) for v in values), Fraction(0)) / Fraction(denominator)
    try:
        nearest = float(exact)  # Python's int division: correctly rounded
    except OverflowError:
        return math.inf if exact > 0 else -math.inf
    dtype = losses.dtype
    if dtype == np.float64:
        return nearest
    with np.errstate(over="ignore"):
        candidates = {float(dtype.type(nearest))}
        candidates |= {float(np.nextafter(dtype.type(nearest), dtype.type(d))) for d in (-np.inf, np.inf)}
    finite = [c for c in candidates if math.isfinite(c)]
    if not finite or abs(exact) > Fraction(float(np.finfo(dtype).max)):
        return float(dtype.type(nearest))
    best = min(finite, key=lambda c: (abs(Fraction(c) - exact), np.frexp(dtype.type(c))[0] * 2**24 % 2))
    return float(best)


def _warn_about_overflowing_gradients(gradient: np.ndarray, temperature: float) -> None:
    overflowing = np.flatnonzero(np.isinf(gradient).any(axis=1))
    if overflowing.size:
        why = f" (the temperature {temperature:g} divides by almost 0)" if temperature < 1 else ""
        warnings.warn(
            LossWarning(
                f"the gradient overflows float64: its largest entries exceed 1.8e308 and are shown as ±inf{why}",
                tuple(overflowing.tolist()),
            ),
            stacklevel=4,
        )


def reference_softmax_cross_entropy(logits, labels=None, *, targets=None, options=LossOptions(), mean_denominator=None):
    return _compute(logits, labels, targets, options, mean_denominator)
