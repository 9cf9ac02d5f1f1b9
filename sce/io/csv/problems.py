"""The words for a block's bad cell or record: which line, which column, what
is wrong and how to fix it. Only on the error path: plain scans, no polars."""

from __future__ import annotations

import polars as pl

from sce.errors import DataProblem, option
from sce.io.csv.columns import ColumnPlan
from sce.io.csv.records import Block, record_at, records_with_lines
from sce.number_text import quoted_cell


def cell_problem(
    frame: pl.DataFrame, row: int, column: str, block: Block, plan: ColumnPlan, delimiter: str, problem: str
) -> DataProblem:
    line, fields = record_at(block, delimiter, row)
    if len(fields) != len(plan.names):
        return field_count_problem(line, len(fields), len(plan.names))
    value = frame[row, column]
    if value is None or not value.strip():
        return DataProblem(f"line {line}, column {column}: the value is empty; every row needs a value here")
    hint = ""
    if plan.logits_by_default and column in plan.logits and problem.startswith("is not a number"):
        hint = f"; if {column} is not a logit column, name the logit columns with {option('logit_cols')}"
    return DataProblem(f"line {line}, column {column}: {quoted_cell(value)} {problem}{hint}")


def field_count_problem(line: int, found: int, expected: int) -> DataProblem:
    return DataProblem(
        f"line {line}: {found} {'field' if found == 1 else 'fields'}, but the header has {expected}; "
        "every row needs one value per column"
    )


def structure_problem(block: Block, plan: ColumnPlan, delimiter: str) -> DataProblem:
    quote = _quote_problem(block, plan, delimiter)
    if quote is not None:
        return quote
    for line, fields in records_with_lines(block, delimiter):
        if fields and len(fields) != len(plan.names):
            return field_count_problem(line, len(fields), len(plan.names))
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
