"""Batch I/O: CSV or TSV in, block by block, through the core, and out.

The input is read in blocks of whole records (a few MiB each) and every
block is parsed by polars, so memory stays bounded whatever the input size
and the same code reads files and pipes. polars is fast but does not say
where a bad row is; on any problem the block is scanned again with Python's
csv module, which knows each record's line number, so that every error names
its line, column and value.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import io
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import polars as pl

from .core import InvalidInput, SoftmaxCrossEntropyResult, softmax_cross_entropy
from .errors import DataProblem, UsageProblem, command_line_problem

#: Bytes read at a time; a block is this much text cut back to a record boundary.
BLOCK_BYTES = 4 << 20
#: A record longer than this is taken for an unclosed quote, not read on into memory.
MAX_RECORD_BYTES = 64 << 20
_UTF8 = ("utf-8", "utf8", "utf_8", "utf-8-sig", "utf_8_sig")


# --- reading ----------------------------------------------------------------------------------


@dataclass
class Block:
    """Whole records as UTF-8 bytes, and the line number of the first."""

    first_line: int
    data: bytes


class BlockReader:
    """Cuts a byte stream into blocks of whole records, decoded to UTF-8.

    UTF-8 input (with or without a byte-order mark) is passed on as it is,
    after a check that it decodes; other encodings are decoded and re-encoded.
    Bytes that do not decode are reported with their line.
    """

    def __init__(self, stream: BinaryIO, encoding: str = "utf-8", block_bytes: int | None = None) -> None:
        self.stream = stream
        self.block_bytes = block_bytes or BLOCK_BYTES
        try:
            codec = codecs.lookup(encoding)
        except LookupError:
            raise UsageProblem(f"--encoding: unknown encoding {encoding!r}; try utf-8, latin-1 or cp1252") from None
        self.encoding = codec.name
        self.passthrough = codec.name in ("utf-8", "utf-8-sig") or encoding.lower() in _UTF8
        self.decoder = None if self.passthrough else codec.incrementaldecoder("strict")
        self.pending = b""
        self.next_line = 1
        self.bytes_read = 0
        self.started = False
        self.finished = False

    def _read(self) -> bytes:
        raw = self.stream.read(self.block_bytes)
        self.bytes_read += len(raw)
        if not raw:
            self.finished = True
        if self.passthrough:
            if not self.started and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            self.started = True
            return raw
        assert self.decoder is not None
        try:
            text = self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as error:
            line = self.next_line + self.pending.count(b"\n") + raw[: error.start].count(b"\n")
            raise DataProblem(
                f"line {line}: bytes that are not {self.encoding} ({error.reason}); "
                "give the file's encoding with --encoding"
            ) from None
        self.started = True
        return text.encode("utf-8")

    def blocks(self) -> Iterator[Block]:
        while not self.finished:
            self.pending += self._read()
            if self.finished:
                cut = len(self.pending)
            else:
                cut = _record_boundary(self.pending)
                if cut == 0:
                    if len(self.pending) > MAX_RECORD_BYTES:
                        raise DataProblem(
                            f"line {self.next_line}: a quoted field is never closed "
                            f"(no record ends within {MAX_RECORD_BYTES:,} bytes); check the quote characters"
                        )
                    continue  # one record longer than a block: read on
            data, self.pending = self.pending[:cut], self.pending[cut:]
            if data:
                _check_utf8(data, self.next_line)
                # Advance before yielding: a consumer may stop after this block
                # (first_record does) and a new generator must go on from here.
                first_line, self.next_line = self.next_line, self.next_line + data.count(b"\n")
                yield Block(first_line, data)

    def first_record(self, delimiter: str) -> tuple[list[str], Block | None]:
        """The first record's fields, and a block that starts with it
        (leading blank lines are skipped, as pandas and polars do)."""
        for block in self.blocks():
            stripped = block.data.lstrip(b"\r\n")
            first_line = block.first_line + block.data[: len(block.data) - len(stripped)].count(b"\n")
            if not stripped:
                continue
            end = _record_boundary(stripped, first=True)
            text = stripped[:end].decode("utf-8")
            fields = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
            return fields, Block(first_line, stripped)
        return [], None


def _record_boundary(data: bytes, first: bool = False) -> int:
    """The offset just after the last (or, with ``first``, the first) complete
    record: after a newline with an even number of quote characters before it.
    0 when there is none (a quoted field still open)."""
    if first:
        cut = data.find(b"\n") + 1
        quotes = data.count(b'"', 0, cut)
        while cut and quotes % 2:
            following = data.find(b"\n", cut) + 1
            quotes += data.count(b'"', cut, following or len(data))
            cut = following
        return cut or len(data)
    cut = data.rfind(b"\n") + 1
    if b'"' in data:
        # Counted once, then line by line backwards: recounting from the start
        # for every line would be quadratic in a block with an open quote.
        quotes = data.count(b'"', 0, cut)
        while cut and quotes % 2:
            previous = data.rfind(b"\n", 0, cut - 1) + 1
            quotes -= data.count(b'"', previous, cut)
            cut = previous
    return cut


def _check_utf8(data: bytes, first_line: int) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        start = data.rfind(b"\n", 0, error.start) + 1
        line = first_line + data.count(b"\n", 0, error.start)
        raise DataProblem(
            f"line {line}, byte {error.start - start + 1}: byte 0x{data[error.start]:02x} is not valid UTF-8; "
            "give the file's encoding with --encoding, for example --encoding latin-1"
        ) from None


# --- columns ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnPlan:
    """Which input columns are what."""

    names: tuple[str, ...]
    logits: tuple[str, ...]
    label: str | None
    targets: tuple[str, ...] | None
    logits_by_default: bool = False
    grads: tuple[str, ...] | None = None
    """Given gradient columns, for `sce check --csv`."""
    loss: str | None = None
    """A given loss column, for `sce check --csv`."""

    @property
    def output_names(self) -> tuple[str, ...]:
        return (
            *(f"p_{name}" for name in self.logits),
            "loss",
            *(f"grad_{name}" for name in self.logits),
        )


def plan_columns(
    names: list[str],
    *,
    label_col: str | None,
    logit_cols: str | None,
    target_cols: str | None,
    has_header: bool,
    grad_cols: str | None = None,
    loss_col: str | None = None,
) -> ColumnPlan:
    listing = _listing(names)
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise DataProblem(
                f"line 1: column name {name!r} appears twice (columns {seen[name]} and {position}); "
                "column names must be unique"
            )
        seen[name] = position
    if target_cols is not None and label_col is not None:
        raise UsageProblem("give --label-col or --target-cols, not both")
    label = None
    targets = None
    if target_cols is not None:
        targets = _select(target_cols, names, "--target-cols")
    else:
        label = label_col if label_col is not None else ("label" if has_header else names[-1])
        if label not in names:
            if label_col is None:
                raise DataProblem(
                    f"there is no column named 'label'; the columns are {listing}. "
                    "Name the label column with --label-col, or give soft targets with --target-cols"
                )
            raise UsageProblem(f"--label-col: there is no column {label!r}; the columns are {listing}")
    grads = None if grad_cols is None else _select(grad_cols, names, "--grad-cols")
    if loss_col is not None and loss_col not in names:
        raise DataProblem(f"--loss-col: there is no column {loss_col!r}; the columns are {listing}")
    taken = {label} | set(targets or ()) | set(grads or ()) | {loss_col}
    if logit_cols is None and grads and all(
        name.startswith("grad_") and name[5:] in names for name in grads
    ):
        # Checking sce batch's output: grad_z0 is the gradient of column z0.
        logit_cols = ",".join(name[5:] for name in grads)
    if logit_cols is not None:
        logits = _select(logit_cols, names, "--logit-cols")
        overlap = taken & set(logits)
        if overlap:
            raise UsageProblem(
                f"--logit-cols: column {sorted(overlap)[0]!r} is also the label or a target column"
            )
    else:
        logits = tuple(name for name in names if name not in taken)
        if not logits:
            raise DataProblem(f"no logit columns: the only columns are {listing}")
    if targets is not None and len(targets) != len(logits):
        raise UsageProblem(
            f"--target-cols: {len(targets)} target columns for {len(logits)} logit columns; "
            "give one target column per logit column"
        )
    if grads is not None and len(grads) != len(logits):
        raise UsageProblem(
            f"--grad-cols: {len(grads)} gradient columns for {len(logits)} logit columns; "
            "give one gradient column per logit column"
        )
    plan = ColumnPlan(
        tuple(names), logits, label, targets, logits_by_default=logit_cols is None, grads=grads, loss=loss_col
    )
    clash = set(plan.output_names) & set(names)
    if clash and grads is None and loss_col is None:
        raise DataProblem(
            f"the input already has a column {sorted(clash)[0]!r}, which sce batch writes; "
            "rename it, or choose the logit columns with --logit-cols"
        )
    return plan


def _listing(names: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(names[:20])
    return shown + (f", … ({len(names)} in all)" if len(names) > 20 else "")


def _select(pattern: str, names: list[str], option: str) -> tuple[str, ...]:
    chosen: list[str] = []
    for item in (part.strip() for part in pattern.split(",")):
        if not item:
            continue
        if any(ch in item for ch in "*?["):
            matches = [name for name in names if fnmatch.fnmatchcase(name, item)]
            if not matches:
                raise DataProblem(f"{option}: {item!r} matches no column; the columns are {_listing(names)}")
        elif item in names:
            matches = [item]
        else:
            raise DataProblem(f"{option}: there is no column {item!r}; the columns are {_listing(names)}")
        chosen += [name for name in matches if name not in chosen]
    if not chosen:
        raise UsageProblem(f"{option}: no columns named")
    return tuple(chosen)


# --- parsing a block ---------------------------------------------------------------------------------


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


def _numbers(frame: pl.DataFrame, columns: tuple[str, ...], block: Block, plan: ColumnPlan, delimiter: str) -> np.ndarray:
    values = frame.select(pl.col(columns).cast(pl.Float64, strict=False))
    failed = values.select(pl.any_horizontal(pl.all().is_null())).to_series()
    if failed.any():
        # Spaces around the numbers ("1, 2, 3") are allowed; try again without them.
        values = frame.select(pl.col(columns).str.strip_chars().cast(pl.Float64, strict=False))
        failed = values.select(pl.any_horizontal(pl.all().is_null())).to_series()
        if failed.any():
            row = int(failed.arg_max())
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


def _records(block: Block, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every record in the block, blank lines included."""
    reader = csv.reader(io.StringIO(block.data.decode("utf-8")), delimiter=delimiter)
    line = block.first_line
    for fields in reader:
        yield line, fields
        line = block.first_line + reader.line_num


