"""The full check of a fused linear cross-entropy: every entry of every output given, against
the exact blocked reference, allowed what the same-type baseline errs under the profile."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from sce.grading.dump.baseline import ulp_unit, ulps, ulps_if_finite
from sce.grading.dump.block_errors import finite_errors, grade_sized_compiled
from sce.grading.dump.verdict import LEAST_MARGIN_ULPS, QuantityVerdict
from sce.grading.linear.answers import LinearAnswer, LinearInputs
from sce.grading.linear.baseline import LinearBaseline
from sce.grading.linear.exact_entries import EntryStore, Settled, bound_decides, settle, summary
from sce.grading.linear.profiles import Profile
from sce.grading.linear.quick_grades import allowance_units
from sce.grading.linear.report import OutputReport, Report
from sce.grading.linear.skipped import skipped_excuses
from sce.grading.linear.stepped_baseline import SteppedBaseline, baseline_for
from sce.loss.kept_logits import KeptLogits
from sce.loss.linear_cross_entropy import UNIT, logit_error_bound, stream_gradients
from sce.loss.linear_terms import LinearTerms, reported_loss

#: The gradients' accumulations are at most this many times longer than the reference's bound says.
_BOUND_FACTOR = 3.0


#: The types whose kernels accumulate in float32 and round each output once.
NARROW_TYPES = ("float16", "bfloat16")


@dataclass
class FlooredVerdict(QuantityVerdict):
    """An output's running verdict, allowed at least ``floor_ulps`` however little the baseline
    errs: 0 but under the ``loop`` profile, where it is one running sum's worst case."""

    floor_ulps: float = 0.0

    @property
    def allowed_ulps(self) -> float:
        return max(super().allowed_ulps, self.floor_ulps)

    @property
    def allowed_rms_ulps(self) -> float:
        return max(super().allowed_rms_ulps, self.floor_ulps)


@dataclass
class NarrowVerdict(FlooredVerdict):
    """An output graded in a type narrower than float32, which the common kernels accumulate in
    float32 and round once: a correct one is within an ulp or two of the baseline's rounding, so
    the margin beyond 4× the baseline's error is the least one. Eight ulps would pass ∂L/∂C summed
    over chunks in the output's type, which errs a few ulps at every entry."""

    @property
    def margin_ulps(self) -> float:
        return LEAST_MARGIN_ULPS


def quantity_verdict(name: str, dtype: str, floor_ulps: float = 0.0) -> QuantityVerdict:
    """An output's running verdict: :class:`NarrowVerdict` for float16 and bfloat16, else a
    :class:`FlooredVerdict`; either allowed at least ``floor_ulps``."""
    kind = NarrowVerdict if dtype in NARROW_TYPES else FlooredVerdict
    return kind(name, floor_ulps=floor_ulps)


def running_sum_ulps(name: str, dtype: str, inputs: LinearInputs) -> float:
    """The worst case of one running sum over an output's K terms, in ulps of its type at its
    operands' size (error ≤ κ·u·size < κ ulps): K = V for ∂L/∂E, N for ∂L/∂C and ∂L/∂b, V + D
    for the loss, as quick mode allows."""
    n, d = inputs.e.shape
    terms = {"grad_hidden": len(inputs.c), "grad_classifier": n, "grad_bias": n}.get(name, len(inputs.c) + d)
    return allowance_units(dtype, terms)


@dataclass
class _Graded:
    """One output's running verdict, with the reference's own bound in its ulps."""

    verdict: QuantityVerdict
    dtype: str
    reference_ulp: float = 0.0
    store: EntryStore | None = None
    """The entries that could lie within the reference's bound of deciding (the right result's check only)."""
    settled: Settled | None = None


