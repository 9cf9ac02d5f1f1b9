"""``sce batch`` with arrays on either side: a dump of arrays in (any output
format), or a CSV input out to .npz, Parquet or Arrow.

Written as the CSV pipeline writes: to a temporary file renamed into place
at the end, removed on any failure or signal (see :class:`.output.OutputTarget`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import polars as pl

from sce.batch.array_input import ArrayBlock, array_blocks, compute_array_block, mean_denominators, read_inputs
from sce.batch.array_output import BINARY_FORMATS, BinarySink, NpzSink, TableSink, computed_columns, npz_layout
from sce.batch.frames import MeanDenominators, ParsedBlock
from sce.batch.output import BackgroundWriter, OutputTarget
from sce.batch.plain import PlainBlock
from sce.batch.run import BatchRequest, BatchSummary, DenominatorTally, changed_between_passes, computed_blocks
from sce.batch.text_of_arrays import array_plan, text_output
from sce.batch.wide import WideBlock
from sce.errors import DataProblem, OptionProblem, option
from sce.io.arrays import ArrayDump
from sce.io.csv.columns import ColumnPlan
from sce.io.signals import shielded, stopping_signals_handled

Progress = Callable[[int, int], None]
#: The names of the binary outputs' arrays, which a CSV input's other columns must not take.
ARRAY_NAMES = ("logits", "labels", "targets", "probabilities", "loss", "grad")


def run_array_batch(request: BatchRequest, on_progress: Progress | None = None) -> BatchSummary:
    """Every row of the dump through the core, into the output; the summary."""
    assert request.arrays is not None
    started = time.perf_counter()
    with stopping_signals_handled():
        dump = read_inputs(request.arrays, request.options)
        _refuse_output_over_inputs(request)
        denominators = mean_denominators(dump, request.options)
        summary = BatchSummary(
            reduction=request.options.reduction, denominator=denominators.cross_entropy if denominators else 0.0
        )
        _write_arrays(request, dump, denominators, summary, on_progress)
    summary.seconds = time.perf_counter() - started
    return summary


def _refuse_output_over_inputs(request: BatchRequest) -> None:
    assert request.arrays is not None
    output = request.output_path
    if output in (None, "-", "") or not os.path.exists(output):
        return
    for path in (request.arrays.arrays, *request.arrays.paths.values()):
        if path is not None and os.path.exists(path) and os.path.samefile(path, output):
            raise OptionProblem("output_path", f"{output} is an input file; write the output to another file")


def _write_arrays(
    request: BatchRequest,
    dump: ArrayDump,
    denominators: MeanDenominators | None,
    summary: BatchSummary,
    on_progress: Progress | None,
) -> None:
    rows = dump.shape[0]
    size = _size(request.input_path)
    plan = array_plan(dump) if request.output_format not in BINARY_FORMATS else None
    with _output(request, lambda target: _array_sink(request, target, dump)) as sink:
        for block in array_blocks(dump):
            result = compute_array_block(block, dump, request.options, denominators)
            summary.add(result)
            if isinstance(sink, BackgroundWriter):
                assert plan is not None
                sink.put(text_output(block, plan, result, request.digits, request.output_format))
            else:
                sink.put(computed_columns(_block_inputs(block), result, request.digits))
            if on_progress is not None:
                on_progress(size * summary.rows // rows, summary.rows)
        dump.verify()  # a damaged file fails the run before its output is put in place


Sink = TypeVar("Sink", bound="BinarySink | BackgroundWriter")


@contextmanager
def _output(request: BatchRequest, make_sink: Callable[[OutputTarget], Sink]) -> Iterator[Sink]:
    """The output's sink, closed and renamed into place when the block ends, or abandoned
    (the old output kept) when it raises, by a signal too."""
    target: OutputTarget | None = None
    sink: Sink | None = None
    try:
        with shielded():  # assigned before a signal can be raised, so the except below cleans up
            target = OutputTarget(request.output_path, request.input_path)
            sink = make_sink(target)
        yield sink
        sink.close()
        target.finish()
    except BaseException:
        with shielded():
            if sink is not None:
                sink.abort()
            if target is not None:
                target.abandon()
        raise


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _block_inputs(block: ArrayBlock) -> dict[str, np.ndarray]:
    if block.labels is not None:
        return {"logits": block.logits, "labels": block.labels}
    assert block.targets is not None
    return {"logits": block.logits, "targets": block.targets}


def _array_sink(request: BatchRequest, target: OutputTarget, dump: ArrayDump) -> BinarySink | BackgroundWriter:
    if request.output_format not in BINARY_FORMATS:
        return BackgroundWriter(target, request.output_format)
    if request.output_format == "parquet" or request.output_format == "arrow":
        return TableSink(target, request.output_format)
    rows, classes = dump.shape
    shapes = npz_layout(rows, classes, dump.labels is not None, request.options.dtype)
    return NpzSink(target, shapes)


# --- a CSV input into .npz, Parquet or Arrow ------------------------------------------------------------


def write_arrays_from_csv(
    request: BatchRequest,
    path: str,
    denominator: MeanDenominators | None,
    summary: BatchSummary,
    on_progress: Progress | None,
) -> None:
    """The CSV pipeline's blocks, each as arrays (the other input columns as text). For .npz,
    whose members' shapes come first, a first pass counts the rows and measures the text (and,
    for 'mean', sums the denominators: the caller leaves them to it)."""
    layout = None
    if request.output_format == "npz":
        layout, counted = _csv_layout(path, request)
        denominator = counted if request.options.reduction == "mean" else None
        summary.denominator = 0.0 if denominator is None else denominator.cross_entropy

    def sink_for(target: OutputTarget) -> BinarySink:
        return TableSink(target, request.output_format) if layout is None else NpzSink(target, layout)

    with _output(request, sink_for) as sink:
        for parsed, plan, result, reader in computed_blocks(path, request, denominator, wide=True):
            assert not isinstance(parsed, PlainBlock)  # plain blocks only when asked for (plain=True)
            summary.add(result)
            inputs = _csv_inputs(parsed, plan, request.delimiter, request.output_format)
            if layout is not None:
                _check_rows(request, layout, summary.rows, final=False)
                inputs = _as_npz_text(inputs, layout)
            sink.put(computed_columns(inputs, result, request.digits))
            if on_progress is not None:
                on_progress(reader.bytes_read, summary.rows)
        if summary.rows == 0:
            raise DataProblem("the input has a header but no rows")
        if layout is not None:
            _check_rows(request, layout, summary.rows, final=True)


def _check_rows(
    request: BatchRequest, layout: dict[str, tuple[np.dtype, tuple[int, ...]]], rows: int, final: bool
) -> None:
    """The .npz's members were shaped by the first pass's row count: an input that changed
    since (more rows, or, at the end, fewer) would not fit them."""
    counted = next(iter(layout.values()))[1][0]
    if rows > counted or (final and rows != counted):
        second = "more" if rows > counted else f"{rows:,}"
        raise changed_between_passes(request, "the .npz output", f"{counted:,} rows", second)


def _csv_layout(
    path: str, request: BatchRequest
) -> tuple[dict[str, tuple[np.dtype, tuple[int, ...]]], MeanDenominators]:
    """Each .npz member's type and shape: a pass over the input (through the core, so that
    a bad row stops the run before the output is begun) for the rows and the widest text;
    and the mean's denominators, counted on the way."""
    rows, widths, classes, labels = 0, dict[str, int](), 0, True
    tally = DenominatorTally()
    for parsed, plan, result, _ in computed_blocks(path, request, None, wide=True):
        assert not isinstance(parsed, PlainBlock)  # plain blocks only when asked for (plain=True)
        tally.add(result)
        rows += result.num_rows
        classes, labels = result.num_classes, parsed.labels is not None
        for name, column in _csv_inputs(parsed, plan, request.delimiter, "npz").items():
            if isinstance(column, pl.Series):
                longest = column.str.len_chars().max()
                widths[name] = max(widths.get(name, 1), longest if isinstance(longest, int) else 0)
    if rows == 0:
        raise DataProblem("the input has a header but no rows")
    return npz_layout(rows, classes, labels, request.options.dtype, widths), tally.denominators(request.options)


