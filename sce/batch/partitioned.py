"""Several inputs (files, a glob, a folder of parts) scored as the partitions of one input, by an
executor (this process, or a Dask cluster's workers), and put together in input order however
the partitions finish: one output file, or a folder of parts, written whole or not at all.

Each partition writes its rows to a part file in a staging folder beside the output (workers
on other machines need that folder on a shared file system) and hands back its exact partials
(:mod:`.partition`); the summary is their sum, rounded once. With ``reduction='mean'`` a first
pass counts every partition's denominators, summed before any row is written.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

from sce.batch.loop import check_summary_path, count_partition, score_partition, summary_target, write_summary
from sce.batch.partition import (
    PartitionCount,
    PartitionFailure,
    PartitionScore,
    PartOfWhole,
    summed,
    whole_denominators,
)
from sce.batch.request import BatchRequest, BatchSummary
from sce.errors import DataProblem, OptionDataProblem, OptionProblem, SceError, UsageProblem, option
from sce.io.signals import committed, part_of_a_run, raise_if_interrupted, shielded
from sce.io.writers.atomic import (
    OutputTarget,
    abandoned_on_failure,
    cannot_create_in,
    current_umask,
    is_broken_pipe,
    put_in_place_together,
)

#: The files a folder of parts is read for: CSV and TSV text, and dumps of arrays.
PART_SUFFIXES = (
    ".csv", ".tsv", ".tab", ".parquet", ".arrow", ".feather", ".ipc", ".npz", ".npy", ".safetensors", ".pt"
)
TEXT_FORMATS = ("csv", "tsv", "jsonl")
Arguments = Sequence[tuple[Any, ...]]


class Executor(Protocol):
    """Runs one function over many argument tuples, handing back (index, result) as each finishes;
    an error of sce's, as the result :func:`guarded` makes of it."""

    def unordered(self, function: Callable[..., Any], arguments: Arguments) -> Iterator[tuple[int, Any]]:
        ...


class InProcess:
    """The executor of one process: each partition in turn."""

    def unordered(self, function: Callable[..., Any], arguments: Arguments) -> Iterator[tuple[int, Any]]:
        for index, given in enumerate(arguments):
            yield index, guarded(function, *given)


def guarded(function: Callable[..., Any], *given: Any) -> Any:
    """``function(*given)``, its error handed back as a :class:`PartitionFailure` (a task's result)."""
    try:
        with part_of_a_run():  # a part in place is not the run's output in place
            result = function(*given)
        raise_if_interrupted()
        return result
    except SceError as error:
        return PartitionFailure(type(error), error.message)


def partition_paths(inputs: Sequence[str]) -> list[str]:
    """The partitions' files, in input order: each input as given, a folder's parts sorted by
    name, a glob's matches (quoted, so that the shell left it) sorted by name.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.csv", "a.csv", ".hidden.csv", "notes.md"):
    ...     _ = (folder / name).write_text("z0,label\\n1,0\\n")
    >>> [pathlib.Path(path).name for path in partition_paths([str(folder)])]
    ['a.csv', 'b.csv']
    """
    paths: list[str] = []
    for given in inputs:
        if given == "-":
            raise UsageProblem("stdin (-) cannot be one of several inputs, nor a cluster's: save it to a file")
        if os.path.isdir(given):
            found = sorted(
                entry.path for entry in os.scandir(given)
                if entry.is_file() and not entry.name.startswith(".") and entry.name.lower().endswith(PART_SUFFIXES)
            )
            if not found:
                raise OptionDataProblem(
                    "input_path", f"the folder {given} holds no parts ({', '.join(PART_SUFFIXES[:4])} …)"
                )
            paths.extend(found)
        elif not os.path.exists(given) and glob.has_magic(given):
            matches = sorted(path for path in glob.glob(given) if os.path.isfile(path))
            if not matches:
                raise OptionDataProblem("input_path", f"no file matches {given}")
            paths.extend(matches)
        else:
            paths.append(given)
    _refuse_twice(paths)
    return paths


