"""A dump graded on a Dask cluster (a local one of two worker processes) gets one process's verdict,
text and JSON, byte for byte; bad data found by a worker is reported as one process reports it.

The dumps are written here with numpy (right answers in float32, and the textbook's mistakes);
the verdict compared with is the one this process gives alone, and each case asserts the verdict
its answer deserves too.
"""

from __future__ import annotations

import numpy as np
import pytest

from sce.errors import DataProblem
from sce.grading.dump import check
from sce.grading.dump.check import check_dump
from sce.grading.dump.cluster_tiles import on_cluster
from sce.grading.dump.tiles import DumpFile
from sce.io.arrays import DumpRequest, read_dump
from sce.options import LossOptions

from .test_check_arrays_tiles import BLOCK_ENTRIES, inputs, plain, shown

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as connected,
    ):
        yield connected


def saved(tmp_path, **arrays) -> DumpRequest:
    path = tmp_path / "dump.npz"
    np.savez(path, **arrays)
    return DumpRequest(str(path))


@pytest.mark.parametrize("mistake", ["none", "sign flipped", "sum not mean"])
def test_a_dump_on_a_cluster_gets_one_processs_verdict(mistake, client, tmp_path, monkeypatch):
    monkeypatch.setattr(check, "BLOCK_ENTRIES", BLOCK_ENTRIES)  # on the client, which cuts the blocks
    z, y = inputs(4)
    gradient, losses = plain(z, y, np.float32)
    counted = int((y != -100).sum())
    mean = np.float32(losses.astype(np.float64).sum() / counted)
    factor = {"none": 1, "sign flipped": -1, "sum not mean": counted}[mistake]
    request = saved(tmp_path, logits=z, labels=y, grad=gradient * np.float32(factor), loss=mean)
    dump = read_dump(request)
    alone = check_dump(dump, LossOptions(), "float32")
    assert alone.correct is (mistake == "none")
    engine = on_cluster(client, DumpFile(request))
    assert engine.tiles == 4
    on_two = check_dump(dump, LossOptions(), "float32", engine=engine)
    assert shown(on_two) == shown(alone)
    assert on_two.mistakes == alone.mistakes and bool(alone.mistakes) == (mistake != "none")


def test_bad_data_found_by_a_worker_is_placed_at_its_row(client, tmp_path, monkeypatch):
    monkeypatch.setattr(check, "BLOCK_ENTRIES", BLOCK_ENTRIES)
    z, y = inputs(5)
    gradient, _ = plain(z, y, np.float64)
    z[50] = -np.inf
    request = saved(tmp_path, logits=z, labels=y, grad=gradient)
    dump = read_dump(request)
    with pytest.raises(DataProblem) as alone:
        check_dump(dump, LossOptions(), "float64")
    with pytest.raises(DataProblem) as on_two:
        check_dump(dump, LossOptions(), "float64", engine=on_cluster(client, DumpFile(request)))
    assert "row 50" in str(alone.value) and str(on_two.value) == str(alone.value)


def written_dump(tmp_path, mistake: str = "none") -> str:
    """A dump of 61 rows whose float32 gradient is right, or has the textbook's ``mistake``."""
    z, y = inputs(6)
    gradient, losses = plain(z, y, np.float32)
    counted = int((y != -100).sum())
    factor = {"none": 1, "sign flipped": -1, "sum not mean": counted}[mistake]
    path = tmp_path / f"{mistake.replace(' ', '_')}.npz"
    np.savez(path, logits=z, labels=y, grad=gradient * np.float32(factor), loss=losses)
    return path.name


