"""The CSV or TSV input as a source of the batch loop: blocks of whole records,
parsed (the usual frame way, the plain way or the wide way), run through the
loss, and given to the sink as text rows or as arrays."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from sce.batch.compute import DenominatorTally, MeanDenominators, compute_block
from sce.batch.partition import PartOfWhole
from sce.batch.request import BatchRequest
from sce.errors import DataProblem, OptionDataProblem, SceError, option
from sce.io.arrays.formats import is_regular_file
from sce.io.csv.columns import ColumnPlan, plan_columns
from sce.io.csv.parse import ParsedBlock, parse_block
from sce.io.csv.plain import PlainBlock, parse_plain_block, plain_rows
from sce.io.csv.records import Block, BlockReader, skip_leading_blank_lines, split_header
from sce.io.csv.wide import WIDE_COLUMNS, WideBlock, parse_wide_block, wide_rows
from sce.io.signals import raise_if_interrupted, shielded
from sce.io.writers.arrays import BINARY_FORMATS, npz_layout
from sce.io.writers.atomic import spooled_copy
from sce.io.writers.text import EncodedRows, output_frame
from sce.loss import SoftmaxCrossEntropyResult
from sce.options import LossOptions

AnyBlock = ParsedBlock | WideBlock | PlainBlock
NpzLayout = dict[str, tuple[np.dtype, tuple[int, ...]]]
#: The names of the binary outputs' arrays, which a CSV input's other columns must not take.
ARRAY_NAMES = ("logits", "labels", "targets", "probabilities", "loss", "grad")


@dataclass(frozen=True)
class CsvInput:
    """How a CSV or TSV input is read: its path and the choices made for it."""

    path: str
    """The input as given: a path, or - for stdin."""
    delimiter: str = ","
    encoding: str = "utf-8"
    has_header: bool = True
    label_col: str | None = None
    logit_cols: str | None = None
    target_cols: str | None = None
    grad_cols: str | None = None
    loss_col: str | None = None
    output_separator: str | None = None
    """The text output's separator (None for JSON Lines, or no text output): a plain line is
    copied into the output as it is only where it is the input's own."""
    id_col: str | None = None

    @property
    def name(self) -> str:
        return "stdin" if self.path == "-" else self.path

    def plan(self, names: list[str]) -> ColumnPlan:
        return plan_columns(
            names,
            label_col=self.label_col,
            logit_cols=self.logit_cols,
            target_cols=self.target_cols,
            has_header=self.has_header,
            grad_cols=self.grad_cols,
            loss_col=self.loss_col,
            delimiter=self.delimiter,
            id_col=self.id_col,
        )


def csv_input(request: BatchRequest) -> CsvInput:
    """The request's CSV fields, unpacked once."""
    return CsvInput(
        request.input_path,
        request.delimiter,
        request.encoding,
        request.has_header,
        request.label_col,
        request.logit_cols,
        request.target_cols,
        request.grad_cols,
        request.loss_col,
        {"csv": ",", "tsv": "\t"}.get(request.output_format),
        request.id_col,
    )


def open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 (closed by the caller)
    except OSError as error:
        raise OptionDataProblem("input_path", f"cannot read {path}: {error.strerror}") from None


def check_openable(path: str) -> None:
    """Refuse an input that cannot be opened, with :func:`open_input`'s words, before anything
    else is asked of it. A pipe or a device is left to be opened once, when it is read: opening
    it to try would take the read end from its writer."""
    if path == "-":
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = stat.S_IFREG  # missing, or behind a folder that cannot be searched: open says which
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        open_input(path).close()


