"""Naming the mistake of a wrong answer: a second pass over the dump, only when it is wrong.

Computing every mistake's what-if for every block cost more than the verdict
itself (ten what-ifs, each with its errors in ulps), and a correct answer, the
common case, needs none of them. Once the first pass has said "wrong" and
what each quantity is allowed, each candidate is compared block by block and
dropped at the first block where it does not fit either; the pass stops when
none is left, so that naming costs a block or two unless a mistake does fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sce.grading.dump.baseline import result_magnitudes, ulps
from sce.grading.dump.block_errors import sum_of_squares
from sce.grading.dump.flushed import excused, flush_bounds, z_terms
from sce.grading.dump.kernel_mistakes import Denominators, exact_block, what_ifs
from sce.grading.dump.verdict_pass import Progress
from sce.io.arrays import ArrayDump
from sce.io.arrays.mapped_rows import read_rows
from sce.options import LossOptions


@dataclass(frozen=True)
class Allowance:
    """What the first pass allows one quantity: its worst error and its root-mean-square, in ulps."""

    worst: float
    rms: float


@dataclass
class _Spread:
    """Σ e² and the count of a candidate's errors for one quantity, over the blocks so far."""

    squares: float = 0.0
    entries: int = 0

    def within(self, allowance: Allowance) -> bool:
        return not self.entries or math.sqrt(self.squares / self.entries) <= allowance.rms


@dataclass(frozen=True)
class Allowed:
    """What the first pass allows each quantity (None where the dump does not give it)."""

    gradient: Allowance | None
    row_losses: Allowance | None
    reduced_loss: tuple[float, float, float] | None
    """(the given reduced loss, the magnitude its errors are measured at, the allowed ulps)."""


def matching_mistakes(
    dump: ArrayDump,
    options: LossOptions,
    d: Denominators,
    dtype: str,
    allowed: Allowed,
    bounds: list[tuple[int, int]],
    progress: Progress | None = None,
) -> list[str]:
    """The named mistakes whose what-if is within what is allowed for every quantity graded,
    over the blocks of rows ``bounds`` (those of the first pass)."""
    candidates = what_ifs(dump.labels, d, options)
    alive = dict(candidates)
    graded: set[str] = set()
    sums: dict[str, list[float]] = {name: [] for name in candidates}
    spreads = {name: (_Spread(), _Spread()) for name in candidates}
    for start, stop in bounds:
        if not alive:
            break
        block, coef = exact_block(dump, start, stop, options, d)
        grad_magnitude, loss_size = result_magnitudes(block.exact, coef)
        given_grad = None if dump.grad is None else read_rows(dump.grad, start, stop)
        flushed_below = flush_bounds(dtype, coef, z_terms(block.exact, coef))
        given_losses = None if allowed.row_losses is None or dump.loss is None else np.asarray(dump.loss[start:stop])
        for name, what_if in list(alive.items()):
            other_grad, other_losses = what_if(block)
            grad_spread, loss_spread = spreads[name]
            fits = True
            if given_grad is not None and grad_magnitude is not None and allowed.gradient is not None:
                graded.add(name)
                kept = excused(given_grad, other_grad, flushed_below)  # a flushing kernel's zeros, as the verdict's
                fits = _within(kept, other_grad, grad_magnitude, dtype, allowed.gradient, grad_spread)
            if fits and other_losses is not None and given_losses is not None and allowed.row_losses is not None:
                graded.add(name)
                fits = _within(given_losses, other_losses, loss_size, dtype, allowed.row_losses, loss_spread)
            if not fits:
                del alive[name]
            elif other_losses is not None:
                sums[name].append(math.fsum(other_losses))
        if progress is not None:
            progress("naming the mistake", stop - start)
    return [
        name
        for name in candidates
        if name in alive
        and _typical_fits(spreads[name], allowed)
        and _reduced_fits(name, sums[name], allowed, graded, dtype)
    ]


def _within(
    given: np.ndarray, other: np.ndarray, magnitude: np.ndarray, dtype: str, allowed: Allowance, spread: _Spread
) -> bool:
    """Every error within the worst allowed; the errors' Σ e² added to ``spread``."""
    errors = ulps(given, other, np.maximum(magnitude, np.abs(other)), dtype)
    if not errors.size:
        return True
    spread.squares += sum_of_squares(errors)
    spread.entries += errors.size
    return bool(np.nan_to_num(errors, nan=np.inf).max() < allowed.worst)


def _typical_fits(spreads: tuple[_Spread, _Spread], allowed: Allowed) -> bool:
    gradient, losses = spreads
    return (allowed.gradient is None or gradient.within(allowed.gradient)) and (
        allowed.row_losses is None or losses.within(allowed.row_losses)
    )


def _reduced_fits(name: str, parts: list[float], allowed: Allowed, graded: set[str], dtype: str) -> bool:
    """A reduced loss, once summed over every block; a candidate graded on nothing does not fit."""
    if allowed.reduced_loss is None or not parts:
        return name in graded
    given, size, limit = allowed.reduced_loss
    other = np.array(math.fsum(parts))
    errors = ulps(np.array(given), other, np.maximum(np.array(size), np.abs(other)), dtype)
    return bool(np.nan_to_num(errors, nan=np.inf) < limit)
