"""A dump's verdict in tiles: runs of whole blocks graded apart, their exact partials merged.

One machine grades a dump block by block (:mod:`.verdict_pass`). A cluster grades it in
tiles, each a run of those same blocks, wherever the tile runs: each tile opens the dump
itself (:class:`DumpFile`: a path, not the arrays), grades its blocks and keeps what the verdict
needs of them (:class:`TileGrade`: the histogram's counts, the worst errors, the sums of
squares held exactly, the reduced loss's parts). Merging tiles is exact, associative and
commutative once they are put back in the dump's order, so the verdict is one machine's, bit
for bit, however many tiles there are and in whatever order they finish.

The engine that runs the tiles is given as a function (:data:`TileRunner`): threads, a list
in a test's shuffled order, or a Dask cluster (:mod:`sce.grading.dump.cluster_tiles`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sce.grading.dump.kernel_mistakes import Denominators
from sce.grading.dump.mistake_pass import Elsewhere, MistakeSearch
from sce.grading.dump.mistake_trials import Trial
from sce.grading.dump.verdict import QuantityVerdict, ReducedLoss
from sce.grading.dump.verdict_pass import BlockJob, Progress, in_order
from sce.io.arrays import ArrayDump, DumpRequest, read_dump
from sce.io.arrays.heap import reused_heap
from sce.options import LossOptions

Block = tuple[int, int]
"""A block's (first row, end row)."""
Tile = list[Block]
"""Consecutive blocks, graded together."""
T = TypeVar("T")


@dataclass(frozen=True)
class InMemory:
    """A dump already read: a tile run in this process (or a test's) grades it as it is."""

    dump: ArrayDump

    def __call__(self) -> ArrayDump:
        return self.dump


@dataclass(frozen=True)
class DumpFile:
    """A dump by its files, opened where a tile runs (memory-mapped: a tile reads its rows only).

    ``loss_per_row``: a one-row dump's scalar loss taken as the row's, as the command line takes it;
    ``where``: each array's name in messages, where it is to be the client's (a path as the user gave it)."""

    request: DumpRequest
    ignore_index: int = -100
    loss_per_row: bool = False
    where: dict[str, str] | None = None

    def __call__(self) -> ArrayDump:
        dump = read_dump(self.request, self.ignore_index)
        if self.loss_per_row and dump.loss is not None:
            dump = dataclasses.replace(dump, loss=dump.loss.reshape(1))
        if self.where is not None:
            dump = dataclasses.replace(dump, where=self.where)
        return dump


@dataclass(frozen=True)
class TilePlan:
    """What every tile needs besides its blocks (small, and picklable to send to a worker)."""

    source: Callable[[], ArrayDump]
    options: LossOptions
    dtype: str
    d: Denominators
    per_row_loss: bool
    reduced_loss: bool
    sum_order: str = "parallel"
    tune_heap: bool = False
    """Keep freed blocks in the heap of the process a tile runs in (:mod:`sce.io.arrays.heap`): for
    the command line's own processes and its cluster's workers, never a library caller's."""


@dataclass
class TileGrade:
    """The verdict's exact partials over some consecutive rows of the dump."""

    first_row: int
    rows: int
    gradient: QuantityVerdict | None
    losses: QuantityVerdict | None
    reduced: ReducedLoss | None
    sum_bound: float = 0.0

    def extend(self, later: TileGrade) -> None:
        """The tile of rows that follows this one's, merged into it."""
        for mine, theirs in ((self.gradient, later.gradient), (self.losses, later.losses)):
            if mine is not None and theirs is not None:
                mine.combine(theirs)
        if self.reduced is not None and later.reduced is not None:
            self.reduced.extend(later.reduced)
        self.rows += later.rows
        self.sum_bound = max(self.sum_bound, later.sum_bound)


TileRunner = Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]]
"""Runs the work on every tile (a tile's grade, or its mistakes' trials) and yields each tile's result, in any order."""