@pytest.mark.parametrize("mistake", ["none", "sum not mean"])
@pytest.mark.parametrize("output_format", ["table", "json"])
def test_check_arrays_on_a_running_cluster_prints_one_processs_verdict(
    mistake, output_format, client, sce, tmp_path, monkeypatch
):
    """--scheduler reaches the cluster started apart (this module's); the report and the exit status
    are one process's, byte for byte (a relative path, as typed: the tasks open it by its absolute one)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(check, "BLOCK_ENTRIES", BLOCK_ENTRIES)
    name = written_dump(tmp_path, mistake)
    args = ("check", "--arrays", name, "--reduction", "mean", "--format", output_format)
    alone = sce(*args)
    on_cluster = sce(*args, "--engine", "dask", "--scheduler", client.scheduler.address)
    assert alone.exit_code == (0 if mistake == "none" else 1), alone.output
    assert (on_cluster.exit_code, on_cluster.stdout) == (alone.exit_code, alone.stdout)
    assert on_cluster.stderr == alone.stderr == ""
    assert ("1/N missing" in alone.stdout) == (mistake != "none")


def test_check_arrays_on_a_local_cluster_of_two_workers(sce, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = written_dump(tmp_path, "sign flipped")
    alone = sce("check", "--arrays", name, "--reduction", "mean")
    on_two = sce("check", "--arrays", name, "--reduction", "mean", "--engine", "dask", "--workers", "2")
    assert alone.exit_code == 1 and "sign flipped: y − p instead of p − y" in alone.stdout
    assert (on_two.exit_code, on_two.stdout, on_two.stderr) == (alone.exit_code, alone.stdout, "")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--workers", "0"), "sce: error: --workers: 0 worker processes cannot run anything; give 1 to 256\n"),
        (
            ("--workers", "2", "--scheduler", "tcp://127.0.0.1:1"),
            "sce: error: --workers starts a local cluster, --scheduler uses a running one: give one of them\n",
        ),
    ],
)
def test_a_clusters_options_that_cannot_be_used_are_one_line_before_anything_runs(extra, message, sce, tmp_path):
    name = written_dump(tmp_path)
    result = sce("check", "--arrays", tmp_path / name, "--engine", "dask", *extra)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", message)


def test_cluster_options_without_the_dask_engine_or_without_arrays_are_refused(sce, tmp_path):
    name = written_dump(tmp_path)
    result = sce("check", "--arrays", tmp_path / name, "--workers", "2")
    assert result.exit_code == 2 and result.stderr.startswith("sce: error: --workers goes with --engine dask")
    typed = sce("check", "2", "3", "4", "--label", "1", "--grad", "0.09,-0.755,0.665", "--engine", "dask")
    assert (typed.exit_code, typed.stdout) == (2, "")
    assert typed.stderr == "sce: error: --engine goes with --arrays FILE or --logits FILE\n"


def test_an_unreachable_scheduler_is_one_line_within_ten_seconds(sce, tmp_path):
    import socket
    import time

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    name = written_dump(tmp_path)
    began = time.monotonic()
    result = sce("check", "--arrays", tmp_path / name, "--engine", "dask", "--scheduler", f"tcp://127.0.0.1:{port}")
    assert time.monotonic() - began < 10
    assert result.exit_code == 1 or result.exit_code >= 2
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"sce: error: --scheduler: no Dask scheduler answers at tcp://127.0.0.1:{port}")


class DiesOnce(DumpFile):
    """Opens the dump as :class:`DumpFile` does, but the first task to open it kills its worker
    process (a lost machine, an out-of-memory kill), once: Dask runs that task again elsewhere."""

    def __call__(self):
        import os
        from pathlib import Path

        marker = Path(str(self.request.arrays) + ".died")
        if not marker.exists():
            marker.touch()
            os._exit(1)
        return super().__call__()


def test_a_worker_killed_mid_run_leaves_the_verdict_one_processs(client, tmp_path, monkeypatch):
    monkeypatch.setattr(check, "BLOCK_ENTRIES", BLOCK_ENTRIES)
    z, y = inputs(7)
    gradient, _ = plain(z, y, np.float32)
    request = saved(tmp_path, logits=z, labels=y, grad=-gradient)
    dump = read_dump(request)
    alone = check_dump(dump, LossOptions(), "float32")
    on_two = check_dump(dump, LossOptions(), "float32", engine=on_cluster(client, DiesOnce(request)))
    assert (tmp_path / "dump.npz.died").exists()
    assert shown(on_two) == shown(alone) and not alone.correct and alone.mistakes


def test_without_the_extra_the_dask_engine_names_it(tmp_path, sce, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    name = written_dump(tmp_path)
    result = sce("check", "--arrays", tmp_path / name, "--engine", "dask", "--workers", "2")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "sce: error: --engine dask needs Dask's distributed package, which is not installed: pip install 'sce[dask]'\n"
    )


def test_a_bad_option_is_one_line_before_a_cluster_is_reached(tmp_path, sce):
    """A weight per class missing is named at once, not after trying the scheduler (none answers there)."""
    name = written_dump(tmp_path)
    result = sce(
        "check", "--arrays", tmp_path / name, "--weight", "1,2", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1"
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("sce: error: --weight") and "scheduler" not in result.stderr


def test_a_malformed_scheduler_address_is_one_line_at_once_with_no_dask_traceback_in_check_arrays(tmp_path):
    """As in sce batch: refused before Dask is imported, and nothing printed after the line."""
    import subprocess
    import sys
    import time

    name = written_dump(tmp_path)
    for address, why in (
        ("nowhere", "missing port number in address 'nowhere'"),
        ("http://127.0.0.1:8787", "http:// is a web page's, such as the dashboard's; a scheduler's begins with tcp://"),
    ):
        began = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "sce", "check", "--arrays", str(tmp_path / name), "--engine", "dask",
             "--scheduler", address],
            capture_output=True, text=True, timeout=60,
        )
        assert time.monotonic() - began < 5
        assert (run.returncode, run.stdout) == (2, "")
        assert run.stderr == (
            f"sce: error: --scheduler: {address!r} is not a scheduler's address ({why}); e.g. tcp://10.0.0.5:8786\n"
        )
