"""The quick check's grades as the fused check's :class:`Report` (mode "quick")."""

from __future__ import annotations

import math

import numpy as np

from sce.grading.linear.answers import LinearAnswer, LinearInputs
from sce.grading.linear.profiles import Profile
from sce.grading.linear.quick import QuickOutcome, quick_check
from sce.grading.linear.quick_grades import Candidates, OutputGrade
from sce.grading.linear.report import OutputReport, Report
from sce.grading.linear.skipped import skipped_per_row
from sce.loss.result import InvalidInput
from sce.loss.vocabulary_shards import Sharding, ShardLoss
from sce.options import LossOptions

#: The seed when none is given: a run repeats itself, and the report names it.
DEFAULT_SEED = 0


def checked_seed(seed: object, mode: str) -> None:
    """A seed is a whole number from 0, and only quick mode draws anything from it."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInput(f"seed must be a whole number from 0, not {seed!r}", field="seed")
    if mode != "quick":
        raise InvalidInput(
            "a seed chooses quick mode's sampled rows and projections; the full check compares every entry",
            field="seed", hint="drop the seed, or ask for quick mode",
        )  # fmt: skip


def sharding_for(
    options: LossOptions, labels: np.ndarray, grad_output: np.ndarray | float, widths: list[int]
) -> Sharding:
    """The labels and options of a checked problem, over shards of these widths."""
    shard_loss = ShardLoss(
        sum(widths), options.label_smoothing, options.smoothing_style, options.softcap, options.z_loss
    )
    weight = None if options.weight is None else np.asarray(options.weight, dtype=np.float64)
    return Sharding.of(
        widths, labels, weight=weight, ignore_index=options.ignore_index, reduction=options.reduction,
        loss=shard_loss, upstream=grad_output,
    )  # fmt: skip


def quick_report(inputs: LinearInputs, answer: LinearAnswer, profile: Profile, seed: int | None = None) -> Report:
    """Grade quickly (:mod:`sce.grading.linear.quick`); the report says what was sampled and
    the chance that the projections missed an error of a stated size."""
    candidates = Candidates(
        answer.loss,
        answer.grad_hidden,
        None if answer.grad_classifier is None else [answer.grad_classifier],
        None if answer.grad_bias is None else [answer.grad_bias],
    )
    sharding = sharding_for(inputs.options, inputs.labels, inputs.grad_output, [len(inputs.c)])
    outcome = quick_check(
        inputs.e, [inputs.c], inputs.labels, [inputs.b], candidates, sharding,
        seed=DEFAULT_SEED if seed is None else seed, excused=skipped_per_row(inputs.terms, inputs.e.dtype, profile),
    )  # fmt: skip
    report = outcome_report(outcome, profile, "quick")
    if report.passed or outcome.lse is None:
        return report
    from sce.grading.linear.quick_mistakes import quick_named

    return quick_named(report, inputs, answer, outcome)


def outcome_report(outcome: QuickOutcome, profile: Profile, mode: str) -> Report:
    """The report of a quick check, or of a sharded one in either mode (every row sampled in full mode)."""
    outputs = {grade.name: _output_report(grade) for grade in outcome.grades}
    passed = all(o.passed for o in outputs.values())
    worst = max((o.worst_ulp for o in outputs.values()), default=0.0)
    return Report(
        passed, "correct" if passed else "not_correct", worst, None, profile.name, mode,
        outputs.get("loss"), outputs.get("grad_hidden"), outputs.get("grad_classifier"), outputs.get("grad_bias"),
        quick=outcome.to_dict() | {"statement": outcome.statement()} if mode == "quick" else None,
    )  # fmt: skip


def _output_report(grade: OutputGrade) -> OutputReport:
    """Entries compared whole give the worst ulps; a projection's error counts as its ratio to
    the tolerance times the allowance (over 1 fails, as an entry over the allowance does)."""
    worst, allowed = grade.entries.worst_ulp, grade.entries.allowed_ulp
    where = grade.entries.worst_entry
    score = worst / allowed if allowed else math.inf
    if grade.projections is not None and grade.projections.worst_ratio > score:
        worst, allowed = grade.projections.worst_ratio * grade.allowance, grade.allowance
        where = None if grade.projections.worst_row is None else (grade.projections.worst_row,)
    if grade.name == "loss" and where is not None and grade.entries.checked == 1:
        where = ()
    return OutputReport(
        grade.name, grade.dtype, grade.passed, worst if math.isfinite(worst) or not grade.passed else 0.0,
        allowed, math.nan, math.nan, math.nan, where, None, None,
    )  # fmt: skip
