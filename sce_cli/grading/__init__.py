"""Grading answers (typed or in files) against the core's exact result, and
proving the formula numerically. Pure functions over core results: no
printing; the renderers show what these return."""

from .answers import QuantityCheck, check_answer, digit_slip, tolerance_of, within
from .mistakes import Mistake, usual_mistakes
from .verify import Verification, finite_difference_check, verify_gradient

__all__ = [
    "WORST_SHOWN",
    "FileCheck",
    "Mistake",
    "QuantityCheck",
    "Verification",
    "WrongCell",
    "check_answer",
    "check_file",
    "digit_slip",
    "finite_difference_check",
    "tolerance_of",
    "usual_mistakes",
    "verify_gradient",
    "within",
]

_FILE_CHECK_NAMES = ("WORST_SHOWN", "FileCheck", "WrongCell", "check_file")


def __getattr__(name: str) -> object:
    # Imported on first use: file_check reads files with polars, which
    # `sce check` with typed answers must not wait for.
    if name in _FILE_CHECK_NAMES:
        from . import file_check

        return getattr(file_check, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
