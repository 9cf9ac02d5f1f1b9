"""Grading a function that returns the derivation's intermediates: each stage compared as a
``cmp`` does (exact, close, the largest difference, the shape), by the names of ``sce check --stage``.

A stage is judged close when it is within the allowance a straightforward computation of it in the
answer's float type needs (the same rule as the loss and the gradient). ``dL_ds`` and ``ds_dz`` are
each row's own (−y/s and diag(s) − s sᵀ, times the temperature's and the cap's factor); ``loss`` and
``grad`` are the function's, reduced as configured.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sce.errors import option
from sce.grading import catalogue
from sce.grading.catalogue import Mistake
from sce.grading.implementations import mistaken_variants
from sce.grading.implementations.cases import Case
from sce.grading.implementations.evidence import case_evidence
from sce.grading.implementations.grade import (
    Mismatch,
    allowance,
    compare_answers,
    exact_answer,
    in_place_mistake,
    judged_dtype,
    precision_thrown_away,
    straightforward_answer,
)
from sce.grading.implementations.loading import UnusableImplementation
from sce.grading.implementations.mistaken_variants import Exact
from sce.grading.implementations.report import CaseResult, Configuration
from sce.grading.implementations.runner import CaseOutcome
from sce.grading.implementations.stage_comparison import StageComparison, squeezed
from sce.grading.stages import STAGES, undefined_stage

KNOWN = ", ".join(STAGES)


def expected_shapes(case: Case, batch: bool, reduction: str) -> dict[str, tuple[int, ...]]:
    """Each stage's shape for one call: the batch's N×K…, or one row's."""
    n, k = case.rows, case.classes
    if not batch:
        return {s: (k, k) if s == "ds_dz" else () if s in ("sum_exp", "loss") else (k,) for s in STAGES}
    shapes = {s: (n, k) for s in STAGES}
    return shapes | {"sum_exp": (n,), "ds_dz": (n, k, k), "loss": (n,) if reduction == "none" else ()}


def given_stages(answers: list[dict[str, Any]], options_undefined: dict[str, str]) -> list[dict[str, dict[str, Any]]]:
    """Each call's dict of stages; raises Mismatch for what is not one, an unknown name or an undefined stage."""
    calls = []
    for answer in answers:
        if answer["kind"] != "stages":
            found = "a tuple" if answer["kind"] == "pair" else _found(answer)
            raise Mismatch(
                f"expected a dict of stages (any of {KNOWN}); found {found} "
                f"(if it returns (loss, grad), use {option('returns', 'loss,grad')})"
            )
        items: dict[str, dict[str, Any]] = answer["items"]
        unknown = [name for name in items if name not in STAGES]
        if unknown:
            raise Mismatch(f"unknown stage {unknown[0]!r} in the dict returned; the stages are {KNOWN}")
        if not items:
            raise Mismatch(f"the dict returned has no stage; return at least one of {KNOWN}")
        for name in items:
            if name in options_undefined:
                raise Mismatch(f"the stage {name} is not one of this loss: {options_undefined[name]}")
        calls.append(items)
    if any(set(items) != set(calls[0]) for items in calls):
        raise Mismatch("each call should return the same stages")
    return calls


def _found(item: dict[str, Any]) -> str:
    if item["kind"] == "array":
        shape = item["array"].shape
        return "a number" if shape == () else f"an array of shape {shape}"
    if item["kind"] == "too_large":
        return f"an array of shape {tuple(item['shape'])}"
    found = str(item["type"])
    if found == "bfloat16 values":  # judged nowhere in sce test: dump the arrays for sce check --arrays
        return "bfloat16 values (grade them dumped, with sce check --arrays)"
    return found if found.startswith(("a ", "an ")) or found == "None" else f"a {found}"


