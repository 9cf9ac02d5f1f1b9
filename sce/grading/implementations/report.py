"""The typed result of grading an implementation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from sce.errors import worded
from sce.grading.catalogue import Mistake
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
    """The case's logits overflow exp without the max shift."""

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


@dataclass(frozen=True)
class ImplementationReport:
    function: str
    """The function as named by the user (FILE.py:FUNCTION)."""
    framework: str
    configuration: Configuration
    cases: tuple[CaseResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(case.passed for case in self.cases)

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