def full_check(
    inputs: LinearInputs,
    answer: LinearAnswer,
    profile: Profile,
    terms: LinearTerms | None = None,
    baseline: LinearBaseline | SteppedBaseline | None = None,
    allowed: Report | None = None,
    collect: bool = False,
    stream: Any = None,
) -> tuple[Report, dict[str, Any], LinearBaseline | SteppedBaseline]:
    """Grade every output given; return the report (without a mistake named), the reference's
    per-row results the mistakes are told apart by (each row's loss and lse), and the baseline.

    ``terms`` replaces the inputs' own (a mistake's what-if: the answer graded against what the
    mistake gives); ``baseline``, the same-type baseline where it is known already; ``allowed``,
    a report whose allowances hold (those of the right result, for a what-if: the baseline's
    errors are measured against the right result, never against a mistake's). ``collect`` keeps,
    for every output, the entries its reference's bound may not decide (see :mod:`.exact_entries`);
    ``stream``, what computes the reference's blocks in place of :func:`stream_gradients` (a
    cluster's: its arguments)."""
    steps = baseline_for(inputs.e, inputs.c, inputs.b, inputs.terms, profile, answer.types, baseline)
    types = answer.type_names
    floors = {name: running_sum_ulps(name, types[name], inputs) if profile.running_sums else 0.0 for name in types}
    graded = {
        name: _Graded(quantity_verdict(name, types[name], floors[name]), types[name]) for name in answer.given
    }
    excused = skipped_excuses(inputs, profile)
    # Entries are kept during the pass where the band is wide (a float64 answer's: hundreds of ulps
    # or more) or in a second pass; a narrow band (~10⁻⁴ ulp) is read after the pass from the
    # reference's own bound, and keeps nothing unless it leaves a verdict open.
    early = terms is None and (collect or "float64" in types.values())
    kept = kept_logits(steps, stream)
    kept_error = 0.0 if kept is None else kept.error
    _set_bands(graded, inputs, logit_error_bound(inputs.e, inputs.c) + kept_error if early else None, collect)

    def rows_done(rows: slice, values: np.ndarray, magnitude: np.ndarray) -> None:
        if "grad_hidden" in graded:
            excuse = None if excused is None else excused.of_rows(rows)
            block = GradedBlock(_given(answer, "grad_hidden")[rows], steps.hidden_rows(rows), values, magnitude,
                                rows.start, excuse)  # fmt: skip
            _grade(graded["grad_hidden"], block)

    def classes_done(classes: slice, values: np.ndarray, magnitude: np.ndarray) -> None:
        if "grad_classifier" in graded:
            excuse = None if excused is None else excused.of_classes(classes, values.shape)
            given = _given(answer, "grad_classifier")[classes]
            base = steps.classifier_classes(classes)
            _grade(graded["grad_classifier"], GradedBlock(given, base, values, magnitude, classes.start, excuse))

    t = inputs.terms if terms is None else terms
    t = dataclasses.replace(t, operand_share=operand_share(inputs.e.dtype))
    wanted = (rows_done if "grad_hidden" in graded else None, classes_done if "grad_classifier" in graded else None)
    streamed = (stream or partial(stream_gradients, kept=kept))(inputs.e, inputs.c, inputs.b, t, *wanted)
    losses, bound, grad_bias = streamed.losses, streamed.logit_error, streamed.grad_bias
    _set_bands(graded, inputs, None if early else bound, collect, keep=False)
    bias_magnitude = streamed.bias_magnitude
    finished = steps.finished()
    reference = {"losses": losses, "loss": reported_loss(losses, t), "grad_bias": grad_bias, "lse": streamed.lse}
    if "grad_bias" in graded:
        excuse = None if excused is None else excused.bias
        given_bias = _given(answer, "grad_bias")
        _grade(graded["grad_bias"], GradedBlock(given_bias, finished.grad_bias, grad_bias, bias_magnitude, 0, excuse))
    if "loss" in graded:
        # The loss's size is the logits' (their float64 products' bound), whatever the kept logits add to it.
        products = np.maximum(bound - kept_error, 0.0)
        _grade_loss(graded["loss"], answer, finished, reference["loss"], losses, inputs, products, t)
    if terms is not None:
        return _report(graded, profile, allowed), reference, steps
    if not collect and any(f.store is None and not decided_by_bound(f) for f in graded.values()):
        # A narrow band left a verdict open: the entries it needs are kept in a second pass.
        return full_check(inputs, answer, profile, None, steps, allowed, collect=True, stream=stream)
    # The right result's check: entries the bound cannot decide are recomputed exactly.
    stores = {name: (found.verdict, found.store, found.reference_ulp) for name, found in graded.items()}
    settled = settle(stores, inputs)
    for name, found in settled.items():
        graded[name].settled = found
    return _report(graded, profile, allowed, summary(settled)), reference, steps


