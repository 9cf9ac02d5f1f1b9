"""Grading answers (typed, in files, in tensor dumps, or a learner's function) against the
loss's exact result. Pure functions over loss results: no printing; the renderers show what
these return."""

from sce.grading.answers import QuantityCheck, answer_verdict, check_answer, digit_slip, tolerance_of, within
from sce.grading.catalogue import CATALOGUE, Mistake
from sce.grading.mistakes import MistakenValue, usual_mistakes

__all__ = [
    "CATALOGUE",
    "WORST_SHOWN",
    "FileCheck",
    "Mistake",
    "MistakenValue",
    "QuantityCheck",
    "WrongCell",
    "answer_verdict",
    "check_answer",
    "check_file",
    "digit_slip",
    "tolerance_of",
    "usual_mistakes",
    "within",
]

_FILE_CHECK_NAMES = ("WORST_SHOWN", "FileCheck", "WrongCell", "check_file")


def __getattr__(name: str) -> object:
    # Imported on first use: csv_file reads files with polars, which
    # `sce check` with typed answers must not wait for.
    if name in _FILE_CHECK_NAMES:
        from sce.grading import csv_file

        return getattr(csv_file, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
