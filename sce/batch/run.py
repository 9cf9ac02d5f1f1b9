"""The whole run: the request, the streaming loop over blocks (one pass, or
two for 'mean'), and the summary."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from sce.batch.frames import MeanDenominators, ParsedBlock, compute_block, output_frame, parse_block
from sce.batch.output import BackgroundWriter, OutputTarget, spooled_copy
from sce.batch.plain import PlainBlock, parse_plain_block, plain_rows
from sce.batch.wide import WIDE_COLUMNS, WideBlock, parse_wide_block, wide_rows
from sce.errors import DataProblem, OptionDataProblem, SceError, option
from sce.io.arrays.formats import is_regular_file
from sce.io.csv.columns import ColumnPlan, plan_columns
from sce.io.csv.records import Block, BlockReader, skip_leading_blank_lines, split_header
from sce.io.signals import raise_if_interrupted, shielded, stopping_signals_handled
from sce.loss import SoftmaxCrossEntropyResult
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.io.arrays import DumpRequest


@dataclass
class BatchSummary:
    rows: int = 0
    ignored_rows: int = 0
    classes: int = 0
    correct: int = 0
    counted: int = 0
    infinite_losses: int = 0
    loss_sums: list[float] = field(default_factory=list)
    z_loss_sums: list[float] = field(default_factory=list)
    """The z-loss terms' part of ``loss_sums`` (the mean divides it by the counted rows instead)."""
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
            z_total = math.fsum(self.z_loss_sums)
            cross_entropy = (total - z_total) / self.denominator if self.denominator else float("nan")
            return cross_entropy + (z_total / self.counted if self.counted else 0.0)
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
        with np.errstate(over="ignore"):  # losses near the largest float add up to inf, without a raw warning
            self.loss_sums.append(float(result.losses.sum(dtype=np.float64)))
            if result.z_losses is not None:
                self.z_loss_sums.append(float(result.z_losses.sum(dtype=np.float64)))


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
    arrays: DumpRequest | None = None
    """A dump of arrays to read instead of the CSV input (see :mod:`.array_run`)."""


def open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 (closed by the caller)
    except OSError as error:
        raise OptionDataProblem("input_path", f"cannot read {path}: {error.strerror}") from None


def read_blocks(path: str, request: BatchRequest) -> Iterator[tuple[ColumnPlan, Block, BlockReader]]:
    """Every block of records after the header, with the column plan."""
    stream = open_input(path)
    try:
        reader = BlockReader(stream, request.encoding, name="stdin" if path == "-" else path)
        fields, first = reader.first_record(request.delimiter)
        if first is None:
            raise DataProblem("the input is empty; it needs a header line and rows of logits")
        if request.has_header:
            names = [name.strip() for name in fields]
            for position, name in enumerate(names, start=1):
                if not name:
                    raise DataProblem(
                        f"line {first.first_line}: column {position} has no name; "
                        f"name every column, or read the file with {option('has_header', False)}"
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
            delimiter=request.delimiter,
        )
        if first.data.strip():
            yield plan, skip_leading_blank_lines(first), reader
        for block in reader.blocks():
            if block.data.strip():
                yield plan, skip_leading_blank_lines(block), reader
    finally:
        # Shielded: a signal raised here, while the generator is being closed,
        # would be printed as "Exception ignored in generator" and lost.
        with shielded():
            if stream is not sys.stdin.buffer:
                stream.close()


@contextmanager
def readable_input(request: BatchRequest) -> Iterator[str]:
    """A path to read the input from, as often as needed. For 'mean' (and .npz
    output, which needs the row count first), which read twice, an input that
    is not a regular file (stdin, a pipe, a FIFO, a process substitution, a
    device) is first copied to a spool file in the temporary folder, removed
    afterwards whatever happens."""
    reads_twice = request.options.reduction == "mean" or request.output_format == "npz"
    if not reads_twice or _is_regular_file(request.input_path):
        yield request.input_path
        return
    stream = open_input(request.input_path)
    name = "stdin" if request.input_path == "-" else request.input_path
    try:
        with spooled_copy(stream, name) as spooled:
            with shielded():
                if stream is not sys.stdin.buffer:
                    stream.close()
            yield spooled
    finally:
        with shielded():
            if stream is not sys.stdin.buffer:
                stream.close()


def _is_regular_file(path: str) -> bool:
    return path != "-" and is_regular_file(path)  # a path not there: open_input says so, naming it


def computed_blocks(
    path: str, request: BatchRequest, denominator: MeanDenominators | None, wide: bool = False, plain: bool = False
) -> Iterator[tuple[ParsedBlock | WideBlock | PlainBlock, ColumnPlan, SoftmaxCrossEntropyResult, BlockReader]]:
    """Every block of the input, parsed and run through the core. With
    ``wide``, blocks of many columns may come as WideBlocks (no text frame);
    with ``plain``, blocks of plain lines as PlainBlocks (their lines kept whole).

    Given the ``denominator`` a first pass counted, the blocks' own are counted too, and a
    difference (the file changed between the passes) raises after the last block, before
    any output is put in place."""
    tally = None if denominator is None else DenominatorTally()
    for plan, block, reader in read_blocks(path, request):
        raise_if_interrupted()  # a signal that arrived in polars' code, or a SIGPIPE
        parsed, result = _computed_block(block, plan, request, denominator, wide, plain)
        if tally is not None:
            tally.add(result)
        yield parsed, plan, result, reader
    if tally is not None and denominator is not None:
        _check_unchanged(request, denominator, tally.denominators(request.options))


