"""A block of CSV records read into numbers by polars: every input column kept
as its text, the logits, labels and targets as arrays, and every cell that
cannot be read named by line, column and value (see :mod:`.problems`)."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from sce.io.csv.columns import ColumnPlan
from sce.io.csv.problems import cell_problem, structure_problem
from sce.io.csv.records import Block, record_lines, records_with_lines
from sce.number_text import BEYOND_FLOAT64, beyond_float64, read_number


@dataclass
class ParsedBlock:
    text: pl.DataFrame  # every input column, as the text it was
    logits: np.ndarray
    labels: np.ndarray | None
    targets: np.ndarray | None
    block: Block
    delimiter: str

    def line_of_row(self, row: int) -> int:
        return record_lines(self.block, self.delimiter)[row]


def read_block_csv(data: bytes, **options: Any) -> pl.DataFrame:
    """``pl.read_csv`` of a block's bytes as they are. polars drops one byte-order mark that starts
    what it reads (the file's own was taken off before): a second in front keeps a row that
    starts with one as it reads mid-block (an id keeps it, a number after it is refused)."""
    return pl.read_csv(codecs.BOM_UTF8 + data if data.startswith(codecs.BOM_UTF8) else data, **options)


def parse_block(block: Block, plan: ColumnPlan, delimiter: str) -> ParsedBlock:
    try:
        frame = read_block_csv(
            block.data,
            has_header=False,
            new_columns=list(plan.names),
            schema={name: pl.String for name in plan.names},
            separator=delimiter,
            raise_if_empty=False,
            truncate_ragged_lines=False,
        )
    except pl.exceptions.PolarsError:
        raise structure_problem(block, plan, delimiter) from None
    # A row can be all empty only where every column has an empty cell: counted natively, which
    # spares a query across every column (most of a block's time at 60,000 columns).
    if frame.width and min(frame.null_count().row(0)) > 0:
        empty = frame.select(pl.all_horizontal(pl.all().is_null())).to_series()
        if empty.any():
            frame = frame.filter(~blank_lines(block, delimiter, empty))
    logits = read_numbers(frame, plan.logits, block, plan, delimiter)
    targets = None if plan.targets is None else read_numbers(frame, plan.targets, block, plan, delimiter)
    labels = None if plan.label is None else read_labels(frame, plan.label, block, plan, delimiter)
    return ParsedBlock(frame, logits, labels, targets, block, delimiter)


def blank_lines(block: Block, delimiter: str, empty: pl.Series) -> pl.Series:
    """Which of the rows polars read as all-null are blank lines, which are
    skipped, rather than rows of empty fields (",,"), which are errors like a
    row with one empty field (and must stay, or every later line is misnamed)."""
    records = [fields for _, fields in records_with_lines(block, delimiter)]
    if len(records) != len(empty):  # not one polars row per record: skip all-null rows, as polars does
        return empty
    return empty & pl.Series([not fields for fields in records])


def read_numbers(
    frame: pl.DataFrame, columns: tuple[str, ...], block: Block, plan: ColumnPlan, delimiter: str
) -> np.ndarray:
    values = frame.select(pl.col(columns).cast(pl.Float64, strict=False))
    # The columns with a cell polars could not read, counted natively in one pass: a query per
    # column, or across them all, adds up to seconds over 100,000 columns.
    nulls = values.null_count().row(0)
    if any(nulls):
        # Spaces around the numbers ("1, 2, 3") are common: polars strips them fast.
        values = frame.select(pl.col(columns).str.strip_chars().cast(pl.Float64, strict=False))
        nulls = values.null_count().row(0)
    array = values.to_numpy().astype(np.float64, copy=False).reshape(frame.height, len(columns))
    for k, name in enumerate(columns):
        if nulls[k]:
            rejected = values.get_column(name).is_null()
            array[:, k] = read_rejected(frame, array[:, k], rejected, name, block, plan, delimiter)
    overflow = overflowed_cell(array, lambda row, k: frame[row, columns[k]])
    if overflow is not None:
        row, k = overflow
        raise cell_problem(frame, row, columns[k], block, plan, delimiter, BEYOND_FLOAT64)
    return array


def overflowed_cell(array: np.ndarray, text_of: Callable[[int, int], str | None]) -> tuple[int, int] | None:
    """The first cell read as ±inf whose text does not spell inf (1e400), as (row, column)."""
    if not np.isinf(array).any():
        return None
    for row, k in np.argwhere(np.isinf(array)):
        text = text_of(int(row), int(k))
        if text is None or beyond_float64(text, float(array[row, k])):
            return int(row), int(k)
    return None


def read_rejected(
    frame: pl.DataFrame,
    column: np.ndarray,
    rejected: pl.Series,
    name: str,
    block: Block,
    plan: ColumnPlan,
    delimiter: str,
    problem: str = "is not a number",
) -> np.ndarray:
    """The cells polars' cast rejects, read again by the command line's parser
    (1_000, other scripts' digits, the minus sign U+2212): both accept the
    same spellings, and the fast path stays fast. The first unreadable cell is an error."""
    column = column.copy()
    rows = np.flatnonzero(rejected.to_numpy())
    for row, cell in zip(rows, frame.get_column(name).gather(rows), strict=True):
        number = None if cell is None else read_number(cell)
        if number is None:
            raise cell_problem(frame, int(row), name, block, plan, delimiter, problem)
        column[row] = number
    return column


def read_labels(frame: pl.DataFrame, column: str, block: Block, plan: ColumnPlan, delimiter: str) -> np.ndarray:
    problem = "is not a class index (an integer)"
    cast = frame.get_column(column).str.strip_chars().cast(pl.Float64, strict=False)
    values = cast.to_numpy()
    rejected = cast.is_null()
    if rejected.any():
        values = read_rejected(frame, values, rejected, column, block, plan, delimiter, problem)
    # Integral floats such as 1.0 (as pandas writes integer columns with gaps) are accepted.
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        raise cell_problem(frame, int(np.flatnonzero(bad)[0]), column, block, plan, delimiter, problem)
    huge = np.abs(values) >= 2.0**63
    if huge.any():
        problem = "is too large for a class index (beyond a 64-bit integer); labels are 0 to K-1"
        raise cell_problem(frame, int(np.flatnonzero(huge)[0]), column, block, plan, delimiter, problem)
    return values.astype(np.int64)
