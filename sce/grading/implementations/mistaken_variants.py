"""What each mistake of the catalogue (:mod:`sce.grading.catalogue`) that a learner's function
can make would return, computed from sce's exact result.

A failing answer is compared with every mistaken variant that differs from the
right answer on this case; the first it matches names the mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sce.grading import catalogue, conventions, derivative_slips
from sce.grading.catalogue import (
    LABEL_PLUS_ONE,
    LOG2,
    LOG10,
    MEAN_NOT_NONE,
    MEAN_NOT_SUM,
    MEAN_TWICE,
    NOT_NORMALISED,
    OF_CONVENTION,
    ONE_BASED,
    ONE_ROW_FOR_ALL,
    PROBABILITIES,
    SIGN_FLIPPED,
    SUM_NOT_MEAN,
    WRONG_AXIS,
    Mistake,
)
from sce.loss import SoftmaxCrossEntropyResult, softmax_cross_entropy
from sce.options import LossOptions


@dataclass(frozen=True)
class Exact:
    """sce's exact answer for one case, and what the mistaken variants are made of (float64)."""

    logits: np.ndarray
    loss: np.ndarray
    gradient: np.ndarray
    row_losses: np.ndarray
    probabilities: np.ndarray
    log_probabilities: np.ndarray
    shifted_logits: np.ndarray
    target: np.ndarray
    labels: np.ndarray | None
    reduction: str
    """"mean", "sum" or "none" (each row's own loss: also --convention row)."""
    batch: bool
    result: SoftmaxCrossEntropyResult | None = None
    """The core's result, for the options' what-ifs."""

    @property
    def options(self) -> LossOptions:
        return LossOptions() if self.result is None else self.result.options

    @property
    def cap_factor(self) -> np.ndarray | None:
        """1 − tanh²(z/c) of each logit with a softcap, else None (N×K)."""
        if self.result is None or self.options.softcap is None:
            return None
        return self.result.cap_derivative.astype(np.float64)

    @property
    def rows(self) -> int:
        return int(self.gradient.shape[0])

    @property
    def divisor(self) -> float:
        return float(self.rows) if self.reduction == "mean" else 1.0

    def reduce(self, row_losses: np.ndarray) -> np.ndarray:
        if self.reduction == "none":
            return row_losses
        total = row_losses.sum()
        return np.asarray(total / self.rows if self.reduction == "mean" else total)


Variant = tuple[Mistake, np.ndarray]


def gradient_variants(exact: Exact) -> list[Variant]:
    g, d, n = exact.gradient, exact.divisor, exact.rows
    unreduced = g * d  # p − y
    variants: list[Variant] = []
    if exact.reduction == "mean" and exact.batch:
        variants += [(SUM_NOT_MEAN, unreduced), (MEAN_TWICE, unreduced / (n * n))]
    if exact.reduction in ("sum", "none") and exact.batch:
        variants.append((MEAN_NOT_SUM if exact.reduction == "sum" else MEAN_NOT_NONE, unreduced / n))
    variants += [(SIGN_FLIPPED, -g), (PROBABILITIES, exact.probabilities / d)]
    for mistake, shift in ((LABEL_PLUS_ONE, 1), (ONE_BASED, -1)):
        other = _one_hot_at(exact, shift)
        if other is not None:
            variants.append((mistake, (exact.probabilities - other) / d))
    if exact.batch:
        variants.append((WRONG_AXIS, (_column_softmax(exact) - exact.target) / d))
        variants += [(ONE_ROW_FOR_ALL, np.tile(g[row], (n, 1))) for row in (0, n - 1)]
    with np.errstate(all="ignore"):
        variants.append((NOT_NORMALISED, (np.exp(exact.shifted_logits) - exact.target) / d))
    variants += [(LOG10, g / math.log(10)), (LOG2, g / math.log(2))]
    return variants + _derivation_variants(exact, "gradient") + _slip_variants(exact, "gradient")


