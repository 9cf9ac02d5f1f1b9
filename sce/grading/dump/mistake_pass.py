"""Naming the mistake of a wrong answer: which of the catalogue's what-ifs explains every entry.

Computing every mistake's what-if for every block cost more than the verdict
itself (twenty what-ifs, each with its errors in ulps), and a correct answer,
the common case, needs none of them. So every candidate is tried on a few rows
first (:meth:`MistakeSearch.screen`), where all but the one or two that fit are left
out. Once the verdict's pass finds the answer wrong so far, it tries the
suspects on each further block from the exact result it has computed anyway
(:class:`~.mistake_trials.Suspects`): naming then costs a what-if and its
errors per block, not the exact result again. At the end, with what each
quantity is allowed, the blocks graded before the suspicion are compared (and
every block, for a candidate the screen keeps under the final allowance but did
not suspect), in threads, each candidate dropped at the first block where it
does not fit. Every candidate named is compared at every entry of the dump: a
name is given only where it explains every wrong entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from sce.grading.dump import sparse_labels, verdict_pass
from sce.grading.dump.baseline import RowScale, loss_magnitude, result_magnitudes, ulps
from sce.grading.dump.kernel_mistakes import Denominators, WhatIf, exact_block, exact_rows, what_ifs
from sce.grading.dump.mistake_trials import Answer, Errors, Suspects, Trial, block_trials, tried_on_rows
from sce.grading.dump.verdict_pass import BlockGrade, Progress, in_order
from sce.io.arrays import ArrayDump
from sce.io.arrays.mapped_rows import read_rows
from sce.options import LossOptions

#: Entries of the rows every candidate is tried on before any is compared over the whole dump.
SCREEN_ENTRIES = 1 << 16
#: At least this many rows are tried (a padding row fits many a mistake).
SCREEN_ROWS = 2


Elsewhere = Callable[[dict[int, list[str]]], Iterable[tuple[int, dict[str, Trial]]]]
"""Given the candidates' names each block (by its index) misses, hands back each block's trials."""


@dataclass(frozen=True)
class Allowance:
    """What the first pass allows one quantity: its worst error and its root-mean-square, in ulps."""

    worst: float
    rms: float


@dataclass(frozen=True)
class Allowed:
    """What the first pass allows each quantity (None where the dump does not give it)."""

    gradient: Allowance | None
    row_losses: Allowance | None
    reduced_loss: tuple[float, float, float] | None
    """(the given reduced loss, the magnitude its errors are measured at, the allowed ulps)."""


@dataclass
class MistakeSearch:
    """The candidates of one dump, their trials so far, and which blocks each was tried on."""

    dump: ArrayDump
    options: LossOptions
    d: Denominators
    dtype: str
    bounds: list[tuple[int, int]]
    progress: Progress | None = None
    suspects: Suspects = field(default_factory=Suspects)
    """Shared with the verdict's pass (:class:`~.verdict_pass.BlockJob`)."""
    trials: dict[str, Trial] = field(default_factory=dict)
    tried: dict[str, set[int]] = field(default_factory=dict)
    """The blocks (their index in ``bounds``) each candidate's trial covers."""
    suspected: bool = False
    """Whether the suspects have been chosen (once, when the answer first looks wrong)."""
    _screen: dict[str, Trial] | None = None
    elsewhere: Elsewhere | None = None
    """Compares the candidates with blocks elsewhere (a cluster's tasks: :mod:`.tiles`); None: here, in threads."""
    candidates: dict[str, WhatIf] = field(init=False)

    def __post_init__(self) -> None:
        # Answers graded in a narrower type than float64 are told apart by far more than float64's last bits.
        self.candidates = what_ifs(self.dump.labels, self.d, self.options, rerun=self.dtype == "float64")

    def after_block(self, index: int, graded: BlockGrade, so_far: Allowed, wrong_so_far: bool) -> None:
        """Keep the block's trials; once the answer is wrong so far, suspect the candidates that fit
        the screen's rows as far as is allowed so far (the verdict's pass tries them from then on)."""
        self._keep(index, graded.trials)
        if wrong_so_far and not self.suspected and index + 1 < len(self.bounds):
            self.suspected = True
            candidates = self.candidates
            fit = [name for name, trial in self.screen().items() if _fits(trial, so_far, True)]
            self.suspects.candidates = {name: candidates[name] for name in fit}

    def screen(self) -> dict[str, Trial]:
        if self._screen is None:
            self._screen = self.rows_trials(self.candidates, self._screen_bound())
        return self._screen

    def matching(self, allowed: Allowed) -> list[str]:
        """The named mistakes whose what-if is within what is allowed for every quantity graded,
        at every entry of the dump."""
        candidates = self.candidates
        kept = [
            name
            for name, trial in self.screen().items()
            if _fits(trial, allowed, True) and (name not in self.trials or _fits(self.trials[name], allowed, True))
        ]
        missing = {
            index: {name: candidates[name] for name in kept if index not in self.tried.get(name, set())}
            for index in range(len(self.bounds))
        }
        missing = {index: names for index, names in missing.items() if names}
        if self.elsewhere is None:
            self._catch_up(missing, allowed)
        else:
            self._compared_elsewhere(missing)
        untried = Trial(None, None, None)  # no rows at all: graded on nothing
        return [
            name
            for name in kept
            if len(self.tried.get(name, ())) == len(self.bounds)
            and _fits(self.trials.get(name, untried), allowed)
            and _reduced_fits(self.trials.get(name, untried), allowed, self.dtype)
        ]

    def _catch_up(self, missing: dict[int, dict[str, WhatIf]], allowed: Allowed) -> None:
        """The missing blocks' trials, in threads, in order; a candidate that does not fit is
        dropped (not tried on further blocks)."""
        dropped: set[str] = set()

        def tried(index: int) -> dict[str, Trial]:
            remaining = {name: c for name, c in missing[index].items() if name not in dropped}
            return self.rows_trials(remaining, self.bounds[index])

        indices = list(missing)
        blocks = in_order(lambda bound: tried(bound[0]), [(index, index + 1) for index in indices])
        with closing(blocks):  # type: ignore[type-var]  # stopped early: the blocks not started are cancelled
            for index, trials in zip(indices, blocks):
                self._keep(index, {name: trial for name, trial in trials.items() if name not in dropped})
                dropped.update(name for name, trial in trials.items() if not _fits(self.trials[name], allowed, True))
                if self.progress is not None:
                    self.progress("naming the mistake", self.bounds[index][1] - self.bounds[index][0])
                if all(name in dropped for names in missing.values() for name in names):
                    break

    def _compared_elsewhere(self, missing: dict[int, dict[str, WhatIf]]) -> None:
        """The missing blocks' trials by :attr:`elsewhere`, every candidate on every block it misses
        (none is dropped early: the blocks are compared at once), kept in block order."""
        assert self.elsewhere is not None
        found = dict(self.elsewhere({index: sorted(names) for index, names in missing.items()}))
        for index in sorted(found):
            self._keep(index, found[index])
            if self.progress is not None:
                self.progress("naming the mistake", self.bounds[index][1] - self.bounds[index][0])

    def _keep(self, index: int, trials: dict[str, Trial]) -> None:
        for name, trial in trials.items():
            self.trials[name] = self.trials[name].plus(trial) if name in self.trials else trial
            self.tried.setdefault(name, set()).add(index)

    def rows_trials(self, candidates: dict[str, WhatIf], bound: tuple[int, int]) -> dict[str, Trial]:
        """Each candidate on rows ``bound``, from their exact result computed here."""
        if not candidates:
            return {}
        dump = self.dump
        coef: RowScale
        magnitudes: tuple[Callable[[], np.ndarray], np.ndarray]
        if verdict_pass.SPARSE_LABELS and sparse_labels.applies(dump.labels, self.options):
            # As the verdict's pass takes these rows: the same magnitudes, the coefficients kept sparse.
            block, _ = exact_rows(dump, *bound, self.options, self.d)
            assert block.labels is not None
            coef = sparse_labels.label_coefficients(block.labels, dump.shape[1], self.options, self.d.total)
            gradient_at = partial(sparse_labels.gradient_magnitude, block.exact.probabilities, coef)
            magnitudes = (gradient_at, loss_magnitude(block.exact.losses, coef))
        else:
            block, coef = exact_block(dump, *bound, self.options, self.d)
            gradient_magnitude, loss_size = result_magnitudes(block.exact, coef)
            magnitudes = (partial(np.asarray, gradient_magnitude), loss_size)
        losses = None if dump.loss is None or dump.loss.ndim != 1 else np.asarray(dump.loss[bound[0] : bound[1]])
        gradient = None if dump.grad is None else read_rows(dump.grad, *bound)
        return block_trials([tried_on_rows(candidates, block, coef, magnitudes, Answer(gradient, losses, self.dtype))])

    def _screen_bound(self) -> tuple[int, int]:
        """The rows every candidate is tried on: from the first counted row (a padding row's exact
        gradient is 0, as a scaled or negated one's), :data:`SCREEN_ENTRIES` or :data:`SCREEN_ROWS`."""
        rows, classes = self.dump.shape
        counted = np.zeros(0, dtype=np.int64)
        if self.dump.labels is not None:
            counted = np.flatnonzero(np.asarray(self.dump.labels) != self.options.ignore_index)[:1]
        start = int(counted[0]) if counted.size else 0
        return start, min(rows, start + max(SCREEN_ROWS, SCREEN_ENTRIES // max(classes, 1)))


def _fits(trial: Trial, allowed: Allowed, worst_only: bool = False) -> bool:
    """Every error within the worst allowed and (unless ``worst_only``) the typical error within
    the typical allowed, for each quantity graded."""
    for errors, allowance in ((trial.gradient, allowed.gradient), (trial.losses, allowed.row_losses)):
        if errors is None or allowance is None or not errors.entries:
            continue
        if not errors.worst < allowance.worst or not (worst_only or _rms(errors) <= allowance.rms):
            return False
    return True


def _rms(errors: Errors) -> float:
    return math.sqrt(errors.squares / errors.entries)


def _reduced_fits(trial: Trial, allowed: Allowed, dtype: str) -> bool:
    """A reduced loss, once summed over every block; a candidate graded on nothing does not fit."""
    graded = (trial.gradient is not None and allowed.gradient is not None) or (
        trial.losses is not None and allowed.row_losses is not None
    )
    if allowed.reduced_loss is None or not trial.loss_sums:
        return graded
    given, size, limit = allowed.reduced_loss
    other = np.array(math.fsum(trial.loss_sums))
    errors = ulps(np.array(given), other, np.maximum(np.array(size), np.abs(other)), dtype)
    return bool(np.nan_to_num(errors, nan=np.inf) < limit)
