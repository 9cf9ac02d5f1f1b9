"""Softmax cross-entropy: the public function over private steps.

The steps: check the inputs (finding each row's argmax on the way), then,
block of rows by block of rows (:mod:`.blocks`), take the log-softmax and
compute each row's loss and gradient for the kind of target given (class
indices or probabilities: each kind is a small object with the same
``block`` method, so the loop, the scaling and the reduction are written
once), and finally reduce. The intermediates only explanations need are
left to the result, which computes them when they are read.
"""

from __future__ import annotations

import math
import warnings
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..options import LossOptions, Reduction
from . import blocks
from .checks import (
    checked_labels,
    checked_logits_and_argmax,
    checked_targets,
    class_weights,
    float_type_name,
    validated_options,
    weight_tuple,
)
from .log_softmax import LogSoftmax, Workspace, flat, flat_indices, log_softmax
from .result import InvalidInput, LossWarning, SoftmaxCrossEntropyResult
from .targets import smoothed_targets

_DEFAULTS = LossOptions()


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    targets: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    reduction: Reduction = "none",
    temperature: float = 1.0,
    dtype: DTypeLike = np.float64,
    options: LossOptions | None = None,
    mean_denominator: float | None = None,
) -> SoftmaxCrossEntropyResult:
    """Softmax cross-entropy of ``logits`` against ``labels`` or ``targets``.

    Parameters mirror ``torch.nn.functional.cross_entropy``:

    logits
        N×K scores (a single vector of K is one row).
    labels
        N class indices in [0, K), or ``ignore_index`` to leave a row out.
    targets
        N×K probability targets (each row non-negative, summing to 1), in place of labels.
    weight
        K non-negative class weights (default all 1).
    label_smoothing
        ε in [0, 1]: the target becomes (1 - ε)·y + ε/K.
    ignore_index
        Label value whose rows contribute neither loss nor gradient.
    reduction
        'none' (per-row losses), 'mean' or 'sum'. With class indices 'mean'
        divides by the weight sum of the counted rows, with probability
        targets by N, exactly as PyTorch does.
    temperature
        T > 0; the softmax is taken of logits / T and the gradient is with
        respect to the logits as given.
    dtype
        float64 (default) or float32, used throughout.
    options
        All of the above as one :class:`~sce_cli.options.LossOptions`, in
        place of the separate keywords.
    mean_denominator
        With reduction 'mean', divide by this rather than by this call's own
        weight sum or row count: for a large batch computed chunk by chunk,
        pass the denominator of the whole batch so that every chunk's
        gradient is that of the whole batch's mean.

    Raises :class:`InvalidInput` for an input the loss is not defined for and
    warns with :class:`LossWarning` where the result is infinite or NaN.
    """
    keywords = LossOptions(
        weight=weight_tuple(weight),
        label_smoothing=label_smoothing,
        ignore_index=ignore_index,
        reduction=reduction,
        temperature=temperature,
        dtype=float_type_name(dtype),
    )
    if options is None:
        options = keywords
    elif keywords != _DEFAULTS:
        raise TypeError("give the options either as options= or as keywords, not both")
    # Floating-point events are not reported as numpy's warnings: the core
    # checks its results instead, and every inf or NaN it returns comes with a
    # LossWarning that says why (no raw warning reaches a user, issue 10).
    with np.errstate(all="ignore"):
        return _compute(logits, labels, targets, options, mean_denominator)


