"""The reduction, the gradient's scale 1/(T·D), and the warnings that explain
every infinite or NaN value the core returns."""

from __future__ import annotations

import math
import warnings

import numpy as np

from sce.loss.exact_arithmetic import two_product
from sce.loss.exact_sum import ExactSum, exact_ratio
from sce.loss.result import LossWarning
from sce.loss.validation import class_weights, validated_options
from sce.options import LossOptions


class GradientScale:
    """Each block's gradient from ∂(row loss)/∂(z/T) to ∂loss/∂z: times 1/T, and 1/D for 'mean'."""

    def __init__(self, reduction: str, denominator: float, temperature: np.floating) -> None:
        self.temperature = temperature
        self.denominator = temperature.dtype.type(denominator) if reduction == "mean" and denominator != 0 else None

    def apply(self, gradient: np.ndarray) -> None:
        with np.errstate(over="ignore"):  # an overflow to ±inf is reported by the caller's warning
            if self.temperature != 1.0:
                np.divide(gradient, self.temperature, out=gradient)
            gradient += 0.0  # -0.0 (from -w·0 or 0·-1) reads as a sign where there is none
            if self.denominator is not None:
                np.divide(gradient, self.denominator, out=gradient)


def class_counts(labels: np.ndarray, counted: np.ndarray, n_classes: int) -> np.ndarray:
    """How many counted rows have each label (K integers): exact, and additive over blocks of rows."""
    # Every row counted (the usual case): no masked copy of the labels.
    return np.bincount(labels if counted.all() else labels[counted], minlength=n_classes)


def weighted_total(counts: np.ndarray, weight_vec: np.ndarray) -> float:
    """Σ_k w_k·n_k, the weight sum of the counted rows, correctly rounded.

    From the counts per class, not by summing a weight per row: a sum of rows
    rounds differently however the rows are split, and sce batch, which reads
    its input in blocks, must divide by the same D as one call of the core
    (bit-identical rows). Each product is split exactly (TwoProduct) and
    fsum rounds their total once.
    """
    present = np.flatnonzero(counts)
    n = counts[present].astype(np.float64)
    w = weight_vec[present].astype(np.float64)
    if (w == 1).all():
        return float(counts.sum())
    with np.errstate(all="ignore"):
        high, low = two_product(w, n)
    # Veltkamp's split overflows for weights beyond about 1e300: there the product is taken as rounded.
    low = np.where(np.isfinite(low), low, 0.0)
    if not np.isfinite(high).all():
        return float(high.sum())  # an overflowing weight: inf, as a plain sum gives
    try:
        return math.fsum([*high.tolist(), *low.tolist()])
    except OverflowError:  # finite weights whose sum exceeds float64 (weights are never negative)
        return math.inf


def weight_sum_of_counts(counts: np.ndarray, options: LossOptions) -> float:
    """D for class labels from their counts per class: :func:`weighted_total` with the weights
    as the core types them (in the options' float type), so that a file read in blocks
    divides by exactly what one call of the core does. Raises InvalidInput for bad options."""
    dtype, weights = validated_options(options)
    return weighted_total(counts, class_weights(weights, len(counts), dtype))


def reduce(
    losses: np.ndarray,
    counted: np.ndarray,
    reduction: str,
    denominator: float,
    gradient: np.ndarray,
    *,
    zero_gradient: bool = True,
    z_loss: bool = False,
) -> tuple[float | np.ndarray, float]:
    """The loss as PyTorch returns it, and D (1 unless 'mean'); the gradient is already scaled,
    except where the mean divides by 0: then it becomes 0 (``zero_gradient``)."""
    if reduction == "none":
        return losses, 1.0
    if reduction == "sum":
        return _total(losses, 1.0), 1.0
    if denominator == 0:
        which = "the cross-entropy's gradient is 0 (the z-loss keeps its own)" if z_loss else "the gradient is 0"
        why = "there are no rows" if len(losses) == 0 else "every row is ignored or has weight 0"
        warnings.warn(
            LossWarning(
                f"{why}, so the mean divides by 0: the loss is NaN (as in PyTorch) and {which}",
                tuple(np.flatnonzero(~counted)[:1].tolist()),
            ),
            stacklevel=4,
        )
        if zero_gradient:
            gradient[...] = 0
        return float("nan"), 0.0
    return _total(losses, denominator), denominator