def kept_logits(steps: LinearBaseline | SteppedBaseline, stream: Any) -> KeptLogits | None:
    """Where the reference's first pass keeps its logits: the stepped baseline's store (float32
    work, so no answer is float64, whose ulps the kept logits' 10⁻¹¹ would not leave decided), on
    this machine."""
    return steps.logits if stream is None and isinstance(steps, SteppedBaseline) else None


def decided_by_bound(found: _Graded) -> bool:
    return bound_decides(found.verdict, found.reference_ulp) is not None


def _set_bands(
    graded: dict[str, _Graded], inputs: LinearInputs, bound: np.ndarray | None, collect: bool, keep: bool = True
) -> None:
    """Each output's reference bound in its ulps (from each row's logits' ``bound``, None for not
    yet, and the gradient's own sums), and where ``keep``, a store for the entries that bound may
    not decide."""
    if bound is None:
        return
    delta = float(bound.max(initial=0.0))
    for name, found in graded.items():
        length = {"grad_hidden": len(inputs.c), "grad_classifier": len(inputs.e), "grad_bias": len(inputs.e)}
        relative = _BOUND_FACTOR * delta + (length.get(name, 1) + 2) * UNIT * 1.01
        found.reference_ulp = 2 * relative / float(np.finfo(np.float64).eps) * _eps_ratio(found.dtype)
        found.store = EntryStore(found.reference_ulp) if keep else None


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


@dataclass(frozen=True)
class GradedBlock:
    """One block of one output to grade: the answer's, the baseline's and the reference's entries,
    the operands' size, the block's first index, and what a profile excuses at each entry."""

    given: np.ndarray
    base: np.ndarray
    expected: np.ndarray
    magnitude: np.ndarray
    start: int = 0
    excuse: np.ndarray | None = None


def _grade(found: _Graded, block: GradedBlock) -> None:
    """One block of one output: the answer's and the baseline's errors, in ulps at the operands' size."""
    given, base, expected, magnitude = block.given, block.base, block.expected, block.magnitude
    start, excuse = block.start, block.excuse
    if not np.isfinite(magnitude).all():
        # The size is formed in float32: past its range (a z-loss factor of 1e40) it is infinite, and an
        # infinite ulp would make every answer exact. The entry's own size is a finite floor for it.
        with np.errstate(invalid="ignore"):
            magnitude = np.where(np.isinf(magnitude) & np.isfinite(expected), np.abs(expected), magnitude)
    if excuse is None and magnitude.dtype == np.float32:
        compiled = grade_sized_compiled(start, expected, magnitude, np.asarray(given), np.asarray(base), found.dtype)
        if compiled is not None:
            found.verdict.merge(compiled)
            if found.store is not None and found.store.wants(found.verdict, compiled.max_ulps, compiled.baseline_ulps):
                _keep(found, dataclasses.replace(block, magnitude=np.maximum(magnitude, np.abs(expected))))
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
    if found.store is not None and found.store.wants(found.verdict, math.inf, route.worst):
        _keep(found, dataclasses.replace(block, magnitude=magnitude), (unit, errors, base_errors))