def _refuse_twice(paths: Sequence[str]) -> None:
    """One file given twice (by two names, a link, a folder and a glob) would count its rows twice."""
    seen: dict[tuple[int, int], str] = {}
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            continue  # opening it says why
        if not stat.S_ISREG(status.st_mode):
            continue
        key = (status.st_dev, status.st_ino)
        if key in seen:
            first = seen[key]
            named = f"{path} twice" if first == path else f"{first} twice (also as {path})"
            raise UsageProblem(f"the inputs name {named}: its rows would count twice; give each part once")
        seen[key] = path


def run_partitioned(
    request: BatchRequest, paths: Sequence[str], executor: Executor, part_request: Callable[[str], BatchRequest]
) -> BatchSummary:
    """Score every partition (``paths``, from :func:`partition_paths`) with ``executor`` and write
    the output ``request`` names (a file, stdout, or a folder when its name ends with a separator
    or names a folder). ``part_request(path)`` is the request that reads one partition (CSV, or
    a dump of arrays).
    """
    into_folder = _names_folder(request.output_path)
    check_output(request, paths)
    requests = [part_request(path) for path in paths]
    started = time.perf_counter()
    whole, owns = None, [None] * len(paths)
    layouts: dict[int, tuple[Any, ...] | None] = {}
    if request.options.reduction == "mean":
        counts: dict[int, PartitionCount] = _all_of(executor, count_partition, [(r,) for r in requests], paths)
        _check_layouts(paths, {index: count.layout for index, count in counts.items()})
        ordered = [counts[index] for index in range(len(paths))]
        whole = whole_denominators(ordered, request.options)
        owns = [whole_denominators([count], request.options) for count in ordered]  # type: ignore[misc]
    with _staging(request.output_path, into_folder) as staging:
        names = part_names(len(paths), request.output_format)
        arguments = [
            (replace(part, output_path=os.path.join(staging, name), summary_path=None),
             PartOfWhole(whole, own, header=into_folder or index == 0))
            for index, (part, own, name) in enumerate(zip(requests, owns, names))
        ]
        shown = (staging, (request.output_path or "-").rstrip(os.sep) or os.sep, into_folder)
        scores: dict[int, PartitionScore] = _all_of(executor, score_partition, arguments, paths, shown)
        layouts = {index: score.layout for index, score in scores.items()}
        _check_layouts(paths, layouts)
        first = min(index for index, layout in layouts.items() if layout is not None)
        if first > 0 and not into_folder:  # the first parts had no rows, so no header: the first with rows gives it
            again = [(arguments[first][0], replace(arguments[first][1], header=True))]
            scores[first] = _all_of(executor, score_partition, again, [paths[first]], shown)[0]
        template = BatchSummary(
            reduction=request.options.reduction, denominator=0.0 if whole is None else whole.cross_entropy
        )
        summary = summed((scores[index].summary for index in range(len(paths))), template)
        parts = [os.path.join(staging, name) for name in names]
        for index, path in enumerate(parts):
            if scores[index].summary.rows == 0 and os.path.exists(path):
                os.remove(path)  # a part without rows has no rows to write (and a table without rows, no schema)
        parts = [path for index, path in enumerate(parts) if scores[index].summary.rows > 0]
        if into_folder:
            _put_folder_in_place(staging, request, summary)
        else:
            _put_file_in_place(parts, request, summary)
    summary.seconds = time.perf_counter() - started
    return summary