def grade_tile(plan: TilePlan, tile: Tile) -> TileGrade:
    """One tile's blocks graded, in threads, and merged: its part of the verdict.

    Examples
    --------
    >>> import numpy as np
    >>> from sce import softmax_cross_entropy
    >>> from sce.grading.dump.kernel_mistakes import denominators
    >>> z, labels = np.array([[2.0, 3.0, 4.0], [1.0, 0.0, 0.0]]), np.array([1, 0])
    >>> dump = ArrayDump(z, labels, None, softmax_cross_entropy(z, labels).gradient, None, {})
    >>> options = LossOptions()
    >>> plan = TilePlan(InMemory(dump), options, "float64", denominators(labels, 2, options), False, False)
    >>> tile = grade_tile(plan, [(0, 1), (1, 2)])
    >>> tile.rows, tile.gradient.entries, tile.gradient.correct
    (2, 6, True)
    """
    dump = plan.source()
    job = BlockJob(dump, plan.options, plan.dtype, plan.d, plan.per_row_loss, plan.reduced_loss, plan.sum_order)
    found = TileGrade(
        tile[0][0] if tile else 0,
        0,
        QuantityVerdict("gradient") if dump.grad is not None else None,
        QuantityVerdict("loss") if plan.per_row_loss else None,
        ReducedLoss() if plan.reduced_loss else None,
    )
    with warnings.catch_warnings(), reused_heap(plan.tune_heap):  # an infinite loss is graded, not warned about
        warnings.simplefilter("ignore")
        for graded in in_order(job.grade, tile):
            if found.gradient is not None and graded.gradient is not None:
                found.gradient.merge(graded.gradient)
            if found.losses is not None and graded.losses is not None:
                found.losses.merge(graded.losses)
            if found.reduced is not None and graded.reduced is not None:
                found.reduced.add(*graded.reduced)
            found.rows += graded.rows
            found.sum_bound = max(found.sum_bound, graded.sum_bound)
    return found


def split(blocks: list[T], count: int) -> list[list[T]]:
    """The blocks cut into at most ``count`` tiles of consecutive blocks, as even as they go.

    Examples
    --------
    >>> split([(0, 2), (2, 4), (4, 6), (6, 7)], 3)
    [[(0, 2), (2, 4)], [(4, 6)], [(6, 7)]]
    >>> split([(0, 0)], 4)
    [[(0, 0)]]
    """
    count = max(1, min(count, len(blocks)))
    size, extra = divmod(len(blocks), count)
    tiles, start = [], 0
    for index in range(count):
        end = start + size + (index < extra)
        tiles.append(blocks[start:end])
        start = end
    return tiles


def combined(parts: Iterable[TileGrade]) -> TileGrade:
    """Tiles' grades, in any order, as the grade of all their rows (put back in the dump's order)."""
    ordered = sorted(parts, key=lambda part: (part.first_row, part.rows))
    whole = ordered[0]
    for later in ordered[1:]:
        whole.extend(later)
    return whole


def graded_in_tiles(
    plan: TilePlan, tiles: list[Tile], run: TileRunner, progress: Progress | None = None
) -> TileGrade:
    """Every tile graded by ``run``, merged; ``progress`` told ("checking", rows) as each comes back."""
    parts = []
    for part in run(partial(grade_tile, plan), tiles):
        parts.append(part)
        if progress is not None:
            progress("checking", part.rows)
    return combined(parts)


def trials_on_tile(plan: TilePlan, blocks: list[tuple[int, Block, list[str]]]) -> list[tuple[int, dict[str, Trial]]]:
    """The named candidates' trials on each block (index, bounds, names) of a tile, from the
    catalogue as this dump makes it (:class:`~.mistake_pass.MistakeSearch`)."""
    search = MistakeSearch(plan.source(), plan.options, plan.d, plan.dtype, [])
    with warnings.catch_warnings():  # a what-if's overflow is measured, not warned about (as in the pass)
        warnings.simplefilter("ignore")
        return [
            (index, search.rows_trials({name: search.candidates[name] for name in names}, bound))
            for index, bound, names in blocks
        ]


def compared_in_tiles(plan: TilePlan, bounds: list[Block], engine: TileEngine) -> Elsewhere:
    """How a mistake's search compares its candidates with the blocks it misses: in tiles run by ``engine``."""

    def compare(missing: dict[int, list[str]]) -> Iterator[tuple[int, dict[str, Trial]]]:
        work = [(index, bounds[index], names) for index, names in sorted(missing.items())]
        if not work:
            return
        for part in engine.run(partial(trials_on_tile, plan), split(work, engine.tiles)):
            yield from part

    return compare


def in_threads(work: Callable[[Tile], TileGrade], tiles: list[Tile]) -> Iterable[TileGrade]:
    """The tiles graded one after another in this process (each tile's blocks in threads)."""
    return map(work, tiles)


@dataclass(frozen=True)
class TileEngine:
    """How a dump is graded in tiles: the runner, how many tiles, and how a tile opens the dump
    (None: the dump in hand, for a runner in this process)."""

    run: TileRunner = in_threads
    tiles: int = 1
    source: Callable[[], ArrayDump] | None = None
