"""The verdict's pass over a dump: each block graded in a thread, the blocks' summaries in order.

A pass computes only what the verdict needs: the exact result, the baseline,
the answer's errors (:mod:`.block_errors`). Blocks are graded apart, with
nothing shared but what they read, and yielded in order so that merging them
gives the same verdict however many threads graded them.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import numpy as np

from sce.errors import option_problem
from sce.grading.dump import sparse_labels
from sce.grading.dump.baseline import (
    Baseline,
    RowCoefficients,
    RowScale,
    autograd_route_applies,
    baseline,
    coefficients,
    gradient_magnitude,
    loss_magnitude,
    numpy_dtype,
    result_magnitudes,
)
from sce.grading.dump.block_errors import (
    BlockErrors,
    grade_gradient,
    grade_gradient_compiled,
    grade_row_losses,
    merged_in_order,
)
from sce.grading.dump.flushed import excused, flush_bounds, z_terms
from sce.grading.dump.kernel_mistakes import Block, Denominators, WhatIf, exact_block, exact_rows
from sce.grading.dump.mistake_trials import Answer, RowsTrial, Suspects, Trial, block_trials, tried_on_rows
from sce.grading.dump.sequential_sums import factor_derivative, loss_shifts, row_sum_bounds, without_row_factors
from sce.grading.dump.signs import gradient_signs_kept, label_gradient_flips, negative_losses
from sce.io.arrays import ArrayDump
from sce.io.arrays.dump import placed_in_dump
from sce.io.arrays.mapped_rows import read_rows
from sce.loss import InvalidInput
from sce.options import LossOptions

#: Blocks graded at once, in threads (at most WORKERS + 1 blocks in memory, about 40 MB each). Two
#: where there are two cores: numpy lets go of the interpreter lock in its loops, and with freed
#: pages kept in the heap (:mod:`sce.io.arrays.heap`) two threads grade 20–35 % faster than one
#: on two cores; the verdict is the same (see the tests).
WORKERS = min(2, os.cpu_count() or 1)
#: Entries of a slice of a block graded at once (labels without smoothing): its float64 arrays,
#: 2 MB each, stay in the cache from one step to the next.
SLICE_ENTRIES = 1 << 18
#: Blocks of labels without smoothing are graded by :mod:`.sparse_labels` (the same numbers in fewer
#: passes); False: every block by the dense coefficients (the tests compare the two).
SPARSE_LABELS = True
#: False: every gradient graded by numpy (the tests compare the two).
COMPILED = True

Progress = Callable[[str, int], None]
"""Told (phase, rows) after each block: phase "checking", then, for a wrong answer,
"naming the mistake" for each block compared after the pass (those graded before it looked wrong)."""

T = TypeVar("T")


def in_order(work: Callable[[tuple[int, int]], T], bounds: list[tuple[int, int]]) -> Iterator[T]:
    """``work(bound)`` for every block, WORKERS at a time in threads, yielded in block order.

    Parameters
    ----------
    work : callable
        Grades one block from its (first row, end row); it must share nothing it writes.
    bounds : list of (int, int)
        The blocks, in order.

    Yields
    ------
    T
        Each block's result, in the order of ``bounds``.

    Notes
    -----
    numpy lets go of the interpreter lock inside its loops, so threads grade blocks at once.
    At most WORKERS + 1 blocks are in flight, which bounds the memory; on an error or Ctrl-C
    the blocks not started are cancelled and the running ones finish before it propagates.

    Examples
    --------
    >>> list(in_order(lambda bound: bound[1] - bound[0], [(0, 2), (2, 5), (5, 6)]))
    [2, 3, 1]
    """
    if WORKERS < 2 or len(bounds) < 2:
        yield from map(work, bounds)
        return
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="sce-check")
    try:
        pending: deque[Future[T]] = deque()
        for bound in bounds:
            pending.append(pool.submit(work, bound))
            if len(pending) > WORKERS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class BlockGrade:
    """One block, graded: its rows, the summaries of its gradient's and row losses' errors (None
    where the dump has none), and what the reduced loss needs of it."""

    rows: int
    gradient: BlockErrors | None
    losses: BlockErrors | None
    reduced: tuple[float, float, np.ndarray, np.ndarray | None, float] | None
    """For a reduced loss: the block's exact contribution, its magnitude, its baseline row losses,
    their z-loss terms (None without a z-loss), and how far a sequential sum's factors move the
    block's contribution (0 otherwise)."""
    sum_bound: float = 0.0
    """Graded as a sequential sum: the largest of its rows' bounds on δ (:func:`.sequential_sums.row_sum_bounds`)."""
    trials: dict[str, Trial] = field(default_factory=dict)
    """The suspected mistakes' trials on this block (:class:`.mistake_trials.Suspects`), each
    suspect's as it was when the block started."""