def check_output(request: BatchRequest, paths: Sequence[str]) -> None:
    """Refuse an output (and a summary) the run could not put in place, before any partition is
    read or a cluster started: an input's own file or folder, a folder holding other files, one
    ``.npz`` file of several parts."""
    into_folder = _names_folder(request.output_path)
    _refuse_output_among_inputs(request.output_path, paths)
    if request.summary_path is not None:
        if into_folder:
            _refuse_summary_inside(request.summary_path, request.output_path)
        check_summary_path(request.summary_path, paths, (request.output_path,))
    if request.output_format == "npz" and not into_folder and len(paths) > 1:
        raise UsageProblem(
            "an .npz output is shaped by its row count, which one file of several parts does not know first; "
            "write a folder of parts (-o DIR/), or .parquet or .arrow"
        )
    if request.output_path is None or request.output_path == "-":
        return
    parent = os.path.dirname(os.path.realpath(request.output_path.rstrip(os.sep) or request.output_path))
    if not os.path.isdir(parent):
        raise OptionDataProblem(
            "output_path", f"the folder {parent} does not exist; create it, or write the output elsewhere"
        )
    if into_folder:
        _check_replaceable(request.output_path.rstrip(os.sep))


def refuse_streams(paths: Sequence[str], on_cluster: bool, reads_twice: bool) -> None:
    """Refuse a part that is a pipe or a device where it cannot be read: by a cluster's workers
    (other processes), or twice (``reads_twice``: a first pass counts the mean's denominators)."""
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # opening it says why
        if stat.S_ISREG(mode) or not (on_cluster or reads_twice):
            continue
        if on_cluster:
            raise UsageProblem(
                f"{path} is a pipe or a device, which the cluster's workers cannot open: save it to a file"
            )
        raise UsageProblem(
            f"{path} is a pipe or a device, read once; with {option('reduction', 'mean')} every part is read twice "
            "(a first pass counts the whole input's denominators): save it to a file"
        )


def refuse_output_read_as_a_part(output: str | None, inputs: Sequence[str]) -> None:
    """Refuse an output file that a folder or glob among ``inputs`` would take for a part on the
    next run (its rows read again, with its computed columns among the logits)."""
    import fnmatch

    if output is None or output == "-" or _names_folder(output) or os.path.exists(output):
        return  # an existing output among the parts is refused as an input's file
    name = os.path.basename(output)
    if name.startswith(".") or not name.lower().endswith(PART_SUFFIXES):
        return
    written = os.path.abspath(output)
    for given in inputs:
        in_folder = os.path.isdir(given) and os.path.realpath(given) == os.path.realpath(os.path.dirname(written))
        if in_folder or (glob.has_magic(given) and fnmatch.fnmatch(written, os.path.abspath(given))):
            raise OptionProblem(
                "output_path",
                f"{output} would be one of the parts of {given} (read again by the next run); write it elsewhere",
            )


def part_names(count: int, output_format: str) -> list[str]:
    """The parts' file names, numbered in input order (sorted by name, they stay in it)."""
    width = max(5, len(str(count - 1)))
    suffix = {"arrow": "arrow"}.get(output_format, output_format)
    return [f"part-{index:0{width}d}.{suffix}" for index in range(count)]


def _all_of(
    executor: Executor,
    function: Callable[..., Any],
    arguments: Sequence[tuple[Any, ...]],
    paths: Sequence[str],
    staging: tuple[str, str, bool] | None = None,
) -> dict[int, Any]:
    """Every partition's result by its index; an error stops the run, naming its partition (and, for an
    error in writing, the output: ``staging`` is the parts' folder, the output's name, and whether it is
    a folder): the first failed partition in input order, as one process meets them, once every one
    before it is done (the rest are cancelled as the executor is left)."""
    results: dict[int, Any] = {}
    failed: dict[int, PartitionFailure] = {}
    for index, result in executor.unordered(function, arguments):
        if isinstance(result, PartitionFailure):
            failed[index] = result
        else:
            results[index] = result
        first = min(failed, default=None)
        if first is not None and all(earlier in results for earlier in range(first)):
            raise _named(failed[first].error(), paths[first], staging)
    return results