def read_blocks(path: str, given: CsvInput) -> Iterator[tuple[ColumnPlan, Block, BlockReader]]:
    """Every block of records after the header, with the column plan (``path`` is the
    input's, or its spool's)."""
    stream = open_input(path)
    try:
        reader = BlockReader(stream, given.encoding, name="stdin" if path == "-" else path)
        fields, first = reader.first_record(given.delimiter)
        if first is None:
            raise DataProblem("the input is empty; it needs a header line and rows of logits")
        if given.has_header:
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
        plan = given.plan(names)
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
def readable_input(path: str, reads_twice: bool) -> Iterator[str]:
    """A path to read the input from, as often as needed. For 'mean' (and .npz
    output, which needs the row count first), which read twice, an input that
    is not a regular file (stdin, a pipe, a FIFO, a process substitution, a
    device) is first copied to a spool file in the temporary folder, removed
    afterwards whatever happens."""
    if not reads_twice or _is_regular_file(path):
        yield path
        return
    stream = open_input(path)
    name = "stdin" if path == "-" else path
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
    path: str,
    given: CsvInput,
    options: LossOptions,
    denominator: MeanDenominators | None,
    wide: bool = False,
    plain: bool = False,
    expected: MeanDenominators | None = None,
) -> Iterator[tuple[AnyBlock, ColumnPlan, SoftmaxCrossEntropyResult, BlockReader]]:
    """Every block of the input, parsed and run through the core. With
    ``wide``, blocks of many columns may come as WideBlocks (no text frame);
    with ``plain``, blocks of plain lines as PlainBlocks (their lines kept whole).

    Given the ``denominator`` a first pass counted, the blocks' own are counted too, and a
    difference (the file changed between the passes) raises after the last block, before
    any output is put in place. ``expected``: what the first pass counted in this input, where
    it is a part of a larger one whose ``denominator`` the rows divide by."""
    tally = None if denominator is None else DenominatorTally()
    for plan, block, reader in read_blocks(path, given):
        raise_if_interrupted()  # a signal that arrived in polars' code, or a SIGPIPE
        parsed, result = _computed_block(block, plan, given, options, denominator, wide, plain)
        if tally is not None:
            tally.add(result)
        yield parsed, plan, result, reader
    if tally is not None and denominator is not None:
        _check_unchanged(given, expected or denominator, tally.denominators(options))


def _check_unchanged(given: CsvInput, first: MeanDenominators, second: MeanDenominators) -> None:
    if first != second:
        raise changed_between_passes(
            given.name,
            option("reduction", "mean"),
            f"{first.z_loss:,.0f} counted rows of weight {first.cross_entropy:g}",
            f"{second.z_loss:,.0f} of weight {second.cross_entropy:g}",
        )


def changed_between_passes(name: str, why: str, first: str, second: str) -> DataProblem:
    """An input read twice (for ``why``) that did not read the same the second time."""
    return DataProblem(
        f"{name} changed while it was read twice for {why}: {first} the first time, {second} the second; "
        "run it again on a file that stays as it is (or a copy)"
    )


def _computed_block(
    block: Block,
    plan: ColumnPlan,
    given: CsvInput,
    options: LossOptions,
    denominator: MeanDenominators | None,
    wide: bool,
    plain: bool,
) -> tuple[AnyBlock, SoftmaxCrossEntropyResult]:
    if wide and len(plan.names) >= WIDE_COLUMNS:
        wide_block = parse_wide_block(block, plan, given.delimiter, given.output_separator)
        if wide_block is not None:
            return wide_block, compute_block(wide_block, plan, options, denominator)
    elif plain:
        plain_block = parse_plain_block(block, plan, given.delimiter)
        if plain_block is not None:
            try:
                return plain_block, compute_block(plain_block, plan, options, denominator)
            except SceError:
                pass  # read again the usual way, which words the error
    parsed = parse_block(block, plan, given.delimiter)
    return parsed, compute_block(parsed, plan, options, denominator)


def mean_denominator(path: str, given: CsvInput, options: LossOptions) -> MeanDenominators | None:
    """For reduction 'mean', the weight sum (or row count) of the whole input, and its
    counted rows, which divide the z-loss.

    The mean divides every gradient by them, so they must be known before the
    first row is written: a first pass computes them.
    """
    if options.reduction != "mean":
        return None
    tally = DenominatorTally()
    # Nothing is written in this pass: any block of many columns may be read the wide way.
    for _, _, result, _ in computed_blocks(path, given, options, None, wide=True, plain=True):
        tally.add(result)
    return tally.denominators(options)