def _check_unchanged(request: BatchRequest, first: MeanDenominators, second: MeanDenominators) -> None:
    if first != second:
        raise changed_between_passes(
            request,
            option("reduction", "mean"),
            f"{first.z_loss:,.0f} counted rows of weight {first.cross_entropy:g}",
            f"{second.z_loss:,.0f} of weight {second.cross_entropy:g}",
        )


def changed_between_passes(request: BatchRequest, why: str, first: str, second: str) -> DataProblem:
    """An input read twice (for ``why``) that did not read the same the second time."""
    name = "stdin" if request.input_path == "-" else request.input_path
    return DataProblem(
        f"{name} changed while it was read twice for {why}: {first} the first time, {second} the second; "
        "run it again on a file that stays as it is (or a copy)"
    )


def _computed_block(
    block: Block,
    plan: ColumnPlan,
    request: BatchRequest,
    denominator: MeanDenominators | None,
    wide: bool,
    plain: bool,
) -> tuple[ParsedBlock | WideBlock | PlainBlock, SoftmaxCrossEntropyResult]:
    if wide and len(plan.names) >= WIDE_COLUMNS:
        wide_block = parse_wide_block(block, plan, request.delimiter, _output_separator(request))
        if wide_block is not None:
            return wide_block, compute_block(wide_block, plan, request.options, denominator)
    elif plain:
        plain_block = parse_plain_block(block, plan, request.delimiter)
        if plain_block is not None:
            try:
                return plain_block, compute_block(plain_block, plan, request.options, denominator)
            except SceError:
                pass  # read again the usual way, which words the error
    parsed = parse_block(block, plan, request.delimiter)
    return parsed, compute_block(parsed, plan, request.options, denominator)


def _output_separator(request: BatchRequest) -> str | None:
    """The CSV or TSV output's separator; None for JSON Lines."""
    return {"csv": ",", "tsv": "\t"}.get(request.output_format)


def mean_denominator(path: str, request: BatchRequest) -> MeanDenominators | None:
    """For reduction 'mean', the weight sum (or row count) of the whole input, and its
    counted rows, which divide the z-loss.

    The mean divides every gradient by them, so they must be known before the
    first row is written: a first pass computes them.
    """
    if request.options.reduction != "mean":
        return None
    tally = DenominatorTally()
    # Nothing is written in this pass: any block of many columns may be read the wide way.
    for _, _, result, _ in computed_blocks(path, request, None, wide=True, plain=True):
        tally.add(result)
    return tally.denominators(request.options)


@dataclass
class DenominatorTally:
    """The mean's denominators, summed block by block over a first pass."""

    weight_sum: float = 0.0
    counted_rows: float = 0.0
    counts: np.ndarray | None = None
    """Counted rows per class, for labels: D as one call of the core rounds it."""

    def add(self, result: SoftmaxCrossEntropyResult) -> None:
        from sce.loss.reduction import class_counts

        self.counted_rows += float(result.counted.sum())
        if result.labels is None:
            self.weight_sum += result.num_rows  # probability targets: the mean divides by N
        else:
            block = class_counts(result.labels, result.counted, result.num_classes)
            self.counts = block if self.counts is None else self.counts + block

    def denominators(self, options: LossOptions) -> MeanDenominators:
        from sce.loss.reduction import weight_sum_of_counts

        weight_sum = self.weight_sum if self.counts is None else weight_sum_of_counts(self.counts, options)
        return MeanDenominators(weight_sum, self.counted_rows)


def run_batch(request: BatchRequest, on_progress: Callable[[int, int], None] | None = None) -> BatchSummary:
    """Compute every row of the input and write the output; return the summary.

    ``on_progress(bytes_read, rows)`` is called after each block.
    """
    import time

    if request.arrays is not None:
        from sce.batch.array_run import run_array_batch

        return run_array_batch(request, on_progress)
    started = time.perf_counter()
    with stopping_signals_handled(), readable_input(request) as path:
        # An .npz output's own first pass (its members' shapes) counts the mean's denominators too.
        denominator = None if request.output_format == "npz" else mean_denominator(path, request)
        summary = BatchSummary(
            reduction=request.options.reduction, denominator=denominator.cross_entropy if denominator else 0.0
        )
        _write_output(request, path, denominator, summary, on_progress)
    summary.seconds = time.perf_counter() - started
    return summary


def _write_output(
    request: BatchRequest,
    path: str,
    denominator: MeanDenominators | None,
    summary: BatchSummary,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    if request.output_format in ("npz", "parquet", "arrow"):
        from sce.batch.array_run import write_arrays_from_csv

        write_arrays_from_csv(request, path, denominator, summary, on_progress)
        return
    target: OutputTarget | None = None
    writer: BackgroundWriter | None = None
    try:
        with shielded():  # assigned before a signal can be raised, so the except below cleans up
            target = OutputTarget(request.output_path, request.input_path)
            writer = BackgroundWriter(target, request.output_format)
        separator = _output_separator(request)
        blocks = computed_blocks(
            path, request, denominator, wide=separator is not None, plain=separator == request.delimiter
        )
        for parsed, plan, result, reader in blocks:
            raise_if_interrupted()
            summary.add(result)
            if isinstance(parsed, WideBlock):
                assert separator is not None
                writer.put(wide_rows(parsed, plan, result, request.digits, separator))
            elif isinstance(parsed, PlainBlock):
                assert separator is not None
                writer.put(plain_rows(parsed, plan, result, request.digits, separator))
            else:
                writer.put(output_frame(parsed, plan, result, request.digits, request.output_format == "jsonl"))
            if on_progress is not None:
                on_progress(reader.bytes_read, summary.rows)
        writer.close()
        if summary.rows == 0:
            raise DataProblem("the input has a header but no rows")
        target.finish()
    except BaseException:
        with shielded():
            if writer is not None:
                writer.abort()
            if target is not None:
                target.abandon()
        raise
