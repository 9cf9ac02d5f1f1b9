"""A dump's tiles graded on a Dask cluster: one task per tile, the partials merged as they come back.

Each task opens the dump by its files where it runs (:class:`~.tiles.DumpFile`): the files must be
where every worker can read them at the same path (a shared file system), as they are on a
local cluster. Dask itself is imported only here, when a cluster is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

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
        For :func:`~sce.grading.dump.check.check_dump`'s ``engine``.
    """
    threads = sum(client.nthreads().values()) or 1
    return TileEngine(lambda work, tiles: _as_completed(client, work, tiles), TILES_PER_THREAD * threads, source)


def _as_completed(client: Any, work: Callable[[Tile], TileGrade], tiles: list[Tile]) -> Iterator[TileGrade]:
    """Each tile's grade as its task finishes; on an error or Ctrl-C, the tasks left are cancelled."""
    from distributed import as_completed

    futures = client.map(work, tiles, pure=False)
    try:
        for future in as_completed(futures, loop=client.loop):
            yield future.result()
    finally:
        client.cancel([future for future in futures if not future.done()])
