"""The typed result of grading an implementation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from sce.errors import worded
from sce.grading import catalogue
from sce.grading.catalogue import Mistake
from sce.grading.implementations.captured import CapturedOutput
from sce.grading.implementations.evidence import CaseEvidence
from sce.grading.implementations.stage_comparison import StageComparison
from sce.grading.verdicts import Verdict
from sce.options import LossOptions


@dataclass(frozen=True)
class Configuration:
    """How the function is called and what it returns."""

    convention: str = "batch"
    """"batch": f(logits N×K, labels N); "row": f(logits K, label)."""
    returns: str = "loss,grad"
    """"loss,grad", "grad" or "loss"."""
    reduction: str = "mean"
    """For the batch convention: "mean", "sum" or "none" (a loss per row)."""
    targets: bool = False
    """The second argument is probability targets (N×K) instead of labels."""
    framework: str | None = None
    """"numpy", "torch" or "jax"; None to detect it from the function's file."""
    seed: int = 0
    timeout: float = 3.0
    """Seconds each case may take."""
    loss: LossOptions = LossOptions()
    """The options of the loss the function computes (label smoothing, temperature, softcap,
    z-loss, smoothing style); its reduction and float type are the fields above and the case's."""
    memory_limit: int | None = None
    """Bytes of address space the child process may take (None: no limit of sce's)."""

    def loss_options(self) -> LossOptions:
        """The options of the exact answer: a row function's loss is its row's own."""
        reduction = self.reduction if self.convention == "batch" else "none"
        return self.loss.replace(reduction=reduction, dtype="float64")


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    max_error: float | None
    """The largest absolute difference from sce's exact result (None without an answer to compare)."""
    allowance: float | None
    """The error a straightforward correct implementation gets, with a margin (same quantity)."""
    mistake: Mistake | None = None
    note: str = ""
    """What else to say (a wrong shape, a timeout…); options named as in :class:`Mistake`."""
    candidates: tuple[Mistake, ...] = ()
    """Every known mistake the answer matches (``mistake`` is the likeliest)."""
    non_finite: bool = False
    """The answer has NaN or infinite entries where the exact one is finite."""
    overflow_prone: bool = False
    """The case's logits are of extreme range: exp overflows or underflows without the max shift,
    or the label's probability rounds to 0."""
    evidence: CaseEvidence | None = None
    """For a failing case: its inputs, and the expected answer beside the given one."""
    output: CapturedOutput = CapturedOutput()
    """What the function printed during the case."""
    stages: tuple[StageComparison, ...] = ()
    """For a function returning the derivation's stages: each stage given, compared."""
    error_ulps: float | None = None
    """``max_error`` in ulps of the largest exact entry of its quantity, in the type judged."""

    @property
    def fails_only_in_range(self) -> bool:
        """A failure of range, not of the formula: on a case of extreme range, the answer is infinite
        or NaN, the function raised one of :data:`RANGE_ERRORS`, or the answer shows a mistake of range."""
        if self.passed or not self.overflow_prone:
            return False
        if self.mistake is not None:
            return self.mistake in RANGE_MISTAKES
        return self.non_finite or self.note.startswith(RANGE_ERRORS)

    @property
    def range_mistake(self) -> Mistake:
        """The mistake of range this case shows (see :attr:`fails_only_in_range`); an infinite or NaN
        answer without a named mistake is taken as the missing max shift."""
        return self.mistake if self.mistake is not None else catalogue.NO_MAX_SHIFT

    @property
    def message(self) -> str:
        """The note, its options named as check_implementation's keywords."""
        return worded(self.note)

    def worded_message(self, flag_of: Mapping[str, str] | None = None) -> str:
        return worded(self.note, flag_of)

    @property
    def error_ratio(self) -> float | None:
        """max_error / allowance: at most 1 to pass."""
        if self.max_error is None or self.allowance is None:
            return None
        if math.isnan(self.max_error):
            return math.inf
        return self.max_error / self.allowance if self.allowance > 0 else math.inf


#: The exceptions of Python's math module (and numpy's, when raised) on a number out of range:
#: exp overflowing, a sum of underflowed exps divided by, the log of 0.
RANGE_ERRORS = ("OverflowError", "FloatingPointError", "ZeroDivisionError", "ValueError: math domain error")
#: The mistakes that only logits of extreme range reveal: the formula is right, its arithmetic overflows.
RANGE_MISTAKES = (catalogue.NO_MAX_SHIFT, catalogue.LOG_OF_ZERO, catalogue.DIVIDED_BY_P)


