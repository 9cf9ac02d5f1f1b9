"""The options of the commands that read files, read into one request."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sce.errors import UsageProblem
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.batch import BatchRequest

_NAMED_DELIMITERS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}


def parse_delimiter(value: str | None, input_path: str) -> str:
    if value is None:
        return "\t" if input_path.lower().endswith((".tsv", ".tab")) else ","
    delimiter = _NAMED_DELIMITERS.get(value.lower(), value)
    if len(delimiter) != 1:
        raise UsageProblem(f"--delimiter: {value!r} is not one character; use for example ',' ';' or tab")
    return delimiter


def output_format_for(chosen: str | None, output: str | None, delimiter: str) -> str:
    """--format, else from -o's name, else like the input; a --format the name contradicts, and a
    name of a format never written (.html, .md), are refused. The array formats (.npz, Parquet,
    Arrow) are written to a file, never to stdout."""
    from sce.cli.output_names import format_of_output
    from sce.io.writers.arrays import BINARY_FORMATS, UNWRITTEN_SUFFIXES

    suffix = os.path.splitext(output or "")[1].lower()
    if chosen is None and suffix in UNWRITTEN_SUFFIXES:
        raise UsageProblem(f"-o {output}: {UNWRITTEN_SUFFIXES[suffix]}")
    chosen = format_of_output(output, chosen) or ("tsv" if delimiter == "\t" else "csv")
    if chosen not in ("csv", "tsv", "jsonl", *BINARY_FORMATS):
        raise UsageProblem(
            f"-o {output}: its name says {chosen}; the output is csv, tsv, jsonl, npz, parquet or arrow: name it so"
        )
    if chosen in BINARY_FORMATS and output in (None, "-"):
        raise UsageProblem(f"--format {chosen}: binary output goes to a file; name it with -o FILE")
    return chosen


def file_request(
    input_path: str,
    output: str | None,
    options: LossOptions,
    *,
    label_col: str | None,
    logit_cols: str | None,
    target_cols: str | None,
    no_header: bool,
    delimiter: str | None,
    encoding: str,
    **extra: Any,
) -> BatchRequest:
    """The request both file-reading commands build from their options;
    ``extra`` holds the fields only one of them has (digits, grad_cols, …)."""
    from sce.batch import BatchRequest

    return BatchRequest(
        input_path=input_path,
        output_path=output,
        label_col=label_col,
        logit_cols=logit_cols,
        target_cols=target_cols,
        has_header=not no_header,
        delimiter=parse_delimiter(delimiter, input_path),
        encoding=encoding,
        options=options,
        **extra,
    )
