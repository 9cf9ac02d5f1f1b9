"""The one streaming loop of ``sce batch``: a source's blocks (a CSV input's, or a dump
of arrays') through the loss, into a sink (text rows, or arrays), written whole or
not at all."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from sce.batch.array_source import ArraySource, array_layout, denominator_tally, read_inputs
from sce.batch.compute import DenominatorTally, MeanDenominators
from sce.batch.csv_source import CsvSource, computed_blocks, csv_input, readable_input
from sce.batch.partition import PartitionCount, PartitionScore, PartOfWhole, Progress, score_blocks
from sce.batch.request import BatchRequest, BatchSummary, json_text
from sce.errors import OptionDataProblem, OptionProblem
from sce.io.signals import shielded
from sce.io.writers.arrays import BINARY_FORMATS, NpzSink, TableSink
from sce.io.writers.atomic import (
    BackgroundWriter,
    OutputTarget,
    abandoned_on_failure,
    put_in_place_together,
    refuse_same_file,
)
from sce.io.writers.text import TextWriter
from sce.loss import SoftmaxCrossEntropyResult


class Source(Protocol):
    """Where the rows come from (see :class:`.csv_source.CsvSource`, :class:`.array_source.ArraySource`)."""

    denominators: MeanDenominators | None

    def prepare(self, part: PartOfWhole | None = None) -> None: ...
    def blocks(self) -> Iterator[tuple[Any, SoftmaxCrossEntropyResult]]: ...
    def progress(self, rows: int) -> int: ...
    def text(self, block: Any, result: SoftmaxCrossEntropyResult, rows: int) -> Any: ...
    def columns(self, block: Any, result: SoftmaxCrossEntropyResult, rows: int) -> dict[str, Any]: ...
    def npz_layout(self) -> Any: ...
    def finish(self, rows: int) -> None: ...


def run_batch(
    request: BatchRequest,
    on_progress: Progress | None = None,
    on_result: Callable[[SoftmaxCrossEntropyResult], None] | None = None,
) -> BatchSummary:
    r"""Compute every row of the input and write the output; return the summary.

    Parameters
    ----------
    request
        The input (a CSV or TSV file, ``-`` for stdin, or a dump of arrays), the output
        (a file, or None for stdout) and its format, and the loss options.
    on_progress
        Called after each block as ``on_progress(bytes_read, rows)``.
    on_result
        Called with each block's result, in order (what ``--plot`` keeps of the rows).

    Returns
    -------
    BatchSummary
        Rows, ignored rows, accuracy, the reduced loss and the time taken.

    Notes
    -----
    The input is read in blocks, so memory stays bounded whatever its size; for
    ``reduction="mean"`` (and an .npz output) a first pass counts what the mean divides by.
    The output is written to a temporary file put in place only when complete: a failure
    leaves an existing output as it was. The caller installs the stopping signals'
    handlers around the run (:func:`sce.io.signals.stopping_signals_handled`), so that a
    signal ends it as :class:`sce.errors.Interrupted` with nothing left half-written.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "in.csv").write_text("z0,z1,z2,label\n2,3,4,1\n")
    >>> summary = run_batch(BatchRequest(str(folder / "in.csv"), str(folder / "out.csv")))
    >>> summary.rows, round(summary.reduced_loss, 9)
    (1, 1.407605964)
    >>> (folder / "out.csv").read_text().splitlines()[0]
    'z0,z1,z2,label,p_z0,p_z1,p_z2,loss,grad_z0,grad_z1,grad_z2'
    """
    started = time.perf_counter()
    summary = _scored(request, None, on_progress, on_result)
    summary.seconds = time.perf_counter() - started
    return summary


def score_partition(request: BatchRequest, part: PartOfWhole) -> PartitionScore:
    """One partition of a larger input (``request``'s input) computed with the whole's
    denominators into its own output (``request``'s), written whole or not at all."""
    if is_empty_text(request):  # an empty partition, as data lakes' writers leave them
        return PartitionScore(BatchSummary(reduction=request.options.reduction), None)
    layout: list[tuple[Any, ...] | None] = []
    summary = _scored(request, part, None, None, layout.append)
    return PartitionScore(summary, layout[0])


def count_partition(request: BatchRequest) -> PartitionCount:
    """One partition's first pass for 'mean': what its rows add to the whole's denominators."""
    if is_empty_text(request):
        return PartitionCount(DenominatorTally(), None)
    if request.arrays is not None:
        dump = read_inputs(request.arrays, request.options, empty_part=True)
        if dump.shape[0] == 0:  # no rows, and perhaps no class count: nothing to add
            return PartitionCount(DenominatorTally(), None)
        return PartitionCount(denominator_tally(dump, request.options), array_layout(dump))
    tally, names = DenominatorTally(), None
    with readable_input(request.input_path, False) as path:
        given = csv_input(request)
        for _, plan, result, _ in computed_blocks(path, given, request.options, None, wide=True, plain=True):
            tally.add(result)
            names = tuple(plan.names)
    return PartitionCount(tally, None if names is None else ("csv", names))  # no rows: no columns to compare


def is_empty_text(request: BatchRequest) -> bool:
    """Whether a partition is a text file of 0 bytes: a part without rows, as one with a header alone."""
    if request.arrays is not None or request.input_path == "-":
        return False
    try:
        return os.stat(request.input_path).st_size == 0 and os.path.isfile(request.input_path)
    except OSError:
        return False  # reading it says why


def _scored(
    request: BatchRequest,
    part: PartOfWhole | None,
    on_progress: Progress | None,
    on_result: Callable[[SoftmaxCrossEntropyResult], None] | None,
    on_layout: Callable[[tuple[Any, ...] | None], None] | None = None,
) -> BatchSummary:
    options, output_format = request.options, request.output_format
    output_path, input_path = request.output_path, request.input_path
    if request.summary_path is not None:
        check_summary_path(request.summary_path, inputs_of(request), (output_path,))
    with _source(request) as source:
        source.prepare(part)  # a bad input or a first pass's problem stops the run before the output is begun
        denominator = 0.0 if source.denominators is None else source.denominators.cross_entropy
        summary = BatchSummary(reduction=options.reduction, denominator=denominator)
        summary_file = None if request.summary_path is None else (request.summary_path, summary.document)
        header = part is None or part.header
        with written_whole(
            output_path,
            input_path,
            lambda target: _sink(target, output_format, source, header),
            summary_file,
            example=f"out.{output_format}",
        ) as sink:
            text = isinstance(sink, TextWriter)
            score_blocks(source, sink, summary, text, request.digits, on_progress, on_result)
            source.finish(summary.rows)
            if on_layout is not None:
                on_layout(source_layout(source))
    return summary


def source_layout(source: Source) -> tuple[Any, ...] | None:
    """The columns a source's rows come in: partitions of one input must agree on them (None for
    a CSV part without rows, which has none to compare)."""
    if isinstance(source, ArraySource):
        assert source.dump is not None
        return array_layout(source.dump)
    assert isinstance(source, CsvSource)
    return None if source.plan is None else ("csv", tuple(source.plan.names))


@contextmanager
def _source(request: BatchRequest) -> Iterator[Source]:
    output = (request.output_path, request.output_format)
    if request.arrays is not None:
        yield ArraySource(request.arrays, request.options, output, request.digits)
        return
    reads_twice = request.options.reduction == "mean" or request.output_format == "npz"
    with readable_input(request.input_path, reads_twice) as path:
        yield CsvSource(path, csv_input(request), request.options, request.output_format, request.digits)


def _sink(target: OutputTarget, output_format: str, source: Source, header: bool = True) -> BackgroundWriter:
    if output_format not in BINARY_FORMATS:
        return TextWriter(target, output_format, header)
    if output_format == "npz":
        return NpzSink(target, source.npz_layout())
    return TableSink(target, output_format)


@contextmanager
def written_whole(
    output_path: str | None,
    input_path: str | None,
    make_writer: Callable[[OutputTarget], BackgroundWriter],
    summary_file: tuple[str, Callable[[], dict[str, object]]] | None = None,
    example: str | None = None,
) -> Iterator[BackgroundWriter]:
    """The output's writer: closed and renamed into place when the block ends, or
    abandoned (the old output kept) when it raises, by a signal too.

    ``summary_file``: a path, and the summary's document once the block has ended, written
    as JSON and put in place with the output, in the same step (or neither is); ``example``: the output's
    name to suggest where a folder is named (one of the kind written)."""
    targets: list[OutputTarget] = []
    writer: BackgroundWriter | None = None
    try:
        with shielded():  # assigned before a signal can be raised, so the except below cleans up
            targets.append(OutputTarget(output_path, input_path, example=example))
            if summary_file is not None:
                targets.append(summary_target(summary_file[0], input_path))
            writer = make_writer(targets[0])
        yield writer
        writer.close()
        if summary_file is not None:
            write_summary(targets[1], summary_file[1]())
        put_in_place_together(targets)
    except BaseException:
        with shielded():
            if writer is not None:
                writer.abort()
            for target in targets:
                target.abandon()
        raise


def check_summary_path(path: str, inputs: Sequence[str | None], outputs: Sequence[str | None] = ()) -> None:
    """Refuse, before anything is read, a summary file that would replace an input (``-``:
    what stdin reads) or an output (``outputs``: their paths, None or ``-`` for stdout), or
    that cannot be made."""
    field = "summary_json"
    if not path:
        raise OptionProblem(field, "the summary file name is empty; name a file, e.g. summary.json")
    if path == "-":
        raise OptionProblem(field, "- is not a file name; name the summary's file, e.g. summary.json")
    for given in inputs:
        if given is not None:
            other = 0 if given == "-" else given
            refuse_same_file(path, other, field, f"{path} is the input file; write the summary to another file")
    for output in outputs:
        if output in (None, "-"):
            where = f"{path} is stdout, where the output goes; write the summary to a file of its own"
            refuse_same_file(path, 1, field, where)
        else:
            problem = f"{path} is the output file (-o {output}); write the summary to another file"
            refuse_same_file(path, output, field, problem)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OptionDataProblem(field, f"the folder {folder} does not exist; create it, or write the summary elsewhere")


def inputs_of(request: BatchRequest) -> list[str | None]:
    """Every file the request reads: the input, or each file of a dump of arrays."""
    if request.arrays is None:
        return [request.input_path]
    return [request.arrays.arrays, *request.arrays.paths.values()]


def summary_target(path: str, input_path: str | None) -> OutputTarget:
    """Where the summary goes: written whole, as the output is."""
    return OutputTarget(path, input_path, field="summary_json", noun="summary")


def write_summary_file(path: str, input_path: str | None, document: dict[str, object]) -> None:
    """The summary alone, as JSON, written whole or not at all (an existing file is kept
    if anything fails, a signal included)."""
    write_whole_file(lambda: summary_target(path, input_path), json_text(document))


def write_whole_file(target_of: Callable[[], OutputTarget], text: str | bytes) -> None:
    """``text`` (or bytes) into the file ``target_of()`` makes, whole or not at all (an existing file is
    kept if anything fails, a signal included)."""
    write_whole_files([(target_of, text)])


def write_whole_files(files: Sequence[tuple[Callable[[], OutputTarget], str | bytes]]) -> None:
    """Each text (or bytes) into the file its maker makes, all put in place in one step or none (every
    existing file kept if anything fails, a signal included)."""
    with abandoned_on_failure() as targets:
        for target_of, _ in files:
            with shielded():
                targets.append(target_of())
        for target, (_, text) in zip(targets, files, strict=True):
            write_text(target, text)
        put_in_place_together(targets)


def write_summary(target: OutputTarget, document: dict[str, object]) -> None:
    write_text(target, json_text(document))


def write_text(target: OutputTarget, text: str | bytes) -> None:
    try:
        target.stream.write(text if isinstance(text, bytes) else text.encode())
    except OSError as error:
        raise target.write_failure(error) from None
