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

from ..options import LossOptions, Reduction, SmoothingStyle
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
from .log_softmax import LogSoftmax, Workspace, flat, flat_indices, log_softmax, soft_capped
from .result import InvalidInput, Layout, LossWarning, SoftmaxCrossEntropyResult
from .targets import smoothed_targets, smoothing_masses

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
    softcap: float | None = None,
    z_loss: float = 0.0,
    smoothing_style: SmoothingStyle = "uniform",
    options: LossOptions | None = None,
    mean_denominator: float | None = None,
    z_loss_denominator: float | None = None,
    class_axis: int = -1,
) -> SoftmaxCrossEntropyResult:
    """Softmax cross-entropy of ``logits`` against ``labels`` or ``targets``.

    Parameters mirror ``torch.nn.functional.cross_entropy``:

    logits
        Scores with the classes on ``class_axis``: N×K (classes last), PyTorch's
        (N, K, d1, …) with ``class_axis=1``, or a single vector of K (one
        unbatched row). An empty batch (N = 0) is allowed: 'none' gives no
        losses, 'sum' 0 and 'mean' NaN with a :class:`LossWarning`, as PyTorch.
    labels
        Class indices in [0, K), or ``ignore_index`` to leave a row out,
        shaped like the logits without the class axis (a scalar for a vector).
    targets
        Probability targets shaped like the logits (each non-negative, summing
        to 1 along the class axis), in place of labels.
    weight
        K non-negative class weights (default all 1).
    label_smoothing
        ε in [0, 1]: the target becomes (1 - ε)·y + ε/K (``smoothing_style``
        'uniform', PyTorch's) or (1 - ε)·y + ε/(K - 1)·(1 - y) ('off-target',
        Megatron's and t5x's: 1 - ε on the label, ε/(K - 1) on each other
        class; with K = 1 the target is left as it is).
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
    softcap
        c > 0: the logits are first capped, a = c·tanh(z/c) (Gemma 2), then
        divided by the temperature: b = a/T, p = softmax(b). The gradient is
        with respect to z, so each entry carries 1 - tanh²(z/c). A masked
        logit (-inf) becomes -c.
    z_loss
        λ >= 0: each counted (not ignored) row adds λ·lse(b)², lse(b) =
        log Σ_j e^(b_j), not weighted; its gradient with respect to b is
        2λ·lse·p. With 'mean' the z-loss is divided by the number of counted
        rows while the cross-entropy keeps PyTorch's Σ w[y] (Liger's
        convention; without weights also flash-attention's). The result
        reports it apart too (``z_losses``, ``z_loss``, ``log_sum_exp``).
    smoothing_style
        'uniform' (default) or 'off-target', see ``label_smoothing``.
    options
        All of the above as one :class:`~sce_cli.options.LossOptions`, in
        place of the separate keywords.
    mean_denominator
        With reduction 'mean', divide by this rather than by this call's own
        weight sum or row count: for a large batch computed chunk by chunk,
        pass the denominator of the whole batch so that every chunk's
        gradient is that of the whole batch's mean.
    z_loss_denominator
        The same for the z-loss's mean: the whole batch's number of counted rows.
    class_axis
        The axis of the classes (default -1; 1 for PyTorch's (N, K, d1, …)).
        The result's arrays are rows (N×K, one row per position of the other
        axes in C order, ``gradient[0]`` the first); ``result.shaped`` gives
        them in the caller's layout.

    Order of operations: soft-capping of the logits as given, then the
    temperature, then the softmax.

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
        softcap=softcap,
        z_loss=z_loss,
        smoothing_style=smoothing_style,
    )
    if options is None:
        options = keywords
    elif keywords != _DEFAULTS:
        raise TypeError("give the options either as options= or as keywords, not both")
    # Floating-point events are not reported as numpy's warnings: the core
    # checks its results instead, and every inf or NaN it returns comes with a
    # LossWarning that says why (no raw warning reaches a user, issue 10).
    with np.errstate(all="ignore"):
        logits, labels, targets, layout = _as_rows(logits, labels, targets, class_axis)
        return _compute(logits, labels, targets, options, mean_denominator, z_loss_denominator, layout)


def _as_rows(
    logits: ArrayLike, labels: ArrayLike | None, targets: ArrayLike | None, class_axis: int
) -> tuple[ArrayLike, ArrayLike | None, ArrayLike | None, Layout | None]:
    """Logits with the classes on any axis as N×K rows (labels as N, targets as N×K), and the layout to return."""
    if isinstance(class_axis, bool) or not isinstance(class_axis, (int, np.integer)):
        raise InvalidInput(f"class_axis {class_axis!r} is not an integer", field="class_axis")
    z = np.asarray(logits)
    if z.ndim == 0:
        raise InvalidInput("logits must be an array, not one number", field="logits", hint="give at least one class")
    if z.ndim == 1:
        if class_axis not in (-1, 0, 1):
            raise InvalidInput(f"class_axis {class_axis} for a vector of logits", field="class_axis", hint="use -1")
        return logits, labels, targets, Layout(z.shape, 0)
    if not -z.ndim <= class_axis < z.ndim:
        raise InvalidInput(
            f"class_axis {class_axis} is out of range for {z.ndim}-dimensional logits",
            field="class_axis",
            hint=f"use -1 (classes last) or 0 to {z.ndim - 1}",
        )
    axis = int(class_axis) % z.ndim
    if z.ndim == 2 and axis == 1:
        return logits, labels, targets, None  # already rows
    moved = np.moveaxis(z, axis, -1)
    labels, targets = _labels_and_targets_as_rows(z.shape, axis, moved.shape, labels, targets)
    return moved.reshape(-1, moved.shape[-1]), labels, targets, Layout(z.shape, axis)


def _labels_and_targets_as_rows(
    shape: tuple[int, ...],
    axis: int,
    moved: tuple[int, ...],
    labels: ArrayLike | None,
    targets: ArrayLike | None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    label_rows = target_rows = None
    if labels is not None:
        label_arr = np.asarray(labels)
        if label_arr.shape != moved[:-1]:
            raise InvalidInput(
                f"labels of shape {label_arr.shape} for logits of shape {shape} with the classes on axis {axis}",
                field="labels",
                hint=f"give labels of shape {moved[:-1]} (the logits' without the class axis)",
            )
        label_rows = label_arr.reshape(-1)
    if targets is not None:
        target_arr = np.asarray(targets)
        if target_arr.shape != shape:
            raise InvalidInput(
                f"targets of shape {target_arr.shape} for logits of shape {shape}",
                field="targets",
                hint="give targets shaped like the logits",
            )
        target_rows = np.moveaxis(target_arr, axis, -1).reshape(-1, moved[-1])
    return label_rows, target_rows


def _compute(
    logits: ArrayLike,
    labels: ArrayLike | None,
    targets: ArrayLike | None,
    options: LossOptions,
    mean_denominator: float | None,
    z_loss_denominator: float | None = None,
    layout: Layout | None = None,
) -> SoftmaxCrossEntropyResult:
    dtype, weights = validated_options(options)
    z, argmax, max_logit = checked_logits_and_argmax(logits, dtype)
    n_rows, n_classes = z.shape
    weight_vec = class_weights(weights, n_classes, dtype)
    terms, label_vec, y = _terms_for(labels, targets, argmax, weight_vec, options, dtype)
    denominator = terms.denominator if mean_denominator is None else float(mean_denominator)
    z_denominator = float(terms.counted.sum()) if z_loss_denominator is None else float(z_loss_denominator)
    probabilities = np.empty_like(z)
    gradient = np.empty_like(z)
    losses = np.empty(n_rows, dtype)
    others_sum = np.empty(n_rows, dtype)
    lse = np.empty(n_rows, dtype)
    overflowing: list[int] = []
    temperature = dtype.type(options.temperature)
    llm = options.has_llm_options
    scale = _GradientScale(options.reduction, denominator, temperature)
    llm_scale = _LanguageModelScale(options, denominator, z_denominator, temperature)
    workspace = Workspace(min(n_rows, blocks.block_rows(n_classes, z.itemsize)), n_classes, dtype)
    for block in blocks.row_blocks(n_rows, n_classes, z.itemsize):
        capped = None
        if options.softcap is None:
            ls = log_softmax(z[block], max_logit[block], argmax[block], options.temperature, workspace)
            lse[block] = _log_sum_exp(max_logit[block], None, temperature, ls.log_sum)
        else:
            capped = soft_capped(z[block], options.softcap)
            at_max = flat_indices(argmax[block], n_classes)
            high_max, low_max = flat(capped.high).take(at_max), flat(capped.low).take(at_max)
            ls = log_softmax(capped.high, high_max, argmax[block], options.temperature, workspace, low=capped.low)
            lse[block] = _log_sum_exp(high_max, low_max, temperature, ls.log_sum)
        others_sum[block] = ls.others_sum
        p = probabilities[block]
        np.divide(ls.exp_shifted, ls.exp_sum[:, None], out=p)
        g = gradient[block]
        losses[block] = terms.block(block, ls, p, g)
        if llm:
            llm_scale.apply(g, p, lse[block], terms.counted[block], None if capped is None else capped.derivative)
        else:
            scale.apply(g)
        overflowing.extend(_overflowing_rows(g, block))
    _warn_about_infinite_losses(losses)
    z_losses = _z_losses(lse, terms.counted, options.z_loss, dtype)
    loss, denominator = _reduce(
        losses, terms.counted, options.reduction, denominator, gradient, zero_gradient=not llm, z_loss=llm
    )
    z_loss: float | np.ndarray = z_losses
    if options.z_loss != 0:
        losses = losses + z_losses
        if options.reduction == "none":
            loss = losses
        else:
            z_loss = _reduced_z_loss(z_losses, options.reduction, z_denominator)
            loss = float(loss) + float(z_loss)
    elif options.reduction != "none":
        z_loss = 0.0
    if denominator == 0 and options.reduction == "mean" and not llm:
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
        log_sum_exp=lse,
        z_losses=z_losses,
        z_loss=z_loss,
        z_loss_denominator=z_denominator if options.reduction == "mean" else 1.0,
        layout=layout,
    )


def _terms_for(
    labels: ArrayLike | None,
    targets: ArrayLike | None,
    argmax: np.ndarray,
    weight_vec: np.ndarray,
    options: LossOptions,
    dtype: np.dtype,
) -> tuple[_Terms, np.ndarray | None, np.ndarray | None]:
    """The kind of target's terms, and the checked labels or targets."""
    n_rows, n_classes = len(argmax), len(weight_vec)
    if labels is not None and targets is not None:
        raise _neither_or_both()
    eps = dtype.type(options.label_smoothing)
    if targets is not None:
        y = checked_targets(targets, n_rows, n_classes, dtype)
        return _SoftTargets(y, weight_vec, eps, options.smoothing_style), None, y
    if labels is None:
        raise _neither_or_both()
    label_vec = checked_labels(labels, n_rows, n_classes, options.ignore_index)
    label_share, uniform, off_target = smoothing_masses(eps, n_classes, options.smoothing_style, dtype)
    if off_target:
        terms: _Terms = _OffTargetLabels(label_vec, argmax, weight_vec, label_share, uniform, options.ignore_index)
    else:
        terms = _HardLabels(label_vec, argmax, weight_vec, eps, options.ignore_index)
    return terms, label_vec, None


