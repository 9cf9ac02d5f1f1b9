"""The full check of a fused linear cross-entropy: every entry of every output given, against
the exact blocked reference, allowed what the same-type baseline errs under the profile."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from sce.grading.dump.baseline import ulp_unit, ulps, ulps_if_finite
from sce.grading.dump.block_errors import finite_errors, grade_sized_compiled
from sce.grading.dump.verdict import LEAST_MARGIN_ULPS, QuantityVerdict
from sce.grading.linear.answers import LinearAnswer, LinearInputs
from sce.grading.linear.baseline import LinearBaseline
from sce.grading.linear.profiles import Profile
from sce.grading.linear.report import OutputReport, Report
from sce.grading.linear.stepped_baseline import SteppedBaseline, baseline_for
from sce.loss.linear_cross_entropy import UNIT, reported_loss, stream_gradients
from sce.loss.linear_terms import LinearTerms

#: The gradients' accumulations are at most this many times longer than the reference's bound says.
_BOUND_FACTOR = 3.0


#: The types whose kernels accumulate in float32 and round each output once.
NARROW_TYPES = ("float16", "bfloat16")


@dataclass
class NarrowVerdict(QuantityVerdict):
    """An output graded in a type narrower than float32, which the common kernels accumulate in
    float32 and round once: a correct one is within an ulp or two of the baseline's rounding, so
    the margin beyond 4× the baseline's error is the least one. Eight ulps would pass ∂L/∂C summed
    over chunks in the output's type, which errs a few ulps at every entry."""

    @property
    def margin_ulps(self) -> float:
        return LEAST_MARGIN_ULPS


def quantity_verdict(name: str, dtype: str) -> QuantityVerdict:
    """An output's running verdict: :class:`NarrowVerdict` for float16 and bfloat16."""
    return NarrowVerdict(name) if dtype in NARROW_TYPES else QuantityVerdict(name)


@dataclass
class _Graded:
    """One output's running verdict, with the reference's own bound in its ulps."""

    verdict: QuantityVerdict
    dtype: str
    reference_ulp: float = 0.0


def full_check(
    inputs: LinearInputs,
    answer: LinearAnswer,
    profile: Profile,
    terms: LinearTerms | None = None,
    baseline: LinearBaseline | SteppedBaseline | None = None,
    allowed: Report | None = None,
    stream: Any = None,
) -> tuple[Report, dict[str, Any], LinearBaseline | SteppedBaseline]:
    """Grade every output given; return the report (without a mistake named), the reference's
    per-row results the mistakes are told apart by (each row's loss and lse), and the baseline.

    ``terms`` replaces the inputs' own (a mistake's what-if: the answer graded against what the
    mistake gives); ``baseline``, the same-type baseline where it is known already; ``allowed``,
    a report whose allowances hold (those of the right result, for a what-if: the baseline's
    errors are measured against the right result, never against a mistake's); ``stream``, what
    computes the reference's blocks in place of :func:`stream_gradients` (a cluster's: its arguments)."""
    steps = baseline_for(inputs.e, inputs.c, inputs.b, inputs.terms, profile, answer.types, baseline)
    types = answer.type_names
    graded = {name: _Graded(quantity_verdict(name, types[name]), types[name]) for name in answer.given}
    excused = _skipped(inputs, profile)

    def rows_done(rows: slice, values: np.ndarray, magnitude: np.ndarray) -> None:
        if "grad_hidden" in graded:
            excuse = None if excused is None else np.outer(excused[0][rows], excused[1])
            _grade(graded["grad_hidden"], _given(answer, "grad_hidden")[rows], steps.hidden_rows(rows), values,
                   magnitude, rows.start, excuse)  # fmt: skip

    def classes_done(classes: slice, values: np.ndarray, magnitude: np.ndarray) -> None:
        if "grad_classifier" in graded:
            excuse = None if excused is None else np.broadcast_to(excused[2], values.shape)
            given = _given(answer, "grad_classifier")[classes]
            base = steps.classifier_classes(classes)
            _grade(graded["grad_classifier"], given, base, values, magnitude, classes.start, excuse)

    t = inputs.terms if terms is None else terms
    t = dataclasses.replace(t, operand_share=operand_share(inputs.e.dtype))
    streamed = (stream or stream_gradients)(
        inputs.e, inputs.c, inputs.b, t, rows_done if "grad_hidden" in graded else None,
        classes_done if "grad_classifier" in graded else None,
    )  # fmt: skip
    losses, bound, grad_bias = streamed.losses, streamed.logit_error, streamed.grad_bias
    bias_magnitude = streamed.bias_magnitude
    finished = steps.finished()
    delta = float(bound.max(initial=0.0))
    reference = {"losses": losses, "loss": reported_loss(losses, t), "grad_bias": grad_bias, "lse": streamed.lse}
    if "grad_bias" in graded:
        excuse = None if excused is None else np.full(len(grad_bias), excused[3])
        given_bias = _given(answer, "grad_bias")
        _grade(graded["grad_bias"], given_bias, finished.grad_bias, grad_bias, bias_magnitude, 0, excuse)
    if "loss" in graded:
        _grade_loss(graded["loss"], answer, finished, reference["loss"], losses, inputs, bound, t)
    for name, found in graded.items():
        length = {"grad_hidden": len(inputs.c), "grad_classifier": len(inputs.e), "grad_bias": len(inputs.e)}
        relative = _BOUND_FACTOR * delta + (length.get(name, 1) + 2) * UNIT * 1.01
        found.reference_ulp = 2 * relative / float(np.finfo(np.float64).eps) * _eps_ratio(found.dtype)
    return _report(graded, profile, allowed), reference, steps