def _record_lines(block: Block, delimiter: str) -> list[int]:
    return [line for line, fields in _records(block, delimiter) if fields]


def _record_at(block: Block, delimiter: str, row: int) -> tuple[int, list[str]]:
    records = [(line, fields) for line, fields in _records(block, delimiter) if fields]
    return records[row]


# --- computing --------------------------------------------------------------------------------------


@dataclass
class CoreOptions:
    weight: list[float] | None = None
    label_smoothing: float = 0.0
    ignore_index: int = -100
    reduction: str = "none"
    temperature: float = 1.0
    dtype: str = "float64"


def compute_block(parsed: ParsedBlock, plan: ColumnPlan, options: CoreOptions, mean_denominator: float | None) -> SoftmaxCrossEntropyResult:
    """Run the core on one block; its errors name the line and column."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch reports infinite losses in its summary
        try:
            return softmax_cross_entropy(
                parsed.logits,
                parsed.labels,
                targets=parsed.targets,
                weight=options.weight,
                label_smoothing=options.label_smoothing,
                ignore_index=options.ignore_index,
                reduction=options.reduction,  # type: ignore[arg-type]
                temperature=options.temperature,
                dtype=options.dtype,
                mean_denominator=mean_denominator,
            )
        except InvalidInput as error:
            if error.field not in ("logits", "labels", "targets") or error.row is None:
                raise command_line_problem(error) from None
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


def output_frame(parsed: ParsedBlock, plan: ColumnPlan, result: SoftmaxCrossEntropyResult, digits: int | None, numeric_inputs: bool) -> pl.DataFrame:
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


class OutputTarget:
    """Where the output goes, written so that a failure destroys nothing.

    A regular file is written to a temporary file beside it and renamed into
    place only when everything has been written; on any failure (Ctrl-C
    included) the temporary file is removed and an existing file is left as
    it was. stdout, pipes and devices (/dev/null) are written directly: a
    rename over a device would replace it.
    """

    def __init__(self, path: str | None, input_path: str | None) -> None:
        self.path = None if path in (None, "-") else path
        self.temporary: str | None = None
        self.stream: BinaryIO
        if self.path is None:
            self.stream = sys.stdout.buffer
            return
        if input_path not in (None, "-") and os.path.exists(self.path):
            try:
                same = os.path.samefile(self.path, input_path)  # type: ignore[arg-type]
            except OSError:
                same = False
            if same:
                raise UsageProblem(
                    f"-o: {self.path} is the input file; write the output to another file"
                )
        if os.path.exists(self.path) and not stat.S_ISREG(os.stat(self.path).st_mode):
            self.stream = open(self.path, "wb")  # noqa: SIM115 (closed in finish/abandon)
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            handle = tempfile.NamedTemporaryFile(
                dir=directory, prefix=f".{os.path.basename(self.path)}.", suffix=".partial", delete=False
            )
        except OSError as error:
            raise DataProblem(f"-o: cannot write in {directory}: {error.strerror}") from None
        self.temporary = handle.name
        self.stream = handle  # type: ignore[assignment]

    def finish(self) -> None:
        if self.path is None:
            self.stream.flush()
            return
        self.stream.close()
        if self.temporary is not None:
            mode = 0o666 & ~_umask()
            if os.path.exists(self.path):
                mode = stat.S_IMODE(os.stat(self.path).st_mode)
            os.chmod(self.temporary, mode)
            os.replace(self.temporary, self.path)
            self.temporary = None

    def abandon(self) -> None:
        if self.path is not None:
            try:
                self.stream.close()
            except OSError:
                pass
        if self.temporary is not None:
            try:
                os.unlink(self.temporary)
            except OSError:
                pass
            self.temporary = None


class BackgroundWriter:
    """Encodes and writes output frames on a second thread.

    polars' CSV writer and the file write release the GIL, so on two cores
    the next block is read and computed while this one is written. At most
    ``depth`` frames wait, which bounds the memory.
    """

    _DONE = object()

    def __init__(self, target: OutputTarget, output_format: str, depth: int = 2) -> None:
        import queue
        import threading

        self.target = target
        self.output_format = output_format
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.header = True
        self.thread = threading.Thread(target=self._run, name="sce-batch-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            frame = self.queue.get()
            if frame is self._DONE:
                return
            if self.error is not None:
                continue  # drain after a failure, so that put() never blocks
            try:
                write_frame(frame, self.target.stream, self.output_format, header=self.header)
                self.header = False
            except BaseException as error:  # re-raised on the main thread
                self.error = error

    def put(self, frame: pl.DataFrame) -> None:
        self._raise_if_failed()
        self.queue.put(frame)

    def close_quietly(self) -> None:
        """Stop after a failure elsewhere: drop what is queued, wait for the thread."""
        self.queue.put(self._DONE)
        self.thread.join()

    def close(self) -> None:
        """Wait until everything queued is written; raise what the thread met."""
        self.queue.put(self._DONE)
        self.thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error


def _hold_interrupts() -> Callable[[], None]:
    """Block SIGINT in this thread; return a function that unblocks it (once).

    A Ctrl-C that arrives meanwhile is delivered on release, as a
    KeyboardInterrupt where the caller is ready to clean up.
    """
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return lambda: None
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    return release


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def split_header(block: Block) -> Block:
    """The block without its first record (the header)."""
    end = _record_boundary(block.data, first=True)
    return Block(block.first_line + block.data[:end].count(b"\n"), block.data[end:])


def spool_to_temporary(stream: BinaryIO) -> str:
    """Copy a stream (stdin) to a temporary file, for inputs read twice."""
    release_interrupts = _hold_interrupts()
    handle = tempfile.NamedTemporaryFile(prefix="sce-batch-", suffix=".csv", delete=False)
    try:
        release_interrupts()
        with handle:
            shutil.copyfileobj(stream, handle, 1 << 20)
    except BaseException:
        release_interrupts()
        os.unlink(handle.name)
        raise
    return handle.name


# --- the whole run ---------------------------------------------------------------------------------


@dataclass
class BatchSummary:
    rows: int = 0
    ignored_rows: int = 0
    classes: int = 0
    correct: int = 0
    counted: int = 0
    infinite_losses: int = 0
    loss_sums: list[float] = field(default_factory=list)
    denominator: float = 0.0
    reduction: str = "none"
    seconds: float = 0.0

    @property
    def reduced_loss(self) -> float:
        import math

        total = math.fsum(self.loss_sums)
        if self.reduction == "sum":
            return total
        if self.reduction == "mean":
            return total / self.denominator if self.denominator else float("nan")
        return total / self.counted if self.counted else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.counted if self.counted else float("nan")

    def add(self, result: SoftmaxCrossEntropyResult) -> None:
        counted = result.counted
        self.rows += result.num_rows
        self.ignored_rows += int((~counted).sum())
        self.classes = result.num_classes
        self.counted += int(counted.sum())
        truth = result.labels if result.labels is not None else np.argmax(result.target, axis=1)
        self.correct += int(((result.argmax == truth) & counted).sum())
        self.infinite_losses += int(np.isinf(result.losses).sum())
        self.loss_sums.append(float(result.losses.sum(dtype=np.float64)))


@dataclass
class BatchRequest:
    input_path: str
    output_path: str | None
    label_col: str | None = None
    logit_cols: str | None = None
    target_cols: str | None = None
    has_header: bool = True
    delimiter: str = ","
    encoding: str = "utf-8"
    output_format: str = "csv"
    digits: int | None = None
    options: CoreOptions = field(default_factory=CoreOptions)
    grad_cols: str | None = None
    loss_col: str | None = None


def open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 (closed by the caller)
    except OSError as error:
        raise DataProblem(f"INPUT: cannot read {path}: {error.strerror}") from None


def read_blocks(path: str, request: BatchRequest) -> Iterator[tuple[ColumnPlan, Block, BlockReader]]:
    """Every block of records after the header, with the column plan."""
    stream = open_input(path)
    try:
        reader = BlockReader(stream, request.encoding)
        fields, first = reader.first_record(request.delimiter)
        if first is None:
            raise DataProblem("the input is empty; it needs a header line and rows of logits")
        if request.has_header:
            names = [name.strip() for name in fields]
            for position, name in enumerate(names, start=1):
                if not name:
                    raise DataProblem(
                        f"line {first.first_line}: column {position} has no name; "
                        "name every column, or read the file with --no-header"
                    )
            first = split_header(first)
        else:
            names = [str(i) for i in range(len(fields))]
        plan = plan_columns(
            names,
            label_col=request.label_col,
            logit_cols=request.logit_cols,
            target_cols=request.target_cols,
            has_header=request.has_header,
            grad_cols=request.grad_cols,
            loss_col=request.loss_col,
        )
        if first.data.strip():
            yield plan, first, reader
        for block in reader.blocks():
            if block.data.strip():
                yield plan, block, reader
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


@contextmanager
def readable_input(request: BatchRequest) -> Iterator[str]:
    """A path to read the input from, as often as needed: stdin is first
    copied to a temporary file (removed afterwards) when 'mean' needs two passes."""
    if request.input_path != "-" or request.options.reduction != "mean":
        yield request.input_path
        return
    spooled = spool_to_temporary(sys.stdin.buffer)
    try:
        yield spooled
    finally:
        os.unlink(spooled)


def computed_blocks(
    path: str, request: BatchRequest, denominator: float | None
) -> Iterator[tuple[ParsedBlock, ColumnPlan, SoftmaxCrossEntropyResult, BlockReader]]:
    """Every block of the input, parsed and run through the core."""
    for plan, block, reader in read_blocks(path, request):
        parsed = parse_block(block, plan, request.delimiter)
        yield parsed, plan, compute_block(parsed, plan, request.options, denominator), reader


def mean_denominator(path: str, request: BatchRequest) -> float | None:
    """For reduction 'mean', the weight sum (or row count) of the whole input.

    The mean divides every gradient by it, so it must be known before the
    first row is written: a first pass computes it.
    """
    if request.options.reduction != "mean":
        return None
    return sum(result.denominator for _, _, result, _ in computed_blocks(path, request, None))


def run_batch(request: BatchRequest, on_progress=None) -> BatchSummary:  # type: ignore[no-untyped-def]
    """Compute every row of the input and write the output; return the summary.

    ``on_progress(bytes_read, rows)`` is called after each block.
    """
    import time

    started = time.perf_counter()
    with readable_input(request) as path:
        denominator = mean_denominator(path, request)
        summary = BatchSummary(reduction=request.options.reduction, denominator=denominator or 0.0)
        # Ctrl-C between the temporary file's creation and this try would
        # leave it behind: hold SIGINT until the cleanup below is in force.
        release_interrupts = _hold_interrupts()
        target: OutputTarget | None = None
        writer: BackgroundWriter | None = None
        try:
            target = OutputTarget(request.output_path, request.input_path)
            writer = BackgroundWriter(target, request.output_format)
            release_interrupts()
            for parsed, plan, result, reader in computed_blocks(path, request, denominator):
                summary.add(result)
                writer.put(output_frame(parsed, plan, result, request.digits, request.output_format == "jsonl"))
                if on_progress is not None:
                    on_progress(reader.bytes_read, summary.rows)
            writer.close()
            if summary.rows == 0:
                raise DataProblem("the input has a header but no rows")
            target.finish()
        except BaseException:
            release_interrupts()
            if writer is not None and writer.thread.is_alive():
                writer.error = writer.error or KeyboardInterrupt()
                writer.close_quietly()
            if target is not None:
                target.abandon()
            raise
    summary.seconds = time.perf_counter() - started
    return summary


# --- sce check --csv ---------------------------------------------------------------------------------


@dataclass
class WrongCell:
    line: int
    column: str
    expected: float
    given: str
    error: float


@dataclass
class FileCheck:
    rows: int = 0
    wrong_rows: int = 0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    worst: list[WrongCell] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return self.wrong_rows == 0


#: How many of the worst rows `sce check --csv` lists.
WORST_SHOWN = 5


def check_file(request: BatchRequest, tolerance: float | None = None) -> FileCheck:
    """Grade the gradient (and loss) columns of a file against the exact values, streaming."""
    from .grading import within
    from .numbers import written_tolerances

    with readable_input(request) as path:
        denominator = mean_denominator(path, request)
        found = FileCheck()
        for parsed, plan, result, _ in computed_blocks(path, request, denominator):
            pairs = []
            if plan.grads:
                pairs.append((plan.grads, result.gradient))
            if plan.loss:
                pairs.append(((plan.loss,), result.losses[:, None]))
            wrong = np.zeros(result.num_rows, dtype=bool)
            for columns, expected in pairs:
                expected = expected.astype(np.float64)
                given = _numbers(parsed.text, columns, parsed.block, plan, request.delimiter)
                allowed = tolerance if tolerance is not None else written_tolerances(parsed.text, columns)
                ok = within(given, expected, allowed)
                wrong |= ~ok.all(axis=1)
                error = np.abs(given - expected)
                with np.errstate(divide="ignore", invalid="ignore"):
                    relative = np.where(expected != 0, error / np.abs(expected), np.where(error > 0, np.inf, 0))
                found.max_abs_error = max(found.max_abs_error, float(np.nanmax(error)))
                found.max_rel_error = max(found.max_rel_error, float(np.nanmax(relative)))
                bad = np.argwhere(~ok)
                if len(bad):
                    errors = error[bad[:, 0], bad[:, 1]]
                    keep = bad[np.argsort(-errors, kind="stable")[:WORST_SHOWN]]
                    lines = _record_lines(parsed.block, request.delimiter)
                    found.worst += [
                        WrongCell(
                            lines[row], columns[col], float(expected[row, col]),
                            str(parsed.text[int(row), columns[col]]).strip(), float(error[row, col]),
                        )
                        for row, col in keep
                    ]
                    found.worst = sorted(found.worst, key=lambda cell: -cell.error)[:WORST_SHOWN]
            found.rows += result.num_rows
            found.wrong_rows += int(wrong.sum())
    if found.rows == 0:
        raise DataProblem("the input has a header but no rows")
    return found