@dataclass(frozen=True)
class ImplementationReport:
    function: str
    """The function as named by the user (FILE.py:FUNCTION)."""
    framework: str
    configuration: Configuration
    cases: tuple[CaseResult, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> Verdict:
        """correct: every case passes; not_robust: every ordinary case passes and each failing one
        fails only for its extreme range (see :attr:`CaseResult.fails_only_in_range`); else not_correct."""
        failed = self.failed
        if not failed:
            return Verdict.correct
        if all(case.fails_only_in_range for case in failed) and len(failed) < len(self.cases):
            return Verdict.not_robust
        return Verdict.not_correct

    @property
    def passed(self) -> bool:
        """Correct, or correct but not robust (use :attr:`verdict` to tell them apart)."""
        return self.verdict.passed

    @property
    def range_failures(self) -> dict[Mistake, list[CaseResult]]:
        """For the verdict not_robust: the failing cases by their mistake of range, in the cases' order."""
        found: dict[Mistake, list[CaseResult]] = {}
        for case in self.failed:
            if case.fails_only_in_range:
                found.setdefault(case.range_mistake, []).append(case)
        return found

    @property
    def failed(self) -> list[CaseResult]:
        return [case for case in self.cases if not case.passed]

    @property
    def mistakes(self) -> list[Mistake]:
        """Each mistake named in a failing case, once, in the order of the cases."""
        found: list[Mistake] = []
        for case in self.failed:
            if case.mistake is not None and case.mistake not in found:
                found.append(case.mistake)
        return found

    @property
    def worst_ulp(self) -> float:
        """The largest error of any case, in ulps of its quantity's largest exact entry (inf for
        NaN or infinite answers; 0 without a case that returned an answer)."""
        return max((case.error_ulps for case in self.cases if case.error_ulps is not None), default=0.0)

    @property
    def mistake(self) -> str | None:
        """The catalogue's name of the mistake to fix first (None when it passes, or none is named)."""
        if self.verdict is Verdict.correct:
            return None
        if self.verdict is Verdict.not_robust:
            return next(iter(self.range_failures)).name
        return next((case.mistake.name for case in self.failed if case.mistake is not None), None)

    @property
    def summary(self) -> str:
        """The verdict in one line: the first line of an assertion's message."""
        total, failed = len(self.cases), len(self.failed)
        if self.verdict is Verdict.correct:
            return f"correct: {self.function} ({total} of {total} cases pass)"
        counts = f"{total - failed} of {total} cases pass" if self.passed else f"{failed} of {total} cases fail"
        line = f"{self.verdict.words}: {self.function} ({counts})"
        if self.verdict is Verdict.not_robust:
            return line + f"; fails only for extreme logits: {self.mistake}"
        return line + f"; fix first: {self.fix_first}"

    def to_dict(self) -> dict[str, object]:
        """The verdict, the worst error and each case's result, JSON-safe (inf and NaN as strings)."""
        return {
            "passed": self.passed,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "worst_ulp": _json_number(self.worst_ulp),
            "mistake": self.mistake,
            "function": self.function,
            "framework": self.framework,
            "cases": [
                {
                    "name": case.name,
                    "passed": case.passed,
                    "max_error": _json_number(case.max_error),
                    "allowance": _json_number(case.allowance),
                    "error_ulps": _json_number(case.error_ulps),
                    "mistake": None if case.mistake is None else case.mistake.name,
                    "message": case.message,
                }
                for case in self.cases
            ],
        }

    @property
    def fix_first(self) -> str | None:
        """What to fix first: the first failing case (the cases go from easy to hard)."""
        return self.worded_fix_first()

    def worded_fix_first(self, flag_of: Mapping[str, str] | None = None) -> str | None:
        """:attr:`fix_first`, its options named by ``flag_of`` (see :func:`sce.errors.worded`)."""
        if not self.failed:
            return None
        case = self.failed[0]
        if case.mistake is not None:
            return f"{case.mistake.worded_name(flag_of)}: {case.mistake.worded_fix(flag_of)} (case “{case.name}”)"
        return f"case “{case.name}”: {case.worded_message(flag_of)}"


def _json_number(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else str(value)
