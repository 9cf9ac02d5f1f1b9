"""The quick check's comparisons: each output given against the exact pass, entry by entry on
the sampled rows and through the projections elsewhere, allowed a correct kernel's worst case."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sce.grading.linear.projections import UNIT64, EntryGrade, ProjectionGrade, graded_entries, graded_projections
from sce.grading.linear.quick_pass import BLOCK_BYTES, UNIT_ROUNDOFF, Accumulated, QuickPlan
from sce.loss.vocabulary_shards import Sharding, reduced_sharded_loss


def allowance_units(dtype_name: str, terms: int) -> float:
    """κ: an entry's allowance in units u of its type at its magnitude, for a sum of ``terms`` products.

    2 for rounding G and the result to the type, plus Higham's γ_K = K·u_acc for the
    accumulation, in float32 (float64 for a float64 candidate).
    """
    unit = UNIT_ROUNDOFF[dtype_name]
    accumulation = UNIT_ROUNDOFF["float64"] if dtype_name == "float64" else UNIT_ROUNDOFF["float32"]
    return 2.0 + terms * accumulation / unit


@dataclass(frozen=True)
class Candidates:
    """What a kernel returned, each output None where it was not given; the classifier's and
    the bias's gradients one array per shard."""

    loss: np.ndarray | None
    grad_hidden: np.ndarray | None
    grad_classifier: Sequence[np.ndarray] | None
    grad_bias: Sequence[np.ndarray] | None


@dataclass(frozen=True)
class OutputGrade:
    """One output's quick grade: entries compared whole, and projections of the rest."""

    name: str
    dtype: str
    allowance: float
    """κ, in ulps of the type at the entry's operands' size."""
    entries: EntryGrade
    projections: ProjectionGrade | None

    @property
    def passed(self) -> bool:
        return self.entries.passed and (self.projections is None or self.projections.passed)


def dtype_name(array: object, default: str) -> str:
    """The float type's name of what a kernel returned ('bfloat16' from ml_dtypes or torch)."""
    name = getattr(getattr(array, "dtype", None), "name", None) or default
    name = str(name).removeprefix("torch.")
    return name if name in UNIT_ROUNDOFF else default


def graded_outputs(
    hidden: np.ndarray,
    acc: Accumulated,
    sharding: Sharding,
    plan: QuickPlan,
    candidates: Candidates,
) -> list[OutputGrade]:
    """Each given output's grade from the exact pass."""
    excused = np.concatenate(acc.excused) if acc.excused else np.zeros(hidden.shape[0])
    input_type = dtype_name(hidden, "float32")
    n_rows, width = hidden.shape
    n_classes = sharding.offsets[-1]
    logit_size = np.concatenate(acc.logit_size) if acc.logit_size else np.zeros(0)
    row_slack = 2 * (width + 2) * UNIT64 * 1.01 * logit_size + (n_classes + width + 16) * UNIT64
    # A same-type kernel's logits move its probabilities: 4× what the baseline's do, as the full check allows.
    baseline = 4 * np.concatenate(acc.baseline_error) if acc.baseline_error else np.zeros(0)
    row_slack = row_slack + baseline
    class_slack = float(row_slack.max(initial=0.0)) + (n_rows + width + 16) * UNIT64
    grades = []
    if candidates.loss is not None:
        grades.append(_loss_grade(candidates.loss, acc, sharding, logit_size, input_type))
    if candidates.grad_bias is not None:
        assert acc.grad_bias is not None and acc.grad_bias_magnitude is not None
        given = np.concatenate([np.asarray(b, dtype=np.float64) for b in candidates.grad_bias])
        kind = dtype_name(candidates.grad_bias[0], input_type)
        allowance = allowance_units(kind, n_rows)
        entries = graded_entries(
            given, acc.grad_bias, acc.grad_bias_magnitude, kind, allowance, class_slack, excuse=float(excused.sum())
        )
        grades.append(OutputGrade("grad_bias", kind, allowance, entries, None))
    if candidates.grad_hidden is not None:
        grades.append(_hidden_grade(candidates.grad_hidden, acc, plan, row_slack, excused))
    if candidates.grad_classifier is not None:
        grades.append(_classifier_grade(candidates.grad_classifier, acc, plan, class_slack, n_rows))
    return grades


def _hidden_grade(
    given: np.ndarray, acc: Accumulated, plan: QuickPlan, row_slack: np.ndarray, excused: np.ndarray
) -> OutputGrade:
    assert acc.column_sums is not None
    kind = dtype_name(given, "float32")
    allowance = allowance_units(kind, len(acc.classifier_projected) if acc.classifier_projected is not None else 0)
    exact_rows = np.concatenate(acc.hidden_rows)
    rows_size = np.concatenate(acc.hidden_rows_magnitude)
    sampled = np.asarray(given[plan.hidden_rows], dtype=np.float64)
    entries = graded_entries(
        sampled, exact_rows, rows_size, kind, allowance, row_slack[plan.hidden_rows, None], plan.hidden_rows,
        excuse=np.outer(excused[plan.hidden_rows], acc.column_sums),
    )  # fmt: skip
    projected, size = _projected(given, plan.hidden_vectors)
    projections = graded_projections(
        projected,
        size,
        np.concatenate(acc.hidden_projected),
        np.concatenate(acc.hidden_projected_magnitude),
        dtype_name=kind,
        allowance=allowance,
        slack=row_slack,
        width=given.shape[1],
        excuse=np.outer(excused, acc.column_sums @ np.abs(plan.hidden_vectors)),
        vector_sizes=np.abs(plan.hidden_vectors).sum(axis=0),
    )
    return OutputGrade("grad_hidden", kind, allowance, entries, projections)