def _as_npz_text(inputs: dict[str, Any], layout: dict[str, tuple[np.dtype, tuple[int, ...]]]) -> dict[str, Any]:
    """The text columns as numpy strings of the member's width (an empty cell as "")."""
    return {
        name: column.fill_null("").to_numpy().astype(layout[name][0]) if isinstance(column, pl.Series) else column
        for name, column in inputs.items()
    }


def _csv_inputs(
    parsed: ParsedBlock | WideBlock, plan: ColumnPlan, delimiter: str, output_format: str
) -> dict[str, Any]:
    """The block's input columns: the other columns as their text, then the grouped ones as arrays."""
    grouped = {plan.label, *plan.logits, *(plan.targets or ())}
    others = [name for name in plan.names if name not in grouped]
    clash = [name for name in others if name in ARRAY_NAMES]
    if clash:
        raise DataProblem(
            f"the input has a column {clash[0]!r}, the name of one of the {output_format} output's arrays; "
            f"rename the column, or choose the logit columns with {option('logit_cols')}"
        )
    inputs: dict[str, Any] = {}
    if isinstance(parsed, ParsedBlock):
        inputs = {name: parsed.text.get_column(name) for name in others}
    elif others:  # plain lines (no quotes): each cell is the text between delimiters
        cells = [record.decode("utf-8").split(delimiter) for record in parsed.records]
        inputs = {name: pl.Series(name, [row[plan.positions[name]] for row in cells], pl.String) for name in others}
    inputs["logits"] = parsed.logits
    if parsed.labels is not None:
        inputs["labels"] = parsed.labels
    else:
        inputs["targets"] = parsed.targets
    return inputs