def operand_share(given: np.dtype) -> float:
    """float32's ε over the input type's, for inputs narrower than float32 (whose kernels form
    p − y in float32), else 1."""
    if given.itemsize >= 4:
        return 1.0
    return float(np.finfo(np.float32).eps) / (2.0**-7 if given.name == "bfloat16" else 2.0**-10)


def _eps_ratio(dtype: str) -> float:
    """float64's ε over the type's: a relative error in ulps of the type."""
    mantissa = {"float16": 10, "bfloat16": 7, "float32": 23, "float64": 52}[dtype]
    return 2.0 ** (mantissa - 52)


def _grade(
    found: _Graded,
    given: np.ndarray,
    base: np.ndarray,
    expected: np.ndarray,
    magnitude: np.ndarray,
    start: int,
    excuse: np.ndarray | None,
) -> None:
    """One block of one output: the answer's and the baseline's errors, in ulps at the operands' size."""
    if not np.isfinite(magnitude).all():
        # The size is formed in float32: past its range (a z-loss factor of 1e40) it is infinite, and an
        # infinite ulp would make every answer exact. The entry's own size is a finite floor for it.
        with np.errstate(invalid="ignore"):
            magnitude = np.where(np.isinf(magnitude) & np.isfinite(expected), np.abs(expected), magnitude)
    if excuse is None and magnitude.dtype == np.float32:
        compiled = grade_sized_compiled(start, expected, magnitude, np.asarray(given), np.asarray(base), found.dtype)
        if compiled is not None:
            found.verdict.merge(compiled)
            return
    given64 = np.asarray(given, dtype=np.float64)
    if excuse is not None:  # entries a profile may skip: move the answer toward the truth by what they add
        moved = given64 - np.sign(given64 - expected) * excuse
        given64 = np.where(np.abs(given64 - expected) <= excuse, expected, moved)
    magnitude = np.maximum(magnitude, np.abs(expected))
    unit = ulp_unit(magnitude, found.dtype)
    with np.errstate(invalid="ignore"):
        errors = _errors(given64, expected, magnitude, unit, found.dtype)
        base_errors = _errors(np.asarray(base, dtype=np.float64), expected, magnitude, unit, found.dtype)
        zero_errors = np.abs(expected) / unit
    route = finite_errors(base_errors, zero_errors)
    found.verdict.add(errors, route, expected, np.asarray(given, dtype=np.float64), start)


def _errors(given: np.ndarray, expected: np.ndarray, magnitude: np.ndarray, unit: np.ndarray, dtype: str) -> np.ndarray:
    """In ulps; the slower :func:`ulps` only where an entry is not finite."""
    found = ulps_if_finite(given, expected, unit) if np.isfinite(expected).all() else None
    return ulps(given, expected, magnitude, dtype) if found is None else found


