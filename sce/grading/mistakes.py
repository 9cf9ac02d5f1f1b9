"""What the catalogue's row-by-row mistakes give, computed from the exact result of every row.

``sce check`` (one typed row) and ``sce check --csv`` (a file, block by block)
compare a wrong answer with these what-ifs; the names and fixes are the
catalogue's (:mod:`sce.grading.catalogue`), shared with ``sce check --arrays``
and ``sce test``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from sce.grading import catalogue, derivative_slips
from sce.grading.catalogue import Mistake
from sce.grading.conventions import convention_slips, reported, rerun_with, z_loss_gradients
from sce.loss import InvalidInput, SoftmaxCrossEntropyResult, softmax_cross_entropy

#: How an answer rounded its probabilities before the log: to this many decimals, or significant digits.
ROUNDED_DECIMALS = (1, 2, 3, 4, 5, 6)
ROUNDED_SIGNIFICANT = (2, 3, 4, 5, 6)

#: The rounding of a float32 computation, relative: another float32 engine's last bits differ from sce's.
FLOAT32_ROUNDING = 4 * float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class WhatIf:
    """What one mistake gives for every row; None where it says nothing about that quantity."""

    mistake: Mistake
    gradient: np.ndarray | None = None
    """N×K, float64."""
    reported: np.ndarray | None = None
    """The loss as reported: one number (0-d) when reduced, else each row's."""
    losses: np.ndarray | None = None
    """Each row's loss, as ``result.losses`` (where it is known)."""
    probabilities: np.ndarray | None = None
    variant: str = ""
    """Which of several ways of making the mistake (the rounding's digits), to tell them apart."""
    rounding: float | None = None
    """The relative rounding the mistaken computation itself allows (float32's), if not float64's."""
    look_alike: bool = True
    """Offered as what a right answer with few digits may also be: not float32's last bits, nor a
    rounding that any coarse answer fits."""


def row_what_ifs(
    result: SoftmaxCrossEntropyResult, targets: ArrayLike | None = None, look_alikes_only: bool = False
) -> list[WhatIf]:
    """Every row-by-row mistake of the catalogue that the result's options allow, over all its rows.

    ``targets`` are the probability targets as given, if any (before smoothing). Where the result
    overflows (a tiny T), so do the what-ifs: inf and NaN that no answer matches. With
    ``look_alikes_only``, those a right answer's few digits may fit (:attr:`WhatIf.look_alike`)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        found = _formula_what_ifs(result) + _reduction_what_ifs(result) + _weight_what_ifs(result)
        found += _derivative_what_ifs(result) + _label_what_ifs(result) + _convention_what_ifs(result, targets)
        if not look_alikes_only:
            found += _rounded_before_log(result) + _float32_what_ifs(result, targets)
    return found


def _scale(result: SoftmaxCrossEntropyResult) -> np.ndarray:
    """Each row's 1/(T·D), 0 on rows not counted (N×1)."""
    return np.where(result.counted, result.gradient_scale, 0.0)[:, None]


def _losses(result: SoftmaxCrossEntropyResult) -> np.ndarray:
    return np.asarray(result.losses, dtype=np.float64)


def _formula_what_ifs(result: SoftmaxCrossEntropyResult) -> list[WhatIf]:
    g, y = result.gradient.astype(np.float64), result.target.astype(np.float64)
    wy = result.class_weights.astype(np.float64) * y
    scale = _scale(result) * result.cap_derivative.astype(np.float64)
    unnormalised = result.exp_shifted.astype(np.float64)
    loss, losses = reported(result), _losses(result)
    p, mass = result.probabilities.astype(np.float64), wy.sum(axis=1, keepdims=True)
    found = [
        # From p itself, not g + y: p − 1 + 1 would lose the digits of a small p.
        WhatIf(catalogue.PROBABILITIES, gradient=p * mass * scale + z_loss_gradients(result)),
        WhatIf(catalogue.SIGN_FLIPPED, gradient=-g, reported=-loss, losses=-losses),
        WhatIf(catalogue.NOT_NORMALISED, probabilities=unnormalised),
    ]
    if not result.options.z_loss:
        found.append(WhatIf(catalogue.NOT_NORMALISED, gradient=(unnormalised * mass - wy) * scale, variant="gradient"))
    for mistake, base in ((catalogue.LOG10, 10), (catalogue.LOG2, 2)):
        found.append(WhatIf(mistake, g / math.log(base), loss / math.log(base), losses / math.log(base)))
    return found


