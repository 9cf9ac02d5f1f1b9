"""The verdicts every grader gives, in the same words: as data (the JSON ``verdict``) and as
read (the verdict line of a table).

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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

CORRECT = "correct"
NOT_ROBUST = "not_robust"
TOO_FEW_DIGITS = "too_few_digits"
NOT_CORRECT = "not_correct"

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
