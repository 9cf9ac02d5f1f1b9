"""CSV, TSV and JSON Lines output of an array input: the rows a CSV input of the
same numbers would give.

The logit columns are named ``z0 … z{K-1}``, then ``label`` (or targets
``t0 … t{K-1}``), as in ``samples/batch.csv``: ``sce batch`` and ``sce check
--csv`` read the output back with their defaults. The input numbers are
written as polars writes a float64 (shortest round trip), which is what a CSV
written from the same arrays holds, so the two outputs are the same bytes.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..arrays import ArrayDump
from ..core import SoftmaxCrossEntropyResult
from .array_input import ArrayBlock
from .columns import ColumnPlan
from .wide import WIDE_COLUMNS, TextRows, WideBlock, _formatted_rows, wide_rows


def array_plan(dump: ArrayDump) -> ColumnPlan:
    classes = dump.shape[1]
    logits = tuple(f"z{k}" for k in range(classes))
    if dump.labels is not None:
        return ColumnPlan((*logits, "label"), logits, "label", None)
    targets = tuple(f"t{k}" for k in range(classes))
    return ColumnPlan((*logits, *targets), logits, None, targets)


def text_output(
    block: ArrayBlock, plan: ColumnPlan, result: SoftmaxCrossEntropyResult, digits: int | None, output_format: str
) -> pl.DataFrame | TextRows:
    """One block's output rows: a frame, or for rows of many columns already-encoded text."""
    separator = {"csv": ",", "tsv": "\t"}.get(output_format)
    if separator is not None and len(plan.names) >= WIDE_COLUMNS:
        return wide_rows(_as_records(block, separator), plan, result, digits, separator)
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


def _as_records(block: ArrayBlock, separator: str) -> WideBlock:
    """The block's input rows as the text lines a CSV of them holds."""
    numbers = block.logits if block.targets is None else np.concatenate([block.logits, block.targets], axis=1)
    records = _formatted_rows(numbers, bool(np.isnan(numbers).any()), separator.encode())
    if block.labels is not None:
        suffix = separator.encode()
        records = [record + suffix + str(label).encode() for record, label in zip(records, block.labels.tolist())]
    return WideBlock(records, [], block.logits, block.labels, block.targets)