def _log_sum_exp(
    high_max: np.ndarray, low_max: np.ndarray | None, temperature: np.floating, log_sum: np.ndarray
) -> np.ndarray:
    """lse(b) = M_b + log1p(S) per row, M_b = (high + low)/T of the maximum, kept as a
    double-length number until the sum: lse near 0 keeps the digits of log1p(S) (N)."""
    m = high_max if low_max is None else high_max + low_max
    m_low = np.zeros_like(m) if low_max is None else (high_max - m) + low_max
    if temperature != 1.0:
        quotient = m / temperature
        product, product_err = _two_product_scalar(quotient, temperature)
        m_low = ((m - product) - product_err + m_low) / temperature
        m_low = np.where(np.isfinite(m_low), m_low, 0)  # the split of a huge quotient overflows: no correction
        m = quotient
    total = m + log_sum
    virtual = total - m
    err = (m - (total - virtual)) + (log_sum - virtual)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(total), total + (err + m_low), total)


def _two_product_scalar(a: np.ndarray, b: np.floating) -> tuple[np.ndarray, np.ndarray]:
    from .log_softmax import _two_product

    return _two_product(a, b)


def _z_losses(lse: np.ndarray, counted: np.ndarray, z_loss: float, dtype: np.dtype) -> np.ndarray:
    """λ·lse² for each counted row, 0 for the others (N)."""
    if z_loss == 0:
        return np.zeros_like(lse)
    values = dtype.type(z_loss) * np.square(lse)
    infinite = np.flatnonzero(counted & np.isinf(values))
    if infinite.size:
        warnings.warn(
            LossWarning(
                f"the z-loss λ·lse² overflows {dtype.name} (lse = {float(lse[infinite[0]]):.4g}): it is inf",
                tuple(infinite.tolist()),
            ),
            stacklevel=5,
        )
    return np.where(counted, values, 0).astype(dtype) + 0.0