@dataclass(frozen=True)
class _Slice:
    """Some rows of a block, graded: the gradient's summary, and what the loss's grading needs."""

    gradient: BlockErrors | None
    losses: np.ndarray
    contributions: np.ndarray
    loss_magnitude: np.ndarray
    baseline_losses: np.ndarray
    scale: float
    baseline_z_losses: np.ndarray | None = None
    """The baseline's z-loss terms, where there is a z-loss (for the reduced loss: 'mean' divides
    them by the counted rows, the rest by the weight sum)."""
    loss_shifts: tuple[np.ndarray, np.ndarray] | None = None
    """Graded as a sequential sum: how each row's cross-entropy and z-loss move with the row's
    factor fitted to the gradient (:func:`.sequential_sums.loss_shifts`)."""
    sum_bound: float = 0.0
    """The largest of the rows' bounds on that factor's δ."""
    trials: dict[str, RowsTrial] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockJob:
    """Grading one block, with nothing shared but what it reads: safe to run in a thread."""

    dump: ArrayDump
    options: LossOptions
    dtype: str
    d: Denominators
    per_row_loss: bool
    reduced_loss: bool
    sum_order: str = "parallel"
    """"sequential": each row may carry one factor 1 + δ of a sequential sum (:mod:`.sequential_sums`)."""
    suspects: Suspects | None = None
    """Mistakes to try on each block from its exact result, once the caller suspects them."""

    def grade(self, bounds: tuple[int, int]) -> BlockGrade:
        """The block of rows ``bounds`` (first, end), graded; a logit, label or target the loss is
        not defined for is bad data placed at its row of the dump."""
        try:
            return self._grade(bounds)
        except InvalidInput as problem:  # a NaN logit, a row of -inf, targets that do not sum to 1
            if problem.field not in ("logits", "labels", "targets"):
                raise option_problem(problem) from None  # an option: the command line words it as its flag
            raise placed_in_dump(problem, self.dump.where, bounds[0]) from None

    def _grade(self, bounds: tuple[int, int]) -> BlockGrade:
        start, stop = bounds
        sparse = SPARSE_LABELS and sparse_labels.applies(self.dump.labels, self.options)
        # Rows are graded in slices whose arrays stay in the cache; the results are row by row
        # (the reduced loss's sums are taken over the whole block, as without slices).
        step = max(1, SLICE_ENTRIES // max(1, self.dump.shape[1])) if sparse else stop - start
        suspected = self.suspects.candidates if self.suspects is not None else {}
        slices = [
            self._slice(first, min(first + step, stop), sparse, suspected) for first in range(start, stop, step)
        ]
        gradients = [piece.gradient for piece in slices if piece.gradient is not None]
        gradient = merged_in_order(gradients) if gradients else None
        losses = reduced = None
        if self.per_row_loss or self.reduced_loss:
            expected = np.concatenate([piece.losses for piece in slices])
            magnitude = np.concatenate([piece.loss_magnitude for piece in slices])
            route = np.concatenate([piece.baseline_losses for piece in slices])
            shifts = [piece.loss_shifts for piece in slices if piece.loss_shifts is not None]
            ce_shift = np.concatenate([ce for ce, _ in shifts]) if shifts else np.zeros(0)
            z_shift = np.concatenate([z for _, z in shifts]) if shifts else np.zeros(0)
            if self.per_row_loss and self.dump.loss is not None:
                given = np.asarray(self.dump.loss[start:stop])
                shifted = expected + ce_shift + z_shift if shifts else None
                losses = grade_row_losses(expected, magnitude, route, given, self.dtype, start, shifted)
                losses.sign_flips = negative_losses(given)
            if self.reduced_loss:
                share = slices[0].scale * self.options.temperature  # 1/D for 'mean', 1 for 'sum'
                contributions = np.concatenate([piece.contributions for piece in slices])
                moved = 0.0
                if shifts:
                    z_share = 1.0 / max(self.d.counted_rows, 1) if self.options.reduction == "mean" else 1.0
                    moved = math.fsum(np.concatenate([ce_shift * share, z_shift * z_share]))
                z_parts = [piece.baseline_z_losses for piece in slices if piece.baseline_z_losses is not None]
                z_route = np.concatenate(z_parts) if z_parts else None
                reduced = (math.fsum(contributions), math.fsum(magnitude * share), route, z_route, moved)
        trials = block_trials([piece.trials for piece in slices]) if suspected else {}
        sum_bound = max(piece.sum_bound for piece in slices)
        return BlockGrade(stop - start, gradient, losses, reduced, sum_bound, trials)

    def _slice(self, start: int, stop: int, sparse: bool, suspected: dict[str, WhatIf]) -> _Slice:
        dump, dtype = self.dump, self.dtype
        base: Baseline | sparse_labels.LabelBaseline
        if sparse:
            block, coef, base, grad_magnitude = self._labels_without_smoothing(start, stop)
        else:
            block, dense = exact_block(dump, start, stop, self.options, self.d)
            autograd = autograd_route_applies(block.targets, self.options)
            coef = dense
            base = baseline(block.logits, dense, self.options, dtype, autograd)
            grad_magnitude = partial(self._magnitudes, block, dense)
        gradient = None
        shifts = None
        bound = np.zeros(0)
        stored = None if dump.grad is None else read_rows(dump.grad, start, stop)
        rows = self.per_row_loss or self.reduced_loss
        z_losses = block.exact.z_losses if self.options.z_loss else None
        loss_size = loss_magnitude(block.exact.losses, coef, z_losses) if rows else block.exact.losses
        trials = {}
        if suspected:
            given_losses = np.asarray(dump.loss[start:stop]) if self.per_row_loss and dump.loss is not None else None
            answer = Answer(stored, given_losses, dtype)
            trials = tried_on_rows(suspected, block, coef, (grad_magnitude, loss_size), answer)
        if stored is not None:
            given = stored
            if self.options.reduction == "mean" and self.d.total == 0:
                # The gradient of 0/0: sce says 0 (nothing counts); PyTorch's backward gives NaN where
                # the counted rows' weights are all 0. Either is the right answer.
                given = np.where(np.isnan(given), 0, given).astype(given.dtype, copy=False)
            given = excused(given, block.exact.gradient, flush_bounds(dtype, coef, z_terms(block.exact, coef)))
            if self.sum_order == "sequential":
                bound = row_sum_bounds(block.exact.probabilities, dtype)
                derivative = factor_derivative(block.exact, coef)
                given, delta = without_row_factors(
                    given, block.exact.gradient, derivative, grad_magnitude(), dtype, bound
                )
                shifts = loss_shifts(block.exact, coef, delta)
            if (
                COMPILED
                and isinstance(coef, sparse_labels.LabelCoefficients)
                and isinstance(base, sparse_labels.LabelBaseline)
            ):
                gradient = grade_gradient_compiled(block, coef, base, given, dtype)
            if gradient is None:
                gradient = grade_gradient(block, grad_magnitude(), base.gradients, given, dtype)
            if block.labels is not None and gradient_signs_kept(self.options, True):
                gradient.sign_flips = label_gradient_flips(stored, block.labels, self.options)
        return _Slice(
            gradient,
            block.exact.losses,
            block.contributions,
            loss_size,
            base.losses[0] if rows else block.exact.losses,
            coef.a,
            base.z_losses if rows else None,
            shifts,
            float(bound.max(initial=0.0)),
            trials,
        )

    def _magnitudes(self, block: Block, coef: RowCoefficients) -> np.ndarray:
        return result_magnitudes(block.exact, coef)[0]

    def _labels_without_smoothing(
        self, start: int, stop: int
    ) -> tuple[Block, RowScale, Baseline | sparse_labels.LabelBaseline, Callable[[], np.ndarray]]:
        """The block by :mod:`.sparse_labels` (the same numbers, fewer passes); by the dense
        coefficients where its baseline is not finite."""
        block, stored = exact_rows(self.dump, start, stop, self.options, self.d)
        assert block.labels is not None
        classes = block.logits.shape[1]
        sparse = sparse_labels.label_coefficients(block.labels, classes, self.options, self.d.total)
        logits = stored if stored.dtype == numpy_dtype(self.dtype) else block.logits
        labels_base = sparse_labels.baseline(
            logits, sparse, self.options, self.dtype, self.per_row_loss or self.reduced_loss
        )
        if labels_base is not None:
            magnitude = partial(sparse_labels.gradient_magnitude, block.exact.probabilities, sparse)
            return block, sparse, labels_base, magnitude
        dense = coefficients(block.labels, None, classes, self.options, self.d.total, self.d.counted_rows)
        base = baseline(block.logits, dense, self.options, self.dtype)
        return block, dense, base, partial(gradient_magnitude, block.exact.probabilities, dense)
