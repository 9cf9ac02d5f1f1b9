"""Scoring and checking on a Dask cluster from Python: :func:`score` and
:func:`check_linear_cross_entropy` (the ``sce[dask]`` extra).

The same engine as ``sce batch --engine dask``: every partition (a file, or a Dask DataFrame's
partition) computed on a worker into a Parquet part, with exact partial sums that combine into
the summary one process would give, to the last bit.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from numbers import Integral
from typing import TYPE_CHECKING, Any

from sce.batch.partition import PartitionFailure
from sce.batch.partitioned import check_output, part_names, partition_paths, refuse_streams, run_partitioned
from sce.batch.request import BatchRequest, BatchSummary
from sce.errors import OptionProblem, SceError, UsageProblem, worded
from sce.options import LossOptions

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["Scored", "check_linear_cross_entropy", "score"]


@dataclass(frozen=True)
class Scored:
    """What :func:`score` wrote and found."""

    folder: str
    """The folder of Parquet parts, one per partition, in input order."""
    parts: tuple[str, ...]
    """The parts' paths, in input order (a partition without rows has none)."""
    summary: BatchSummary
    """Counts, and the loss's sum and mean, each rounded once from exact partial sums."""

    def frame(self) -> Any:
        """The per-row results as a lazy Dask DataFrame (needs ``dask[dataframe]``)."""
        try:
            import dask.dataframe as dd
        except ImportError:
            raise UsageProblem("Scored.frame() needs dask's DataFrame: pip install 'dask[dataframe]'") from None
        return dd.read_parquet(list(self.parts))


def score(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Any,
    output: str | os.PathLike[str],
    *,
    client: Client | None = None,
    workers: int | None = None,
    options: LossOptions | None = None,
    digits: int | None = None,
    **loss_options: Any,
) -> Scored:
    r"""Probabilities, loss and gradient of every row, on a Dask cluster, into a folder of Parquet parts.

    Parameters
    ----------
    source
        Files (CSV or TSV with a label column, or dumps of arrays: .parquet, .npz …), folders of
        such parts, quoted globs, or a Dask DataFrame whose columns are a dump's (``logits_0`` …
        ``logits_{K-1}``, and ``labels`` or ``targets_0`` …).
    output
        The folder the parts are written to (``part-00000.parquet`` …), replaced whole or not at
        all; an existing folder is replaced only if it holds nothing but parts.
    client
        The Dask client to run on (default: the current one, else a local cluster started for the call).
    workers
        The worker processes (1 to 256) of a local cluster started for the call (default: the cores;
        never more than the parts or the cores); given, a local cluster is started even where a current
        client exists. Not with ``client``.
    options, \*\*loss_options
        The loss's options (:class:`sce.LossOptions`, or its fields as keywords); the reduction
        defaults to ``'none'`` (each row's own loss); ``'mean'`` divides every row by the whole
        input's denominator, counted exactly in a first pass.
    digits
        Significant digits (1 to 17) the outputs are rounded to (default: every bit).

    Returns
    -------
    Scored
        The parts' folder and paths, and the exact summary.

    Raises
    ------
    ValueError
        An argument the command line refuses too, named, before anything is read or a cluster
        started: no source, a part that cannot be opened, an output that is an input or a folder
        holding other files, a loss option out of its range, ``workers`` or ``digits`` out of theirs.
    TypeError
        The options given both as ``options=`` and as keywords, or a keyword the loss does not have.

    Examples
    --------
    >>> import pathlib, tempfile, sce.dask
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.csv").write_text("z0,z1,z2,label\n2,3,4,1\n")
    >>> _ = (folder / "b.csv").write_text("z0,z1,z2,label\n0,40,-1,1\n")
    >>> scored = sce.dask.score([folder / "a.csv", folder / "b.csv"], folder / "out", workers=1)  # doctest: +SKIP
    >>> scored.summary.rows  # doctest: +SKIP
    2
    >>> sce.dask.score([folder / "a.csv"], folder / "out", reduction="avg")
    Traceback (most recent call last):
    ...
    ValueError: reduction: unknown reduction 'avg'; use none, mean or sum
    """
    chosen = _chosen_options(options, loss_options)
    _check_run_arguments(client, workers, digits)
    folder = _output_folder(output)
    with _input_paths(source, folder) as paths, _frame_named(source, paths):
        request = BatchRequest(paths[0], folder, output_format="parquet", digits=digits, options=chosen)
        with _named_as_arguments():
            _check_parts(request, paths)

        def part_request(path: str) -> BatchRequest:
            return _part_request(path, request)

        summary = _run(request, paths, part_request, client, workers)
    named = (os.path.join(folder, name) for name in part_names(len(paths), "parquet"))
    parts = tuple(path for path in named if os.path.exists(path))  # a partition without rows has no part
    return Scored(folder.rstrip(os.sep), parts, summary)