def _classifier_grade(
    given: Sequence[np.ndarray], acc: Accumulated, plan: QuickPlan, class_slack: float, n_rows: int
) -> OutputGrade:
    assert acc.classifier_rows is not None and acc.classifier_rows_magnitude is not None
    assert acc.classifier_projected is not None and acc.classifier_projected_magnitude is not None
    kind = dtype_name(given[0], "float32")
    allowance = allowance_units(kind, n_rows)
    offsets = np.cumsum([0, *(len(g) for g in given)])
    shard_of = np.searchsorted(offsets, plan.classifier_rows, side="right") - 1
    sampled = np.stack(
        [np.asarray(given[k][row - offsets[k]], dtype=np.float64) for k, row in zip(shard_of, plan.classifier_rows)]
    ) if len(plan.classifier_rows) else np.zeros((0, acc.classifier_rows.shape[1]))  # fmt: skip
    entries = graded_entries(
        sampled, acc.classifier_rows, acc.classifier_rows_magnitude, kind, allowance, class_slack, plan.classifier_rows,
        excuse=0.0 if acc.excused_hidden is None else acc.excused_hidden,
    )  # fmt: skip
    parts = [_projected(g, plan.classifier_vectors) for g in given]
    projections = graded_projections(
        np.concatenate([p for p, _ in parts]),
        np.concatenate([s for _, s in parts]),
        acc.classifier_projected,
        acc.classifier_projected_magnitude,
        dtype_name=kind,
        allowance=allowance,
        slack=np.full(len(acc.classifier_projected), class_slack),
        width=given[0].shape[1],
        excuse=_projected_excuse(acc.excused_hidden, plan.classifier_vectors),
        vector_sizes=np.abs(plan.classifier_vectors).sum(axis=0),
    )
    return OutputGrade("grad_classifier", kind, allowance, entries, projections)


def _projected_excuse(excused_hidden: np.ndarray | None, vectors: np.ndarray) -> np.ndarray | float:
    """What skipped terms may move each projection of a row of ∂L/∂C: Σ_d excused_d·|s_d| (k values)."""
    return 0.0 if excused_hidden is None else excused_hidden @ np.abs(vectors)


def _projected(given: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(given·r, |given|·|r|) in float64, a block of rows at a time."""
    step = max(1, BLOCK_BYTES // (8 * max(given.shape[1], 1)))
    projected, size = [], []
    for start in range(0, len(given), step):
        block = np.asarray(given[start : start + step], dtype=np.float64)
        projected.append(block @ vectors)
        size.append(np.abs(block) @ np.abs(vectors))
    if not projected:
        return np.zeros((0, vectors.shape[1])), np.zeros((0, vectors.shape[1]))
    return np.concatenate(projected), np.concatenate(size)


def _loss_grade(
    given: np.ndarray, acc: Accumulated, sharding: Sharding, logit_size: np.ndarray, input_type: str
) -> OutputGrade:
    """The loss, exact, against what a correct kernel's float32 logits and sums may be off by."""
    cross, z_part, lse = np.concatenate(acc.cross), np.concatenate(acc.z_part), np.concatenate(acc.lse)
    exact = reduced_sharded_loss(cross, z_part, sharding)
    extra, share = sharding.loss.smoothed_mass()
    mass = np.where(sharding.counted, extra * sharding.label_weights + share * float(sharding.weights.sum()), 0.0)
    size = np.abs(cross) + np.abs(z_part) + 2 * mass * (np.abs(lse) + logit_size)
    kind = dtype_name(given, input_type)
    width_terms = sharding.offsets[-1] + len(acc.column_maxima if acc.column_maxima is not None else ())
    allowance = allowance_units(kind, width_terms)
    # A same-type kernel's logits move its loss: 4× what the baseline's do, as the full check allows.
    moved = 4 * np.concatenate(acc.baseline_loss_error) if acc.baseline_loss_error else np.zeros(len(cross))
    if sharding.reduction != "none":
        w_total, n_total = sharding.denominators
        denominator = max(min(w_total, n_total), np.finfo(np.float64).tiny)
        size = np.array(math.fsum(size.tolist()) / denominator)
        moved = np.array(math.fsum(moved.tolist()) / denominator) + _row_sum_rounding(cross, z_part, kind) / denominator
    entries = graded_entries(
        np.asarray(given, dtype=np.float64), np.asarray(exact), size, kind, allowance, 4 * UNIT64 * len(cross),
        excuse=moved,
    )
    return OutputGrade("loss", kind, allowance, entries, None)


def _row_sum_rounding(cross: np.ndarray, z_part: np.ndarray, kind: str) -> float:
    """What summing the rows' losses one after another may take, as a correct kernel's loop does
    (total += ℓᵢ in float32, float64 for a float64 loss): Higham's bound (N − 1)·u·Σ|ℓᵢ|."""
    unit = UNIT_ROUNDOFF["float64"] if kind == "float64" else UNIT_ROUNDOFF["float32"]
    return max(len(cross) - 1, 0) * unit * math.fsum(np.abs(cross + z_part).tolist())
