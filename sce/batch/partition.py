"""The seam between the batch loop and whatever runs it: a partition of the input (one file,
or one dump of arrays) computed into its per-row outputs plus exact partial sums, which
combine associatively and are rounded once, at the end.

Two kinds of partials, both exact: a :class:`~.compute.DenominatorTally` (counts per class,
counted rows: integers) from a first pass, for what ``reduction='mean'`` divides every row by;
and a :class:`~.request.BatchSummary` (Σ loss and Σ z-loss as exact sums, counts) from the pass
that writes the rows. However the input is cut and in whatever order the partitions finish,
their sum is the same bits as one process reading the whole: so the mean of partition means,
which differs, is never taken. The one-process loop (:func:`sce.batch.run_batch`) runs on the
same :func:`score_blocks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sce.batch.compute import DenominatorTally, MeanDenominators
from sce.batch.request import BatchSummary
from sce.errors import SceError
from sce.io.signals import raise_if_interrupted
from sce.io.writers.arrays import computed_columns
from sce.loss import SoftmaxCrossEntropyResult
from sce.options import LossOptions

Progress = Callable[[int, int], None]


class Sink(Protocol):
    def put(self, item: Any) -> None: ...


class BlockSource(Protocol):
    """What :func:`score_blocks` needs of a source (see :class:`.loop.Source`)."""

    def blocks(self) -> Iterator[tuple[Any, SoftmaxCrossEntropyResult]]: ...
    def progress(self, rows: int) -> int: ...
    def text(self, block: Any, result: SoftmaxCrossEntropyResult, rows: int) -> Any: ...
    def columns(self, block: Any, result: SoftmaxCrossEntropyResult, rows: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PartOfWhole:
    """A partition's place in the whole input."""

    whole: MeanDenominators | None = None
    """What every row of the whole input divides by for 'mean' (None: another reduction)."""
    own: MeanDenominators | None = None
    """What the first pass counted in this partition: its second read must find the same."""
    header: bool = True
    """Whether the partition's text output begins with the header (only the first one's, for one file)."""


@dataclass(frozen=True)
class PartitionCount:
    """A partition's first pass: its tally, and the layout of its columns."""

    tally: DenominatorTally
    layout: tuple[Any, ...] | None


@dataclass(frozen=True)
class PartitionScore:
    """A partition computed: its rows written to its output, the exact partials of its summary,
    and the layout of its columns (partitions of one input must agree on it)."""

    summary: BatchSummary
    layout: tuple[Any, ...] | None
    """None for a part without rows."""


@dataclass(frozen=True)
class PartitionFailure:
    """A partition's error, carried back whole: its kind and its message (an error's own
    pickling would lose the fields some kinds are built from)."""

    kind: type[SceError]
    message: str

    def error(self) -> SceError:
        rebuilt = self.kind.__new__(self.kind)
        SceError.__init__(rebuilt, self.message)
        return rebuilt


def score_blocks(
    source: BlockSource,
    sink: Sink,
    summary: BatchSummary,
    text: bool,
    digits: int | None,
    on_progress: Progress | None = None,
    on_result: Callable[[SoftmaxCrossEntropyResult], None] | None = None,
) -> None:
    """Every block of ``source`` through the loss into ``sink`` (text rows, or arrays), its
    exact partials added to ``summary``."""
    for block, result in source.blocks():
        raise_if_interrupted()
        summary.add(result)
        if on_result is not None:
            on_result(result)
        if text:
            sink.put(source.text(block, result, summary.rows))
        else:
            sink.put(computed_columns(source.columns(block, result, summary.rows), result, digits))
        if on_progress is not None:
            on_progress(source.progress(summary.rows), summary.rows)


def whole_denominators(counts: Sequence[PartitionCount], options: LossOptions) -> MeanDenominators:
    """What the whole input's mean divides by: the partitions' tallies summed (integers, exactly),
    the weight sum taken once from the summed counts, as one process counts it."""
    total = counts[0].tally
    for count in counts[1:]:
        total = total + count.tally
    return denominators_of(total, options)


def denominators_of(tally: DenominatorTally, options: LossOptions) -> MeanDenominators:
    """:meth:`DenominatorTally.denominators`, a bad option worded as the option's."""
    from sce.errors import option_problem
    from sce.loss import InvalidInput

    try:
        return tally.denominators(options)
    except InvalidInput as error:
        raise option_problem(error) from None


def summed(scores: Iterable[BatchSummary], template: BatchSummary) -> BatchSummary:
    """The partitions' summaries added (exact and associative), with the whole run's reduction
    and denominator."""
    total = template
    for score in scores:
        total = total + score
    return total
