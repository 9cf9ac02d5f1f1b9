"""The whole run: the request, the streaming loop over blocks (one pass, or
two for 'mean'), and the summary."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from ..core import SoftmaxCrossEntropyResult
from ..errors import DATA, DataProblem, OptionProblem
from ..options import LossOptions
from .columns import ColumnPlan, plan_columns
from .frames import ParsedBlock, compute_block, output_frame, parse_block
from .output import BackgroundWriter, OutputTarget, _hold_interrupts, spool_to_temporary
from .records import Block, BlockReader, split_header


@dataclass
class BatchSummary:
    rows: int = 0
    ignored_rows: int = 0
    classes: int = 0
    correct: int = 0
    counted: int = 0
    infinite_losses: int = 0
    loss_sums: list[float] = field(default_factory=list)
    denominator: float = 0.0
    reduction: str = "none"
    seconds: float = 0.0

    @property
    def reduced_loss(self) -> float:
        import math

        total = math.fsum(self.loss_sums)
        if self.reduction == "sum":
            return total
        if self.reduction == "mean":
            return total / self.denominator if self.denominator else float("nan")
        return total / self.counted if self.counted else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.counted if self.counted else float("nan")

    def add(self, result: SoftmaxCrossEntropyResult) -> None:
        counted = result.counted
        self.rows += result.num_rows
        self.ignored_rows += int((~counted).sum())
        self.classes = result.num_classes
        self.counted += int(counted.sum())
        truth = result.labels if result.labels is not None else np.argmax(result.target, axis=1)
        self.correct += int(((result.argmax == truth) & counted).sum())
        self.infinite_losses += int(np.isinf(result.losses).sum())
        self.loss_sums.append(float(result.losses.sum(dtype=np.float64)))


@dataclass
class BatchRequest:
    input_path: str
    output_path: str | None
    label_col: str | None = None
    logit_cols: str | None = None
    target_cols: str | None = None
    has_header: bool = True
    delimiter: str = ","
    encoding: str = "utf-8"
    output_format: str = "csv"
    digits: int | None = None
    options: LossOptions = field(default_factory=LossOptions)
    grad_cols: str | None = None
    loss_col: str | None = None


def open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 (closed by the caller)
    except OSError as error:
        raise OptionProblem("input_path", f"cannot read {path}: {error.strerror}", DATA) from None


def read_blocks(path: str, request: BatchRequest) -> Iterator[tuple[ColumnPlan, Block, BlockReader]]:
    """Every block of records after the header, with the column plan."""
    stream = open_input(path)
    try:
        reader = BlockReader(stream, request.encoding)
        fields, first = reader.first_record(request.delimiter)
        if first is None:
            raise DataProblem("the input is empty; it needs a header line and rows of logits")
        if request.has_header:
            names = [name.strip() for name in fields]
            for position, name in enumerate(names, start=1):
                if not name:
                    raise DataProblem(
                        f"line {first.first_line}: column {position} has no name; "
                        "name every column, or read the file with --no-header"
                    )
            first = split_header(first)
        else:
            names = [str(i) for i in range(len(fields))]
        plan = plan_columns(
            names,
            label_col=request.label_col,
            logit_cols=request.logit_cols,
            target_cols=request.target_cols,
            has_header=request.has_header,
            grad_cols=request.grad_cols,
            loss_col=request.loss_col,
        )
        if first.data.strip():
            yield plan, first, reader
        for block in reader.blocks():
            if block.data.strip():
                yield plan, block, reader
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


@contextmanager
def readable_input(request: BatchRequest) -> Iterator[str]:
    """A path to read the input from, as often as needed: stdin is first
    copied to a temporary file (removed afterwards) when 'mean' needs two passes."""
    if request.input_path != "-" or request.options.reduction != "mean":
        yield request.input_path
        return
    spooled = spool_to_temporary(sys.stdin.buffer)
    try:
        yield spooled
    finally:
        os.unlink(spooled)


def computed_blocks(
    path: str, request: BatchRequest, denominator: float | None
) -> Iterator[tuple[ParsedBlock, ColumnPlan, SoftmaxCrossEntropyResult, BlockReader]]:
    """Every block of the input, parsed and run through the core."""
    for plan, block, reader in read_blocks(path, request):
        parsed = parse_block(block, plan, request.delimiter)
        yield parsed, plan, compute_block(parsed, plan, request.options, denominator), reader


def mean_denominator(path: str, request: BatchRequest) -> float | None:
    """For reduction 'mean', the weight sum (or row count) of the whole input.

    The mean divides every gradient by it, so it must be known before the
    first row is written: a first pass computes it.
    """
    if request.options.reduction != "mean":
        return None
    return sum(result.denominator for _, _, result, _ in computed_blocks(path, request, None))


def run_batch(request: BatchRequest, on_progress: Callable[[int, int], None] | None = None) -> BatchSummary:
    """Compute every row of the input and write the output; return the summary.

    ``on_progress(bytes_read, rows)`` is called after each block.
    """
    import time

    started = time.perf_counter()
    with readable_input(request) as path:
        denominator = mean_denominator(path, request)
        summary = BatchSummary(reduction=request.options.reduction, denominator=denominator or 0.0)
        # Ctrl-C between the temporary file's creation and this try would
        # leave it behind: hold SIGINT until the cleanup below is in force.
        release_interrupts = _hold_interrupts()
        target: OutputTarget | None = None
        writer: BackgroundWriter | None = None
        try:
            target = OutputTarget(request.output_path, request.input_path)
            writer = BackgroundWriter(target, request.output_format)
            release_interrupts()
            for parsed, plan, result, reader in computed_blocks(path, request, denominator):
                summary.add(result)
                writer.put(output_frame(parsed, plan, result, request.digits, request.output_format == "jsonl"))
                if on_progress is not None:
                    on_progress(reader.bytes_read, summary.rows)
            writer.close()
            if summary.rows == 0:
                raise DataProblem("the input has a header but no rows")
            target.finish()
        except BaseException:
            release_interrupts()
            if writer is not None:
                writer.abort()
            if target is not None:
                target.abandon()
            raise
    summary.seconds = time.perf_counter() - started
    return summary
