"""The report of a check by type, as data: what :func:`sce.testing.check_cross_entropy` returns.

The same verdict as ``sce check --arrays`` gives, read the way every ``check_*`` of
:mod:`sce.testing` reads: ``passed``, ``verdict`` (the strings of the JSON outputs),
``worst_ulp``, ``mistake`` (a name from :mod:`sce.grading.catalogue`), ``summary`` (the
one-line verdict an assertion's message starts with) and ``to_dict()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sce.errors import worded
from sce.grading.catalogue import CATALOGUE, FIX_SEPARATOR
from sce.grading.dump.verdict import DtypeCheck, QuantityVerdict
from sce.grading.verdicts import Verdict

#: The verdict of an answer its type cannot judge: neither right nor wrong (see :attr:`DtypeCheck.judgeable`).
CANNOT_BE_JUDGED = "cannot_be_judged"


@dataclass(frozen=True)
class CrossEntropyReport:
    """A gradient's (and loss's) verdict by type, with the errors behind it.

    Examples
    --------
    >>> import numpy as np
    >>> from sce.testing import check_cross_entropy
    >>> z = np.array([[2.0, 3.0, 4.0]], dtype=np.float32)
    >>> grad = -np.exp(z - z.max()) / np.exp(z - z.max()).sum()  # the sign flipped
    >>> grad[0, 1] += 1
    >>> report = check_cross_entropy(z, np.array([1]), grad)
    >>> report.passed, report.verdict, report.mistake
    (False, 'not_correct', 'sign flipped: y − p instead of p − y')
    """

    check: DtypeCheck

    @property
    def passed(self) -> bool:
        return self.check.correct

    @property
    def verdict(self) -> str:
        """"correct", "not_correct", or "cannot_be_judged" where the type cannot tell right from wrong."""
        if not self.check.judgeable:
            return CANNOT_BE_JUDGED
        return Verdict.correct.value if self.check.correct else Verdict.not_correct.value

    @property
    def worst_ulp(self) -> float:
        """The largest error of any entry, in ulps of the claimed type (inf for a NaN or infinite entry)."""
        if any(q.counts[-1] for q in self.check.quantities):
            return math.inf
        return max((q.max_ulps for q in self.check.quantities), default=0.0)

    @property
    def mistakes(self) -> list[str]:
        """The catalogue's names of the mistakes that fit the answer, likeliest first."""
        return [catalogue_name(described) for described in self.check.mistakes]

    @property
    def mistake(self) -> str | None:
        """The likeliest mistake's name (None when the answer passes, or no known mistake fits)."""
        return None if self.passed or not self.mistakes else self.mistakes[0]

    @property
    def summary(self) -> str:
        """The verdict in one line: the first line of an assertion's message."""
        dtype = self.check.claimed_dtype
        if self.verdict == CANNOT_BE_JUDGED:
            return (
                f"cannot be judged in {dtype}: a straightforward {dtype} computation is too far off to tell "
                "right from wrong; grade it in a wider type"
            )
        words = "correct" if self.passed else "not correct"
        worst = max(self.check.quantities, key=_excess)
        line = f"{words} for {dtype}: {worst.name} worst error {_ulps(worst.max_ulps)} ulp, {_allowed(worst)}"
        return line + (f"; mistake: {self.mistake}" if self.mistake else "")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-safe data (infinite or NaN errors as the strings "inf", "nan")."""
        check = self.check
        return {
            "passed": self.passed,
            "verdict": self.verdict,
            "summary": self.summary,
            "worst_ulp": _number(self.worst_ulp),
            "mistake": self.mistake,
            "mistakes": self.mistakes,
            "claimed_dtype": check.claimed_dtype,
            "rows": check.rows,
            "classes": check.classes,
            "reduction": check.options.reduction,
            "sum_order": check.sum_order,
            "hints": [worded(hint) for hint in check.hints],
            "quantities": {
                q.name: {
                    "passed": q.correct,
                    "entries": q.entries,
                    "wrong": q.wrong,
                    "worst_ulp": _number(math.inf if q.counts[-1] else q.max_ulps),
                    "allowed_ulp": _number(q.allowed_ulps),
                    "rms_ulp": _number(q.rms_ulps),
                    "allowed_rms_ulp": _number(q.allowed_rms_ulps),
                    "worst_entry": None if not q.worst else {"row": q.worst[0].row, "class": q.worst[0].column},
                }
                for q in check.quantities
            },
        }


def catalogue_name(described: str) -> str:
    """The catalogue's name of a mistake as a grader described it (its name, a detail, its fix)."""
    text = worded(described).partition(FIX_SEPARATOR)[0]
    for mistake in CATALOGUE:
        if text == mistake.name or text.startswith(mistake.name + " ("):
            return mistake.name
    return text


def _excess(q: QuantityVerdict) -> float:
    """How far beyond what is allowed a quantity is (its worst or typical error), for the summary."""
    if q.counts[-1]:
        return math.inf
    return max(_ratio(q.max_ulps, q.allowed_ulps), _ratio(q.rms_ulps, q.allowed_rms_ulps))


def _ratio(error: float, allowed: float) -> float:
    if allowed > 0:
        return error / allowed
    return math.inf if error > 0 else 0.0


def _allowed(q: QuantityVerdict) -> str:
    if q.counts[-1]:
        return "not finite where the exact value is"
    if q.wrong == 0 and q.typical_beyond:
        return f"typical error {_ulps(q.rms_ulps)} ulp, up to {_ulps(q.allowed_rms_ulps)} allowed"
    line = f"up to {_ulps(q.allowed_ulps)} allowed ({q.wrong:,} of {q.entries:,} entries beyond)"
    if q.sign_flips:
        line += f", {q.sign_flips:,} of the opposite sign to the exact value"
    if q.beyond_rounding:
        line += f", {q.beyond_rounding:,} further off than rounding at that entry allows"
    return line


def _ulps(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)