def _named(error: SceError, path: str, staging: tuple[str, str, bool] | None = None) -> SceError:
    """A partition's error, naming its file where the message does not already; an error in
    writing its part names the output the user asked for, not the hidden folder of parts."""
    message = error.message
    if staging is not None and staging[0] in message:
        folder, output, into_folder = staging
        shown = re.escape(folder + os.sep) + r"(part-\d+\.\w+)"
        message = re.sub(shown, lambda found: os.path.join(output, found.group(1)) if into_folder else output, message)
        if message.startswith(option("output_path")):
            return PartitionFailure(type(error), message).error()
    if path in message:
        return PartitionFailure(type(error), message).error()
    return PartitionFailure(type(error), f"{path}: {message}").error()


def _check_layouts(paths: Sequence[str], layouts: dict[int, tuple[Any, ...] | None]) -> None:
    """Every part with rows has the first one's columns; an input of parts has some rows."""
    given = {index: layout for index, layout in layouts.items() if layout is not None}
    if not given:
        from sce.io.arrays import is_array_path

        if any(is_array_path(path) for path in paths):
            alone = f"{paths[0]}: the input has" if len(paths) == 1 else "the parts have"
            raise DataProblem(f"{alone} no rows; give at least one row of one class")
        if any(not os.path.isfile(path) or os.path.getsize(path) > 0 for path in paths):
            raise DataProblem("the parts have a header but no rows")
        if len(paths) == 1:
            raise DataProblem(f"{paths[0]}: the input is empty; it needs a header line and rows of logits")
        raise DataProblem("the parts are empty (0 bytes each); they need a header line and rows of logits")
    first = min(given)
    for index in sorted(given):
        if given[index] != given[first]:
            raise DataProblem(
                f"{paths[index]} has other columns than {paths[first]} ({_spoken(given[index])}, "
                f"against {_spoken(given[first])}); the parts of one input have the same columns, in the same order"
            )


def _spoken(layout: tuple[Any, ...]) -> str:
    if layout[0] == "csv":
        return ",".join(layout[1])
    return f"{layout[1]} classes, {layout[2]}"


def _names_folder(output: str | None) -> bool:
    return output is not None and (output.endswith(os.sep) or os.path.isdir(output))


def _refuse_output_among_inputs(output: str | None, paths: Sequence[str]) -> None:
    if output is None or output == "-" or not os.path.exists(output):
        return
    for path in paths:
        if os.path.exists(path) and os.path.samefile(path, output):
            raise OptionProblem("output_path", f"{output} is an input file; write the output to another file")
        if os.path.isdir(output) and os.path.commonpath([os.path.realpath(path), os.path.realpath(output)]) == (
            os.path.realpath(output)
        ):
            raise OptionProblem("output_path", f"{output} holds the input {path}; write the output elsewhere")


def _refuse_summary_inside(summary: str, folder: str | None) -> None:
    """The output folder is replaced whole: a summary inside it would go with the old one."""
    assert folder is not None
    inside = os.path.realpath(folder.rstrip(os.sep) or folder)
    if os.path.commonpath([os.path.realpath(summary), inside]) == inside:
        raise OptionProblem(
            "summary_json", f"{summary} is inside the output folder {folder}, which is replaced whole; "
            "write the summary beside it"
        )


@contextlib.contextmanager
def _staging(output: str | None, into_folder: bool) -> Iterator[str]:
    """A new folder for the parts, beside the output (in the temporary folder for stdout or a
    device such as /dev/null), removed with whatever it holds when the run ends, by an error or a
    signal too."""
    if output is None or output == "-" or _is_special(output):
        parent, name = None, "sce-output"
    else:
        written = os.path.realpath(output.rstrip(os.sep) or output)
        parent, name = os.path.dirname(written), os.path.basename(written)
        if into_folder:
            _check_replaceable(output.rstrip(os.sep))
    folder = None
    try:
        with shielded():
            try:
                folder = tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=".parts")
            except OSError as error:
                raise OptionDataProblem("output_path", cannot_create_in(parent or ".", error)) from None
        yield folder
    finally:
        with shielded():
            if folder is not None:
                _remove_tree(folder)