def _output_folder(output: Any) -> str:
    """The parts' folder (with a trailing separator), one the run can put in place, checked before
    a Dask DataFrame is written out beside it."""
    if not isinstance(output, (str, os.PathLike)):
        raise TypeError(f"output: {type(output).__name__} is not a path; name a folder for the parts")
    if not os.fspath(output).strip():
        raise ValueError("output: the path is empty; name a folder for the parts")
    folder = os.fspath(output).rstrip(os.sep) + os.sep
    with _named_as_arguments():
        check_output(BatchRequest("", folder, output_format="parquet"), [])
    return folder


#: The Python argument each field of sce's errors stands for here.
ARGUMENT_OF = {"input_path": "source", "output_path": "output", "digits": "digits", "workers": "workers"}


@contextmanager
def _named_as_arguments() -> Iterator[None]:
    """sce's refusals of a request, raised as :class:`ValueError` naming :func:`score`'s argument."""
    try:
        yield
    except OptionProblem as error:
        raise ValueError(f"{ARGUMENT_OF.get(error.option, error.option)}: {worded(error.problem)}") from None
    except UsageProblem as error:
        raise ValueError(f"source: {error}") from None


@contextmanager
def _frame_named(source: Any, paths: list[str]) -> Iterator[None]:
    """A Dask DataFrame's problems named by its partition, not by the hidden file it was written to."""
    try:
        yield
    except SceError as error:
        if not _is_dask_frame(source) or not paths:
            raise
        folder = re.escape(os.path.dirname(paths[0]) + os.sep)
        worded = re.sub(folder + r"part-0*(\d+)\.parquet", r"the Dask DataFrame's partition \1", error.message)
        raise PartitionFailure(type(error), worded).error() from None


def _is_dask_frame(source: Any) -> bool:
    return hasattr(source, "to_parquet") and hasattr(source, "npartitions")


def _check_frame_columns(frame: Any) -> None:
    """A Dask DataFrame's columns are a dump's: ``logits_0`` … and ``labels`` or ``targets_0`` …"""
    columns = [str(name) for name in frame.columns]
    listed = ", ".join(columns[:6]) + (" …" if len(columns) > 6 else "")
    if "logits_0" not in columns:
        raise ValueError(
            f"source: the Dask DataFrame has no column logits_0 (its columns: {listed}); name the logits' columns "
            "logits_0 … logits_{K-1}"
        )
    if "labels" not in columns and "targets_0" not in columns:
        raise ValueError(
            f"source: the Dask DataFrame has neither a column labels nor targets_0 … (its columns: {listed}); "
            "add the class-index labels, or the probability targets"
        )


def _chosen_options(options: LossOptions | None, loss_options: dict[str, Any]) -> LossOptions:
    """The loss's options, checked as the loss checks them, before anything is read or started."""
    from sce.errors import option_problem
    from sce.loss import InvalidInput
    from sce.loss.validation import validated_options

    if options is not None and loss_options:
        raise TypeError("give the options either as options= or as keywords, not both")
    if options is None:
        try:
            options = LossOptions(**{"reduction": "none", **loss_options})
        except TypeError:
            unknown = sorted(set(loss_options) - {field.name for field in fields(LossOptions)})
            raise TypeError(f"score() got an unexpected keyword argument {unknown[0]!r}") from None
    try:
        validated_options(options)
    except InvalidInput as error:
        raise ValueError(str(option_problem(error))) from None
    return options


