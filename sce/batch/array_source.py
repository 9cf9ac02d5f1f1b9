"""A dump of arrays as a source of the batch loop: the rows of the logits (and labels or
targets) in blocks through the core, each block read from the file on its own.

The readers are ``sce check --arrays``'s (:mod:`sce.io.arrays`): a
memory-mapped ``.npy`` costs one block of memory, whatever its size. The
labels (N integers) are read whole, as ``check`` reads them, to be checked
against the class count before the first row is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from sce.batch.compute import DenominatorTally, MeanDenominators, core_on_block
from sce.batch.partition import PartOfWhole
from sce.errors import DataProblem, OptionProblem
from sce.io.arrays import ArrayDump, DumpRequest, read_dump
from sce.io.arrays.dump import placed_in_dump
from sce.io.arrays.mapped_rows import block_bounds, read_rows
from sce.io.csv.columns import ColumnPlan
from sce.io.signals import raise_if_interrupted
from sce.io.writers.arrays import npz_layout
from sce.io.writers.text import EncodedRows
from sce.io.writers.text_of_arrays import array_plan, text_output
from sce.loss import InvalidInput, SoftmaxCrossEntropyResult
from sce.options import LossOptions

#: Entries of logits per block: 2^18 (2 MB per float64 array). 2^20, as ``sce check
#: --arrays`` reads, measured the same speed and 40 to 150 MB more at the peak: a
#: block lives on as its output (frame or text) in the writer's queue.
BLOCK_ENTRIES = 1 << 18


@dataclass(frozen=True)
class ArrayBlock:
    """Rows ``start`` to ``start + len(logits)`` of the dump, widened to float64 (exactly)."""

    start: int
    logits: np.ndarray
    labels: np.ndarray | None
    targets: np.ndarray | None
    stored_targets: np.ndarray | None = None
    """The targets as the dump stores them, for the core: float32 targets sum to 1 only within
    float32's rounding (see loss.validation.target_sum_tolerance)."""


def read_inputs(request: DumpRequest, options: LossOptions, empty_part: bool = False) -> ArrayDump:
    """The dump's logits and labels or targets, checked (shapes, types, label range); with
    ``empty_part``, a dump without rows is a part without rows of a larger input."""
    return read_dump(request, options.ignore_index, answer=False, empty_part=empty_part)


def array_blocks(dump: ArrayDump, block_entries: int | None = None) -> Iterator[ArrayBlock]:
    rows, classes = dump.shape
    for start, stop in block_bounds(rows, classes, block_entries or BLOCK_ENTRIES):
        raise_if_interrupted()
        logits = _widened(read_rows(dump.logits, start, stop))
        labels = None if dump.labels is None else np.asarray(dump.labels[start:stop])
        stored = None if dump.targets is None else read_rows(dump.targets, start, stop)
        yield ArrayBlock(start, logits, labels, None if stored is None else _widened(stored), stored)


def _widened(values: np.ndarray) -> np.ndarray:
    """float16, bfloat16 and float32 as float64: every value exactly, so the core's
    --dtype decides the precision, as for numbers read from text."""
    return values.astype(np.float64, copy=False)


def mean_denominators(dump: ArrayDump, options: LossOptions) -> MeanDenominators | None:
    """For reduction 'mean': the counted rows' weight sum (N for targets) and the counted
    rows, from the labels alone (no pass over the logits), summed exactly."""
    if options.reduction != "mean":
        return None
    if dump.labels is None:
        rows = float(dump.shape[0])
        return MeanDenominators(rows, rows)
    from sce.loss.reduction import class_counts, weight_sum_of_counts

    counted = dump.labels != options.ignore_index
    counts = class_counts(np.where(counted, dump.labels, 0), counted, dump.shape[1])
    try:
        # The core's own rule (class counts, rounded once), so that every row is what one call gives.
        return MeanDenominators(weight_sum_of_counts(counts, options), float(counted.sum()))
    except InvalidInput:
        return None  # a bad option, or a weight per class missing: the core names it, as its flag, at the first block