def _grade_loss(
    found: _Graded,
    answer: LinearAnswer,
    baseline: LinearBaseline,
    expected: float | np.ndarray,
    losses: np.ndarray,
    inputs: LinearInputs,
    bound: np.ndarray,
    t: LinearTerms,
) -> None:
    """The loss (each row's for 'none'), in ulps at the size of its operands: the loss and the
    logits' own size (‖Eᵢ‖·max‖Cⱼ‖) times the coefficients' sum, as the logits' rounding moves it."""
    logit_size = bound / ((inputs.e.shape[1] + 2) * UNIT * 1.01)
    if inputs.b is not None:
        logit_size = logit_size + float(np.abs(inputs.b).max(initial=0.0))
    row_size = np.abs(losses.sum(axis=1)) + t.total * logit_size
    if t.reduction == "none":
        magnitude = row_size
    else:
        scale = 1.0 if t.reduction == "sum" or not t.denominator else 1.0 / t.denominator
        magnitude = np.asarray(row_size.sum() * scale)
    expected_array = np.atleast_1d(np.asarray(expected, dtype=np.float64))
    _grade(found, np.atleast_1d(_given(answer, "loss")), np.atleast_1d(baseline.loss), expected_array,
           np.atleast_1d(magnitude), 0, None)  # fmt: skip


def _given(answer: LinearAnswer, name: str) -> np.ndarray:
    found = getattr(answer, name)
    assert found is not None
    return np.asarray(found)


def _skipped(inputs: LinearInputs, profile: Profile) -> tuple[Any, ...] | None:
    """What a profile's skipped gradient entries may leave out of each output, where it skips:
    entries with p below ε/32 are each at most ε/32·s·scale, so ∂L/∂E_id misses at most that
    times Σⱼ|C_jd|, ∂L/∂C_vd that times Σᵢ|E_id| (weighted by each row's s·scale), ∂L/∂b_v Σᵢ of it."""
    if not profile.skipped_below:
        return None
    t = inputs.terms
    eps = float(np.finfo(np.float32).eps) if inputs.e.dtype == np.float32 else 2.0**-7
    if inputs.e.dtype == np.float64:
        eps = float(np.finfo(np.float64).eps)
    per_row = profile.skipped_below * eps * (t.total * np.abs(t.ce_scale) + np.abs(t.z_scale) * 100)
    classifier_columns = _absolute_column_sums(inputs.c)
    hidden_columns = _absolute_column_sums(inputs.e, per_row)
    return per_row, classifier_columns, hidden_columns, float(per_row.sum())


def _absolute_column_sums(a: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Σᵢ wᵢ·|a_ij| of each column (w all 1 unless given), in float64, a block of rows at a time."""
    total = np.zeros(a.shape[1])
    step = max(1, (1 << 24) // (8 * max(1, a.shape[1])))
    for start in range(0, len(a), step):
        block = np.abs(np.asarray(a[start : start + step], np.float64))
        total += block.sum(axis=0) if weights is None else weights[start : start + step] @ block
    return total


def _report(graded: dict[str, _Graded], profile: Profile, allowed: Report | None) -> Report:
    fixed = {} if allowed is None else {o.name: o for o in allowed.outputs}
    outputs = {name: _output_report(found, fixed.get(name)) for name, found in graded.items()}
    passed = all(o.passed for o in outputs.values())
    worst = max((o.worst_ulp for o in outputs.values()), default=0.0)
    verdict = "correct" if passed else "not_correct"
    return Report(
        passed, verdict, worst, None, profile.name, "full", outputs.get("loss"), outputs.get("grad_hidden"),
        outputs.get("grad_classifier"), outputs.get("grad_bias"),
    )  # fmt: skip


def _output_report(found: _Graded, fixed: OutputReport | None) -> OutputReport:
    v = found.verdict
    allowed = v.allowed_ulps + found.reference_ulp if fixed is None else fixed.allowed_ulp
    allowed_rms = v.allowed_rms_ulps + found.reference_ulp if fixed is None else fixed.allowed_rms_ulp
    passed = bool(v.counts[-1] == 0 and v.max_ulps <= allowed and v.rms_ulps <= allowed_rms)
    worst = v.worst[0] if v.worst else None
    where: tuple[int, ...] | None = None
    if worst is not None:
        where = (worst.row,) if worst.column is None else (worst.row, worst.column)
        if found.verdict.name == "loss":
            where = (worst.row,) if v.entries > 1 else ()
    return OutputReport(
        found.verdict.name, found.dtype, passed, v.max_ulps, allowed, v.baseline_ulps, v.rms_ulps, allowed_rms,
        where, None if worst is None else worst.expected, None if worst is None else worst.given, found.reference_ulp,
    )  # fmt: skip
