"""Grading a typed answer: entry by entry, with a tolerance from the digits written."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..core import SoftmaxCrossEntropyResult
from ..numbers import WRITTEN_NUMBER, normalise_minus, read_number, tolerance_of
from .mistakes import Mistake, usual_mistakes

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


def check_answer(
    result: SoftmaxCrossEntropyResult,
    given: dict[str, list[str]],
    tolerance: float | None = None,
    targets: ArrayLike | None = None,
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
        tolerances = (
            np.full(len(texts), tolerance) if tolerance is not None else np.array([tolerance_of(t) for t in texts])
        )
        expected = exact[name].astype(np.float64)
        ok = within(values, expected, tolerances)
        mistake = None
        if not ok.all():
            if mistakes is None:
                mistakes = usual_mistakes(result, targets)
            mistake = next(
                (m.name for m in mistakes if m.quantity == name and within(values, m.value, tolerances).all()),
                None,
            )
        slips = tuple(
            slip for k in np.flatnonzero(~ok) if (slip := digit_slip(texts[k], float(expected[k]))) is not None
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
