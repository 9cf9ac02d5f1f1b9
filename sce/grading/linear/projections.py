"""Grading an output of a fused linear cross-entropy against exact values that carry their size:
entry by entry (in ulps at the operands' size) or through random projections (Freivalds).

Both compare |candidate - exact| with κ ulps of the candidate's type at the size of the
operands of the exact sum (Σ |g|·|y| over its terms), plus the float64 reference's own
rounding; κ is the worst case of a correct kernel (:func:`sce.grading.linear.quick.allowance_units`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sce.grading.dump.baseline import ulp_unit, ulps

UNIT64 = 2.0**-53
_UNIT = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


@dataclass(frozen=True)
class EntryGrade:
    """Entries compared whole: their worst error in ulps and where it is."""

    passed: bool
    worst_ulp: float
    """The error of the entry farthest beyond (or nearest to) its own allowance."""
    allowed_ulp: float
    """That entry's allowance: the allowance given, plus the reference's rounding and the baseline's share."""
    worst_entry: tuple[int, ...] | None
    """The index of the worst entry (into the whole output), None when there is none."""
    checked: int
    allowed: np.ndarray | None = None
    """Each compared entry's allowance in ulps (what a mistake's what-if is allowed on the same entries)."""
    magnitude: np.ndarray | None = None
    """Each compared entry's size, at which its ulps are counted."""


@dataclass(frozen=True)
class ProjectionGrade:
    """Rows compared through k projections: the worst |Δ| over its tolerance (≤ 1 passes)."""

    passed: bool
    worst_ratio: float
    worst_row: int | None
    rows: int


def graded_entries(
    candidate: np.ndarray,
    exact: np.ndarray,
    magnitude: np.ndarray,
    dtype_name: str,
    allowance: float,
    slack: np.ndarray | float,
    index: np.ndarray | None = None,
    excuse: np.ndarray | float = 0.0,
) -> EntryGrade:
    """Compare entries: pass where |Δ| ≤ allowance ulps at ``magnitude`` + ``slack``·magnitude
    + ``excuse`` (what a profile's skipped terms may leave out).

    ``index``: the rows the compared entries come from (their first index in the output).
    """
    candidate = np.asarray(candidate, dtype=np.float64)
    if candidate.size == 0:
        return EntryGrade(True, 0.0, allowance, None, 0)
    with np.errstate(invalid="ignore"):
        error = ulps(candidate, exact, magnitude, dtype_name)
        allowed_extra = np.asarray(slack) * magnitude + excuse
        slack_ulps = ulps(np.asarray(allowed_extra), np.zeros_like(magnitude), magnitude, dtype_name)
    allowed = np.broadcast_to(allowance + slack_ulps, error.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(np.isnan(error), np.inf, error / np.maximum(allowed, np.finfo(np.float64).tiny))
    at = np.unravel_index(int(np.argmax(score)), error.shape)
    where = tuple(int(i) for i in at)
    if index is not None:
        where = (int(index[where[0]]), *where[1:])
    passed = bool((error <= allowed).all())
    return EntryGrade(passed, float(error[at]), float(allowed[at]), where, int(candidate.size), allowed, magnitude)


def graded_projections(
    candidate_projected: np.ndarray,
    candidate_size: np.ndarray,
    exact_projected: np.ndarray,
    exact_size: np.ndarray,
    *,
    dtype_name: str,
    allowance: float,
    slack: np.ndarray,
    width: int,
    excuse: np.ndarray | float = 0.0,
    vector_sizes: np.ndarray | float = 0.0,
) -> ProjectionGrade:
    """Compare each row's k projections: |c·r - x·r| ≤ 2κu·(|G||Y|·|r|) + slack·(|G||Y|·|r|) +
    the float64 rounding of c·r ((D + 2)·u·(|c|·|r|), ``candidate_size``) + κ of the type's
    smallest ulp times Σ|r| (``vector_sizes``, one per projection).

    2κu bounds κ ulps of any entry at its size (an ulp is at most 2u of the value it sits at), but
    for values below the type's smallest normal number, whose ulp is the smallest one whatever
    their size (hidden states of 1e-39 in float32): the last term covers them.
    """
    if candidate_projected.size == 0:
        return ProjectionGrade(True, 0.0, None, 0)
    tolerance = (2 * allowance * _UNIT[dtype_name] + slack[:, None]) * exact_size
    tolerance += (width + 2) * UNIT64 * 1.01 * candidate_size + excuse
    tolerance += allowance * float(ulp_unit(np.zeros(1), dtype_name)[0]) * np.asarray(vector_sizes)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(candidate_projected - exact_projected) / np.maximum(tolerance, np.finfo(np.float64).tiny)
    ratio = np.where(np.isnan(ratio), np.inf, ratio).max(axis=1)
    worst = int(np.argmax(ratio))
    return ProjectionGrade(bool(ratio.max() <= 1.0), float(ratio[worst]), worst, len(ratio))