def _check_run_arguments(client: Any, workers: Any, digits: Any) -> None:
    """``client``, ``workers`` and ``digits`` as the command line takes them."""
    from sce.batch.cluster import MAX_WORKERS

    if client is not None:
        if workers is not None:
            raise ValueError("workers starts a local cluster, client uses a running one: give one of them")
        if not hasattr(client, "submit") or not hasattr(client, "scheduler_info"):
            raise ValueError(f"client: {type(client).__name__} is not a Dask client; give distributed.Client(…)")
        if getattr(client, "status", None) in ("closing", "closed"):
            raise ValueError("client: the client is closed; give one connected to a cluster, or leave client out")
    for name, value, most in (("workers", workers, MAX_WORKERS), ("digits", digits, 17)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise ValueError(f"{name}: {value!r} is not a whole number; give 1 to {most}")
        if not 1 <= int(value) <= most:
            raise ValueError(f"{name}: {_out_of_range(name, int(value))}; give 1 to {most}")


def _out_of_range(name: str, value: int) -> str:
    if name == "digits":
        return f"{value} is out of range"
    return f"{value} worker processes {'cannot run anything' if value < 1 else 'are more than one machine runs'}"


def _check_parts(request: BatchRequest, paths: list[str]) -> None:
    """Every part openable, and the output one the run can put in place, before a cluster starts."""
    from sce.batch.csv_source import check_openable

    for path in paths:
        check_openable(path)
    refuse_streams(paths, on_cluster=True, reads_twice=False)
    check_output(request, paths)


def _run(request: BatchRequest, paths: list[str], part_request: Any, client: Client | None, workers: int | None) -> Any:
    from sce.batch.cluster import cluster_client, require_dask
    from sce.batch.dask_engine import OnCluster

    require_dask()
    if client is None and workers is None:
        from distributed import get_client

        with contextlib.suppress(ValueError):  # no client yet: a local cluster for this call
            client = get_client()
    if client is None:
        with cluster_client(None, workers, tasks=len(paths)) as started:
            return run_partitioned(request, paths, OnCluster(started), part_request)
    return run_partitioned(request, paths, OnCluster(client), part_request)


def _part_request(path: str, whole: BatchRequest) -> BatchRequest:
    from sce.io.arrays import DumpRequest, is_array_path

    arrays = None
    if is_array_path(path):
        arrays = DumpRequest(None, {"logits": path}, {}) if path.lower().endswith(".npy") else DumpRequest(path, {}, {})
    delimiter = "\t" if path.lower().endswith((".tsv", ".tab")) else ","
    return BatchRequest(
        path, whole.output_path, delimiter=delimiter, output_format="parquet", digits=whole.digits,
        options=whole.options, arrays=arrays,
    )


class _input_paths:  # noqa: N801 (used as a context manager, as contextlib's are named)
    """The partitions' files: the paths given, or a Dask DataFrame written as Parquet parts beside
    the output (removed at the end)."""

    def __init__(self, source: Any, folder: str) -> None:
        self.source, self.folder = source, folder
        self.written: str | None = None

    def __enter__(self) -> list[str]:
        if _is_dask_frame(self.source):
            _check_frame_columns(self.source)
            parent = os.path.dirname(os.path.abspath(self.folder.rstrip(os.sep)))
            written = self.written = tempfile.mkdtemp(dir=parent, prefix=".sce-input.")
            with warnings.catch_warnings():  # pandas' deprecations inside Dask's writer, not the user's doing
                warnings.simplefilter("ignore")
                self.source.to_parquet(written, write_index=False, name_function=lambda i: f"part-{i:06d}.parquet")
            return partition_paths([written])
        return _given_paths(self.source)

    def __exit__(self, *_: object) -> None:
        if self.written is not None:
            import shutil

            shutil.rmtree(self.written, ignore_errors=True)


def _given_paths(source: Any) -> list[str]:
    """The parts' files of ``source``: a path, or paths (files, folders of parts, quoted globs)."""
    from sce.batch.partitioned import partition_paths

    if isinstance(source, (str, os.PathLike)):
        given = [source]
    elif hasattr(source, "to_parquet") or hasattr(source, "shape") or not isinstance(source, Iterable):
        raise ValueError(
            f"source: {type(source).__name__} is not files, nor a Dask DataFrame; give paths of parts, or a "
            "Dask DataFrame (dask.dataframe.from_pandas(frame, npartitions=N))"
        )
    else:
        given = list(source)
    strange = [path for path in given if not isinstance(path, (str, os.PathLike))]
    if strange:
        raise ValueError(f"source: {strange[0]!r} is not a path; give files, folders of parts or quoted globs")
    if not given:
        raise ValueError("source: no files given; give files, folders of parts, quoted globs, or a Dask DataFrame")
    with _named_as_arguments():
        return partition_paths([os.fspath(path) for path in given])


def check_linear_cross_entropy(
    hidden: Any,
    classifier: Any,
    labels: Any,
    *,
    client: Client | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    **keywords: Any,
) -> Any:
    """:func:`sce.testing.check_linear_cross_entropy`'s full check, its blocks computed on a Dask cluster.

    The classes are cut into the blocks one machine takes where ∂L/∂C does not fit whole, one
    task each (after a pass over the rows' log-sum-exps in tiles of rows); the client adds their
    parts in the blocks' order and grades. Where one machine goes by classes too, the report is
    one machine's to the bit below 4 million logits (from there, where one machine keeps its
    logits, to the reference's stated bound). Where it goes by rows (∂L/∂C whole, V·D·8 bytes up
    to 256 MB), this machine forms the same-type baseline by rows as one machine does, and the
    verdict, the mistake and every figure are one machine's to 10⁻⁹ of themselves. A wrong
    answer's mistakes are then looked for on this machine, as one machine looks for them.

    Parameters
    ----------
    hidden, classifier, labels
        As :func:`sce.testing.check_linear_cross_entropy` (one classifier: a list of shards is
        checked on one machine).
    client
        The Dask client to run on (default: the current one, else a local cluster started for the call).
    workers
        The worker processes (1 to 256) of a local cluster started for the call. Not with ``client``.
    scheduler
        A running scheduler's address (``tcp://host:8786``) to connect to for the call.
    **keywords
        Every other argument of :func:`sce.testing.check_linear_cross_entropy` (outputs, options,
        ``profile``, ``grad_output``) but ``mode`` and ``seed``: quick mode runs on one machine.

    Returns
    -------
    Report
        As :func:`sce.testing.check_linear_cross_entropy`'s.

    Raises
    ------
    ValueError
        As :func:`sce.testing.check_linear_cross_entropy`, checked before a cluster is started or
        reached; ``client``, ``workers`` or ``scheduler`` that cannot be used; a scheduler that does not answer.

    Examples
    --------
    >>> import numpy as np, sce.dask
    >>> E, C = np.eye(2, dtype=np.float32), np.ones((3, 2), dtype=np.float32)
    >>> report = sce.dask.check_linear_cross_entropy(E, C, [0, 1], loss=np.float32(1.0986123))  # doctest: +SKIP
    >>> report.passed  # doctest: +SKIP
    True
    >>> sce.dask.check_linear_cross_entropy(E, C, [0, 1], loss=np.float32(1), workers=0)
    Traceback (most recent call last):
    ...
    ValueError: workers: 0 worker processes cannot run anything; give 1 to 256
    """
    from sce.batch.cluster import require_dask
    from sce.grading.linear.grade import check_linear

    _check_run_arguments(client, workers, None)
    if scheduler is not None and (client is not None or workers is not None):
        raise ValueError("scheduler connects to a running cluster: give one of client, workers and scheduler")
    for refused in ("mode", "seed"):
        if refused in keywords:
            raise TypeError(f"check_linear_cross_entropy() runs the full check: leave out {refused} (quick mode "
                            "runs on one machine, with sce.testing.check_linear_cross_entropy)")  # fmt: skip
    outputs = {name: keywords.pop(name, None) for name in ("loss", "grad_hidden", "grad_classifier", "grad_bias")}
    bias, profile, grad_output = keywords.pop("bias", None), keywords.pop("profile", "pytorch"), keywords.pop(
        "grad_output", 1.0)  # fmt: skip
    options = {"reduction": "mean", **keywords}
    require_dask()
    with _named_as_arguments():
        if scheduler is not None:
            from sce.batch.scheduler_address import scheduler_address

            scheduler_address(scheduler)
        return check_linear(
            hidden, classifier, labels, bias=bias, outputs=outputs, options=options, profile=profile,
            grad_output=grad_output, client=_cluster_opener(client, workers, scheduler),
        )  # fmt: skip


def _cluster_opener(client: Client | None, workers: int | None, scheduler: str | None) -> Any:
    """What the check runs on: ``client``, else a function that opens the current client or a
    cluster (started, or reached at ``scheduler``) when the inputs are checked."""
    from sce.batch.cluster import cluster_client

    if client is not None:
        return client

    @contextmanager
    def opened() -> Iterator[Any]:
        current = None
        if workers is None and scheduler is None:
            from distributed import get_client

            with contextlib.suppress(ValueError):  # no client yet: a local cluster for this call
                current = get_client()
        if current is not None:
            yield current
            return
        with cluster_client(scheduler, workers) as started:
            yield started

    return opened