def _reduced_z_loss(z_losses: np.ndarray, reduction: str, denominator: float) -> float:
    """The z-loss reduced: summed, or divided by the number of counted rows (NaN where there are none)."""
    total = float(z_losses.sum(dtype=z_losses.dtype))
    if reduction == "sum":
        return total
    if denominator == 0:
        return float("nan")
    return float(z_losses.dtype.type(total) / z_losses.dtype.type(denominator))


class _LanguageModelScale:
    """A block's gradient with a z-loss or soft-capping: the cross-entropy's ∂/∂b over its
    denominator, plus 2λ·lse·p over the z-loss's, times 1/T, times 1 - tanh²(z/c)."""

    def __init__(self, options: LossOptions, denominator: float, z_denominator: float, temperature: np.floating):
        dtype = temperature.dtype
        mean = options.reduction == "mean"
        self.temperature = temperature
        self.zero_ce = mean and denominator == 0
        self.denominator = dtype.type(denominator) if mean and denominator != 0 else None
        self.z_loss = dtype.type(options.z_loss)
        self.z_factor = dtype.type(0 if mean and z_denominator == 0 else 2 * options.z_loss)
        self.z_denominator = dtype.type(z_denominator) if mean and z_denominator != 0 else dtype.type(1)

    def apply(
        self,
        gradient: np.ndarray,
        probabilities: np.ndarray,
        lse: np.ndarray,
        counted: np.ndarray,
        derivative: np.ndarray | None,
    ) -> None:
        with np.errstate(all="ignore"):
            if self.zero_ce:
                gradient[...] = 0
            elif self.denominator is not None:
                np.divide(gradient, self.denominator, out=gradient)
            if self.z_factor != 0:
                coefficient = np.where(counted, self.z_factor * lse / self.z_denominator, 0).astype(lse.dtype)
                gradient += coefficient[:, None] * probabilities
            if self.temperature != 1.0:
                np.divide(gradient, self.temperature, out=gradient)
            if derivative is not None:
                gradient *= derivative
            gradient += 0.0


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


