"""Known mistakes: what each one's output would be, computed from sce's exact result.

A failing answer is compared with every mistaken variant that differs from the
right answer on this case; the first it matches names the mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .report import Mistake

NO_MAX_SHIFT = Mistake(
    "no max shift: exp overflows or underflows",
    "subtract each row's largest logit before exp, softmax(z) = softmax(z − max z)",
)
SUM_NOT_MEAN = Mistake(
    "1/N missing: the sum over rows, not the mean", "divide by N, the number of rows (or grade with --reduction sum)"
)
MEAN_TWICE = Mistake("1/N applied twice", "divide by N once")
MEAN_NOT_SUM = Mistake(
    "divided by N, but --reduction sum has no 1/N", "drop the division by N (or grade with --reduction mean)"
)
SIGN_FLIPPED = Mistake("sign flipped: y − p instead of p − y", "the gradient is p − y, probabilities minus the target")
PROBABILITIES = Mistake("−1 missing: these are the probabilities", "subtract 1 at the label's class: p − y")
LABEL_PLUS_ONE = Mistake(
    "−1 at the wrong class: the label's index plus one (off by one)", "subtract 1 at index labels[i] itself"
)
ONE_BASED = Mistake(
    "−1 at the wrong class: labels read as 1-based", "labels are 0-based: use index labels[i], not labels[i] − 1"
)
WRONG_AXIS = Mistake(
    "softmax over the wrong axis: columns instead of rows",
    "take the max and the sum over each row: axis=1, keepdims=True",
)
ONE_ROW_FOR_ALL = Mistake(
    "one row's gradient used for every row", "compute p − y for each row (check the loop variable)"
)
LOG10 = Mistake("log base 10 in the loss", "use the natural logarithm, np.log")
LOG2 = Mistake("log base 2 in the loss", "use the natural logarithm, np.log")
NOT_NORMALISED = Mistake(
    "probabilities not normalised: the exponentials are not divided by their sum",
    "divide exp(z − max z) by its row sum",
)
LOG_OF_ZERO = Mistake(
    "log of a probability that rounded to 0 (−log p gives inf)",
    "compute the loss as log Σ exp(z − max) − (z_c − max) (log-sum-exp) instead of −log p_c",
)
DIVIDED_BY_P = Mistake(
    "divides by the label's probability, which rounded to 0 (the chain rule's −1/s_c)",
    "simplify the chain rule first: ∂L/∂z = p − y has no division",
)
LOGITS_IN_PLACE = Mistake(
    "logits modified in place",
    "work on a copy: z = logits - logits.max(...) makes a new array, logits -= ... overwrites the caller's",
)
LABELS_IN_PLACE = Mistake("labels (or targets) modified in place", "leave the caller's arrays unchanged: copy first")


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
        variants.append((MEAN_NOT_SUM, unreduced / n))
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
    return variants


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
    return variants


def _one_hot_at(exact: Exact, shift: int) -> np.ndarray | None:
    """A one-hot target at each label + shift, wrapping as numpy's negative indices do."""
    if exact.labels is None or exact.gradient.shape[1] == 2:
        return None  # with two classes, label + 1 and label − 1 are the same class: no way to tell which
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