def exact_stage(exact: Exact, stage: str) -> np.ndarray:
    """One stage of every row, float64, in the batch convention's shape (stacked rows for a row function);
    only the stages asked for are computed: the Jacobians are N×K×K."""
    if stage in ("loss", "grad"):
        return (exact.loss if stage == "loss" else exact.gradient).astype(np.float64)
    result = exact.result
    assert result is not None
    rows = result.as_rows
    if stage == "shifted":
        return rows.shifted_logits.astype(np.float64)
    if stage == "exp":
        return rows.exp_shifted.astype(np.float64)
    if stage == "sum_exp":
        return np.asarray(rows.exp_sum, dtype=np.float64).reshape(-1)
    p = rows.probabilities.astype(np.float64)
    found = _from_probabilities(stage, p, rows.target.astype(np.float64), _factor(exact))
    if stage == "ds_dz":
        # s_j(1 − s_j) with 1 − s_j as Σ_{k≠j} e^(b_k − m) / Σ e: on a confident row 1 − s_j rounds to 0.
        exps = rows.exp_shifted.astype(np.float64)
        eye = np.eye(p.shape[1], dtype=bool)
        with np.errstate(all="ignore"):
            others = np.where(eye[None], 0.0, exps[:, None, :]).sum(axis=2) / exps.sum(axis=1, keepdims=True)
            diagonal = p * others * _factor(exact)
        found[:, eye] = diagonal
    return found


def _factor(exact: Exact) -> np.ndarray:
    """∂b/∂z for the softmax's input b = a(z)/T: the cap's derivative over the temperature (N×K)."""
    assert exact.result is not None
    with np.errstate(all="ignore"):
        return exact.result.as_rows.cap_derivative.astype(np.float64) / exact.options.temperature