class _OffTargetLabels:
    """Class-index targets smoothed off the label (Megatron, t5x): q = (1 - ε) on the
    label c and u = ε/(K - 1) on every other class; the gradient p·Σ_j w_j q_j - w ⊙ q
    again without the dense target, and every sum over "all but" formed as such."""

    def __init__(
        self,
        labels: np.ndarray,
        argmax: np.ndarray,
        weight_vec: np.ndarray,
        label_share: np.floating,
        uniform: np.floating,
        ignore_index: int,
    ) -> None:
        dtype = weight_vec.dtype
        self.counted = labels != ignore_index
        self.safe_labels = np.where(self.counted, labels, 0)
        label_weight = np.where(self.counted, weight_vec[self.safe_labels], 0).astype(dtype)
        self.denominator = float(label_weight.sum())
        self.weight_vec = weight_vec
        self.uniform = uniform
        self.one_hot_weight = label_share * label_weight  # (1 - ε)·w_c
        leave_one_out = _sums_leaving_one_out(weight_vec)  # Σ_{j≠k} w_j
        others = np.where(self.counted, leave_one_out[self.safe_labels], 0)  # Σ_{j≠c} w_j
        self.mass = self.one_hot_weight + uniform * others
        at_max = self.safe_labels == argmax
        # Σ_{j≠m} w_j q_j: u·Σ_{j≠c} w_j where the label is the argmax m, else
        # (1 - ε)·w_c + u·Σ_{j≠c,m} w_j.
        but_both = np.maximum(leave_one_out[argmax] - weight_vec[self.safe_labels], 0)
        self.mass_but_max = np.where(
            at_max, uniform * others, self.one_hot_weight + uniform * np.where(self.counted, but_both, 0)
        ).astype(dtype)
        self.target_at_max = np.where(at_max, self.one_hot_weight, uniform * weight_vec[argmax]).astype(dtype)
        self.target_at_max = np.where(self.counted, self.target_at_max, 0).astype(dtype)

    def block(self, rows: slice, ls: LogSoftmax, probabilities: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        labels, counted, one_hot_weight = self.safe_labels[rows], self.counted[rows], self.one_hot_weight[rows]
        dtype = probabilities.dtype
        n_classes = gradient.shape[1]
        at_label = flat_indices(labels, n_classes)
        with np.errstate(over="ignore", invalid="ignore"):
            nll = -ls.log_probabilities_at(labels)
            losses = np.multiply(one_hot_weight, nll, out=np.zeros_like(nll), where=one_hot_weight > 0)
            if self.uniform > 0:
                # u·Σ_{j≠c} w_j (-log p_j): the label's term left out, not subtracted.
                minus_log_p = -ls.log_probabilities()
                flat(minus_log_p)[at_label] = 0
                losses = losses + self.uniform * _weighted_sum(minus_log_p, self.weight_vec)
        losses = np.where(counted, losses, 0).astype(dtype) + 0.0

        np.multiply(probabilities, self.mass[rows, None], out=gradient)
        gradient -= self.uniform * self.weight_vec
        flat_gradient = flat(gradient)
        flat_gradient[at_label] = flat(probabilities).take(at_label) * self.mass[rows] - one_hot_weight
        at_max = _gradient_at_max(ls, probabilities, self.mass_but_max[rows], self.target_at_max[rows])
        flat_gradient[ls.at_max] = at_max
        gradient[~counted] = 0
        return losses


class _SoftTargets:
    """Probability targets q, smoothed or not: the loss -Σ_j w_j q_j log p_j and the
    gradient p·Σ_j w_j q_j - w ⊙ q."""

    def __init__(self, targets: np.ndarray, weight_vec: np.ndarray, eps: np.floating, style: str = "uniform") -> None:
        self.targets = targets
        self.weight_vec = weight_vec
        self.eps = eps
        self.style = style
        self.counted = np.ones(len(targets), dtype=bool)
        self.denominator = float(len(targets))

    def block(self, rows: slice, ls: LogSoftmax, probabilities: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        n_classes = len(self.weight_vec)
        dtype = probabilities.dtype
        within = np.arange(probabilities.shape[0])
        target = smoothed_targets(self.targets[rows], self.eps, n_classes, dtype, self.style)
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
    dtype = losses.dtype
    if reduction == "none":
        return losses, 1.0
    if reduction == "sum":
        return _total(losses), 1.0
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