def _compute(
    logits: ArrayLike,
    labels: ArrayLike | None,
    targets: ArrayLike | None,
    options: LossOptions,
    mean_denominator: float | None,
) -> SoftmaxCrossEntropyResult:
    dtype, weights = validated_options(options)
    z, argmax, max_logit = checked_logits_and_argmax(logits, dtype)
    n_rows, n_classes = z.shape
    weight_vec = class_weights(weights, n_classes, dtype)
    if labels is not None and targets is not None:
        raise _neither_or_both()
    eps = dtype.type(options.label_smoothing)
    label_vec = y = None
    terms: _Terms
    if targets is not None:
        y = checked_targets(targets, n_rows, n_classes, dtype)
        terms = _SoftTargets(y, weight_vec, eps)
    elif labels is not None:
        label_vec = checked_labels(labels, n_rows, n_classes, options.ignore_index)
        terms = _HardLabels(label_vec, argmax, weight_vec, eps, options.ignore_index)
    else:
        raise _neither_or_both()
    denominator = terms.denominator if mean_denominator is None else float(mean_denominator)
    probabilities = np.empty_like(z)
    gradient = np.empty_like(z)
    losses = np.empty(n_rows, dtype)
    others_sum = np.empty(n_rows, dtype)
    overflowing: list[int] = []
    scale = _GradientScale(options.reduction, denominator, dtype.type(options.temperature))
    workspace = Workspace(min(n_rows, blocks.block_rows(n_classes, z.itemsize)), n_classes, dtype)
    for block in blocks.row_blocks(n_rows, n_classes, z.itemsize):
        ls = log_softmax(z[block], max_logit[block], argmax[block], options.temperature, workspace)
        others_sum[block] = ls.others_sum
        p = probabilities[block]
        np.divide(ls.exp_shifted, ls.exp_sum[:, None], out=p)
        g = gradient[block]
        losses[block] = terms.block(block, ls, p, g)
        scale.apply(g)
        overflowing.extend(_overflowing_rows(g, block))
    _warn_about_infinite_losses(losses)
    loss, denominator = _reduce(losses, terms.counted, options.reduction, denominator, gradient)
    if denominator == 0 and options.reduction == "mean":
        overflowing = []  # the gradient is 0
    _warn_about_overflowing_gradients(overflowing, options.temperature)
    _warn_about_nan(losses, gradient, z.dtype)
    return SoftmaxCrossEntropyResult(
        logits=z,
        max_logit=max_logit,
        argmax=argmax,
        exp_sum=1 + others_sum,
        probabilities=probabilities,
        labels=label_vec,
        counted=terms.counted,
        losses=losses,
        loss=loss,
        denominator=denominator,
        gradient=gradient,
        options=options,
        others_sum=others_sum,
        given_targets=y,
    )


def _warn_about_nan(losses: np.ndarray, gradient: np.ndarray, dtype: np.dtype) -> None:
    """A NaN that no other warning explains: an intermediate beyond the float type's range."""
    with np.errstate(invalid="ignore"):
        bad = np.isnan(losses) | np.isnan(gradient.sum(axis=1))
        bad &= ~np.isinf(gradient).any(axis=1)  # ±inf - ±inf: the overflow warning says why
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


def _neither_or_both() -> InvalidInput:
    return InvalidInput(
        "give either class-index labels or probability targets, not both or neither",
        field="labels",
    )