def _keep(
    found: _Graded, block: GradedBlock, measured: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
) -> None:
    """A block's entries that could lie in the band, to its output's store (their errors measured
    here where the compiled loop graded the block)."""
    assert found.store is not None
    given, base, expected, magnitude = block.given, block.base, block.expected, block.magnitude
    if measured is None:
        unit = ulp_unit(magnitude, found.dtype)
        with np.errstate(invalid="ignore"):
            errors = _errors(np.asarray(given, dtype=np.float64), expected, magnitude, unit, found.dtype)
            base_errors = _errors(np.asarray(base, dtype=np.float64), expected, magnitude, unit, found.dtype)
        measured = (unit, errors, base_errors)
    unit, errors, base_errors = measured
    stored = {"given": given, "base": base, "expected": expected, "unit": unit, "start": block.start,
              "excuse": 0.0 if block.excuse is None else block.excuse}  # fmt: skip
    found.store.offer(found.verdict, errors, base_errors, stored)



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
    logits' own size (‖Eᵢ‖·max‖Cⱼ‖, from their products' ``bound``) times the coefficients' sum, as
    the logits' rounding moves it."""
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
    block = GradedBlock(np.atleast_1d(_given(answer, "loss")), np.atleast_1d(baseline.loss), expected_array,
                        np.atleast_1d(magnitude))  # fmt: skip
    _grade(found, block)


def _given(answer: LinearAnswer, name: str) -> np.ndarray:
    found = getattr(answer, name)
    assert found is not None
    return np.asarray(found)


def _report(
    graded: dict[str, _Graded], profile: Profile, allowed: Report | None, exact: dict[str, Any] | None = None
) -> Report:
    fixed = {} if allowed is None else {o.name: o for o in allowed.outputs}
    outputs = {name: _output_report(found, fixed.get(name)) for name, found in graded.items()}
    passed = all(o.passed for o in outputs.values())
    worst = max((o.worst_ulp for o in outputs.values()), default=0.0)
    verdict = "correct" if passed else "not_correct"
    return Report(
        passed, verdict, worst, None, profile.name, "full", outputs.get("loss"), outputs.get("grad_hidden"),
        outputs.get("grad_classifier"), outputs.get("grad_bias"), exact=exact,
    )  # fmt: skip


def _output_report(found: _Graded, fixed: OutputReport | None) -> OutputReport:
    v, settled = found.verdict, found.settled
    if settled is not None:
        return _settled_report(found, settled)
    allowed = v.allowed_ulps + found.reference_ulp if fixed is None else _fixed(fixed, found).allowed_ulp
    allowed_rms = v.allowed_rms_ulps + found.reference_ulp if fixed is None else _fixed(fixed, found).allowed_rms_ulp
    passed = bool(v.counts[-1] == 0 and v.max_ulps <= allowed and v.rms_ulps <= allowed_rms)
    worst = v.worst[0] if v.worst else None
    where = _place(found, worst.row, worst.column) if worst is not None else None
    return OutputReport(
        found.verdict.name, found.dtype, passed, v.max_ulps, allowed, v.baseline_ulps, v.rms_ulps, allowed_rms,
        where, None if worst is None else worst.expected, None if worst is None else worst.given, found.reference_ulp,
    )  # fmt: skip


def _fixed(fixed: OutputReport, found: _Graded) -> OutputReport:
    """A right result's allowances for a what-if, the reference's bound added back where the right
    result's were settled without it: a mistake's float64 result is only as exact as that bound."""
    allowed, allowed_rms = fixed.against_reference
    return dataclasses.replace(fixed, allowed_ulp=allowed, allowed_rms_ulp=allowed_rms)


def _place(found: _Graded, row: int, column: int | None) -> tuple[int, ...]:
    if found.verdict.name == "loss":
        return (row,) if found.verdict.entries > 1 else ()
    return (row,) if column is None or column < 0 else (row, column)


def _settled_report(found: _Graded, settled: Settled) -> OutputReport:
    """An output whose verdict is settled: by the bound, or with entries recomputed exactly."""
    v = found.verdict
    worst = v.worst[0] if v.worst else None
    where, expected, given = (None, None, None) if worst is None else (worst.row, worst.expected, worst.given)
    column = None if worst is None else worst.column
    if settled.worst_entry is not None:
        (where, *rest), expected, given = settled.worst_entry
        column = rest[0] if rest else None
    return OutputReport(
        v.name, found.dtype, settled.passed, settled.worst_ulp, settled.allowed_ulp, settled.baseline_ulp,
        settled.rms_ulp, settled.allowed_rms_ulp, None if where is None else _place(found, where, column),
        expected, given, found.reference_ulp, settled.decided_by, settled.recomputed,
    )  # fmt: skip