def _is_special(output: str) -> bool:
    """A device or a pipe: its folder (/dev) is no place for the parts."""
    try:
        mode = os.stat(output).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _remove_tree(folder: str) -> None:
    """Removed, retried while a cancelled task may still be writing into it."""
    for _ in range(5):
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.exists(folder):
            return


def _check_replaceable(folder: str) -> None:
    """A folder output replaces an existing folder only if it holds nothing but parts."""
    if not os.path.exists(folder):
        return
    if not os.path.isdir(folder):
        raise OptionProblem("output_path", f"{folder} is a file, not a folder; name a folder for the parts")
    others = [name for name in os.listdir(folder) if not name.startswith("part-")]
    if others:
        raise OptionProblem(
            "output_path",
            f"{folder} holds other files than parts ({others[0]}); name a new folder, or an empty one",
        )


def _put_folder_in_place(staging: str, request: BatchRequest, summary: BatchSummary) -> None:
    """The staging folder renamed to the output's name and the summary put in place, in one
    shielded step (the run's commit); an old folder of parts there removed after."""
    assert request.output_path is not None
    destination = os.path.realpath(request.output_path.rstrip(os.sep))
    targets = _summary_targets(request, summary)
    old = None
    try:
        for target in targets:
            target.closed()
        os.chmod(staging, 0o777 & ~current_umask())
        raise_if_interrupted()  # the last moment at which the old output can still be kept
        with shielded():
            if os.path.exists(destination):
                old = tempfile.mkdtemp(dir=os.path.dirname(destination), prefix=f".{os.path.basename(destination)}.")
                os.replace(destination, os.path.join(old, "old"))
            os.rename(staging, destination)
            for target in targets:
                target.put_in_place()
            committed()
    except BaseException:
        with shielded():
            for target in targets:
                target.abandon()
            if old is not None and not os.path.exists(destination):
                os.replace(os.path.join(old, "old"), destination)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _summary_targets(request: BatchRequest, summary: BatchSummary) -> list[OutputTarget]:
    if request.summary_path is None:
        return []
    target = summary_target(request.summary_path, None)
    try:
        write_summary(target, summary.document())
        target.closed()
    except BaseException:
        target.abandon()
        raise
    return [target]


def _put_file_in_place(parts: Sequence[str], request: BatchRequest, summary: BatchSummary) -> None:
    """The parts joined in input order into the output, and the summary, put in place together."""
    with abandoned_on_failure() as targets:
        with shielded():
            targets.append(OutputTarget(request.output_path, None))
        if request.output_format in TEXT_FORMATS or len(parts) == 1:
            _joined_text(parts, targets[0])  # one part: its bytes, whatever its format
        else:
            _joined_table(parts, targets[0], request.output_format)
        targets[0].closed()
        targets.extend(_summary_targets(request, summary))
        put_in_place_together(targets)


def _joined_text(parts: Sequence[str], target: OutputTarget) -> None:
    try:
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, target.stream, 1 << 20)
    except OSError as error:
        if is_broken_pipe(error):
            raise
        raise target.write_failure(error) from None


def _joined_table(parts: Sequence[str], target: OutputTarget, output_format: str) -> None:
    import polars as pl

    path = target.temporary or target.written
    try:
        if output_format == "parquet":
            pl.scan_parquet(list(parts)).sink_parquet(path)
        else:
            pl.scan_ipc(list(parts)).sink_ipc(path)
    except OSError as error:
        raise target.write_failure(error) from None
    except Exception as error:  # polars' own kinds: parts whose columns' types differ among them
        first = " ".join(str(error).split())[:200]
        raise DataProblem(
            f"the parts' {output_format} files cannot be joined into {target.path}: {first}; "
            "write a folder of parts (-o DIR/)"
        ) from None