def denominator_tally(dump: ArrayDump, options: LossOptions) -> DenominatorTally:
    """What the mean of a larger input divides by, counted in this dump: from its labels alone."""
    rows = float(dump.shape[0])
    if dump.labels is None:
        return DenominatorTally(weight_sum=rows, counted_rows=rows, rows=rows)
    from sce.loss.reduction import class_counts

    counted = dump.labels != options.ignore_index
    counts = class_counts(np.where(counted, dump.labels, 0), counted, dump.shape[1])
    return DenominatorTally(counted_rows=float(counted.sum()), counts=counts, rows=rows)


def array_layout(dump: ArrayDump) -> tuple[object, ...] | None:
    """The columns a dump's rows come in: its class count, and labels or targets."""
    if dump.shape[0] == 0:
        return None  # a part without rows: no columns to compare, as a CSV part with a header alone
    return ("arrays", dump.shape[1], "labels" if dump.labels is not None else "targets")


def compute_array_block(
    block: ArrayBlock, dump: ArrayDump, options: LossOptions, denominators: MeanDenominators | None
) -> SoftmaxCrossEntropyResult:
    """The core on one block; its errors name the file, the array, the row and the class."""

    def placed(error: InvalidInput) -> DataProblem:
        return placed_in_dump(error, dump.where, block.start)

    targets = block.targets if block.stored_targets is None else block.stored_targets
    return core_on_block(block.logits, block.labels, targets, options, denominators, placed)


class ArraySource:
    """The dump's row blocks through the loss, for the batch loop."""

    def __init__(
        self, request: DumpRequest, options: LossOptions, output: tuple[str | None, str], digits: int | None
    ) -> None:
        self.request, self.options, self.digits = request, options, digits
        self.output_path, self.output_format = output
        self.denominators: MeanDenominators | None = None
        self.dump: ArrayDump | None = None
        self.plan: ColumnPlan | None = None
        self.size = 0

    def prepare(self, part: PartOfWhole | None = None) -> None:
        """The dump opened and checked, and the mean's denominators from its labels (for a
        ``part`` of a larger input, the whole's, counted already)."""
        self.dump = read_inputs(self.request, self.options, empty_part=part is not None)
        self._refuse_output_over_inputs()
        whole = None if part is None else part.whole
        self.denominators = mean_denominators(self.dump, self.options) if whole is None else whole
        self.plan = array_plan(self.dump)
        self.size = _size(self.request.arrays or self.request.paths.get("logits", ""))

    def _refuse_output_over_inputs(self) -> None:
        output = self.output_path
        if output in (None, "-", "") or not os.path.exists(output):
            return
        for path in (self.request.arrays, *self.request.paths.values()):
            if path is not None and os.path.exists(path) and os.path.samefile(path, output):
                raise OptionProblem("output_path", f"{output} is an input file; write the output to another file")

    def blocks(self) -> Iterator[tuple[ArrayBlock, SoftmaxCrossEntropyResult]]:
        assert self.dump is not None
        for block in array_blocks(self.dump):
            yield block, compute_array_block(block, self.dump, self.options, self.denominators)

    def progress(self, rows: int) -> int:
        assert self.dump is not None
        return self.size * rows // self.dump.shape[0]

    def text(self, block: ArrayBlock, result: SoftmaxCrossEntropyResult, rows: int) -> pl.DataFrame | EncodedRows:
        assert self.plan is not None
        return text_output(block, self.plan, result, self.digits, self.output_format)

    def columns(self, block: ArrayBlock, result: SoftmaxCrossEntropyResult, rows: int) -> dict[str, Any]:
        if block.labels is not None:
            return {"logits": block.logits, "labels": block.labels}
        assert block.targets is not None
        return {"logits": block.logits, "targets": block.targets}

    def npz_layout(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        assert self.dump is not None
        rows, classes = self.dump.shape
        return npz_layout(rows, classes, self.dump.labels is not None, self.options.dtype)

    def finish(self, rows: int) -> None:
        assert self.dump is not None
        self.dump.verify()  # a damaged file fails the run before its output is put in place


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
