"""Naming the mistake of a wrong answer: a second pass over the dump, only when it is wrong.

Computing every mistake's what-if for every block cost more than the verdict
itself (twenty what-ifs, each with its errors in ulps), and a correct answer,
the common case, needs none of them. Once the first pass has said "wrong" and
what each quantity is allowed, every candidate is tried on the dump's first
few rows, where all but the one or two that fit are dropped; those are then
compared block by block, in threads as the first pass is, each dropped at the
first block where it does not fit, and the pass stops when none is left.
Every candidate still kept is compared at every entry of the dump: a name is
given only where it explains every wrong entry.
"""

from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass
from functools import partial

import numpy as np

from sce.grading.dump.baseline import result_magnitudes, ulp_unit, ulps, ulps_if_finite
from sce.grading.dump.block_errors import sum_of_squares
from sce.grading.dump.flushed import excused, flush_bounds, z_terms
from sce.grading.dump.kernel_mistakes import Denominators, WhatIf, exact_block, what_ifs
from sce.grading.dump.verdict_pass import Progress, in_order
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
    over the blocks of rows ``bounds`` (those of the first pass).

    Every candidate is first tried on a few rows (:func:`_screen_bound`): one that
    is off there by more than the worst allowed is off, and is dropped without reading further.
    The few left are then compared over every block, in threads, each dropped at the first block
    where it does not fit."""
    candidates = what_ifs(dump.labels, d, options)
    if not bounds:
        return []
    screen = _BlockTrial(dump, options, d, dtype, allowed)
    first = screen.tried(candidates, _screen_bound(dump, options, bounds[-1][1]), set())
    alive = {name: candidates[name] for name, outcome in first.items() if outcome.fits}
    spreads = {name: (_Spread(), _Spread()) for name in alive}
    sums: dict[str, list[float]] = {name: [] for name in alive}
    graded: set[str] = set()
    dropped: set[str] = set()
    blocks = in_order(partial(screen.tried, dict(alive), dropped=dropped), bounds if alive else [])
    with closing(blocks):  # type: ignore[type-var]  # stopped early: the blocks not started are cancelled
        for (start, stop), outcomes in zip(bounds, blocks):
            for name, outcome in outcomes.items():
                if name in dropped:
                    continue
                graded.update([name] if outcome.graded else [])
                for spread, (squares, entries) in zip(spreads[name], (outcome.gradient, outcome.losses)):
                    spread.squares += squares
                    spread.entries += entries
                if not outcome.fits:
                    dropped.add(name)
                elif outcome.loss_sum is not None:
                    sums[name].append(outcome.loss_sum)
            if progress is not None:
                progress("naming the mistake", stop - start)
            if alive.keys() <= dropped:
                break
    return [
        name
        for name in candidates
        if name in alive
        and name not in dropped
        and _typical_fits(spreads[name], allowed)
        and _reduced_fits(name, sums[name], allowed, graded, dtype)
    ]


#: Entries of the first rows every candidate is tried on before any is compared over the whole dump.
SCREEN_ENTRIES = 1 << 16
#: At least this many rows are tried (a padding row fits many a mistake).
SCREEN_ROWS = 2


def _screen_bound(dump: ArrayDump, options: LossOptions, rows: int) -> tuple[int, int]:
    """The rows every candidate is tried on: from the first counted row (a padding row's exact
    gradient is 0, as a scaled or negated one's), :data:`SCREEN_ENTRIES` or :data:`SCREEN_ROWS`."""
    counted = np.zeros(0, dtype=np.int64)
    if dump.labels is not None:
        counted = np.flatnonzero(np.asarray(dump.labels) != options.ignore_index)[:1]
    start = int(counted[0]) if counted.size else 0
    return start, min(rows, start + max(SCREEN_ROWS, SCREEN_ENTRIES // max(dump.shape[1], 1)))


@dataclass(frozen=True)
class _Outcome:
    """One candidate on one block: whether every error is within the worst allowed, the errors'
    (Σ e², count) of the gradient and of the row losses, the what-if's sum of row losses."""

    fits: bool
    graded: bool
    gradient: tuple[float, int]
    losses: tuple[float, int]
    loss_sum: float | None


@dataclass(frozen=True)
class _BlockTrial:
    """Candidates compared with the answer on one block (run in threads: nothing written is shared)."""

    dump: ArrayDump
    options: LossOptions
    d: Denominators
    dtype: str
    allowed: Allowed

    def tried(self, candidates: dict[str, WhatIf], bound: tuple[int, int], dropped: set[str]) -> dict[str, _Outcome]:
        """Each candidate not yet ``dropped`` (read as it is at each candidate's turn), on rows ``bound``."""
        dump, allowed = self.dump, self.allowed
        block, coef = exact_block(dump, *bound, self.options, self.d)
        grad_magnitude, loss_size = result_magnitudes(block.exact, coef)
        given_grad = None if dump.grad is None else read_rows(dump.grad, *bound)
        flushed_below = flush_bounds(self.dtype, coef, z_terms(block.exact, coef))
        given_losses = None
        if allowed.row_losses is not None and dump.loss is not None:
            given_losses = np.asarray(dump.loss[bound[0] : bound[1]])
        found = {}
        for name, what_if in candidates.items():
            if name in dropped:
                continue
            other_grad, other_losses = what_if(block)
            grad_spread, loss_spread = _Spread(), _Spread()
            fits, graded = True, False
            if given_grad is not None and grad_magnitude is not None and allowed.gradient is not None:
                graded = True
                kept = excused(given_grad, other_grad, flushed_below)  # a flushing kernel's zeros, as the verdict's
                fits = _within(kept, other_grad, grad_magnitude, self.dtype, allowed.gradient, grad_spread)
            if fits and other_losses is not None and given_losses is not None and allowed.row_losses is not None:
                graded = True
                fits = _within(given_losses, other_losses, loss_size, self.dtype, allowed.row_losses, loss_spread)
            loss_sum = math.fsum(other_losses) if fits and other_losses is not None else None
            spreads = (grad_spread.squares, grad_spread.entries), (loss_spread.squares, loss_spread.entries)
            found[name] = _Outcome(fits, graded, *spreads, loss_sum)
        return found


def _within(
    given: np.ndarray, other: np.ndarray, magnitude: np.ndarray, dtype: str, allowed: Allowance, spread: _Spread
) -> bool:
    """Every error within the worst allowed; the errors' Σ e² added to ``spread``."""
    at = np.maximum(magnitude, np.abs(other))
    unit = ulp_unit(at, dtype)
    # Where every value is finite (the common case), by the ulp's exponent bits in fewer passes;
    # else by ulps(), which knows NaN and infinity. Both give the same numbers where both apply.
    errors = ulps_if_finite(given, other, unit) if math.isfinite(unit.max(initial=0.0)) else None
    if errors is None:
        errors = np.nan_to_num(ulps(given, other, at, dtype), nan=np.inf)
    if not errors.size:
        return True
    spread.squares += sum_of_squares(errors)
    spread.entries += errors.size
    return bool(errors.max() < allowed.worst)


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
