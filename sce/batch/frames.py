"""Blocks to numbers and back, with polars: parsing a block's cells (every
problem named by line, column and value), running the core on it, and
building and writing the output frame."""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import polars as pl

from sce.errors import DataProblem, option, option_problem
from sce.io.csv.columns import ColumnPlan
from sce.io.csv.records import Block, _record_at, _record_lines, _records
from sce.loss import InvalidInput, SoftmaxCrossEntropyResult, softmax_cross_entropy
from sce.number_text import BEYOND_FLOAT64, beyond_float64, quoted_cell, read_number
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.batch.plain import PlainBlock, PlainRows
    from sce.batch.wide import TextRows, WideBlock


@dataclass
class ParsedBlock:
    text: pl.DataFrame  # every input column, as the text it was
    logits: np.ndarray
    labels: np.ndarray | None
    targets: np.ndarray | None
    block: Block
    delimiter: str

    def line_of_row(self, row: int) -> int:
        return _record_lines(self.block, self.delimiter)[row]


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
        raise _locate_structure_problem(block, plan, delimiter) from None
    empty = frame.select(pl.all_horizontal(pl.all().is_null())).to_series()
    if empty.any():
        frame = frame.filter(~_blank_lines(block, delimiter, empty))
    logits = _numbers(frame, plan.logits, block, plan, delimiter)
    targets = None if plan.targets is None else _numbers(frame, plan.targets, block, plan, delimiter)
    labels = None if plan.label is None else _labels(frame, plan.label, block, plan, delimiter)
    return ParsedBlock(frame, logits, labels, targets, block, delimiter)


def _blank_lines(block: Block, delimiter: str, empty: pl.Series) -> pl.Series:
    """Which of the rows polars read as all-null are blank lines, which are
    skipped, rather than rows of empty fields (",,"), which are errors like a
    row with one empty field (and must stay, or every later line is misnamed)."""
    records = [fields for _, fields in _records(block, delimiter)]
    if len(records) != len(empty):  # not one polars row per record: skip all-null rows, as polars does
        return empty
    return empty & pl.Series([not fields for fields in records])


def _numbers(
    frame: pl.DataFrame, columns: tuple[str, ...], block: Block, plan: ColumnPlan, delimiter: str
) -> np.ndarray:
    values = frame.select(pl.col(columns).cast(pl.Float64, strict=False))
    if values.null_count().sum_horizontal().item():
        # Spaces around the numbers ("1, 2, 3") are common: polars strips them fast.
        values = frame.select(pl.col(columns).str.strip_chars().cast(pl.Float64, strict=False))
    array = values.to_numpy().astype(np.float64, copy=False).reshape(frame.height, len(columns))
    for k, name in enumerate(columns):
        rejected = values.get_column(name).is_null()
        if rejected.any():
            array[:, k] = _read_rejected(frame, array[:, k], rejected, name, block, plan, delimiter)
    overflow = overflowed_cell(array, lambda row, k: frame[row, columns[k]])
    if overflow is not None:
        row, k = overflow
        raise _cell_problem(frame, row, columns[k], block, plan, delimiter, BEYOND_FLOAT64)
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


