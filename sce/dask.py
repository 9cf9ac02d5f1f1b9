"""Scoring on a Dask cluster from Python: :func:`score` (the ``sce[dask]`` extra).

The same engine as ``sce batch --engine dask``: every partition (a file, or a Dask DataFrame's
partition) computed on a worker into a Parquet part, with exact partial sums that combine into
the summary one process would give, to the last bit.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sce.batch.partitioned import part_names, partition_paths, run_partitioned
from sce.batch.request import BatchRequest, BatchSummary
from sce.errors import UsageProblem
from sce.options import LossOptions

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["Scored", "score"]


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
        The worker processes of a local cluster started for the call (default: the cores).
    options, \*\*loss_options
        The loss's options (:class:`sce.LossOptions`, or its fields as keywords); the reduction
        defaults to ``'none'`` (each row's own loss); ``'mean'`` divides every row by the whole
        input's denominator, counted exactly in a first pass.
    digits
        Significant digits the outputs are rounded to (default: every bit).

    Returns
    -------
    Scored
        The parts' folder and paths, and the exact summary.

    Examples
    --------
    >>> import pathlib, tempfile, sce.dask
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.csv").write_text("z0,z1,z2,label\n2,3,4,1\n")
    >>> _ = (folder / "b.csv").write_text("z0,z1,z2,label\n0,40,-1,1\n")
    >>> scored = sce.dask.score([folder / "a.csv", folder / "b.csv"], folder / "out", workers=1)  # doctest: +SKIP
    >>> scored.summary.rows  # doctest: +SKIP
    2
    """
    chosen = options or LossOptions(**{"reduction": "none", **loss_options})
    folder = os.fspath(output).rstrip(os.sep) + os.sep
    with _input_paths(source, folder) as paths:
        request = BatchRequest(paths[0], folder, output_format="parquet", digits=digits, options=chosen)

        def part_request(path: str) -> BatchRequest:
            return _part_request(path, request)

        summary = _run(request, paths, part_request, client, workers)
    named = (os.path.join(folder, name) for name in part_names(len(paths), "parquet"))
    parts = tuple(path for path in named if os.path.exists(path))  # a partition without rows has no part
    return Scored(folder.rstrip(os.sep), parts, summary)


def _run(request: BatchRequest, paths: list[str], part_request: Any, client: Client | None, workers: int | None) -> Any:
    from sce.batch.cluster import cluster_client, require_dask
    from sce.batch.dask_engine import OnCluster

    require_dask()
    if client is None:
        from distributed import get_client

        try:
            client = get_client()
        except ValueError:  # no client yet: a local cluster for this call
            with cluster_client(None, workers) as started:
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
        if hasattr(self.source, "to_parquet") and hasattr(self.source, "npartitions"):
            parent = os.path.dirname(os.path.abspath(self.folder.rstrip(os.sep)))
            written = self.written = tempfile.mkdtemp(dir=parent, prefix=".sce-input.")
            with warnings.catch_warnings():  # pandas' deprecations inside Dask's writer, not the user's doing
                warnings.simplefilter("ignore")
                self.source.to_parquet(written, write_index=False, name_function=lambda i: f"part-{i:06d}.parquet")
            return partition_paths([written])
        given = [self.source] if isinstance(self.source, (str, os.PathLike)) else list(self.source)
        return partition_paths([os.fspath(path) for path in given])

    def __exit__(self, *_: object) -> None:
        if self.written is not None:
            import shutil

            shutil.rmtree(self.written, ignore_errors=True)
