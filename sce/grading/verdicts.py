"""The verdicts every grader gives, in the same words and the same JSON strings."""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    """A grader's verdict; its value is the string of the JSON outputs and of :mod:`sce.testing`'s reports."""

    correct = "correct"
    not_robust = "not_robust"
    """Every ordinary case passes; only cases of extreme range fail (overflow, −log 0, underflow)."""
    not_correct = "not_correct"
    too_few_digits = "too_few_digits"
    """A typed answer with too few significant digits to tell the right value from the usual mistakes."""

    @property
    def words(self) -> str:
        """The verdict as the terminal says it: "correct, not robust"."""
        return VERDICT_WORDS[self]

    @property
    def passed(self) -> bool:
        """Whether the answer counts as passing (exit status 0): correct, or correct but not robust."""
        return self in (Verdict.correct, Verdict.not_robust)


VERDICT_WORDS = {
    Verdict.correct: "correct",
    Verdict.not_robust: "correct, not robust",
    Verdict.not_correct: "not correct",
    Verdict.too_few_digits: "too few digits to grade",
}
