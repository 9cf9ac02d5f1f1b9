"""Text output (CSV, TSV, JSON Lines): a block's computed columns as a frame, and
frames or already-encoded rows written to a stream, every non-finite number
spelled as everywhere in sce (inf, -inf, nan)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, BinaryIO, Protocol, runtime_checkable

import numpy as np
import polars as pl

from sce.io.csv.columns import ColumnPlan
from sce.io.csv.parse import ParsedBlock
from sce.io.writers.atomic import BackgroundWriter, OutputTarget
from sce.loss import SoftmaxCrossEntropyResult


class EncodedRows(Protocol):
    """Output rows already encoded (rows of many columns, plain lines), with their header."""

    def write(self, stream: BinaryIO, header: bool) -> None: ...


@runtime_checkable
class EncodedLater(Protocol):
    """Output rows whose encoding waits for the writer's thread, or for :meth:`encode`."""

    def encode(self) -> None: ...


class TextWriter(BackgroundWriter):
    """Frames and encoded rows into CSV, TSV or JSON Lines, the header before the first."""

    def __init__(self, target: OutputTarget, output_format: str, header: bool = True) -> None:
        super().__init__(target)
        self.output_format, self.header = output_format, header
        """``header``: False for a part that follows another in one file (its header written once)."""
        self.start()

    def put(self, item: Any) -> None:
        if isinstance(item, EncodedLater) and self.queue.full():
            # The writer is behind: rather than wait for it, this thread does the encoding.
            item.encode()
        super().put(item)

    def write_all(self, items: Iterator[pl.DataFrame | EncodedRows]) -> None:
        header = self.header
        for frame in items:
            write_frame(frame, self.target.stream, self.output_format, header=header)
            header = False


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


def write_frame(frame: pl.DataFrame | EncodedRows, stream: BinaryIO, output_format: str, header: bool) -> None:
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


@lru_cache(maxsize=4)
def header_line(names: tuple[str, ...], separator: str) -> bytes:
    """The header as polars writes it: a name in quotes where it holds the
    separator, a quote or a line break."""
    special = (separator, '"', "\n", "\r")
    quoted = (
        '"' + name.replace('"', '""') + '"' if any(char in name for char in special) else name for name in names
    )
    return (separator.join(quoted) + "\n").encode("utf-8")