def _reduction_what_ifs(result: SoftmaxCrossEntropyResult) -> list[WhatIf]:
    d = result.denominator
    if result.options.reduction != "mean" or d in (0, 1) or result.options.z_loss:
        return []
    return [WhatIf(catalogue.SUM_NOT_MEAN, result.gradient.astype(np.float64) * d, reported(result) * d)]


def _weight_what_ifs(result: SoftmaxCrossEntropyResult) -> list[WhatIf]:
    if result.labels is None or result.options.weight is None or result.options.z_loss:
        return []
    p, w = result.probabilities.astype(np.float64), result.class_weights.astype(np.float64)
    y = result.target.astype(np.float64)
    per_class = w * (p * y.sum(axis=1, keepdims=True) - y) * _scale(result) * result.cap_derivative
    return [WhatIf(catalogue.WEIGHTS_PER_CLASS, gradient=per_class)]


def _derivative_what_ifs(result: SoftmaxCrossEntropyResult) -> list[WhatIf]:
    """The slips of the derivation (:mod:`sce.grading.derivative_slips`); the predicted class
    first, so that a row whose prediction is its label's neighbour is named after the prediction."""
    found = []
    predicted = derivative_slips.predicted_labels(result)
    if predicted is not None:
        other = _relabelled(result, predicted)
        found.append(
            WhatIf(catalogue.PREDICTED_CLASS, other.gradient.astype(np.float64), reported(other), _losses(other))
        )
    for mistake, gradient in (
        (catalogue.STOPPED_AT_DL_DS, derivative_slips.stopped_at_probabilities(result)),
        (catalogue.ONLY_LABEL_ENTRY, derivative_slips.label_entry_only(result)),
        (catalogue.JACOBIAN_DIAGONAL, derivative_slips.jacobian_diagonal(result)),
        (catalogue.LABELS_BROADCAST, derivative_slips.labels_broadcast(result)),
    ):
        if gradient is not None:
            found.append(WhatIf(mistake, gradient=gradient))
    unnormalised = derivative_slips.unnormalised_exp(result)
    if unnormalised is not None:
        exp, gradient, losses = unnormalised
        loss = derivative_slips.reduced(result, losses)
        found.append(WhatIf(catalogue.UNNORMALISED_EXP, gradient, loss, losses, exp))
    return found


def _label_what_ifs(result: SoftmaxCrossEntropyResult) -> list[WhatIf]:
    """The labels read one class off (wrapping around as numpy's indices do); with two classes
    label − 1 and label + 1 are the same class, so neither is named."""
    if result.labels is None or result.num_classes < 3:
        return []
    found = []
    for mistake, by in ((catalogue.ONE_BASED, -1), (catalogue.LABEL_PLUS_ONE, +1)):
        labels = np.asarray(result.labels)
        shifted = np.where(result.counted, (labels + by) % result.num_classes, labels)
        other = _relabelled(result, shifted)
        found.append(WhatIf(mistake, other.gradient.astype(np.float64), reported(other), _losses(other)))
    return found


