"""A named mistake's what-if against the answer, on some rows: its errors in ulps, whatever is allowed.

What a candidate's errors are does not depend on what is allowed (known only
once every block is graded), so they are kept as the worst, Σ e² and the count,
and compared with the allowance at the end. The verdict's pass computes them for
the mistakes an answer that looks wrong is suspected of, from the exact result
it has in hand (:class:`Suspects`); :mod:`.mistake_pass` compares the rest.
The errors are measured in one pass by the compiled loop (:func:`.ulp_kernel.candidate_errors`)
where it is built, else by numpy, to the same worst error. A what-if that is the exact gradient
scaled by row or with some entries changed (:class:`~.kernel_mistakes.ChangedGradient`: a wrong
denominator, the sign, other labels) over labels without smoothing is not formed at all: the
loop forms each entry of it, and of the gradient's magnitude, as it measures the error
(:func:`.ulp_kernel.changed_candidate_errors`), which spares two arrays written and read back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sce.grading.dump import ulp_kernel
from sce.grading.dump.baseline import RowScale, ulp_format, ulp_unit, ulps, ulps_if_finite
from sce.grading.dump.block_errors import label_rows, sum_of_squares
from sce.grading.dump.flushed import excused, flush_bounds, z_terms
from sce.grading.dump.kernel_mistakes import Block, ChangedGradient, GradientChange, WhatIf
from sce.grading.dump.sparse_labels import LabelCoefficients

#: False: every candidate's errors by numpy (the tests compare the two).
COMPILED = True


@dataclass(frozen=True)
class Errors:
    """One candidate's errors on one quantity, over some rows, in ulps."""

    worst: float = 0.0
    """The largest (inf where an entry is NaN or infinite and the what-if's is not)."""
    squares: float = 0.0
    """Σ e² of the finite errors."""
    entries: int = 0

    def plus(self, other: Errors) -> Errors:
        return Errors(max(self.worst, other.worst), self.squares + other.squares, self.entries + other.entries)


@dataclass(frozen=True)
class Trial:
    """One candidate on some rows: its errors on the gradient and on the row losses (None where
    not graded), and its row losses' contributions to the reported loss, summed block by block."""

    gradient: Errors | None
    losses: Errors | None
    loss_sums: tuple[float, ...] | None

    @property
    def graded(self) -> bool:
        return self.gradient is not None or self.losses is not None

    def plus(self, other: Trial) -> Trial:
        def joined(a: Errors | None, b: Errors | None) -> Errors | None:
            return b if a is None else a if b is None else a.plus(b)

        sums = None if self.loss_sums is None and other.loss_sums is None else (self.loss_sums or ()) + (
            other.loss_sums or ()
        )
        return Trial(joined(self.gradient, other.gradient), joined(self.losses, other.losses), sums)


@dataclass(frozen=True)
class RowsTrial:
    """One candidate on some rows of a block (a slice), before the block's loss sum is taken."""

    gradient: Errors | None
    losses: Errors | None
    contributions: np.ndarray | None


@dataclass(frozen=True)
class Answer:
    """What the candidates are compared with on some rows: the answer's gradient (as stored) and
    row losses (None where either is not graded), and the claimed type."""

    gradient: np.ndarray | None
    losses: np.ndarray | None
    dtype: str


def tried_on_rows(
    candidates: dict[str, WhatIf],
    block: Block,
    coef: RowScale,
    magnitudes: tuple[Callable[[], np.ndarray] | None, np.ndarray | None],
    answer: Answer,
) -> dict[str, RowsTrial]:
    """Each candidate's errors on the rows of ``block``, from its exact result; ``magnitudes``
    (a callable giving the gradient's, the row losses') are what the errors are measured at."""
    if not candidates:
        return {}
    gradient_at, loss_size = magnitudes
    graded = answer.gradient is not None and gradient_at is not None
    # A flushing kernel's zeros excused, as the verdict excuses them.
    flushed_below = flush_bounds(answer.dtype, coef, z_terms(block.exact, coef))
    fused = _fused_rows(block, coef, answer) if graded else None
    gradient_magnitude: np.ndarray | None = None
    found = {}
    for name, what_if in candidates.items():
        gradient = losses = None
        if fused is not None and isinstance(what_if, ChangedGradient):
            change, other_losses = what_if.change(block)
            gradient = changed_errors(answer, fused, change, flushed_below)
        if gradient is None:
            other_grad, other_losses = what_if(block)
        if gradient is None and graded and answer.gradient is not None and gradient_at is not None:
            gradient_magnitude = gradient_at() if gradient_magnitude is None else gradient_magnitude
            gradient = errors_of(answer.gradient, other_grad, gradient_magnitude, answer.dtype, flushed_below)
        if other_losses is not None and answer.losses is not None and loss_size is not None:
            losses = errors_of(answer.losses, other_losses, loss_size, answer.dtype)
        found[name] = RowsTrial(gradient, losses, other_losses)
    return found


