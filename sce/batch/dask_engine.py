"""The partitions of a batch run on a Dask cluster: each a task, retried by Dask where its
worker dies, handed back as it finishes; on any error or signal the cluster's remaining work is
cancelled before the run ends."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sce.batch.partitioned import Arguments, check_output, guarded, run_partitioned
from sce.batch.request import BatchRequest, BatchSummary
from sce.errors import DataProblem

if TYPE_CHECKING:
    from distributed import Client


class OnCluster:
    """The executor of a Dask cluster: one task per partition (see :class:`.partitioned.Executor`)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def unordered(self, function: Callable[..., Any], arguments: Arguments) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        futures = [self.client.submit(guarded, function, *given, pure=False) for given in arguments]
        index = {future.key: position for position, future in enumerate(futures)}
        try:
            for future in as_completed(futures, loop=self.client.loop):
                yield index[future.key], _result(future)
        finally:
            with contextlib.suppress(Exception):  # a client already closed has nothing left to cancel
                self.client.cancel(futures)  # those still queued or running: nothing of theirs is used


def _result(future: Any) -> Any:
    from concurrent.futures import CancelledError

    from distributed import KilledWorker

    try:
        return future.result()
    except ImportError as error:  # a worker's environment without sce (or its dependencies)
        raise DataProblem(
            f"a worker of the cluster cannot import {error.name or 'what sce needs'}: install sce on every worker, "
            "the same version as here (pip install 'sce[dask]')"
        ) from None
    except (CancelledError, OSError, TimeoutError):  # the scheduler lost (CommClosedError is an OSError)
        raise DataProblem(
            "the connection to the Dask scheduler was lost mid-run (or the cluster cancelled the run's tasks); "
            "nothing was written: run it again once the cluster is back"
        ) from None
    except KilledWorker as error:
        raise DataProblem(
            f"the cluster's workers died computing a part, {error.args[0] if error.args else ''} "
            "(out of memory, or stopped), each time Dask retried it; give the workers more memory, "
            "or cut the input into smaller parts"
        ) from None


def task_result(future: Any) -> Any:
    """A task's result (a partition's, or any task of sce's run through :func:`.partitioned.guarded`),
    or one line saying why the cluster could not give it."""
    return _result(future)


def run_on_cluster(
    request: BatchRequest,
    paths: Sequence[str],
    part_request: Callable[[str], BatchRequest],
    scheduler: str | None = None,
    workers: int | None = None,
) -> BatchSummary:
    """:func:`.partitioned.run_partitioned` on a Dask cluster: a local one of ``workers``
    processes, or the running one at ``scheduler``."""
    from sce.batch.cluster import cluster_client

    check_output(request, paths)
    with cluster_client(scheduler, workers, tasks=len(paths)) as client:
        return run_partitioned(request, paths, OnCluster(client), part_request)
