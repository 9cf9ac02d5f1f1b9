"""``sce batch``'s outputs as arrays (``.npz``, Parquet, Arrow IPC).

The binary outputs hold what the CSV output holds, with each group of
per-class columns as one N × K array, named as a dump's arrays are (so that
the output is itself a dump that ``sce check --arrays`` and ``sce batch``
read): ``logits``, ``labels`` or ``targets``, ``probabilities`` (CSV's
``p_*``), ``loss``, ``grad`` (CSV's ``grad_*``); any other input column of a
CSV input comes first, under its own name, as text. Parquet and Arrow store a
group as a fixed-size array column.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl

from sce.errors import DataProblem, OptionProblem, SceError
from sce.io.writers.atomic import BackgroundWriter, OutputTarget, errno_in_text
from sce.io.writers.npz import NpzWriter
from sce.loss import SoftmaxCrossEntropyResult

#: The output formats written as arrays, by -o's suffix.
BINARY_SUFFIXES = {".npz": "npz", ".parquet": "parquet", ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow"}
BINARY_FORMATS = ("npz", "parquet", "arrow")
#: Array formats sce reads but does not write, each with what to use instead.
UNWRITTEN_SUFFIXES = {
    ".npy": "a .npy file holds one array; write .npz (named arrays), .parquet or .arrow",
    ".safetensors": "sce does not write .safetensors; write .npz, .parquet or .arrow",
    ".pt": "sce does not write PyTorch files; write .npz (torch.from_numpy(np.load(...)[name]))",
    ".pth": "sce does not write PyTorch files; write .npz (torch.from_numpy(np.load(...)[name]))",
    ".json": "sce writes one JSON object per line (JSON Lines): name the file .jsonl",
    ".xlsx": "sce does not write spreadsheets; write .csv, which every spreadsheet opens",
    ".xls": "sce does not write spreadsheets; write .csv, which every spreadsheet opens",
    ".gz": "sce does not compress its output; write to stdout (-o -) and pipe it through gzip",
}


def computed_columns(
    inputs: dict[str, np.ndarray], result: SoftmaxCrossEntropyResult, digits: int | None
) -> dict[str, np.ndarray]:
    """The input groups, then probabilities, loss, grad: one block's rows of each array."""
    computed = {"probabilities": result.probabilities, "loss": result.losses, "grad": result.gradient}
    if digits is not None:
        computed = {name: _rounded(values, digits) for name, values in computed.items()}
    return inputs | computed


def _rounded(values: np.ndarray, digits: int) -> np.ndarray:
    """To ``digits`` significant digits, exactly as the CSV output rounds (polars' round_sig_figs)."""
    flat = pl.Series(values.ravel()).round_sig_figs(digits).to_numpy()
    return flat.astype(values.dtype, copy=False).reshape(values.shape)


def npz_layout(
    rows: int, classes: int, labels: bool, dtype: str, text_widths: dict[str, int] | None = None
) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Each member's type and shape, in order: text columns (numpy strings of their widest
    cell), logits, labels or targets, then the computed arrays in the type computed in."""
    computed, exact = np.dtype(dtype), np.dtype(np.float64)
    matrix, vector = (rows, classes), (rows,)
    layout: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
        name: (np.dtype(f"<U{width}"), vector) for name, width in (text_widths or {}).items()
    }
    layout["logits"] = (exact, matrix)
    if labels:
        layout["labels"] = (np.dtype(np.int64), vector)
    else:
        layout["targets"] = (exact, matrix)
    return layout | {"probabilities": (computed, matrix), "loss": (computed, vector), "grad": (computed, matrix)}


def _appending(descriptor: int) -> bool:
    try:
        import fcntl
    except ImportError:  # not on Windows
        return False
    return bool(fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_APPEND)


class NpzSink(BackgroundWriter):
    """Arrays of known shapes into a .npz, block after block (see :mod:`.npz`), on a
    second thread: the CRC-32s and the writes (both let go of the interpreter lock) overlap
    the next block's computing."""

    def __init__(self, target: OutputTarget, shapes: dict[str, tuple[np.dtype, tuple[int, ...]]]) -> None:
        super().__init__(target)
        try:
            os.lseek(target.stream.fileno(), 0, os.SEEK_CUR)
        except OSError:
            raise OptionProblem(
                "output_path", f"{target.path} is a pipe; .npz output is written out of order: name a regular file"
            ) from None
        if _appending(target.stream.fileno()):
            # Every write would land at the end, whatever the .npz writer's seeks: a damaged file.
            name = target.path or "stdout"
            raise OptionProblem(
                "output_path", f"{name} is open for appending (>>); .npz output is written out of order: name a file"
            )
        try:
            self.writer = NpzWriter(target.stream.fileno(), [(name, *spec) for name, spec in shapes.items()])
        except OSError as error:
            raise target.write_failure(error) from None
        self.start()

    def write_all(self, items: Iterator[dict[str, Any]]) -> None:
        for columns in items:
            self.writer.write(columns)

    def finished(self) -> None:
        self.writer.finish()


class TableSink(BackgroundWriter):
    """Frames into Parquet or Arrow IPC, streamed: polars' sink reads them, on the writer's
    thread, from the short queue that this side fills, so memory holds a few blocks.

    The main thread stays in Python (signals are handled at once); on an abort the
    source ends, polars finishes its (partial) file, and the caller removes it.
    """

    def __init__(self, target: OutputTarget, output_format: str) -> None:
        super().__init__(target)
        self.output_format = output_format
        self.schema: pl.Schema | None = None
        self.rows = 1
        self.started = False

    def put(self, item: dict[str, Any]) -> None:
        frame = pl.DataFrame(item)
        if self.thread is None:  # the first block gives the schema
            self.rows, self.schema = max(1, frame.height), frame.schema
            self.start()
        super().put(frame)

    def write_all(self, items: Iterator[pl.DataFrame]) -> None:
        from polars.io.plugins import register_io_source

        def source(*_: Any) -> Iterator[pl.DataFrame]:
            if self.started:  # a second reader would take some of the frames: refuse, never lose rows
                raise RuntimeError("polars read the output frames twice")
            self.started = True
            return items

        assert self.schema is not None
        frames = register_io_source(source, schema=self.schema)
        path = self.target.temporary or self.target.written
        # One row group (record batch) per block: polars would otherwise gather about
        # 500,000 rows before writing any, whatever their width.
        if self.output_format == "parquet":
            frames.sink_parquet(path, row_group_size=self.rows)
        else:
            frames.sink_ipc(path, record_batch_size=self.rows)

    def worded(self, error: BaseException) -> BaseException:
        if isinstance(error, OSError):
            return self.target.write_failure(error)
        if isinstance(error, Exception):  # polars' own kinds: a full disk among them
            return _sink_failure(self.target, error)
        return error


def _sink_failure(target: OutputTarget, error: Exception) -> SceError:
    """polars' error for a failed write, worded as any failed write of the output is."""
    text = " ".join(str(error).split())
    number = errno_in_text(text)
    if number is not None:
        return target.write_failure(OSError(number, os.strerror(number)))
    return DataProblem(f"writing the output {target.path} failed: {text[:200]}")
