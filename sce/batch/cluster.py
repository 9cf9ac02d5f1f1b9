"""The Dask cluster a run's partitions go to: a local cluster of worker processes started for the
run, or a running scheduler reached by its address; closed when the run ends, however it ends.

Dask is the ``sce[dask]`` extra, imported only here and only when the dask engine is asked for,
so that no other command waits for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sce.batch.scheduler_address import reach, scheduler_address
from sce.errors import OptionDataProblem, OptionProblem, UsageProblem, option

if TYPE_CHECKING:
    from distributed import Client

#: The most worker processes a local cluster is given: more than any one machine's cores, fewer
#: than its process table or memory would take.
MAX_WORKERS = 256
#: Seconds to reach a scheduler before giving up (the run says so within 10 s, Dask's import included).
CONNECT_SECONDS = 6
#: The loggers of Dask's own messages, which would otherwise print tracebacks of a worker's death
#: or a lost connection on stderr, where sce writes one line per problem.
DASK_LOGGERS = ("distributed", "dask", "tornado", "bokeh")
INSTALL_HINT = "pip install 'sce[dask]'"
#: Dask's monitoring of the local cluster it starts, for a dashboard that is not started there. Its
#: profiler samples every thread's stack 100 times a second; its event loop checks its own health
#: every 20 ms and reads the machine's counters every 0.5 s, each time taking the interpreter lock
#: from the task's and the writer's threads (measured: 0.2 CPU seconds of a worker's event loop per
#: part of 3.7, 0.03 to 0.08 with these); a GIL poller runs every 1 ms where gilknocker is installed.
QUIET_MONITORING: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.gil.enabled": False,
}


def require_dask() -> None:
    """Raise :class:`~sce.errors.UsageProblem` naming the extra to install where Dask's
    ``distributed`` is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageProblem(
            f"{option('engine', 'dask')} needs Dask's distributed package, which is not installed: {INSTALL_HINT}"
        ) from None


def check_cluster_options(engine: str, scheduler: str | None, workers: int | None) -> None:
    """Refuse a cluster's options that cannot be used, before anything is read or started:
    ``scheduler`` or ``workers`` without the dask engine, both at once, a worker count out of range.

    Examples
    --------
    >>> check_cluster_options("dask", None, 2)
    >>> check_cluster_options("dask", None, 0)
    Traceback (most recent call last):
    ...
    sce.errors.OptionProblem: workers: 0 worker processes cannot run anything; give 1 to 256
    """
    if engine != "dask":
        for named, value in ((option("scheduler"), scheduler), (option("workers"), workers)):
            if value is not None:
                raise UsageProblem(
                    f"{named} goes with {option('engine', 'dask')}; "
                    f"add {option('engine', 'dask')}, or leave {named} out"
                )
        return
    if scheduler is not None and workers is not None:
        raise UsageProblem(
            f"{option('workers')} starts a local cluster, {option('scheduler')} uses a running one: give one of them"
        )
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        why = "cannot run anything" if workers <= 0 else "are more than one machine runs"
        raise OptionProblem("workers", f"{workers} worker processes {why}; give 1 to {MAX_WORKERS}")
    if scheduler is not None:
        scheduler_address(scheduler)


def local_workers(asked: int | None, tasks: int | None, cores: int) -> int:
    """The worker processes a local cluster starts: those asked for (default: the cores), but never
    more than the run has tasks to give them, nor than the machine has cores to run them on: each
    worker is a process of about 100 MB running one task at a time on one thread, so one beyond
    either only costs memory.

    Examples
    --------
    >>> local_workers(256, tasks=2, cores=2)
    2
    >>> local_workers(None, tasks=None, cores=8), local_workers(None, tasks=3, cores=8), local_workers(16, 40, 4)
    (8, 3, 4)
    """
    return max(1, min(asked or cores, cores, tasks or cores))


