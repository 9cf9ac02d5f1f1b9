"""The verdicts every grader gives, in the same words: as data (the JSON ``verdict``, the reports of
:mod:`sce.testing`) and as read (the verdict line of a table).

``correct``; ``not_robust`` (every ordinary case right, only extreme ranges wrong);
``not_correct``; ``too_few_digits`` (right to the digits given, but those digits
also fit a usual mistake, so they cannot tell the two apart).

Examples
--------
>>> WORDS[TOO_FEW_DIGITS]
'too few digits to grade'
>>> worst([CORRECT, TOO_FEW_DIGITS, CORRECT])
'too_few_digits'
>>> worst([TOO_FEW_DIGITS, NOT_CORRECT])
'not_correct'
>>> Verdict.not_robust.words, Verdict.not_robust.passed
('correct, not robust', True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
        return WORDS[self.value]

    @property
    def passed(self) -> bool:
        """Whether the answer counts as passing (exit status 0): correct, or correct but not robust."""
        return self in (Verdict.correct, Verdict.not_robust)


CORRECT = Verdict.correct.value
NOT_ROBUST = Verdict.not_robust.value
TOO_FEW_DIGITS = Verdict.too_few_digits.value
NOT_CORRECT = Verdict.not_correct.value

#: Each verdict as a sentence shows it.
WORDS: Mapping[str, str] = {
    CORRECT: "correct",
    NOT_ROBUST: "correct, not robust",
    TOO_FEW_DIGITS: "too few digits to grade",
    NOT_CORRECT: "not correct",
}

#: From the best verdict to the worst: a set of answers gets its worst one's.
ORDER = (CORRECT, NOT_ROBUST, TOO_FEW_DIGITS, NOT_CORRECT)


def worst(verdicts: Iterable[str]) -> str:
    """The verdict of several answers graded together: the worst of theirs (correct for none)."""
    return max(verdicts, key=ORDER.index, default=CORRECT)