def _total(losses: np.ndarray, denominator: float) -> float:
    """The losses' exact sum over ``denominator``, rounded once to their type; where that
    overflows (rows of 1e308 each, summed), inf with a warning."""
    total = ExactSum.of(losses)
    reduced = exact_ratio([(total, denominator)], losses.dtype)
    if math.isinf(reduced) and total.special() is None:
        warnings.warn(
            LossWarning(
                f"the reduced loss overflows {losses.dtype.name}: the rows' losses are finite "
                "but their sum exceeds its range, so it is inf"
            ),
            stacklevel=5,
        )
    return reduced


def reduced_loss(
    total: ExactSum,
    z_total: ExactSum | None,
    reduction: str,
    denominators: tuple[float, float],
    dtype: np.dtype | type[np.floating] = np.float64,
) -> float:
    """The loss 'sum' or 'mean' returns, from the exact sums of the rows' losses and of their
    z-losses (None without a z-loss), rounded once to ``dtype``.

    'sum' is Σℓ; 'mean' is (Σℓ - Σz)/D + Σz/n, with ``denominators`` (D, n): the weight sum of
    the counted rows, and their number (the z-loss is unweighted). Exact sums add in any
    grouping, so a file read in blocks of any size, or in partitions, gives the same bits
    as one call with every row.

    Examples
    --------
    >>> import numpy as np
    >>> losses = ExactSum.of(np.array([0.1, 0.2, 0.3]))
    >>> reduced_loss(losses, None, "mean", (3.0, 3.0)), float(np.mean([0.1, 0.2, 0.3]))
    (0.2, 0.20000000000000004)
    """
    if reduction == "sum":
        return exact_ratio([(total, 1.0)], dtype)
    denominator, z_denominator = denominators
    if z_total is None:
        return exact_ratio([(total, denominator)], dtype)
    if total.special() is not None:  # a row's ℓ is ±inf or NaN: so is the mean (ℓ - z would be inf - inf)
        return exact_ratio([(total, denominator), (z_total, z_denominator)], dtype)
    return exact_ratio([(total - z_total, denominator), (z_total, z_denominator)], dtype)


def overflowing_rows(gradient: np.ndarray, rows: slice) -> list[int] | None:
    """The rows of a block whose gradient has an infinite entry; None where every entry is
    finite (the usual case, found by one sum while the block is in the cache)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(gradient.sum()):  # no entry is ±inf (or NaN)
            return None
    return (rows.start + np.flatnonzero(np.isinf(gradient).any(axis=1))).tolist()


def warn_about_overflowing_gradients(overflowing: list[int], temperature: float) -> None:
    if overflowing:
        why = f" (the temperature {temperature:g} divides by almost 0)" if temperature < 1 else ""
        warnings.warn(
            LossWarning(
                f"the gradient overflows float64: its largest entries exceed 1.8e308 and are shown as ±inf{why}",
                tuple(overflowing),
            ),
            stacklevel=4,
        )


def warn_about_infinite_losses(losses: np.ndarray, class_weights: np.ndarray) -> None:
    """Rows whose loss is infinite: a target class of probability 0, or, where a class weight
    is above 1, a weight times a finite loss beyond float64's range."""
    infinite_rows = np.flatnonzero(np.isinf(losses))
    if infinite_rows.size:
        largest = f"{float(np.finfo(losses.dtype).max):.2g}".replace("e+", "e")
        why = (
            f"a class with target mass has probability 0 in {losses.dtype.name} "
            f"(its logit is -inf, or so far below the others that the loss exceeds {largest})"
        )
        if class_weights.size and float(class_weights.max()) > 1:
            why += f", or its class weight times the loss exceeds {largest} (scale the weights down)"
        warnings.warn(LossWarning(f"the loss is infinite: {why}", tuple(infinite_rows.tolist())), stacklevel=4)


def warn_about_nan(losses: np.ndarray, gradient: np.ndarray, dtype: np.dtype, nonfinite: list[slice]) -> None:
    """A NaN that no other warning explains: an intermediate beyond the float type's range.
    Only the ``nonfinite`` blocks' gradients can hold one (a pass over all of it cost a fifth
    of a call at 1M × 10)."""
    bad = np.isnan(losses)
    with np.errstate(invalid="ignore"):
        for where in nonfinite:
            block = gradient[where]
            bad[where] |= np.isnan(block.sum(axis=1))
            bad[where] &= ~np.isinf(block).any(axis=1)  # ±inf - ±inf: the overflow warning says why
    if bad.any():
        rows = tuple(np.flatnonzero(bad).tolist())
        warnings.warn(
            LossWarning(
                f"the result of row {rows[0]} is NaN: an intermediate value went beyond {dtype.name}'s range "
                "(compute in float64, or bring the logits or the temperature nearer 1)",
                rows,
            ),
            stacklevel=4,
        )