def machine_cores() -> int:
    """The cores this process may run on (a container's or a taskset's share, where the system says)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on every system
        return os.cpu_count() or 1


@contextmanager
def cluster_client(
    scheduler: str | None = None, workers: int | None = None, tasks: int | None = None
) -> Iterator[Client]:
    """A client of the cluster the run's tasks go to, closed (and a local cluster stopped) on the
    way out, by an error or a signal too.

    Parameters
    ----------
    scheduler
        A running scheduler's address (``tcp://host:8786``); None starts a local cluster.
    workers
        The local cluster's worker processes (default: the machine's cores), each one thread;
        never more than ``tasks`` or the cores (:func:`local_workers`).
    tasks
        The most tasks the run gives the cluster at once, where it is known.
    """
    require_dask()
    with _dask_quiet():
        from distributed import Client, LocalCluster

        cluster: Any = None
        if scheduler is None:
            count = local_workers(workers, tasks, machine_cores())
            with _worker_environment():
                cluster = LocalCluster(
                    n_workers=count,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.CRITICAL,
                )
            client = Client(cluster, set_as_default=False)
        else:
            client = _connected(Client, scheduler)
        try:
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


@contextmanager
def _worker_environment() -> Iterator[None]:
    """The local cluster's worker processes started with a heap that keeps freed blocks for reuse
    and with one thread per pool, as this process's own run has; a variable the user set is theirs.

    Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also turns off glibc's
    own raising of its mmap threshold: every block of a partition then came back from the kernel
    as fresh pages, faulted in and zeroed (five times the page faults of one process's run). Each
    worker runs one task at a time on its share of the cores, and Dask already gives BLAS one
    thread there: polars, which writes the parts, gets one too rather than a pool per core in
    every worker. Variables in ``os.environ`` win over these (Dask's rule). The health checks of
    Dask's own event loops (:data:`QUIET_MONITORING`) run less often: they feed a dashboard that is
    not started here.
    """
    import dask

    from sce.io.arrays.heap import reused_heap_environment

    spawned = {**reused_heap_environment(), "POLARS_MAX_THREADS": "1"}
    settings: dict[str, Any] = {f"distributed.nanny.pre-spawn-environ.{name}": value for name, value in spawned.items()}
    with dask.config.set({**settings, **QUIET_MONITORING}):
        yield


def _connected(client_class: Any, text: str) -> Client:
    """A client of the scheduler at ``text``, or one line saying why not (within :data:`CONNECT_SECONDS`)."""
    address = scheduler_address(text)
    started = time.monotonic()
    reach(address, CONNECT_SECONDS)
    # Made in two steps so that a client whose connection fails can be shut here: Dask leaves it
    # half-open on any error but an OSError, and its finalizer then waits twice the timeout and
    # prints a traceback.
    client: Client = client_class.__new__(client_class)
    try:
        client.__init__(  # type: ignore[misc, unused-ignore]
            address.spelled, timeout=max(1.0, CONNECT_SECONDS - (time.monotonic() - started)), set_as_default=False
        )
    except (OSError, TimeoutError) as error:
        _abandon(client)
        raise OptionDataProblem(
            "scheduler",
            f"no Dask scheduler answers at {text} within {CONNECT_SECONDS} s ({_first_line(error)}); "
            "start one (dask scheduler) or check the address",
        ) from None
    except Exception:
        _abandon(client)
        raise OptionDataProblem(
            "scheduler",
            f"what answers at {text} is not a Dask scheduler (its reply is not a scheduler's); "
            "check the address: a scheduler listens on port 8786 unless told otherwise",
        ) from None
    except BaseException:  # Ctrl-C while connecting
        _abandon(client)
        raise
    return client


def _abandon(client: Any) -> None:
    """A client whose connection failed, marked closed and its event loop stopped."""
    client.status = "closed"
    runner = getattr(client, "_loop_runner", None)
    with contextlib.suppress(Exception):
        if runner is not None:
            runner.stop()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def _dask_quiet() -> Iterator[None]:
    """Dask's loggers held to their critical messages for the run, then restored; its warnings
    (a dashboard's port taken, by another cluster) not shown: the run does not use them."""
    loggers = [logging.getLogger(name) for name in DASK_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