def _read_rejected(
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
            raise _cell_problem(frame, int(row), name, block, plan, delimiter, problem)
        column[row] = number
    return column


def _labels(frame: pl.DataFrame, column: str, block: Block, plan: ColumnPlan, delimiter: str) -> np.ndarray:
    problem = "is not a class index (an integer)"
    cast = frame.get_column(column).str.strip_chars().cast(pl.Float64, strict=False)
    values = cast.to_numpy()
    rejected = cast.is_null()
    if rejected.any():
        values = _read_rejected(frame, values, rejected, column, block, plan, delimiter, problem)
    # Integral floats such as 1.0 (as pandas writes integer columns with gaps) are accepted.
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        raise _cell_problem(frame, int(np.flatnonzero(bad)[0]), column, block, plan, delimiter, problem)
    huge = np.abs(values) >= 2.0**63
    if huge.any():
        problem = "is too large for a class index (beyond a 64-bit integer); labels are 0 to K-1"
        raise _cell_problem(frame, int(np.flatnonzero(huge)[0]), column, block, plan, delimiter, problem)
    return values.astype(np.int64)


def _cell_problem(
    frame: pl.DataFrame, row: int, column: str, block: Block, plan: ColumnPlan, delimiter: str, problem: str
) -> DataProblem:
    line, fields = _record_at(block, delimiter, row)
    if len(fields) != len(plan.names):
        return _field_count_problem(line, len(fields), len(plan.names))
    value = frame[row, column]
    if value is None or not value.strip():
        return DataProblem(f"line {line}, column {column}: the value is empty; every row needs a value here")
    hint = ""
    if plan.logits_by_default and column in plan.logits and problem.startswith("is not a number"):
        hint = f"; if {column} is not a logit column, name the logit columns with {option('logit_cols')}"
    return DataProblem(f"line {line}, column {column}: {quoted_cell(value)} {problem}{hint}")


def _field_count_problem(line: int, found: int, expected: int) -> DataProblem:
    return DataProblem(
        f"line {line}: {found} {'field' if found == 1 else 'fields'}, but the header has {expected}; "
        "every row needs one value per column"
    )


def _locate_structure_problem(block: Block, plan: ColumnPlan, delimiter: str) -> DataProblem:
    quote = _quote_problem(block, plan, delimiter)
    if quote is not None:
        return quote
    for line, fields in _records(block, delimiter):
        if fields and len(fields) != len(plan.names):
            return _field_count_problem(line, len(fields), len(plan.names))
    return DataProblem(f"lines {block.first_line} and after could not be read as {_format_name(delimiter)}")


def _quote_problem(block: Block, plan: ColumnPlan, delimiter: str) -> DataProblem | None:
    """The first stray quote (inside a field that does not start with one:
    12" screen) or a quote never closed. Only on the error path: a plain scan."""
    line, column, start = block.first_line, 0, 0
    text = block.data.decode("utf-8")
    position = 0
    while position < len(text):
        char = text[position]
        if char == '"':
            if text[start:position].strip(" "):
                return _stray_quote(text[start:], line, column, plan, delimiter)
            closing = _closing_quote(text, position + 1)
            if closing < 0:
                return DataProblem(
                    f"line {line}: a quoted field is never closed (it runs to the end of the input); "
                    'close the quote, or write a quote inside a field as two ("")'
                )
            line += text.count("\n", position, closing)
            position = closing
        elif char == delimiter:
            column, start = column + 1, position + 1
        elif char == "\n":
            line, column, start = line + 1, 0, position + 1
        position += 1
    return None


def _closing_quote(text: str, position: int) -> int:
    """Where the quoted field from ``position`` ends ("" is a quote inside it); -1 if never."""
    while True:
        position = text.find('"', position)
        if position < 0 or not text.startswith('"', position + 1):
            return position
        position += 2


def _stray_quote(rest: str, line: int, column: int, plan: ColumnPlan, delimiter: str) -> DataProblem:
    field = rest.split("\n")[0].split(delimiter)[0].rstrip("\r")
    name = plan.names[column] if column < len(plan.names) else str(column + 1)
    return DataProblem(
        f"line {line}, column {name}: a stray quote in {field!r}; put the field in quotes and "
        f'double the quote inside ("{field.replace(chr(34), chr(34) * 2)}"), or remove the quote'
    )


def _format_name(delimiter: str) -> str:
    return "TSV" if delimiter == "\t" else "CSV"


@dataclass(frozen=True)
class MeanDenominators:
    """What the whole input's mean divides by, counted in a first pass."""

    cross_entropy: float
    """The weight sum of the counted rows (class indices), or the row count (probabilities)."""
    z_loss: float
    """The counted rows: the z-loss is unweighted."""


def compute_block(
    parsed: ParsedBlock | WideBlock | PlainBlock,
    plan: ColumnPlan,
    options: LossOptions,
    mean_denominator: MeanDenominators | None,
) -> SoftmaxCrossEntropyResult:
    """Run the core on one block; its errors name the line and column."""

    def placed(error: InvalidInput) -> DataProblem:
        assert error.row is not None
        if error.field == "labels":
            column = plan.label
        elif error.column is None:
            column = None
        else:
            column = (plan.logits if error.field == "logits" else plan.targets)[error.column]  # type: ignore[index]
        where = f"line {parsed.line_of_row(error.row)}" + (f", column {column}" if column else "")
        hint = f"; {error.marked_hint}" if error.marked_hint else ""
        return DataProblem(f"{where}: {error.problem}{hint}")

    return core_on_block(parsed.logits, parsed.labels, parsed.targets, options, mean_denominator, placed)


def core_on_block(
    logits: np.ndarray,
    labels: np.ndarray | None,
    targets: np.ndarray | None,
    options: LossOptions,
    denominators: MeanDenominators | None,
    placed: Callable[[InvalidInput], DataProblem],
) -> SoftmaxCrossEntropyResult:
    """The core on one block of a file, with the whole file's denominators; an error about
    the block's data is ``placed`` in the file (an option's is worded as the option's)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch reports infinite losses in its summary
        try:
            return softmax_cross_entropy(
                logits,
                labels,
                targets=targets,
                options=options,
                mean_denominator=None if denominators is None else denominators.cross_entropy,
                z_loss_denominator=None if denominators is None else denominators.z_loss,
            )
        except InvalidInput as error:
            if error.field not in ("logits", "labels", "targets") or error.row is None:
                raise option_problem(error) from None
            raise placed(error) from None


# --- writing ------------------------------------------------------------------------------------------


def output_frame(
    parsed: ParsedBlock, plan: ColumnPlan, result: SoftmaxCrossEntropyResult, digits: int | None, numeric_inputs: bool
) -> pl.DataFrame:
    """The input columns as they were, then p_*, loss, grad_*."""
    computed = computed_frame(plan, result, digits)
    inputs = parsed.text
    if numeric_inputs:
        replaced = {name: parsed.logits[:, k] for k, name in enumerate(plan.logits)}
        if plan.targets is not None and parsed.targets is not None:
            replaced |= {name: parsed.targets[:, k] for k, name in enumerate(plan.targets)}
        if plan.label is not None and parsed.labels is not None:
            replaced[plan.label] = parsed.labels
        inputs = inputs.with_columns(pl.Series(name, values) for name, values in replaced.items())
    return inputs.hstack(computed)


def computed_frame(plan: ColumnPlan, result: SoftmaxCrossEntropyResult, digits: int | None) -> pl.DataFrame:
    """p_*, loss, grad_*."""
    parts = (result.probabilities.T, result.losses[None, :], result.gradient.T)
    if len({part.dtype for part in parts}) == 1:
        # Each column contiguous, copied once here: polars took twice as long gathering strided columns.
        numbers = np.concatenate(parts)
        computed = pl.DataFrame(dict(zip(plan.output_names, numbers, strict=True)))
    else:
        columns = [*result.probabilities.T, result.losses, *result.gradient.T]
        computed = pl.DataFrame(dict(zip(plan.output_names, columns, strict=True)))
    if digits is not None:
        computed = computed.select(pl.all().round_sig_figs(digits))
    return computed


def write_frame(frame: pl.DataFrame | TextRows | PlainRows, stream: BinaryIO, output_format: str, header: bool) -> None:
    """Non-finite numbers are spelled as everywhere in sce: inf, -inf and nan
    (polars writes NaN in CSV, and null in JSON Lines); the blocks without
    any take polars' fast path. Rows of many columns come already encoded."""
    if not isinstance(frame, pl.DataFrame):
        frame.write(stream, header)
        return
    if output_format == "jsonl":
        floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
        if floats and not frame.select(pl.all_horizontal(pl.col(floats).is_finite().all())).item():
            stream.write(frame.select(_json_line(frame)).to_series().str.join("\n").item().encode() + b"\n")
        else:
            # Straight into the file: through a BytesIO first took half as long again.
            frame.write_ndjson(stream)
        return
    separator = "\t" if output_format == "tsv" else ","
    in_chunks(nan_spelled(frame)).write_csv(stream, include_header=header, separator=separator)


#: Row chunks a block's frame is cut into before polars writes it: its CSV writer formats the
#: chunks of a frame in parallel, and a frame built from numpy has one (measured at 10,800 × 22:
#: 7.5 ms on one core as one chunk, 4.1 ms on both as four).
WRITE_CHUNKS = 4


def in_chunks(frame: pl.DataFrame) -> pl.DataFrame:
    """The same rows as WRITE_CHUNKS chunks (slices: nothing is copied)."""
    step = -(-frame.height // WRITE_CHUNKS)
    if frame.height < 2 * WRITE_CHUNKS or frame.n_chunks() >= WRITE_CHUNKS:
        return frame
    return pl.concat([frame.slice(start, step) for start in range(0, frame.height, step)], rechunk=False)


def nan_spelled(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame, with every float column as text if any holds a NaN (polars would write NaN)."""
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    if floats and frame.select(pl.any_horizontal(pl.col(floats).is_nan().any())).item():
        return frame.with_columns(
            pl.when(pl.col(name).is_nan()).then(pl.lit("nan")).otherwise(pl.col(name).cast(pl.String)).alias(name)
            for name in floats
        )
    return frame


def _json_line(frame: pl.DataFrame) -> pl.Expr:
    """Each row as a JSON object, with "inf", "-inf" and "nan" as strings."""
    parts: list[pl.Expr] = []
    for position, (name, dtype) in enumerate(frame.schema.items()):
        key = ("{" if position == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":"
        column = pl.col(name)
        if dtype.is_float():
            value = (
                pl.when(column.is_nan())
                .then(pl.lit('"nan"'))
                .when(column == float("inf"))
                .then(pl.lit('"inf"'))
                .when(column == float("-inf"))
                .then(pl.lit('"-inf"'))
                .otherwise(column.cast(pl.String))
            )
        elif dtype == pl.String:
            # {"name":"value"} from polars, which escapes as JSON does; keep the value.
            encoded = pl.struct(column.alias("v")).struct.json_encode()
            value = encoded.str.strip_prefix('{"v":').str.strip_suffix("}")
        else:
            value = column.cast(pl.String)
        parts.append(pl.lit(key) + value.fill_null("null"))
    return pl.concat_str(parts) + pl.lit("}")
