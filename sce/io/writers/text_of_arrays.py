"""CSV, TSV and JSON Lines output of an array input: the rows a CSV input of the
same numbers would give.

The logit columns are named ``z0 … z{K-1}``, then ``label`` (or targets
``t0 … t{K-1}``), as in ``samples/batch.csv``: ``sce batch`` and ``sce check
--csv`` read the output back with their defaults. The input numbers are
written as polars writes a float64 (shortest round trip), which is what a CSV
written from the same arrays holds, so the two outputs are the same bytes.
"""

from __future__ import annotations

import io
import json
from itertools import chain
from typing import Protocol

import numpy as np
import polars as pl

from sce.io.arrays import ArrayDump
from sce.io.csv.columns import ColumnPlan
from sce.io.csv.wide import WIDE_COLUMNS, TextRows, WideBlock, WideRows, formatted_rows, wide_rows
from sce.loss import SoftmaxCrossEntropyResult


class InputRows(Protocol):
    """A block of an array input's rows: the logits, and the labels or the targets."""

    @property
    def logits(self) -> np.ndarray: ...
    @property
    def labels(self) -> np.ndarray | None: ...
    @property
    def targets(self) -> np.ndarray | None: ...


def array_plan(dump: ArrayDump) -> ColumnPlan:
    classes = dump.shape[1]
    logits = tuple(f"z{k}" for k in range(classes))
    if dump.labels is not None:
        return ColumnPlan((*logits, "label"), logits, "label", None)
    targets = tuple(f"t{k}" for k in range(classes))
    return ColumnPlan((*logits, *targets), logits, None, targets)


def text_output(
    block: InputRows, plan: ColumnPlan, result: SoftmaxCrossEntropyResult, digits: int | None, output_format: str
) -> pl.DataFrame | TextRows | WideRows:
    """One block's output rows: a frame, or for rows of many columns already-encoded text."""
    separator = {"csv": ",", "tsv": "\t"}.get(output_format)
    if separator is not None and len(plan.names) >= WIDE_COLUMNS:
        return wide_rows(_as_records(block, separator), plan, result, digits, separator)
    if len(plan.names) >= WIDE_COLUMNS:
        return _json_lines(block, plan, result, digits)
    columns: dict[str, np.ndarray] = {name: block.logits[:, k] for k, name in enumerate(plan.logits)}
    if plan.label is not None:
        assert block.labels is not None
        columns[plan.label] = block.labels
    else:
        assert block.targets is not None and plan.targets is not None
        columns |= {name: block.targets[:, k] for k, name in enumerate(plan.targets)}
    computed: dict[str, np.ndarray] = {f"p_{name}": result.probabilities[:, k] for k, name in enumerate(plan.logits)}
    computed["loss"] = result.losses
    computed |= {f"grad_{name}": result.gradient[:, k] for k, name in enumerate(plan.logits)}
    frame = pl.DataFrame(computed)
    if digits is not None:
        frame = frame.select(pl.all().round_sig_figs(digits))
    return pl.DataFrame(columns).hstack(frame)


def _as_records(block: InputRows, separator: str) -> WideBlock:
    """The block's input rows as the text lines a CSV of them holds."""
    numbers = block.logits if block.targets is None else np.concatenate([block.logits, block.targets], axis=1)
    records = formatted_rows(numbers, bool(np.isnan(numbers).any()), separator.encode())
    if block.labels is not None:
        suffix = separator.encode()
        records = [record + suffix + str(label).encode() for record, label in zip(records, block.labels.tolist())]
    return WideBlock(records, [], block.logits, block.labels, block.targets)


#: Non-finite numbers as JSON Lines spell them everywhere in sce: as strings.
_QUOTED = {b"inf": b'"inf"', b"-inf": b'"-inf"', b"NaN": b'"nan"', b"nan": b'"nan"'}


def _json_lines(
    block: InputRows, plan: ColumnPlan, result: SoftmaxCrossEntropyResult, digits: int | None
) -> TextRows:
    """JSON Lines of rows of many columns, built as text row by row: a frame of 3K
    columns costs polars kilobytes per column (3.4 GB for 20 rows of 128,000 classes).
    The bytes are the frame path's (text.write_frame): polars' float text, or where a
    block holds a non-finite number, every float cast to text and the non-finite quoted."""
    inputs = block.logits if block.targets is None else np.concatenate([block.logits, block.targets], axis=1)
    computed = np.concatenate([result.probabilities, result.losses[:, None], result.gradient], axis=1)
    if digits is not None:
        computed = pl.Series(computed.ravel()).round_sig_figs(digits).to_numpy().reshape(computed.shape)
    as_text = not (np.isfinite(inputs).all() and np.isfinite(computed).all())
    names = plan.names + plan.output_names
    keys = [f"{',' if i else '{'}{json.dumps(name, ensure_ascii=False)}:".encode() for i, name in enumerate(names)]
    labels = [] if block.labels is None else [str(label).encode() for label in block.labels.tolist()]
    lines = []
    for row in range(len(inputs)):
        values = _tokens(inputs[row], as_text) + labels[row : row + 1] + _tokens(computed[row], as_text)
        lines.append(b"".join(chain.from_iterable(zip(keys, values))) + b"}\n")
    return TextRows(b"", b"".join(lines))


def _tokens(numbers: np.ndarray, as_text: bool) -> list[bytes]:
    series = pl.Series("v", numbers)
    if as_text:
        series = series.cast(pl.String)
    buffer = io.BytesIO()
    series.to_frame().write_csv(buffer, include_header=False)
    return [_QUOTED.get(token, token) for token in buffer.getvalue().split(b"\n")[:-1]]
