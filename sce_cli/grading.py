"""Grading a hand-computed answer, and proving the formula numerically.

Pure functions over core results: no printing. `sce check` and
`sce grad --verify` render what these return.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .core import SoftmaxCrossEntropyResult, softmax_cross_entropy
from .numbers import WRITTEN_NUMBER, normalise_minus, read_number, tolerance_of

#: Below this (relative to max(1, |expected|)) a difference is float rounding, not a mistake.
ROUNDING_FLOOR = 1e-9

def within(given: np.ndarray | float, expected: np.ndarray | float, tolerance: np.ndarray | float) -> np.ndarray:
    given, expected = np.asarray(given, dtype=float), np.asarray(expected, dtype=float)
    allowed = np.asarray(tolerance) + ROUNDING_FLOOR * np.maximum(1.0, np.abs(expected))
    with np.errstate(invalid="ignore"):
        close = np.abs(given - expected) <= allowed
    return close | (given == expected)  # infinities


@dataclass(frozen=True)
class QuantityCheck:
    """One quantity (gradient, probabilities or loss) compared entry by entry."""

    name: str
    expected: np.ndarray
    given: np.ndarray
    tolerance: np.ndarray
    ok: np.ndarray
    mistake: str | None = None
    texts: tuple[str, ...] = ()
    """The answer as it was typed."""
    slips: tuple[str, ...] = ()
    """Wrong entries that are the right number with one digit miswritten."""

    @property
    def passed(self) -> bool:
        return bool(self.ok.all())


# --- the usual mistakes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    name: str
    quantity: str
    value: np.ndarray


def usual_mistakes(result: SoftmaxCrossEntropyResult, recompute: Callable[..., SoftmaxCrossEntropyResult]) -> list[Mistake]:
    """What the usual slips give, for the gradient, the probabilities and the loss.

    ``recompute(**changes)`` reruns the core with some options changed.
    """
    options = result.options
    p = result.probabilities[0].astype(np.float64)
    g = result.gradient[0].astype(np.float64)
    y = result.target[0].astype(np.float64)
    w = result.class_weights.astype(np.float64)
    scale = result.gradient_scale
    loss = result.reported_loss()
    found = [
        Mistake("the probabilities, without subtracting 1 at the correct class (∂L/∂z = s - y)", "gradient", g + w * y * scale),
        Mistake("y - s: the sign is flipped (∂L/∂z = s - y)", "gradient", -g),
        Mistake("the loss in log base 10: cross-entropy uses the natural log", "loss", np.array([loss / math.log(10)])),
        Mistake("the loss in log base 2: cross-entropy uses the natural log", "loss", np.array([loss / math.log(2)])),
        Mistake(
            "the shifted exponentials e^(z - M), not divided by their sum", "probabilities",
            result.exp_shifted[0].astype(np.float64),
        ),
    ]
    if result.denominator != 1:
        what = "the weight sum" if result.labels is not None else "N"
        found.append(Mistake(f"the gradient of the summed loss: the mean divides by {what} ({result.denominator:g})", "gradient", g * result.denominator))
        found.append(Mistake(f"the summed loss: the mean divides by {what} ({result.denominator:g})", "loss", np.array([loss * result.denominator])))
    if result.labels is not None and options.weight is not None:
        label = int(result.labels[0])
        per_class = w * (p - np.eye(len(p))[label]) * scale
        found.append(Mistake(
            f"weights applied class by class, w ⊙ (s - y): every entry is scaled by the label's weight w_{label}",
            "gradient", per_class,
        ))
    if options.temperature != 1.0:
        found.append(Mistake("the factor 1/T of the temperature is missing", "gradient", g * options.temperature))
        untempered = recompute(temperature=1.0)
        found.append(Mistake("the softmax of z, not of z / T", "probabilities", untempered.probabilities[0].astype(np.float64)))
        found.append(Mistake("the loss without the temperature (softmax of z, not z / T)", "loss", np.array([untempered.reported_loss()])))
    if options.label_smoothing:
        plain = recompute(label_smoothing=0.0)
        found.append(Mistake("label smoothing left out", "gradient", plain.gradient[0].astype(np.float64)))
        found.append(Mistake("label smoothing left out", "loss", np.array([plain.reported_loss()])))
    if result.labels is not None and int(result.labels[0]) >= 1:
        # A label read as 1-based: "--label 2" taken to mean the second class.
        label = int(result.labels[0])
        other = recompute(labels=label - 1)
        why = f"labels are 0-based, so --label {label} is the class at index {label}"
        found.append(Mistake(f"the gradient for class {label - 1}: {why}", "gradient", other.gradient[0].astype(np.float64)))
        found.append(Mistake(f"the loss for class {label - 1}: {why}", "loss", np.array([other.reported_loss()])))
    return found


def check_answer(
    result: SoftmaxCrossEntropyResult,
    recompute: Callable[..., SoftmaxCrossEntropyResult],
    given: dict[str, list[str]],
    tolerance: float | None = None,
) -> list[QuantityCheck]:
    """Compare the given texts (per quantity: 'gradient', 'probabilities', 'loss')
    with the exact values; name a usual mistake where the answer matches one."""
    exact = {
        "probabilities": result.probabilities[0],
        "loss": np.array([result.reported_loss()]),
        "gradient": result.gradient[0],
    }
    mistakes: list[Mistake] | None = None
    checks = []
    for name in ("probabilities", "loss", "gradient"):
        if name not in given:
            continue
        texts = given[name]
        values = np.array([read_number(t) for t in texts], dtype=float)
        tolerances = np.full(len(texts), tolerance) if tolerance is not None else np.array([tolerance_of(t) for t in texts])
        expected = exact[name].astype(np.float64)
        ok = within(values, expected, tolerances)
        mistake = None
        if not ok.all():
            if mistakes is None:
                mistakes = usual_mistakes(result, recompute)
            mistake = next(
                (m.name for m in mistakes if m.quantity == name and within(values, m.value, tolerances).all()),
                None,
            )
        slips = tuple(
            slip
            for k in np.flatnonzero(~ok)
            if (slip := digit_slip(texts[k], float(expected[k]))) is not None
        )
        if name != "loss":
            slips = tuple(f"class {k}: {slip}" for k, slip in zip(np.flatnonzero(~ok), slips))
        checks.append(QuantityCheck(name, expected, values, tolerances, ok, mistake, tuple(texts), slips))
    return checks


def digit_slip(text: str, expected: float) -> str | None:
    """Say so when ``text`` is the correctly rounded value with one digit
    changed or two neighbouring digits swapped (the second post's -0.775
    for -0.755)."""
    match = re.fullmatch(WRITTEN_NUMBER, normalise_minus(text))
    if match is None or match.group(3) or not (match.group(1) or match.group(2)):
        return None
    decimals = len(match.group(2) or "")
    right = f"{expected:.{decimals}f}"
    typed = text.strip().lstrip("+")
    if len(right) != len(typed) or right == typed:
        return None
    differ = [i for i, (a, b) in enumerate(zip(right, typed)) if a != b]
    swapped = len(differ) == 2 and differ[1] == differ[0] + 1 and right[differ[0]] == typed[differ[1]] and right[differ[1]] == typed[differ[0]]
    if len(differ) == 1 or swapped:
        how = "two digits swapped" if swapped else "one digit differs"
        return f"{typed} looks like a slip for {right} ({how})"
    return None


# --- sce grad --verify ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    analytic: np.ndarray
    numeric: np.ndarray
    steps: np.ndarray
    relative_difference: np.ndarray

    @property
    def worst(self) -> float:
        return float(np.max(self.relative_difference)) if self.relative_difference.size else 0.0


def finite_difference_check(result: SoftmaxCrossEntropyResult, loss_of: Callable[[np.ndarray], float]) -> Verification:
    """Central differences of the loss, one logit at a time, beside the analytic gradient.

    The step for logit i is ε^(1/3)·max(1, |z_i|) (ε the float64 epsilon,
    about 6e-6 for logits near 1): the step that balances the O(h²) error of
    the central difference against the rounding in (L(z+h) - L(z-h)) / 2h.
    The difference is relative to the largest gradient entry, so that an
    entry of 1e-18 beside entries of 0.5 is not judged on its own digits.
    """
    z = result.logits[0].astype(np.float64)
    analytic = result.gradient[0].astype(np.float64)
    steps = np.cbrt(np.finfo(np.float64).eps) * np.maximum(1.0, np.abs(z))
    numeric = np.zeros_like(z)
    for i in range(len(z)):
        if not np.isfinite(z[i]):
            continue  # a masked class: its gradient is 0
        up, down = z.copy(), z.copy()
        up[i] += steps[i]
        down[i] -= steps[i]
        numeric[i] = (loss_of(up) - loss_of(down)) / (up[i] - down[i])
    scale = max(float(np.max(np.abs(analytic))), np.finfo(np.float64).tiny)
    return Verification(analytic, numeric, steps, np.abs(numeric - analytic) / scale)


def verify_gradient(result: SoftmaxCrossEntropyResult) -> Verification:
    """`sce grad --verify`: finite differences of the same loss, in float64."""
    options = result.options
    labels = result.labels

    def loss_of(logits: np.ndarray) -> float:
        moved = softmax_cross_entropy(
            logits,
            labels,
            # For probability targets the effective (already smoothed) target is passed as it is.
            targets=None if labels is not None else result.target[:1],
            weight=options.weight,
            label_smoothing=options.label_smoothing if labels is not None else 0.0,
            ignore_index=options.ignore_index,
            reduction=options.reduction,
            temperature=options.temperature,
        )
        return moved.reported_loss()

    return finite_difference_check(result, loss_of)


__all__ = [
    "QuantityCheck", "Verification", "check_answer", "digit_slip", "finite_difference_check",
    "tolerance_of", "usual_mistakes", "verify_gradient", "within",
]