class CsvSource:
    """The input's blocks through the loss, for the batch loop; ``path`` is where the input
    is read from (itself, or its spool)."""

    def __init__(
        self, path: str, given: CsvInput, options: LossOptions, output_format: str, digits: int | None
    ) -> None:
        self.path, self.given, self.options = path, given, options
        self.output_format, self.digits = output_format, digits
        self.denominators: MeanDenominators | None = None
        self.expected: MeanDenominators | None = None
        self.is_part = False
        self.layout: NpzLayout | None = None
        self.plan: ColumnPlan | None = None
        self.bytes_read = 0

    def prepare(self, part: PartOfWhole | None = None) -> None:
        """The first pass: the mean's denominators, and for .npz the members' shapes. For a
        ``part`` of a larger input, the whole's denominators, counted already."""
        self.is_part = part is not None
        if part is not None and part.whole is not None:
            self.denominators, self.expected = part.whole, part.own
            if self.output_format == "npz":
                self.layout = _csv_layout(self.path, self.given, self.options)[0]
        elif self.output_format == "npz":
            # An .npz output's own first pass (its members' shapes) counts the mean's denominators too.
            self.layout, counted = _csv_layout(self.path, self.given, self.options)
            self.denominators = counted if self.options.reduction == "mean" else None
        else:
            self.denominators = mean_denominator(self.path, self.given, self.options)

    def blocks(self) -> Iterator[tuple[AnyBlock, SoftmaxCrossEntropyResult]]:
        separator = self.given.output_separator
        wide = separator is not None or self.output_format in BINARY_FORMATS  # no frame of K text columns
        plain = separator is not None and separator == self.given.delimiter
        for parsed, plan, result, reader in computed_blocks(
            self.path, self.given, self.options, self.denominators, wide=wide, plain=plain, expected=self.expected
        ):
            self.plan, self.bytes_read = plan, reader.bytes_read
            yield parsed, result

    def progress(self, rows: int) -> int:
        return self.bytes_read

    def text(self, parsed: AnyBlock, result: SoftmaxCrossEntropyResult, rows: int) -> pl.DataFrame | EncodedRows:
        """One block's output rows as text."""
        assert self.plan is not None
        separator = self.given.output_separator
        if isinstance(parsed, WideBlock):
            assert separator is not None
            return wide_rows(parsed, self.plan, result, self.digits, separator)
        if isinstance(parsed, PlainBlock):
            assert separator is not None
            return plain_rows(parsed, self.plan, result, self.digits, separator)
        return output_frame(parsed, self.plan, result, self.digits, self.output_format == "jsonl")

    def columns(self, parsed: AnyBlock, result: SoftmaxCrossEntropyResult, rows: int) -> dict[str, Any]:
        """One block's input columns as arrays (the other columns as text), for the computed to follow."""
        assert self.plan is not None and not isinstance(parsed, PlainBlock)  # plain blocks: text output only
        inputs = csv_inputs(parsed, self.plan, self.given.delimiter, self.output_format)
        if self.layout is not None:
            _check_rows(self.given, self.layout, rows, final=False)
            inputs = _as_npz_text(inputs, self.layout)
        return inputs

    def npz_layout(self) -> NpzLayout:
        assert self.layout is not None
        return self.layout

    def finish(self, rows: int) -> None:
        """After the last block, before the output is put in place (a part of a larger input
        may have no rows: the whole is checked for some)."""
        if rows == 0 and not self.is_part:
            raise DataProblem("the input has a header but no rows")
        if self.layout is not None:
            _check_rows(self.given, self.layout, rows, final=True)


def _check_rows(given: CsvInput, layout: NpzLayout, rows: int, final: bool) -> None:
    """The .npz's members were shaped by the first pass's row count: an input that changed
    since (more rows, or, at the end, fewer) would not fit them."""
    counted = next(iter(layout.values()))[1][0]
    if rows > counted or (final and rows != counted):
        second = "more" if rows > counted else f"{rows:,}"
        raise changed_between_passes(given.name, "the .npz output", f"{counted:,} rows", second)


def _csv_layout(path: str, given: CsvInput, options: LossOptions) -> tuple[NpzLayout, MeanDenominators]:
    """Each .npz member's type and shape: a pass over the input (through the core, so that
    a bad row stops the run before the output is begun) for the rows and the widest text;
    and the mean's denominators, counted on the way."""
    rows, widths, classes, labels = 0, dict[str, int](), 0, True
    tally = DenominatorTally()
    for parsed, plan, result, _ in computed_blocks(path, given, options, None, wide=True):
        assert not isinstance(parsed, PlainBlock)  # plain blocks only when asked for (plain=True)
        tally.add(result)
        rows += result.num_rows
        classes, labels = result.num_classes, parsed.labels is not None
        for name, column in csv_inputs(parsed, plan, given.delimiter, "npz").items():
            if isinstance(column, pl.Series):
                longest = column.str.len_chars().max()
                widths[name] = max(widths.get(name, 1), longest if isinstance(longest, int) else 0)
    if rows == 0:
        raise DataProblem("the input has a header but no rows")
    return npz_layout(rows, classes, labels, options.dtype, widths), tally.denominators(options)


def _as_npz_text(inputs: dict[str, Any], layout: NpzLayout) -> dict[str, Any]:
    """The text columns as numpy strings of the member's width (an empty cell as "")."""
    return {
        name: column.fill_null("").to_numpy().astype(layout[name][0]) if isinstance(column, pl.Series) else column
        for name, column in inputs.items()
    }


def csv_inputs(
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