def _relabelled(result: SoftmaxCrossEntropyResult, labels: np.ndarray) -> SoftmaxCrossEntropyResult:
    """Every row again with other labels (silently: a what-if's warnings are not the user's business)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return softmax_cross_entropy(result.logits, labels, options=result.options)


def _convention_what_ifs(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None) -> list[WhatIf]:
    """The options' slips (:mod:`sce.grading.conventions`); each row's own loss where the
    reduction reports it."""
    found = []
    if result.options.temperature != 1.0:
        gradient = result.gradient.astype(np.float64) * result.options.temperature
        found.append(WhatIf(catalogue.TEMPERATURE_FACTOR_MISSING, gradient=gradient))
    per_row = result.options.reduction == "none"
    for slip in convention_slips(result, targets):
        rerun = slip.rerun
        found.append(
            WhatIf(
                catalogue.OF_CONVENTION[slip.kind],
                slip.gradient,
                slip.loss,
                _losses(rerun) if rerun is not None else slip.loss if per_row else None,
                None if rerun is None else rerun.probabilities.astype(np.float64),
            )
        )
    return found


def _rounded(values: np.ndarray, digits: int, significant: bool) -> np.ndarray:
    if not significant:
        return np.round(values, digits)
    magnitude = np.floor(np.log10(np.where(values > 0, values, 1.0)))
    places = digits - 1 - magnitude
    return np.round(values * 10.0**places) / 10.0**places


def _rounded_before_log(result: SoftmaxCrossEntropyResult) -> list[WhatIf]:
    """−Σ t·log of the probabilities rounded first (to the digits a derivation shows), and the
    gradient p − y of those rounded probabilities. Unweighted losses only: with weights, the
    cross-entropy's terms are scaled per class, and no one rounds in the middle of that."""
    if result.options.weight is not None:
        return []
    p, t = result.probabilities.astype(np.float64), result.target.astype(np.float64)
    counted = result.counted[:, None]
    log_p = np.where(t > 0, result.log_probabilities.astype(np.float64), 0.0)
    loss_factor = 1.0 / result.denominator if result.options.reduction == "mean" and result.denominator else 1.0
    found = []
    for digits, significant in [(d, False) for d in ROUNDED_DECIMALS] + [(d, True) for d in ROUNDED_SIGNIFICANT]:
        rounded = _rounded(p, digits, significant)
        extra = np.where(counted & (t > 0), t * (log_p - np.log(np.where(t > 0, rounded, 1.0))), 0.0).sum(axis=1)
        losses = _losses(result) + extra
        loss = reported(result) + (extra if result.options.reduction == "none" else extra.sum() * loss_factor)
        gradient = None
        if not result.options.z_loss:
            shift = (rounded - p) * _scale(result) * result.cap_derivative.astype(np.float64)
            gradient = result.gradient.astype(np.float64) + shift
        variant = f"{digits} {'significant digits' if significant else 'decimals'}"
        found.append(WhatIf(catalogue.ROUNDED_BEFORE_LOG, gradient, loss, losses, None, variant, look_alike=False))
    return found


def _float32_what_ifs(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None) -> list[WhatIf]:
    """The same loss computed in float32, as PyTorch computes it by default."""
    if result.options.dtype != "float64":
        return []
    try:
        other = rerun_with(result, targets, dtype="float32")
    except InvalidInput:  # logits or weights beyond float32's range: no float32 computation of these inputs
        return []
    return [
        WhatIf(
            catalogue.FLOAT32,
            other.gradient.astype(np.float64),
            reported(other),
            _losses(other),
            other.probabilities.astype(np.float64),
            rounding=FLOAT32_ROUNDING,
            look_alike=False,
        )
    ]


@dataclass(frozen=True)
class MistakenValue:
    """What one mistake gives for one quantity of a typed row."""

    mistake: Mistake
    quantity: str
    value: np.ndarray
    rounding: float | None = None
    look_alike: bool = True


def usual_mistakes(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None = None) -> list[MistakenValue]:
    """What the usual mistakes give for row 0 of ``result``, for every quantity where each can occur.

    ``targets`` are the probability targets as given, if any (before smoothing).

    Examples
    --------
    The textbook example, z = (2, 3, 4) and label 1: s = (0.0900, 0.2447, 0.6652), L = −log 0.2447.

    >>> from sce.loss import softmax_cross_entropy
    >>> from sce.grading import catalogue
    >>> found = usual_mistakes(softmax_cross_entropy([[2.0, 3.0, 4.0]], [1]))
    >>> def value(mistake, quantity):
    ...     return next(m.value for m in found if m.mistake == mistake and m.quantity == quantity)
    >>> value(catalogue.PROBABILITIES, "gradient").round(4).tolist()  # s, without −y
    [0.09, 0.2447, 0.6652]
    >>> value(catalogue.SIGN_FLIPPED, "gradient").round(4).tolist()  # y − s
    [-0.09, 0.7553, -0.6652]
    >>> value(catalogue.LOG10, "loss").round(4).tolist()  # 1.4076 / ln 10
    [0.6113]
    >>> value(catalogue.ONE_BASED, "loss").round(4).tolist()  # −log s_0 = −log 0.0900
    [2.4076]
    """
    found = []
    for what_if in row_what_ifs(result, targets):
        values = {
            "gradient": None if what_if.gradient is None else what_if.gradient[0],
            "probabilities": None if what_if.probabilities is None else what_if.probabilities[0],
            "loss": None if what_if.reported is None else _first(what_if.reported),
        }
        for quantity, value in values.items():
            if value is not None:
                found.append(MistakenValue(what_if.mistake, quantity, value, what_if.rounding, what_if.look_alike))
    return found


def _first(loss: np.ndarray) -> np.ndarray:
    loss = np.asarray(loss, dtype=np.float64)
    return np.array([float(loss if loss.ndim == 0 else loss[0])])