def _derivation_variants(exact: Exact, quantity: str) -> list[Variant]:
    """The slips of the derivation (:mod:`sce.grading.derivative_slips`, shared with sce check)."""
    result = exact.result
    if result is None:
        return []
    found: list[Variant] = []
    predicted = derivative_slips.predicted_labels(result)
    if predicted is not None:
        other = softmax_cross_entropy(result.logits, predicted, options=result.options)
        value = other.gradient if quantity == "gradient" else np.asarray(other.loss)
        found.append((catalogue.PREDICTED_CLASS, value.astype(np.float64)))
    unnormalised = derivative_slips.unnormalised_exp(result)
    if unnormalised is not None:
        _exp, gradient, losses = unnormalised
        value = gradient if quantity == "gradient" else derivative_slips.reduced(result, losses)
        found.append((catalogue.UNNORMALISED_EXP, value))
    if quantity == "loss":
        return found
    slips = [
        (catalogue.STOPPED_AT_DL_DS, derivative_slips.stopped_at_probabilities(result)),
        (catalogue.ONLY_LABEL_ENTRY, derivative_slips.label_entry_only(result)),
        (catalogue.JACOBIAN_DIAGONAL, derivative_slips.jacobian_diagonal(result)),
        (catalogue.LABELS_BROADCAST, derivative_slips.labels_broadcast(result) if exact.batch else None),
    ]
    return found + [(mistake, gradient) for mistake, gradient in slips if gradient is not None]


def _slip_variants(exact: Exact, quantity: str) -> list[Variant]:
    """The options' slips (grading.conventions, shared with sce check), in a learner's words.
    Listed after the plain mistakes: where both match, the options' slip is the likelier
    only if the other cases say so (the session settles ties by count)."""
    if exact.result is None:
        return []
    found: list[Variant] = []
    for slip in conventions.convention_slips(exact.result):
        value = slip.gradient if quantity == "gradient" else slip.loss
        if value is not None:
            found.append((OF_CONVENTION[slip.kind], value))
    return found


def loss_variants(exact: Exact) -> list[Variant]:
    rows, n = exact.row_losses, exact.rows
    variants: list[Variant] = []
    if exact.reduction == "mean" and exact.batch:
        variants += [(SUM_NOT_MEAN, np.asarray(rows.sum())), (MEAN_TWICE, np.asarray(rows.sum() / (n * n)))]
    if exact.reduction == "sum" and exact.batch:
        variants.append((MEAN_NOT_SUM, np.asarray(rows.sum() / n)))
    variants += [(SIGN_FLIPPED, -exact.loss), (LOG10, exact.loss / math.log(10)), (LOG2, exact.loss / math.log(2))]
    for mistake, shift in ((LABEL_PLUS_ONE, 1), (ONE_BASED, -1)):
        other = _one_hot_at(exact, shift)
        if other is not None:
            variants.append((mistake, exact.reduce(-(other * exact.log_probabilities).sum(axis=1))))
    if exact.batch:
        with np.errstate(all="ignore"):
            column_log = np.log(_column_softmax(exact))
        variants.append((WRONG_AXIS, exact.reduce(-(exact.target * column_log).sum(axis=1))))
    variants.append((NOT_NORMALISED, exact.reduce(-(exact.target * exact.shifted_logits).sum(axis=1))))
    return variants + _derivation_variants(exact, "loss") + _slip_variants(exact, "loss")


def _one_hot_at(exact: Exact, shift: int) -> np.ndarray | None:
    """A one-hot target at each label + shift, wrapping as numpy's negative indices do."""
    # With two classes label + 1 and label − 1 are the same class: both are candidates there, and
    # the cases with more classes settle which (session.settle_ambiguous_mistakes).
    if exact.labels is None:
        return None
    classes = exact.gradient.shape[1]
    one_hot = np.zeros_like(exact.gradient)
    one_hot[np.arange(exact.rows), (exact.labels + shift) % classes] = 1.0
    return one_hot


def _column_softmax(exact: Exact) -> np.ndarray:
    with np.errstate(all="ignore"):
        e = np.exp(exact.logits - exact.logits.max(axis=0, keepdims=True))
        return e / e.sum(axis=0, keepdims=True)


def match(
    given: np.ndarray, right: np.ndarray, variants: list[Variant], tolerance: Callable[[np.ndarray], float]
) -> list[Mistake]:
    """Every mistaken variant that ``given`` matches and the right answer does not
    (on a small case several can coincide: with one row, the wrong axis gives 1 − y)."""
    if not np.all(np.isfinite(given)):
        return []
    found = []
    for mistake, variant in variants:
        if variant.shape != given.shape or not np.all(np.isfinite(variant)) or mistake in found:
            continue
        allowed = tolerance(variant)
        if _distance(variant, right) > allowed and _distance(given, variant) <= allowed:
            found.append(mistake)
    return found


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
