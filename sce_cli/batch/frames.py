"""Blocks to numbers and back, with polars: parsing a block's cells (every
problem named by line, column and value), running the core on it, and
building and writing the output frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import polars as pl

from ..core import InvalidInput, SoftmaxCrossEntropyResult, softmax_cross_entropy
from ..errors import DataProblem, option_problem
from ..options import LossOptions
from .columns import ColumnPlan
from .records import Block, _record_at, _record_lines, _records


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


def parse_block(block: Block, plan: ColumnPlan, delimiter: str) -> ParsedBlock:
    try:
        frame = pl.read_csv(
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
    # Blank lines come through as rows of nulls; they are skipped.
    blank = frame.select(pl.all_horizontal(pl.all().is_null())).to_series()
    if blank.any():
        frame = frame.filter(~blank)
    logits = _numbers(frame, plan.logits, block, plan, delimiter)
    targets = None if plan.targets is None else _numbers(frame, plan.targets, block, plan, delimiter)
    labels = None if plan.label is None else _labels(frame, plan.label, block, plan, delimiter)
    return ParsedBlock(frame, logits, labels, targets, block, delimiter)


def _numbers(
    frame: pl.DataFrame, columns: tuple[str, ...], block: Block, plan: ColumnPlan, delimiter: str
) -> np.ndarray:
    values = frame.select(pl.col(columns).cast(pl.Float64, strict=False))
    failed = values.select(pl.any_horizontal(pl.all().is_null())).to_series()
    if failed.any():
        # Spaces around the numbers ("1, 2, 3") are allowed; try again without them.
        values = frame.select(pl.col(columns).str.strip_chars().cast(pl.Float64, strict=False))
        failed = values.select(pl.any_horizontal(pl.all().is_null())).to_series()
        if failed.any():
            row = failed.arg_max()
            assert row is not None  # some row failed
            for name in columns:
                if values[row, name] is None:
                    raise _cell_problem(frame, row, name, block, plan, delimiter, "is not a number")
    return values.to_numpy().astype(np.float64, copy=False).reshape(frame.height, len(columns))


def _labels(frame: pl.DataFrame, column: str, block: Block, plan: ColumnPlan, delimiter: str) -> np.ndarray:
    raw = frame.get_column(column).str.strip_chars()
    values = raw.cast(pl.Float64, strict=False).to_numpy()
    # Integral floats such as 1.0 (as pandas writes integer columns with gaps) are accepted.
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _cell_problem(frame, row, column, block, plan, delimiter, "is not a class index (an integer)")
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
    if plan.logits_by_default and column in plan.logits:
        hint = f"; if {column} is not a logit column, name the logit columns with --logit-cols"
    return DataProblem(f"line {line}, column {column}: {value!r} {problem}{hint}")


def _field_count_problem(line: int, found: int, expected: int) -> DataProblem:
    return DataProblem(
        f"line {line}: {found} {'field' if found == 1 else 'fields'}, but the header has {expected}; "
        "every row needs one value per column"
    )


def _locate_structure_problem(block: Block, plan: ColumnPlan, delimiter: str) -> DataProblem:
    for line, fields in _records(block, delimiter):
        if fields and len(fields) != len(plan.names):
            return _field_count_problem(line, len(fields), len(plan.names))
    return DataProblem(f"lines {block.first_line} and after could not be read as {_format_name(delimiter)}")


def _format_name(delimiter: str) -> str:
    return "TSV" if delimiter == "\t" else "CSV"


def compute_block(
    parsed: ParsedBlock, plan: ColumnPlan, options: LossOptions, mean_denominator: float | None
) -> SoftmaxCrossEntropyResult:
    """Run the core on one block; its errors name the line and column."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch reports infinite losses in its summary
        try:
            return softmax_cross_entropy(
                parsed.logits,
                parsed.labels,
                targets=parsed.targets,
                options=options,
                mean_denominator=mean_denominator,
            )
        except InvalidInput as error:
            if error.field not in ("logits", "labels", "targets") or error.row is None:
                raise option_problem(error) from None
            line = parsed.line_of_row(error.row)
            if error.field == "labels":
                column = plan.label
            elif error.column is None:
                column = None
            else:
                column = (plan.logits if error.field == "logits" else plan.targets)[error.column]  # type: ignore[index]
            where = f"line {line}" + (f", column {column}" if column else "")
            hint = f"; {error.hint}" if error.hint else ""
            raise DataProblem(f"{where}: {error.problem}{hint}") from None


# --- writing ------------------------------------------------------------------------------------------


def output_frame(
    parsed: ParsedBlock, plan: ColumnPlan, result: SoftmaxCrossEntropyResult, digits: int | None, numeric_inputs: bool
) -> pl.DataFrame:
    """The input columns as they were, then p_*, loss, grad_*."""
    columns: dict[str, np.ndarray] = {}
    for k, name in enumerate(plan.logits):
        columns[f"p_{name}"] = result.probabilities[:, k]
    columns["loss"] = result.losses
    for k, name in enumerate(plan.logits):
        columns[f"grad_{name}"] = result.gradient[:, k]
    computed = pl.DataFrame(columns)
    if digits is not None:
        computed = computed.select(pl.all().round_sig_figs(digits))
    inputs = parsed.text
    if numeric_inputs:
        replaced = {name: parsed.logits[:, k] for k, name in enumerate(plan.logits)}
        if plan.targets is not None and parsed.targets is not None:
            replaced |= {name: parsed.targets[:, k] for k, name in enumerate(plan.targets)}
        if plan.label is not None and parsed.labels is not None:
            replaced[plan.label] = parsed.labels
        inputs = inputs.with_columns(pl.Series(name, values) for name, values in replaced.items())
    return inputs.hstack(computed)


def write_frame(frame: pl.DataFrame, stream: BinaryIO, output_format: str, header: bool) -> None:
    # Straight into the file: through a BytesIO first took half as long again.
    if output_format == "jsonl":
        frame.write_ndjson(stream)
    else:
        frame.write_csv(stream, include_header=header, separator="\t" if output_format == "tsv" else ",")
