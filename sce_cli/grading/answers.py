"""Grading a typed answer: entry by entry, with a tolerance from the digits written."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..core import SoftmaxCrossEntropyResult
from ..numbers import WRITTEN_NUMBER, normalise_minus, read_number, tolerance_of
from .mistakes import Mistake, usual_mistakes

#: A difference below this many float64 epsilons of the expected value is
#: rounding (another engine's, or the last digit of a shortest repr), never a
#: mistake. Relative only: an absolute floor would let a wrong tiny answer pass.
ROUNDING_ALLOWANCE = 4 * float(np.finfo(np.float64).eps)


def within(given: np.ndarray | float, expected: np.ndarray | float, tolerance: np.ndarray | float) -> np.ndarray:
    given, expected = np.asarray(given, dtype=float), np.asarray(expected, dtype=float)
    allowed = np.asarray(tolerance) + ROUNDING_ALLOWANCE * np.abs(expected)
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
    """Wrong entries that are the right number with one digit miswritten, each naming its entry."""
    ambiguous: str | None = None
    """A usual mistake that the answer, right to the digits given, also fits:
    too few digits to tell the right answer from it. The answer still passes
    (it is right to its digits); the flag says more digits are needed to be sure."""

    @property
    def passed(self) -> bool:
        return bool(self.ok.all())


def check_answer(
    result: SoftmaxCrossEntropyResult,
    given: dict[str, list[str]],
    tolerance: float | None = None,
    targets: ArrayLike | None = None,
) -> list[QuantityCheck]:
    """Compare the given texts (per quantity: 'gradient', 'probabilities', 'loss')
    with the exact values; name a usual mistake where the answer matches one,
    and say so where the digits given cannot tell the answer from one."""
    exact = {
        "probabilities": result.probabilities[0],
        "loss": np.array([result.reported_loss()]),
        "gradient": result.gradient[0],
    }
    mistakes = usual_mistakes(result, targets)
    checks = []
    for name in ("probabilities", "loss", "gradient"):
        if name in given:
            expected = exact[name].astype(np.float64)
            candidates = [m for m in mistakes if m.quantity == name and not np.allclose(m.value, expected)]
            checks.append(_check_quantity(name, given[name], expected, tolerance, candidates))
    return checks


def _check_quantity(
    name: str, texts: list[str], expected: np.ndarray, tolerance: float | None, mistakes: list[Mistake]
) -> QuantityCheck:
    values = np.array([read_number(t) for t in texts], dtype=float)
    tolerances = np.full(len(texts), tolerance) if tolerance is not None else np.array([tolerance_of(t) for t in texts])
    ok = within(values, expected, tolerances)
    fits = [m.name for m in mistakes if within(values, m.value, tolerances).all()]
    mistake = fits[0] if fits and not ok.all() else None
    ambiguous = fits[0] if fits and ok.all() else None
    slips = []
    for k in np.flatnonzero(~ok):
        slip = digit_slip(texts[k], float(expected[k]))
        if slip is not None:
            slips.append(slip if name == "loss" else f"class {k}: {slip}")
    return QuantityCheck(name, expected, values, tolerances, ok, mistake, tuple(texts), tuple(slips), ambiguous)


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
    swapped = (
        len(differ) == 2
        and differ[1] == differ[0] + 1
        and right[differ[0]] == typed[differ[1]]
        and right[differ[1]] == typed[differ[0]]
    )
    if len(differ) == 1 or swapped:
        how = "two digits swapped" if swapped else "one digit differs"
        return f"{typed} looks like a slip for {right} ({how})"
    return None


__all__ = ["QuantityCheck", "check_answer", "digit_slip", "tolerance_of", "within"]
