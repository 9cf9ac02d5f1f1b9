"""The worker processes of the local cluster `--workers N` starts: the heap and thread settings
of sce's own process, which keep a partition's time on a worker that of one process."""

from __future__ import annotations

import os

import pytest

distributed = pytest.importorskip("distributed", reason="the dask extra (sce[dask]) is not installed")

from sce.batch.cluster import cluster_client  # noqa: E402

NAMES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "POLARS_MAX_THREADS", "OPENBLAS_NUM_THREADS")


def _environment() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in NAMES}


def _profiling() -> bool:
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled"))


def test_local_workers_keep_freed_blocks_and_run_one_thread_per_pool_unless_the_user_chose(monkeypatch):
    import dask

    monkeypatch.setenv("POLARS_MAX_THREADS", "3")  # the user's choice
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    before = dask.config.get("distributed.nanny.pre-spawn-environ")
    with cluster_client(None, 1) as client:
        (seen,) = client.run(_environment).values()
        (profiled,) = client.run(_profiling).values()
    # 32 MiB: the largest mmap threshold glibc takes on 64-bit systems (mallopt(3), M_MMAP_THRESHOLD);
    # 1 GiB of free heap kept instead of Dask's 64 KiB, which returns every freed block to the kernel.
    assert seen == {
        "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
        "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
        "POLARS_MAX_THREADS": "3",
        "OPENBLAS_NUM_THREADS": "1",
    }
    assert not profiled  # no stack sampling for a dashboard that is not started
    assert dask.config.get("distributed.worker.profile.enabled")  # this process's own settings untouched
    assert dask.config.get("distributed.nanny.pre-spawn-environ") == before  # nothing left set in this process


def _monitoring(dask_worker) -> dict[str, object]:
    import dask

    callbacks = dask_worker.periodic_callbacks
    return {
        "tick ms": callbacks["tick"].callback_time,
        "monitor ms": callbacks["monitor"].callback_time,
        "gil": dask_worker.monitor.monitor_gil_contention,
        "profile": dask.config.get("distributed.worker.profile.enabled"),
    }


def test_the_local_clusters_event_loops_check_their_health_seldom_and_this_processs_settings_are_kept():
    import dask

    # Dask's defaults (distributed.yaml): a health check of the event loop every 20 ms, the machine's
    # counters every 500 ms; a worker's event loop then took 0.2 CPU seconds per part from the task.
    assert dask.config.get("distributed.admin.tick.interval") == "20ms"
    with cluster_client(None, 2) as client:
        seen = list(client.run(_monitoring).values())
        scheduler_tick = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.periodic_callbacks["tick"].callback_time)
    assert seen == [{"tick ms": 1000, "monitor ms": 5000, "gil": False, "profile": False}] * 2
    assert scheduler_tick == 1000
    assert dask.config.get("distributed.admin.tick.interval") == "20ms"
    assert dask.config.get("distributed.admin.system-monitor.interval") == "500ms"


@pytest.fixture
def started(monkeypatch):
    """The worker counts asked of LocalCluster, each cluster started with one worker."""
    counts: list[int] = []
    real = distributed.LocalCluster

    def recorded(*args, n_workers=None, **kwargs):
        counts.append(n_workers)
        return real(*args, n_workers=1, **kwargs)

    monkeypatch.setattr(distributed, "LocalCluster", recorded)
    return counts


def test_workers_beyond_the_parts_are_not_started(tmp_path, sce, started):
    # `--workers 256` on two parts asked for 256 worker processes of about 100 MB each, 25 GB for two tasks.
    (tmp_path / "a.csv").write_text("z0,z1,label\n1,2,0\n")
    (tmp_path / "b.csv").write_text("z0,z1,label\n3,1,1\n")
    run = sce("batch", tmp_path / "a.csv", tmp_path / "b.csv", "-o", tmp_path / "out.csv", "--engine", "dask",
              "--workers", "256", "-q")  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert started == [min(2, len(os.sched_getaffinity(0)))]


def test_workers_beyond_the_cores_are_not_started(tmp_path, sce, started):
    cores = len(os.sched_getaffinity(0))
    (tmp_path / "parts").mkdir()
    for index in range(cores + 3):
        (tmp_path / "parts" / f"part{index:02}.csv").write_text("z0,z1,label\n1,2,0\n")
    run = sce("batch", tmp_path / "parts", "-o", tmp_path / "out.csv", "--engine", "dask", "--workers", cores + 2, "-q")
    assert run.exit_code == 0, run.stderr
    assert started == [cores]


def test_score_starts_no_more_workers_than_parts(tmp_path, started):
    from sce.dask import score

    (tmp_path / "a.csv").write_text("z0,z1,label\n1,2,0\n")
    score([tmp_path / "a.csv"], tmp_path / "scored", workers=8)
    assert started == [1]


def test_a_check_on_a_local_cluster_starts_no_more_workers_than_cores(sce, started):
    from importlib.resources import files

    cores = len(os.sched_getaffinity(0))
    dump = files("sce") / "samples" / "dump_float32_correct.npz"
    result = sce("check", "--arrays", dump, "--engine", "dask", "--workers", cores + 2)
    assert result.exit_code == 0, result.output
    assert started == [cores]
