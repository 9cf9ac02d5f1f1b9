"""Rows of many columns (a vocabulary of logits), without a frame of K columns.

polars keeps a few kilobytes for every column of a frame: a block of three
rows of 100,000 columns took over a gigabyte to read, and the output frame of
200,000 more columns as much again. Here a block is read as one long column
of cells (row after row) and its output is formatted as one long column of
numbers, cut back into rows, so memory follows the block's size, not K.

Only blocks whose records are plain lines take this path: no quote
character, no carriage return except before a newline, and every non-blank
line with one field per column. Their cells are then exactly what polars
reads (an empty field is read as empty, and polars' null is an empty value
too), and each input line is exactly what polars would write back. Any
other block, and every error in one, goes the usual way or is worded by the
same functions, so the messages and the output are the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import polars as pl

from sce.io.csv.columns import ColumnPlan
from sce.io.csv.parse import overflowed_cell, read_block_csv, read_labels
from sce.io.csv.problems import cell_problem
from sce.io.csv.records import Block
from sce.io.writers.text import header_line
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import BEYOND_FLOAT64, read_number

#: From this many input columns on, a block is read and written the wide way.
WIDE_COLUMNS = 1000
#: Output numbers formatted at a time: the text of this many numbers (about
#: 20 bytes each) and its two copies stay within a few MB beside the block's output.
FORMAT_CELLS = 1 << 17


@dataclass
class WideBlock:
    """A parsed block of plain lines: the records as they were and their numbers."""

    records: list[bytes]
    """Each non-blank line, without its line ending."""
    line_numbers: list[int]
    logits: np.ndarray
    labels: np.ndarray | None
    targets: np.ndarray | None

    def line_of_row(self, row: int) -> int:
        return self.line_numbers[row]


@dataclass
class TextRows:
    """Output rows already encoded, with the header to write before the first."""

    header: bytes
    body: bytes

    def write(self, stream: BinaryIO, header: bool) -> None:
        if header:
            stream.write(self.header)
        stream.write(self.body)


def parse_wide_block(
    block: Block, plan: ColumnPlan, delimiter: str, output_separator: str | None
) -> WideBlock | None:
    """The block read as plain lines, or None where it is not made of them
    (quotes, a bare carriage return, a row of the wrong length, a cell that
    would need quoting in the output): the usual path reads those."""
    data = block.data
    separator = delimiter.encode()
    if len(separator) != 1 or b'"' in data or data.count(b"\r") != data.count(b"\r\n"):
        return None
    if output_separator not in (None, delimiter):
        return None  # each input line is copied as it is: with another separator it would be one field
    records: list[bytes] = []
    line_numbers: list[int] = []
    for offset, line in enumerate(data.split(b"\n")):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line:  # a blank line is skipped
            records.append(line)
            line_numbers.append(block.first_line + offset)
    if any(record.count(separator) != len(plan.names) - 1 for record in records):
        return None  # a row of the wrong length
    numbers = _plain_numbers(records, plan, separator)
    if numbers is not None:
        return WideBlock(records, line_numbers, *numbers)
    lines = pl.Series([record.decode("utf-8") for record in records], dtype=pl.String)
    cells = lines.str.split(delimiter).explode()
    logits = _numbers(cells, plan.logits, block, plan, delimiter)
    targets = None if plan.targets is None else _numbers(cells, plan.targets, block, plan, delimiter)
    labels = None
    if plan.label is not None:
        label_cells = _gather(cells, len(records), len(plan.names), [plan.positions[plan.label]])
        labels = read_labels(label_cells.to_frame(plan.label), plan.label, block, plan, delimiter)
    return WideBlock(records, line_numbers, logits, labels, targets)


def _plain_numbers(
    records: list[bytes], plan: ColumnPlan, separator: bytes
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    """Logits, labels and targets where every cell is read as a finite number at once: the cells
    one a line, read by polars' reader in one call (its text cast, cell by cell, took twice as
    long and three calls into polars' thread pool, which the writer's thread shares). None
    otherwise: the cells are then read one by one, and a problem worded."""
    text = b"\n".join(records).replace(separator, b"\n") + b"\n"
    try:
        # Read with the input's separator, which the text no longer holds: a TSV's "5," is one
        # cell (polars' default "," read a last line's "5," as 5).
        read = read_block_csv(
            text, has_header=False, separator=separator.decode(), quote_char=None, schema={"cell": pl.Float64}
        ).to_series()
    except pl.exceptions.PolarsError:
        return None
    width = len(plan.names)
    if len(read) != len(records) * width or read.null_count():
        return None  # an empty cell is a blank line there, skipped
    cells = read.to_numpy().reshape(len(records), width)
    if not np.isfinite(cells).all():
        return None
    logits = cells[:, [plan.positions[name] for name in plan.logits]]
    targets = None if plan.targets is None else cells[:, [plan.positions[name] for name in plan.targets]]
    labels = None
    if plan.label is not None:
        values = cells[:, plan.positions[plan.label]]
        if not (values == np.round(values)).all() or (np.abs(values) >= 2.0**63).any():
            return None
        labels = values.astype(np.int64)
    return logits, labels, targets


def _gather(cells: pl.Series, rows: int, width: int, columns: list[int]) -> pl.Series:
    """The cells of ``columns`` in every row, row after row."""
    flat = (np.arange(rows, dtype=np.int64)[:, None] * width + np.asarray(columns, dtype=np.int64)).ravel()
    return cells.gather(flat)


def _numbers(
    cells: pl.Series, columns: tuple[str, ...], block: Block, plan: ColumnPlan, delimiter: str
) -> np.ndarray:
    """As parse.read_numbers reads a frame's columns: polars' cast, then the same
    with spaces stripped, then the command line's parser for the cells both
    reject; the first unreadable cell of the first column that has one is the error."""
    rows = len(cells) // len(plan.names)
    texts = _gather(cells, rows, len(plan.names), [plan.positions[name] for name in columns])
    values = texts.cast(pl.Float64, strict=False)
    if values.null_count():
        values = texts.str.strip_chars().cast(pl.Float64, strict=False)
    array = values.to_numpy().astype(np.float64, copy=False).reshape(rows, len(columns))
    rejected = values.is_null().to_numpy().reshape(rows, len(columns))
    if rejected.any():
        array = array.copy()
        for k, row in np.argwhere(rejected.T):  # column by column, as the frame is read
            number = read_number(texts[int(row) * len(columns) + int(k)])
            if number is None:
                name = columns[k]
                column = texts.gather(np.arange(rows) * len(columns) + k).to_frame(name)
                raise cell_problem(column, int(row), name, block, plan, delimiter, "is not a number")
            array[row, k] = number
    overflow = overflowed_cell(array, lambda row, k: texts[row * len(columns) + k])
    if overflow is not None:
        row, k = overflow
        column = texts.gather(np.arange(rows) * len(columns) + k).to_frame(columns[k])
        raise cell_problem(column, row, columns[k], block, plan, delimiter, BEYOND_FLOAT64)
    return array


def wide_rows(
    parsed: WideBlock, plan: ColumnPlan, result: SoftmaxCrossEntropyResult, digits: int | None, separator: str
) -> WideRows:
    """The output rows: each input line as it was, then p_*, loss, grad_*,
    every number spelled as polars' CSV writer spells it in a frame (when written)."""
    # One dtype throughout (float32 under --dtype float32), spelled as that type.
    numbers = np.concatenate([result.probabilities, result.losses[:, None], result.gradient], axis=1)
    return WideRows(_header(plan, separator), parsed.records, numbers, digits, separator.encode())