def _fused_rows(block: Block, coef: RowScale, answer: Answer) -> ulp_kernel.Rows | None:
    """The rows for :func:`changed_errors`: labels without smoothing (whose magnitudes the compiled
    loop forms as :func:`.sparse_labels.gradient_magnitude` does), a float32 or float64 claim."""
    if not (COMPILED and isinstance(coef, LabelCoefficients) and answer.dtype in ("float32", "float64")):
        return None
    return label_rows(block, coef) if ulp_kernel.library() is not None else None


def changed_errors(
    answer: Answer, rows: ulp_kernel.Rows, change: GradientChange, flushed_below: np.ndarray | None
) -> Errors | None:
    """:func:`errors_of` a what-if given as the exact gradient changed, by the compiled loop,
    which forms the what-if and the magnitudes entry by entry; None where it does not measure them."""
    given = answer.gradient
    if given is None:
        return None
    unit_format = ulp_format(answer.dtype)
    found = ulp_kernel.changed_candidate_errors(
        rows, given, (change.factors, change.index, change.values), unit_format, flushed_below
    )
    return None if found is None else Errors(found[0], found[1], int(given.size))


def block_trials(pieces: list[dict[str, RowsTrial]]) -> dict[str, Trial]:
    """The slices of one block joined: errors merged, the block's row contributions summed once."""
    found: dict[str, Trial] = {}
    for name in pieces[0] if pieces else {}:
        parts = [piece[name] for piece in pieces]
        gradients = [p.gradient for p in parts if p.gradient is not None]
        losses = [p.losses for p in parts if p.losses is not None]
        contributions = [p.contributions for p in parts if p.contributions is not None]
        found[name] = Trial(
            _merged(gradients) if gradients else None,
            _merged(losses) if losses else None,
            (math.fsum(np.concatenate(contributions)),) if contributions else None,
        )
    return found


def _merged(errors: list[Errors]) -> Errors:
    total = errors[0]
    for more in errors[1:]:
        total = total.plus(more)
    return total


def errors_of(
    given: np.ndarray, other: np.ndarray, magnitude: np.ndarray, dtype: str, flushed_below: np.ndarray | None = None
) -> Errors:
    """|given − other| in ulps of ``dtype`` at max(magnitude, |other|): the worst, Σ e², the count;
    with ``flushed_below`` (a bound per row), a flushing kernel's zeros excused (:func:`.excused`)."""
    if COMPILED and other.size and dtype in ("float32", "float64"):
        compiled = ulp_kernel.candidate_errors(given, other, magnitude, ulp_format(dtype), flushed_below)
        if compiled is not None:
            return Errors(compiled[0], compiled[1], int(other.size))
    if flushed_below is not None:
        given = excused(given, other, flushed_below)
    at = np.abs(other, dtype=np.float64)
    np.maximum(at, magnitude, out=at)
    unit = ulp_unit(at, dtype)
    # Where every value is finite (the common case), by the ulp's exponent bits in fewer passes;
    # else by ulps(), which knows NaN and infinity. Both give the same numbers where both apply.
    errors = ulps_if_finite(given, other, unit) if math.isfinite(unit.max(initial=0.0)) else None
    if errors is None:
        errors = np.nan_to_num(ulps(given, other, at, dtype), nan=np.inf)
    if not errors.size:
        return Errors()
    return Errors(float(errors.max()), sum_of_squares(errors), int(errors.size))


@dataclass
class Suspects:
    """The mistakes a wrong-looking answer is suspected of, shared with the verdict's pass.

    The pass's caller sets :attr:`candidates` once the answer looks wrong (one dict, replaced
    whole, never changed: blocks graded in threads read it as it is when they start); each block
    graded after that returns their trials, and the blocks that started before are named later."""

    candidates: dict[str, WhatIf] = field(default_factory=dict)