class _Terms(Protocol):
    """What each kind of target computes: per-row numbers first, then each block's losses and gradient."""

    counted: np.ndarray
    """Rows that count (N)."""
    denominator: float
    """What 'mean' divides these rows by: the counted label weights, or N."""

    def block(self, rows: slice, ls: LogSoftmax, probabilities: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        """The rows' own losses; their ∂(row loss)/∂(z/T) written into ``gradient`` (before 1/T and 1/D)."""
        ...


class _HardLabels:
    """Class-index targets, smoothed or not: the target row is q = (1 - ε)·e_c + ε/K
    and the gradient p·Σ_j w_j q_j - w ⊙ q, formed without the dense one-hot."""

    def __init__(
        self, labels: np.ndarray, argmax: np.ndarray, weight_vec: np.ndarray, eps: np.floating, ignore_index: int
    ) -> None:
        n_classes = len(weight_vec)
        dtype = weight_vec.dtype
        self.counted = labels != ignore_index
        self.all_counted = bool(self.counted.all())
        self.safe_labels = labels if self.all_counted else np.where(self.counted, labels, 0)
        if (weight_vec == 1).all():
            label_weight = self.counted.astype(dtype)  # the same 1s and 0s, without the gather
        else:
            label_weight = np.where(self.counted, weight_vec[self.safe_labels], 0).astype(dtype)
        self.denominator = float(label_weight.sum())
        self.eps = eps
        self.weight_vec = weight_vec
        self.uniform = eps / dtype.type(n_classes)  # ε/K, the smoothed mass of every class
        # Without smoothing the terms of ε below are exactly (1 - 0)·x = x and x + 0·w = x
        # (no weight is -0.0, which + 0 would turn into +0.0): skipping them keeps every bit.
        plain = eps == 0 and not np.signbit(weight_vec).any()
        self.one_hot_weight = label_weight if plain else (1 - eps) * label_weight  # (1 - ε)·w_c, the label's share
        # w ⊙ q summed, for each row, over all classes and over all but the argmax.
        if plain:
            self.mass = self.one_hot_weight
        else:
            self.mass = self.one_hot_weight + self.uniform * weight_vec.sum(dtype=dtype)
        at_max = self.safe_labels == argmax
        mass_but_max = np.where(at_max, 0, self.one_hot_weight)
        if eps > 0:
            mass_but_max = mass_but_max + self.uniform * _sums_leaving_one_out(weight_vec)[argmax]
        self.mass_but_max = mass_but_max
        self.target_at_max = np.where(at_max, self.one_hot_weight, 0)
        if not plain:
            self.target_at_max = self.target_at_max + self.uniform * weight_vec[argmax]

    def block(self, rows: slice, ls: LogSoftmax, probabilities: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        labels, counted, one_hot_weight = self.safe_labels[rows], self.counted[rows], self.one_hot_weight[rows]
        dtype = probabilities.dtype
        nll = -ls.log_probabilities_at(labels)
        # A label of weight 0 (or an ignored row) contributes 0, even where -log p_c
        # is infinite: never 0·∞, which is NaN.
        with np.errstate(over="ignore"):  # a loss beyond 1.8e308 is inf, and warned about
            losses = np.multiply(one_hot_weight, nll, out=np.zeros_like(nll), where=one_hot_weight > 0)
            if self.uniform > 0:
                # PyTorch adds ε/K times the "smooth loss" Σ_j w_j (-log p_j); a class
                # of weight 0 adds nothing, even where its -log p_j is infinite. (An ε/K
                # that underflows to 0 adds nothing either: never 0·∞.)
                losses = losses + self.uniform * _weighted_sum(-ls.log_probabilities(), self.weight_vec)
        losses = np.where(counted, losses, 0).astype(dtype) + 0.0  # + 0.0: no -0.0

        np.multiply(probabilities, self.mass[rows, None], out=gradient)
        if self.eps > 0:
            gradient -= self.uniform * self.weight_vec
        flat_gradient = flat(gradient)
        at_label = flat_indices(labels, gradient.shape[1])
        flat_gradient[at_label] = flat_gradient.take(at_label) - one_hot_weight
        at_max = _gradient_at_max(ls, probabilities, self.mass_but_max[rows], self.target_at_max[rows])
        flat_gradient[ls.at_max] = at_max
        if not self.all_counted:
            gradient[~counted] = 0
        return losses


class _SoftTargets:
    """Probability targets q, smoothed or not: the loss -Σ_j w_j q_j log p_j and the
    gradient p·Σ_j w_j q_j - w ⊙ q."""

    def __init__(self, targets: np.ndarray, weight_vec: np.ndarray, eps: np.floating) -> None:
        self.targets = targets
        self.weight_vec = weight_vec
        self.eps = eps
        self.counted = np.ones(len(targets), dtype=bool)
        self.denominator = float(len(targets))

    def block(self, rows: slice, ls: LogSoftmax, probabilities: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        n_classes = len(self.weight_vec)
        dtype = probabilities.dtype
        within = np.arange(probabilities.shape[0])
        target = smoothed_targets(self.targets[rows], self.eps, n_classes, dtype)
        weighted_target = self.weight_vec * target
        # 0·log 0 = 0: a class the target (or its weight) gives no mass contributes
        # nothing, even when its logit is -inf (where frameworks produce NaN).
        with np.errstate(invalid="ignore", over="ignore"):  # a loss beyond 1.8e308 is inf, and warned about
            terms = np.where(weighted_target > 0, weighted_target * ls.log_probabilities(), 0)
            losses = -terms.sum(axis=1).astype(dtype) + 0.0  # + 0.0: a loss of 0 is not -0.0
        mass = weighted_target.sum(axis=1)
        at_max = weighted_target[within, ls.argmax]
        weighted_target[within, ls.argmax] = 0
        mass_but_max = weighted_target.sum(axis=1)
        weighted_target[within, ls.argmax] = at_max
        np.multiply(probabilities, mass[:, None], out=gradient)
        gradient -= weighted_target
        gradient[within, ls.argmax] = _gradient_at_max(ls, probabilities, mass_but_max, at_max)
        return losses


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
    p_max = flat(probabilities).take(ls.at_max)
    return p_max * mass_but_max - target_at_max * ls.complement_of_max


class _GradientScale:
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
    losses: np.ndarray, counted: np.ndarray, reduction: str, denominator: float, gradient: np.ndarray
) -> tuple[float | np.ndarray, float]:
    """The loss as PyTorch returns it, and D (1 unless 'mean'); the gradient is already scaled,
    except where the mean divides by 0: then it becomes 0."""
    dtype = losses.dtype
    if reduction == "none":
        return losses, 1.0
    if reduction == "sum":
        return _total(losses), 1.0
    if denominator == 0:
        warnings.warn(
            LossWarning(
                "every row is ignored or has weight 0, so the mean divides by 0: "
                "the loss is NaN (as in PyTorch) and the gradient is 0",
                tuple(np.flatnonzero(~counted)[:1].tolist()),
            ),
            stacklevel=4,
        )
        gradient[...] = 0
        return float("nan"), 0.0
    return float(_total(losses) / dtype.type(denominator)), denominator


def _total(losses: np.ndarray) -> float:
    """The losses' sum; where it overflows float64 (rows of 1e308 each), inf with a warning."""
    with np.errstate(over="ignore"):
        total = losses.sum(dtype=losses.dtype)
    if np.isinf(total) and np.isfinite(losses).all():
        warnings.warn(
            LossWarning(
                f"the reduced loss overflows {losses.dtype.name}: the rows' losses are finite "
                "but their sum exceeds its range, so it is inf"
            ),
            stacklevel=5,
        )
    return float(total)


def _overflowing_rows(gradient: np.ndarray, rows: slice) -> list[int]:
    """The rows of a block whose gradient has an infinite entry."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(gradient.sum()):  # no entry is ±inf (or NaN)
            return []
    return (rows.start + np.flatnonzero(np.isinf(gradient).any(axis=1))).tolist()


def _warn_about_overflowing_gradients(overflowing: list[int], temperature: float) -> None:
    if overflowing:
        why = f" (the temperature {temperature:g} divides by almost 0)" if temperature < 1 else ""
        warnings.warn(
            LossWarning(
                f"the gradient overflows float64: its largest entries exceed 1.8e308 and are shown as ±inf{why}",
                tuple(overflowing),
            ),
            stacklevel=4,
        )


def _warn_about_infinite_losses(losses: np.ndarray) -> None:
    infinite_rows = np.flatnonzero(np.isinf(losses))
    if infinite_rows.size:
        warnings.warn(
            LossWarning(
                "the loss is infinite: a class with target mass has probability 0 in float64 "
                "(its logit is -inf, or so far below the others that the loss exceeds 1.8e308)",
                tuple(infinite_rows.tolist()),
            ),
            stacklevel=4,
        )
