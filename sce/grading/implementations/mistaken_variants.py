"""Known mistakes: what each one's output would be, computed from sce's exact result.

A failing answer is compared with every mistaken variant that differs from the
right answer on this case; the first it matches names the mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sce.errors import option
from sce.grading import conventions
from sce.grading.implementations.report import Mistake
from sce.loss import SoftmaxCrossEntropyResult
from sce.options import LossOptions

NO_MAX_SHIFT = Mistake(
    "no max shift: exp overflows or underflows",
    "subtract each row's largest logit before exp, softmax(z) = softmax(z − max z)",
)
SUM_NOT_MEAN = Mistake(
    "1/N missing: the sum over rows, not the mean",
    f"divide by N, the number of rows (or grade with {option('reduction', 'sum')})",
)
MEAN_TWICE = Mistake("1/N applied twice", "divide by N once")
MEAN_NOT_SUM = Mistake(
    f"divided by N, but {option('reduction', 'sum')} has no 1/N",
    f"drop the division by N (or grade with {option('reduction', 'mean')})",
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

SOFTCAP_LEFT_OUT = Mistake(
    "softcap left out: the softmax is of the logits, not of the capped c·tanh(z/c)",
    "cap the logits first, a = c·tanh(z/c), and take the softmax (and the z-loss) of a",
)
TANH_DERIVATIVE_LEFT_OUT = Mistake(
    "the derivative of tanh left out: this is ∂L/∂a, the gradient with respect to the capped logits",
    "the chain rule through a = c·tanh(z/c) multiplies each entry by 1 − tanh²(z/c)",
)
CAP_FACTOR_LOSES_DIGITS = Mistake(
    "1 − tanh²(z/c) computed as 1 minus a number near 1: it loses its digits (or is 0) where |z/c| is large",
    "compute the factor as 1/cosh²(z/c), or 4e^(−2|x|)/(1 + e^(−2|x|))² with x = z/c",
)
Z_LOSS_LEFT_OUT = Mistake(
    "z-loss missing: each row adds λ·lse², whose gradient is 2λ·lse·p",
    "add λ·(log Σ_j e^(b_j))² to each row's loss and 2λ·lse·p to its gradient",
)
Z_LOSS_SUMMED = Mistake(
    "z-loss summed: the mean divides it by N, the number of rows, as the cross-entropy",
    "divide the z-loss (and its gradient) by N with the mean",
)
Z_LOSS_BY_WEIGHT_SUM = Mistake(
    "z-loss divided by the weight sum: it is unweighted, so the mean divides it by the counted rows",
    "divide the z-loss by the number of counted rows, the cross-entropy by the weight sum",
)
OTHER_SMOOTHING_STYLE = Mistake(
    "the other label-smoothing convention",
    f"see {option('smoothing_style')}: uniform puts ε/K on every class (PyTorch); "
    "off-target puts 1 − ε on the label and ε/(K − 1) on each other class (Megatron, t5x)",
)  # fmt: skip
SMOOTHING_LEFT_OUT = Mistake(
    "label smoothing left out", f"the target is (1 − ε)·y + ε/K (or off-target: see {option('smoothing_style')})"
)
TEMPERATURE_LEFT_OUT = Mistake(
    "temperature left out: the softmax of z, not of z/T, and no factor 1/T",
    "divide the logits by T before the softmax, and the gradient by T",
)
_SLIPS = {
    conventions.SOFTCAP_LEFT_OUT: SOFTCAP_LEFT_OUT,
    conventions.TANH_DERIVATIVE_LEFT_OUT: TANH_DERIVATIVE_LEFT_OUT,
    conventions.Z_LOSS_LEFT_OUT: Z_LOSS_LEFT_OUT,
    conventions.Z_LOSS_SUMMED: Z_LOSS_SUMMED,
    conventions.Z_LOSS_BY_WEIGHT_SUM: Z_LOSS_BY_WEIGHT_SUM,
    conventions.OTHER_SMOOTHING_STYLE: OTHER_SMOOTHING_STYLE,
    conventions.SMOOTHING_LEFT_OUT: SMOOTHING_LEFT_OUT,
    conventions.TEMPERATURE_LEFT_OUT: TEMPERATURE_LEFT_OUT,
}


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
    return variants + _slip_variants(exact, "gradient")


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
            found.append((_SLIPS[slip.kind], value))
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
    return variants + _slip_variants(exact, "loss")


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