@dataclass
class WideRows:
    """Output rows of many columns, encoded when written, or before by :meth:`encode`.

    Spelling the numbers is most of the work of a wide block (more than reading and
    computing it): done as the rows are written, on the background writer's thread, it
    runs while the main thread reads and computes the next block; a main thread that
    would wait for the writer encodes the rows itself instead.
    """

    header: bytes
    records: list[bytes]
    """Each input line as it was, without its line ending."""
    numbers: np.ndarray
    """p_*, loss, grad_* of each row."""
    digits: int | None
    separator: bytes
    encoded: list[bytes] | None = None

    def encode(self) -> None:
        if self.encoded is None:
            self.encoded = list(self._encoded())

    def write(self, stream: BinaryIO, header: bool) -> None:
        if header:
            stream.write(self.header)
        for text in self.encoded if self.encoded is not None else self._encoded():
            stream.write(text)

    def _encoded(self) -> Iterator[bytes]:
        """The rows' text, a few rows at a time."""
        numbers = self.numbers
        if self.digits is not None:
            numbers = pl.Series(numbers.ravel()).round_sig_figs(self.digits).to_numpy().reshape(numbers.shape)
        # text.write_frame spells every float of a block by its cast to text if any is NaN.
        as_text = bool(np.isnan(numbers).any())
        rows_at_a_time = max(1, FORMAT_CELLS // numbers.shape[1])
        sep = self.separator
        for start in range(0, len(numbers), rows_at_a_time):
            formatted = formatted_rows(numbers[start : start + rows_at_a_time], as_text, sep)
            pieces: list[bytes] = []
            for record, row in zip(self.records[start : start + rows_at_a_time], formatted, strict=True):
                pieces += (record, sep, row, b"\n")
            yield b"".join(pieces)


def formatted_rows(numbers: np.ndarray, as_text: bool, separator: bytes) -> list[bytes]:
    """Each row of ``numbers`` as polars writes it, the numbers joined by the separator."""
    column = pl.Series("v", numbers.ravel())
    if as_text:
        column = (
            column.to_frame()
            .select(pl.when(pl.col("v").is_nan()).then(pl.lit("nan")).otherwise(pl.col("v").cast(pl.String)))
            .to_series()
        )
    buffer = io.BytesIO()
    column.to_frame().write_csv(buffer, include_header=False)
    # Edited in place, in the buffer's own memory: the two copies of the text (getvalue, a
    # writable array of it) took a fifth of the time polars takes to write it.
    with buffer.getbuffer() as memory:
        text = np.frombuffer(memory, dtype=np.uint8)
        # One number a line: every line end becomes the separator, and each row is cut before its last.
        ends = np.flatnonzero(text == ord("\n"))
        text[ends] = separator[0]
        row_ends = ends[numbers.shape[1] - 1 :: numbers.shape[1]].tolist()
        rows = [text[start:end].tobytes() for start, end in zip([0, *(end + 1 for end in row_ends)], row_ends)]
        del text
    return rows


def _header(plan: ColumnPlan, separator: str) -> bytes:
    return header_line(plan.names + plan.output_names, separator)
