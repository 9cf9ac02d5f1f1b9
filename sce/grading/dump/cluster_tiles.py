"""A dump's tiles graded on a Dask cluster: one task per tile, the partials merged as they come back.

Each task opens the dump by its files where it runs (:class:`~.tiles.DumpFile`): the files must be
where every worker can read them at the same path (a shared file system), as they are on a
local cluster. The tasks run as a batch's partitions run (:class:`sce.batch.dask_engine.OnCluster`):
retried by Dask where a worker dies, cancelled on an error or a signal, an error of sce's carried
back whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sce.batch.dask_engine import OnCluster
from sce.batch.partition import PartitionFailure
from sce.grading.dump.tiles import Tile, TileEngine, TileGrade
from sce.io.arrays import ArrayDump

#: Tiles per thread of the cluster: a few each, so that a slow worker does not hold up the verdict,
#: while each tile stays a few blocks long (its partials are a few kilobytes).
TILES_PER_THREAD = 2


def on_cluster(client: Any, source: Callable[[], ArrayDump]) -> TileEngine:
    """An engine that grades tiles as tasks of ``client`` (a ``distributed.Client``).

    Parameters
    ----------
    client : distributed.Client
        Connected to the cluster.
    source : callable
        Opens the dump where a task runs (:class:`~.tiles.DumpFile`).

    Returns
    -------
    TileEngine
        For :func:`~sce.grading.dump.check.check_dump`'s ``engine``: as many tiles as
        :data:`TILES_PER_THREAD` times the cluster's threads (at most one per block).
    """
    threads = sum(client.nthreads().values()) or 1
    executor = OnCluster(client)

    def run(work: Callable[[Tile], TileGrade], tiles: list[Tile]) -> Iterator[TileGrade]:
        for _, result in executor.unordered(work, [(tile,) for tile in tiles]):
            if isinstance(result, PartitionFailure):
                raise result.error()
            yield result

    return TileEngine(run, TILES_PER_THREAD * threads, source)