def _from_probabilities(stage: str, p: np.ndarray, target: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """probs, dL_ds = −y/s (0 where y is 0) or ds_dz = (diag(s) − s sᵀ) · ∂b/∂z, in p's type."""
    with np.errstate(all="ignore"):
        if stage == "probs":
            return p
        if stage == "dL_ds":
            return np.where(target > 0, -target / p, p.dtype.type(0))
        eye = np.eye(p.shape[1], dtype=p.dtype)
        return (p[:, :, None] * eye[None] - p[:, :, None] * p[:, None, :]) * factor.astype(p.dtype)[:, None, :]


def straightforward_stage(exact: Exact, stage: str, dtype: np.dtype) -> np.ndarray:
    """The stage as a straightforward implementation computes it in ``dtype`` from the logits: the cap
    c·tanh(z/c) and its factor 1/cosh²(z/c), the temperature, the max shift (a half type in float32 from the
    logits rounded to it, rounded at the end, as frameworks compute half types)."""
    if stage in ("loss", "grad"):
        return straightforward_answer(exact, dtype)["loss" if stage == "loss" else "gradient"]
    assert exact.result is not None
    rows = exact.result.as_rows
    options = exact.options
    work = np.dtype(np.float32) if dtype.itemsize == 2 else dtype
    with np.errstate(all="ignore"):
        z = exact.logits.reshape(rows.probabilities.shape).astype(dtype).astype(work)
        b, factor = z, np.ones_like(z)
        if options.softcap is not None:
            cap = work.type(options.softcap)
            b = cap * np.tanh(z / cap)
            factor = work.type(1) / np.square(np.cosh(z / cap))
        b = b / work.type(options.temperature)
        factor = factor / work.type(options.temperature)
        shifted = b - b.max(axis=1, keepdims=True)
        exps = np.exp(shifted)
        sums = exps.sum(axis=1)
        plain = {"shifted": shifted, "exp": exps, "sum_exp": sums}
        if stage in plain:
            return plain[stage].astype(dtype)
        p = exps / sums[:, None]
        return _from_probabilities(stage, p, rows.target.astype(work), factor).astype(dtype)


def compare_stage(stage: str, given: np.ndarray, right: np.ndarray, exact: Exact, case: Case) -> StageComparison:
    """Exact, close (within the allowance), the largest difference, for one stage of matching shape."""
    given = given.reshape(right.shape)
    with np.errstate(all="ignore"):
        values = given.astype(np.float64)
        same = bool(np.all((values == right) | (np.isnan(values) & np.isnan(right))))
    if stage in ("loss", "grad"):
        # Judged exactly as --returns loss,grad judges them: the same allowance, the same named mistakes.
        judged = compare_answers(case, {"loss" if stage == "loss" else "gradient": given}, exact, None)
        ratio = judged.error_ratio
        close = ratio is not None and ratio <= 1
        per_cap_factor = stage == "grad" and exact.cap_factor is not None
        return StageComparison(
            stage, given.shape, right.shape, same, close, judged.max_error, judged.allowance,
            mistakes=judged.candidates, per_cap_factor=per_cap_factor,
        )  # fmt: skip
    dtype = judged_dtype(case, given)
    baseline = straightforward_stage(exact, stage, dtype).reshape(right.shape)
    allowed = allowance(right, baseline, dtype, 0.0)
    with np.errstate(all="ignore"):
        difference = np.where(values == right, 0.0, np.abs(values - right))
    largest = float(np.max(difference)) if difference.size else 0.0
    if difference.size and np.any(np.isnan(difference)):
        largest = float("nan")
    return StageComparison(stage, given.shape, right.shape, same, bool(largest <= allowed), largest, allowed)


def grade_stage_case(case: Case, outcome: CaseOutcome, configuration: Configuration, first: bool) -> CaseResult:
    """Compare each stage returned with sce's exact one. On the first case an answer that is not a dict of
    known stages means the function is not the one configured: UnusableImplementation."""
    changed = in_place_mistake(outcome)
    inputs = case_evidence(case, {}, {})
    if outcome.error is not None:
        return CaseResult(case.name, False, None, None, changed, outcome.error, evidence=inputs)
    undefined = {s: why for s in STAGES if (why := undefined_stage(s, configuration.loss)) is not None}
    try:
        calls = given_stages(outcome.answers, undefined)
    except Mismatch as problem:
        if first:
            raise UnusableImplementation(f"{problem}, for {case.name}") from None
        return CaseResult(case.name, False, None, None, changed, str(problem), evidence=inputs)
    exact = exact_answer(case, configuration)
    batch = configuration.convention == "batch"
    shapes = expected_shapes(case, batch, configuration.reduction)
    compared = [
        _compared(stage, [call[stage] for call in calls], shapes[stage], exact_stage(exact, stage), exact, case)
        for stage in STAGES
        if stage in calls[0]
    ]
    first_wrong = next((c for c in compared if _ratio(c) > 1), None)
    named = first_wrong.mistakes if first_wrong is not None else ()
    ratios = [(_ratio(c), c) for c in compared]
    ratio, worst = max(ratios, key=lambda pair: pair[0])
    given = {
        f"{stage} {i}": item["array"]
        for i, call in enumerate(calls)
        for stage, item in call.items()
        if item["kind"] == "array"
    }
    narrowed = precision_thrown_away(case, given)
    passed = ratio <= 1 and changed is None and narrowed is None
    notes = ([narrowed] if narrowed else []) + [_failure(c) for c in compared if _ratio(c) > 1]
    if changed is not None and passed is False and not notes:
        notes.append("right answer, but the function wrote into its input")
    non_finite = any(c.max_difference is not None and not np.isfinite(c.max_difference) for c in compared)
    return CaseResult(
        case.name,
        passed,
        worst.max_difference,
        worst.allowance,
        named[0] if named else changed,
        "; ".join(notes),
        named,
        non_finite=non_finite,
        evidence=None if passed else inputs,
        stages=tuple(compared),
    )


def _compared(
    stage: str, items: list[dict[str, Any]], shape: tuple[int, ...], right: np.ndarray, exact: Exact, case: Case
) -> StageComparison:
    """One stage over the calls (one call, or one per row): its shape checked, then its numbers."""
    item = next((item for item in items if item["kind"] != "array"), None)
    if item is not None:
        return StageComparison(stage, None, shape, found=_found(item))
    arrays = [item["array"] for item in items]
    given_shape = tuple(arrays[0].shape)
    unfit = StageComparison(stage, given_shape, shape)
    if any(squeezed(tuple(a.shape)) != squeezed(shape) for a in arrays) or not unfit.shape_ok:
        bad = next((tuple(a.shape) for a in arrays if squeezed(tuple(a.shape)) != squeezed(shape)), given_shape)
        return StageComparison(stage, bad, shape)
    given = np.stack([a.reshape(shape) for a in arrays]) if len(arrays) > 1 or shape != right.shape else arrays[0]
    compared = compare_stage(stage, given, right, exact, case)
    mistakes = compared.mistakes
    if not compared.close and compared.allowance is not None and stage not in ("loss", "grad"):
        mistakes = tuple(stage_mistakes(stage, given.reshape(right.shape), right, exact, compared.allowance))
    return dataclasses.replace(compared, shape=given_shape, expected_shape=shape, mistakes=mistakes)


def stage_mistakes(stage: str, given: np.ndarray, right: np.ndarray, exact: Exact, allowed: float) -> list[Mistake]:
    """The known mistakes that give a stage's numbers, as ``sce check --stage`` names them (the loss's and
    the gradient's are named by :func:`compare_stage`, as for ``--returns loss,grad``)."""
    with np.errstate(all="ignore"):
        variants = _stage_variants(stage, right, exact)
        scale = float(np.max(np.abs(right[np.isfinite(right)]), initial=0.0))

        def tolerance(variant: np.ndarray) -> float:
            # A mistaken variant is as hard to compute as the right answer, relative to its size.
            size = float(np.max(np.abs(variant))) if variant.size else 0.0
            return 2.0 * allowed * max(1.0, size / scale if scale > 0 else 1.0)

        return mistaken_variants.match(given, right, variants, tolerance)


def _stage_variants(stage: str, right: np.ndarray, exact: Exact) -> list[tuple[Mistake, np.ndarray]]:
    if stage == "shifted":
        return [(catalogue.SHIFT_REVERSED, -right)]
    if stage == "dL_ds":
        per_row = exact.gradient * exact.divisor if exact.batch else exact.gradient
        return [(catalogue.DL_DS_SIGN_DROPPED, -right), (catalogue.DL_DZ_FOR_DL_DS, per_row.astype(np.float64))]
    if stage == "ds_dz":  # s_k(1 − s_k) on the diagonal, the off-diagonal −s_j·s_k left out
        eye = np.eye(right.shape[-1], dtype=bool)
        return [(catalogue.JACOBIAN_DIAGONAL, np.where(eye, right, 0.0))]
    if stage in ("exp", "sum_exp"):
        assert exact.result is not None
        unshifted = np.exp(exact.result.as_rows.scaled_logits.astype(np.float64))
        return [(catalogue.EXP_NOT_SHIFTED, unshifted if stage == "exp" else unshifted.sum(axis=1))]
    return []


def _ratio(compared: StageComparison) -> float:
    if not compared.shape_ok or compared.max_difference is None or compared.allowance is None:
        return float("inf")
    if np.isnan(compared.max_difference):
        return float("inf")
    return compared.max_difference / compared.allowance if compared.allowance > 0 else float("inf")


def _failure(compared: StageComparison) -> str:
    """What is wrong with one stage, in a few words."""
    wanted = "a number" if compared.expected_shape == () else f"shape {compared.expected_shape}"
    if compared.shape is None:
        return f"{compared.stage}: {compared.found}, expected {wanted}"
    if not compared.shape_ok:
        per_row = compared.stage == "loss" and compared.expected_shape == () and len(compared.shape) == 1
        hint = f" (a loss per row? use {option('reduction', 'none')})" if per_row else ""
        return f"{compared.stage}: shape {compared.shape}, expected {wanted}{hint}"
    if compared.max_difference is not None and np.isnan(compared.max_difference):
        return f"{compared.stage}: NaN entries"
    unit = " per unit of the cap's factor 1 − tanh²(z/c)" if compared.per_cap_factor else ""
    return f"{compared.stage}: off by {compared.max_difference:.3g}{unit} (allowed {compared.allowance:.2g})"


__all__ = [
    "KNOWN",
    "compare_stage",
    "exact_stage",
    "expected_shapes",
    "given_stages",
    "grade_stage_case",
    "straightforward_stage",
]
