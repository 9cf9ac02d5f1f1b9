"""Grading answers (typed or in files) against the core's exact result, and
proving the formula numerically. Pure functions over core results: no
printing; the renderers show what these return."""

from .answers import QuantityCheck, check_answer, digit_slip, tolerance_of, within
from .mistakes import Mistake, usual_mistakes
from .verify import Verification, finite_difference_check, verify_gradient

__all__ = [
    "Mistake",
    "QuantityCheck",
    "Verification",
    "check_answer",
    "digit_slip",
    "finite_difference_check",
    "tolerance_of",
    "usual_mistakes",
    "verify_gradient",
    "within",
]
