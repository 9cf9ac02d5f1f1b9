"""``sce batch``'s outputs as arrays (``.npz``, Parquet, Arrow IPC), and its text outputs of an array input.

The binary outputs hold what the CSV output holds, with each group of
per-class columns as one N × K array, named as a dump's arrays are (so that
the output is itself a dump that ``sce check --arrays`` and ``sce batch``
read): ``logits``, ``labels`` or ``targets``, ``probabilities`` (CSV's
``p_*``), ``loss``, ``grad`` (CSV's ``grad_*``); any other input column of a
CSV input comes first, under its own name, as text. Parquet and Arrow store a
group as a fixed-size array column.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import polars as pl

from sce.errors import DataProblem, OptionProblem, SceError
from sce.io.writers.atomic import OutputTarget, errno_in_text
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


class BinarySink(Protocol):
    def put(self, columns: dict[str, Any]) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


#: Seconds an abort waits for the .npz writer's thread, stuck perhaps in a write to a slow disk,
#: before the process goes on to exit without it.
ABORT_WAIT = 2.0


def _appending(descriptor: int) -> bool:
    try:
        import fcntl
    except ImportError:  # not on Windows
        return False
    return bool(fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_APPEND)


class NpzSink:
    """Arrays of known shapes into a .npz, block after block (see :mod:`.npz`), on a
    second thread: the CRC-32s and the writes (both let go of the interpreter lock) overlap
    the next block's computing. At most ``depth`` blocks wait, which bounds the memory."""

    _DONE = object()

    def __init__(
        self, target: OutputTarget, shapes: dict[str, tuple[np.dtype, tuple[int, ...]]], depth: int = 2
    ) -> None:
        self.target = target
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
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="sce-batch-npz", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            columns = self.queue.get()
            if columns is self._DONE:
                return
            if self.error is not None:
                continue  # drain after a failure, so that put() never blocks
            try:
                self.writer.write(columns)
            except OSError as error:  # re-raised on the main thread, naming the file
                self.error = self.target.write_failure(error)
            except BaseException as error:
                self.error = error

    def put(self, columns: dict[str, Any]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(columns)

    def close(self) -> None:
        self.queue.put(self._DONE)
        self.thread.join()
        if self.error is not None:
            raise self.error
        try:
            self.writer.finish()
        except OSError as error:
            raise self.target.write_failure(error) from None

    def abort(self) -> None:
        """Stop after a failure elsewhere: drop what is queued, wait for the thread (before
        the caller closes the file it writes into)."""
        if self.thread.is_alive():
            self.error = self.error or KeyboardInterrupt()
            with contextlib.suppress(queue.Full):
                self.queue.put(self._DONE, timeout=ABORT_WAIT)
            self.thread.join(timeout=ABORT_WAIT)
            self.target.still_written = self.thread.is_alive()  # stuck in a write: see OutputTarget.abandon


class TableSink:
    """Frames into Parquet or Arrow IPC, streamed: polars' sink reads them, on its own
    thread, from a short queue that this side fills, so memory holds a few blocks.

    The main thread stays in Python (signals are handled at once); on an abort the
    source ends, polars finishes its (partial) file, and the caller removes it.
    """

    _DONE = object()

    def __init__(self, target: OutputTarget, output_format: str, depth: int = 2) -> None:
        self.target = target
        self.output_format = output_format
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.rows = 1
        self.started = False

    def put(self, columns: dict[str, Any]) -> None:
        frame = pl.DataFrame(columns)
        if self.thread is None:
            self.rows = max(1, frame.height)
            self.thread = threading.Thread(target=self._run, args=(frame.schema,), name="sce-batch-sink", daemon=True)
            self.thread.start()
        self._raise_if_failed()
        while True:  # in steps, so that a failed sink (which no longer reads) cannot block the put
            try:
                self.queue.put(frame, timeout=0.1)
                return
            except queue.Full:
                self._raise_if_failed()

    def _frames(self) -> Iterator[pl.DataFrame]:
        while True:
            frame = self.queue.get()
            if frame is self._DONE:
                return
            yield frame

    def _run(self, schema: pl.Schema) -> None:
        from polars.io.plugins import register_io_source

        def source(*_: Any) -> Iterator[pl.DataFrame]:
            if self.started:  # a second reader would take some of the frames: refuse, never lose rows
                raise RuntimeError("polars read the output frames twice")
            self.started = True
            return self._frames()

        frames = register_io_source(source, schema=schema)
        path = self.target.temporary or self.target.written
        try:
            # One row group (record batch) per block: polars would otherwise gather about
            # 500,000 rows before writing any, whatever their width.
            if self.output_format == "parquet":
                frames.sink_parquet(path, row_group_size=self.rows)
            else:
                frames.sink_ipc(path, record_batch_size=self.rows)
        except OSError as error:
            self.error = self.target.write_failure(error)
        except Exception as error:  # polars' own kinds: a full disk among them
            self.error = _sink_failure(self.target, error)

    def close(self) -> None:
        if self.thread is None:
            return
        self._put_done()
        self.thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            return
        self._put_done()
        # polars ends the file and returns; the caller then removes it (never before: the sink
        # could create it again). A sink stuck in a write must not hold up the exit: a daemon.
        self.thread.join(timeout=10)

    def _put_done(self) -> None:
        while True:
            try:
                self.queue.put(self._DONE, timeout=0.1)
                return
            except queue.Full:
                if self.thread is None or not self.thread.is_alive():
                    return
                with contextlib.suppress(queue.Empty):
                    self.queue.get_nowait()  # dropped: nothing more is written after an abort

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is not None and not self.thread.is_alive() and self.queue.full():
            raise DataProblem(f"writing {self.target.path}: the writer stopped")


def _sink_failure(target: OutputTarget, error: Exception) -> SceError:
    """polars' error for a failed write, worded as any failed write of the output is."""
    text = " ".join(str(error).split())
    number = errno_in_text(text)
    if number is not None:
        return target.write_failure(OSError(number, os.strerror(number)))
    return DataProblem(f"writing the output {target.path} failed: {text[:200]}")
