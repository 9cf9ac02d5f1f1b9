"""Softmax cross-entropy: the public function over private steps.

The steps: check the inputs, take the log-softmax, compute each row's loss
and gradient for the kind of target given (class indices or probabilities),
then reduce. Each target kind returns the same small record, so the
reduction (and anything added later) is written once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..options import LossOptions, Reduction
from .checks import (
    checked_labels,
    checked_logits,
    checked_targets,
    class_weights,
    float_type_name,
    validated_options,
    weight_tuple,
)
from .log_softmax import LogSoftmax, log_softmax
from .result import InvalidInput, LossWarning, SoftmaxCrossEntropyResult

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
    return _compute(logits, labels, targets, options, mean_denominator)


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
) -> SoftmaxCrossEntropyResult:
    dtype, weights = validated_options(options)
    z = checked_logits(logits, dtype)
    n_rows, n_classes = z.shape
    weight_vec = class_weights(weights, n_classes, dtype)
    if labels is not None and targets is not None:
        raise _neither_or_both()
    temperature = dtype.type(options.temperature)
    scaled = z / temperature if options.temperature != 1.0 else z
    ls = log_softmax(scaled)
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
    _warn_about_infinite_losses(terms.losses)
    denominator = terms.denominator if mean_denominator is None else float(mean_denominator)
    loss, gradient, denominator = _reduce(terms, options.reduction, denominator, temperature)
    return SoftmaxCrossEntropyResult(
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
    n_rows, n_classes = probabilities.shape
    dtype = probabilities.dtype
    counted = labels != ignore_index
    rows = np.arange(n_rows)
    safe_labels = np.where(counted, labels, 0)
    label_weight = np.where(counted, weight_vec[safe_labels], 0).astype(dtype)

    nll = -ls.log_probabilities[rows, safe_labels]
    # p - e_c, with 1 - p_c taken from the sum of the other classes when c is
    # the argmax: p_c - 1 would cancel to 0 for a confident prediction.
    p_minus_onehot = probabilities.copy()
    label_is_argmax = safe_labels == ls.argmax
    complement = np.where(
        label_is_argmax,
        ls.others_sum / ls.exp_sum,
        1 - probabilities[rows, safe_labels],
    )
    p_minus_onehot[rows, safe_labels] = -complement

    with np.errstate(invalid="ignore"):
        losses = np.where(counted, label_weight * nll, 0).astype(dtype)
    gradient = label_weight[:, None] * p_minus_onehot
    gradient[~counted] = 0  # not 0 × (p - e_c), which leaves -0.0 where p - e_c < 0
    target = np.zeros_like(probabilities)
    target[rows[counted], safe_labels[counted]] = 1
    if eps > 0:
        # PyTorch adds ε/K times the "smooth loss" -Σ_c w_c log p_c to
        # (1 - ε) times the weighted NLL; its gradient is p·Σw - w.
        with np.errstate(invalid="ignore"):
            smooth = -(ls.log_probabilities * weight_vec).sum(axis=1)
            losses = np.where(counted, (1 - eps) * label_weight * nll + (eps / n_classes) * smooth, 0).astype(dtype)
        smooth_gradient = probabilities * weight_vec.sum() - weight_vec
        gradient = (1 - eps) * gradient + (eps / n_classes) * smooth_gradient
        gradient[~counted] = 0
        target = np.where(counted[:, None], (1 - eps) * target + eps / n_classes, 0).astype(dtype)
    return _RowTerms(losses, gradient, target, counted, float(label_weight.sum()))


def _soft_target_terms(
    ls: LogSoftmax,
    probabilities: np.ndarray,
    target: np.ndarray,
    weight_vec: np.ndarray,
    eps: np.floating,
) -> _RowTerms:
    n_rows, n_classes = probabilities.shape
    dtype = probabilities.dtype
    if eps > 0:
        target = ((1 - eps) * target + eps / n_classes).astype(dtype)
    weighted_target = weight_vec * target
    # 0·log 0 = 0: a class the target gives no mass contributes nothing,
    # even when its logit is -inf (where frameworks produce NaN).
    with np.errstate(invalid="ignore"):
        terms = np.where(target > 0, weighted_target * ls.log_probabilities, 0)
    losses = -terms.sum(axis=1).astype(dtype)
    gradient = probabilities * weighted_target.sum(axis=1, keepdims=True) - weighted_target
    return _RowTerms(losses, gradient, target, np.ones(n_rows, dtype=bool), float(n_rows))


def _reduce(
    terms: _RowTerms, reduction: str, denominator: float, temperature: np.floating
) -> tuple[float | np.ndarray, np.ndarray, float]:
    """The loss as PyTorch returns it, the gradient of that loss, and D (1 unless 'mean')."""
    dtype = terms.losses.dtype
    gradient = terms.gradient / temperature if temperature != 1.0 else terms.gradient
    if reduction == "none":
        return terms.losses, gradient, 1.0
    if reduction == "sum":
        return float(terms.losses.sum(dtype=dtype)), gradient, 1.0
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
    loss = float(terms.losses.sum(dtype=dtype) / dtype.type(denominator))
    return loss, gradient / dtype.type(denominator), denominator


def _warn_about_infinite_losses(losses: np.ndarray) -> None:
    infinite_rows = np.flatnonzero(np.isinf(losses))
    if infinite_rows.size:
        warnings.warn(
            LossWarning(
                "the loss is infinite: a class with target mass has probability 0 "
                "(its logit is -inf or far below the others)",
                tuple(infinite_rows.tolist()),
            ),
            stacklevel=4,
        )
