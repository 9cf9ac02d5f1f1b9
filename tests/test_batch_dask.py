"""sce batch --engine dask and sce.dask.score on a real Dask cluster (two worker processes,
started once for the module and reached by its address, as a cluster started apart is):
one process's bits, workers that die, and every bad input in one line."""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sce.batch import run_batch
from sce.batch.partitioned import guarded
from sce.options import LossOptions

distributed = pytest.importorskip("distributed", reason="the dask extra (sce[dask]) is not installed")

from tests.test_batch_partitions import (  # noqa: E402
    CLASSES,
    HEADER,
    csv_lines,
    request_for,
    rows,
    run_in_parts,
    write_parts,
)

OPTIONS = ("-w", "1,2,3,0.5,0.1", "--z-loss", "1e-3", "--smoothing", "0.1")
LOSS = LossOptions(weight=(1.0, 2.0, 3.0, 0.5, 0.1), z_loss=1e-3, label_smoothing=0.1)


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, each task retried once where its worker dies."""
    import cloudpickle
    import dask

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import the tests
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
        )
    client = distributed.Client(local, set_as_default=False)
    yield local, client
    client.close()
    local.close()


@pytest.fixture
def address(cluster) -> str:
    return cluster[0].scheduler_address


@pytest.mark.parametrize("count", [1, 3, 7])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_a_cluster_started_apart_gives_one_process_bits(tmp_path, sce, address, count, reduction):
    whole, parts = write_parts(tmp_path, count)
    one = sce("batch", whole, "-o", tmp_path / "one.csv", "--summary-json", tmp_path / "one.json", "-q",
              "--reduction", reduction, *OPTIONS)
    assert one.exit_code == 0, one.stderr
    run = sce("batch", *parts, "-o", tmp_path / "cut.csv", "--summary-json", tmp_path / "cut.json", "-q",
              "--reduction", reduction, *OPTIONS, "--engine", "dask", "--scheduler", address)
    assert run.exit_code == 0, run.stderr
    assert run.stderr == ""
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert (tmp_path / "cut.json").read_bytes() == (tmp_path / "one.json").read_bytes()


class ShuffledOnCluster:
    """The cluster's results, handed back in a shuffled order."""

    def __init__(self, client, seed: int, wrap=None) -> None:
        self.client, self.seed, self.wrap = client, seed, wrap

    def unordered(self, function, arguments):
        from sce.batch.dask_engine import OnCluster

        if self.wrap is not None:
            function = functools.partial(self.wrap, function)
        done = list(OnCluster(self.client).unordered(function, arguments))
        random.Random(self.seed).shuffle(done)
        yield from done


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_parts_handed_back_in_shuffled_order_are_written_in_input_order(tmp_path, cluster, fmt):
    whole, parts = write_parts(tmp_path, 7, "npz")
    options = LossOptions(reduction="mean", weight=(1.0, 2.0, 3.0, 0.5, 0.1))
    one = run_batch(request_for(whole, tmp_path / f"one.{fmt}", options, fmt))
    cut = run_in_parts(parts, tmp_path / f"cut.{fmt}", options, fmt, ShuffledOnCluster(cluster[1], 7))
    assert cut.document() == one.document()
    if fmt == "csv":
        assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    else:
        import polars as pl

        assert pl.read_parquet(tmp_path / "cut.parquet").equals(pl.read_parquet(tmp_path / "one.parquet"))


def dying_once(marker: str, function, *given):
    """The task's worker dies the first time (SIGKILL, as the kernel's out-of-memory killer does)."""
    if not os.path.exists(marker):
        Path(marker).write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return guarded(function, *given)


def dying_always(function, *given):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_run_is_retried_and_the_output_completed(tmp_path, cluster):
    whole, parts = write_parts(tmp_path, 3)
    one = run_batch(request_for(whole, tmp_path / "one.csv", LOSS, "csv"))
    wrap = functools.partial(dying_once, str(tmp_path / "died"))
    cut = run_in_parts(parts, tmp_path / "cut.csv", LOSS, "csv", ShuffledOnCluster(cluster[1], 0, wrap))
    assert (tmp_path / "died").exists()
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert cut.document() == one.document()


def test_a_run_whose_workers_keep_dying_leaves_the_old_output_and_no_parts(tmp_path, cluster):
    from sce.errors import DataProblem

    _, parts = write_parts(tmp_path, 3)
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DataProblem, match="workers died computing a part"):
        run_in_parts(parts, out, LOSS, "csv", ShuffledOnCluster(cluster[1], 0, dying_always))
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_bad_cell_in_one_part_is_named_with_its_file_and_line(tmp_path, sce, address):
    _, parts = write_parts(tmp_path, 3)
    lines = parts[1].read_text().splitlines()
    lines[4] = lines[4].replace(",", ",x", 1)
    parts[1].write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    run = sce("batch", *parts, "-o", out, "-q", "--engine", "dask", "--scheduler", address)
    assert run.exit_code == 1
    assert run.stderr.startswith(f"sce: error: {parts[1]}: line 5, column z1: ")
    assert len(run.stderr.splitlines()) == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_unreadable_part_is_named_before_the_cluster_is_asked(tmp_path, sce, address):
    _, parts = write_parts(tmp_path, 3)
    parts[2].unlink()
    parts[2].symlink_to(tmp_path / "gone.csv")
    run = sce("batch", *parts, "-o", tmp_path / "out.csv", "--engine", "dask", "--scheduler", address)
    assert run.exit_code == 1
    assert run.stderr == f"sce: error: INPUT: cannot read {parts[2]}: No such file or directory\n"


def test_a_damaged_array_part_is_named(tmp_path, sce, address):
    _, parts = write_parts(tmp_path, 3, "npz")
    parts[1].write_bytes(parts[1].read_bytes()[:100])
    run = sce("batch", *parts, "-o", tmp_path / "out.parquet", "--engine", "dask", "--scheduler", address)
    assert run.exit_code in (1, 2)
    assert str(parts[1]) in run.stderr
    assert len(run.stderr.splitlines()) == 1
    assert not (tmp_path / "out.parquet").exists()


def test_parts_whose_columns_disagree_are_refused(tmp_path, sce, address):
    _, parts = write_parts(tmp_path, 3)
    parts[2].write_text(parts[2].read_text().replace("z4", "w4", 1))
    for reduction in ("none", "mean"):
        run = sce("batch", *parts, "-o", tmp_path / "out.csv", "--reduction", reduction, "--engine", "dask",
                  "--scheduler", address)
        assert run.exit_code == 1
        assert run.stderr == (
            f"sce: error: {parts[2]} has other columns than {parts[0]} (z0,z1,z2,z3,w4,label, against "
            "z0,z1,z2,z3,z4,label); the parts of one input have the same columns, in the same order\n"
        )
        assert not (tmp_path / "out.csv").exists()


def test_a_folder_output_holds_the_parts_and_replaces_an_old_one_whole(tmp_path, sce, address):
    _, parts = write_parts(tmp_path, 3)
    out = tmp_path / "scored"
    out.mkdir()
    (out / "part-00009.csv").write_text("old\n")
    run = sce("batch", tmp_path / "parts", "-o", f"{out}/", "-q", "--engine", "dask", "--scheduler", address)
    assert run.exit_code == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    assert all(p.read_text().startswith(HEADER) for p in out.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_folder_with_other_files_is_not_replaced(tmp_path, sce, address):
    _, parts = write_parts(tmp_path, 3)
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("mine\n")
    run = sce("batch", tmp_path / "parts", "-o", f"{out}/", "--engine", "dask", "--scheduler", address)
    assert run.exit_code == 2
    assert run.stderr == f"sce: error: -o: {out} holds other files than parts (thesis.tex); name a new folder, " \
        "or an empty one\n"
    assert (out / "thesis.tex").read_text() == "mine\n"


def test_score_from_python_writes_parquet_parts_and_the_exact_summary(tmp_path, cluster):
    import polars as pl

    import sce.dask

    whole, parts = write_parts(tmp_path, 3)
    one = run_batch(request_for(whole, tmp_path / "one.parquet", LossOptions(reduction="mean"), "parquet"))
    scored = sce.dask.score(tmp_path / "parts", tmp_path / "out", client=cluster[1], reduction="mean")
    assert scored.summary.document() == one.document()
    assert [Path(p).name for p in scored.parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    joined = pl.concat([pl.read_parquet(p) for p in scored.parts])
    assert joined.equals(pl.read_parquet(tmp_path / "one.parquet"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--engine", "dask", "--workers", "0"), "--workers: 0 worker processes cannot run anything; give 1 to 256"),
        (("--engine", "dask", "--workers", "-2"), "--workers: -2 worker processes cannot run anything; give 1 to 256"),
        (("--engine", "dask", "--workers", "100000"),
         "--workers: 100000 worker processes are more than one machine runs; give 1 to 256"),
        (("--workers", "2"), "--workers goes with --engine dask; add --engine dask, or leave --workers out"),
        (("--scheduler", "tcp://127.0.0.1:1"),
         "--scheduler goes with --engine dask; add --engine dask, or leave --scheduler out"),
        (("--engine", "local", "--scheduler", "tcp://127.0.0.1:1"),
         "--scheduler goes with --engine dask; add --engine dask, or leave --scheduler out"),
        (("--engine", "dask", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"),
         "--workers starts a local cluster, --scheduler uses a running one: give one of them"),
        (("--engine", "dask", "--scheduler", "nowhere"),
         "--scheduler: 'nowhere' is not a scheduler's address (missing port number in address 'nowhere'); "
         "e.g. tcp://10.0.0.5:8786"),
        (("--engine", "dask", "--plot", "p.svg"),
         "--plot goes with one input on --engine local; give every part as INPUT (files, a folder, or a quoted glob)"),
    ],
)
def test_bad_cluster_options_are_refused_in_one_line(tmp_path, sce, extra, message):
    whole, _ = write_parts(tmp_path, 1)
    run = sce("batch", whole, "-o", tmp_path / "out.csv", *extra)
    assert run.exit_code == 2
    assert run.stderr == f"sce: error: {message}\n"
    assert not (tmp_path / "out.csv").exists()


def test_stdin_cannot_be_cut_into_parts(sce):
    run = sce("batch", "-", "--engine", "dask", input=f"{HEADER}\n1,2,3,4,5,0\n")
    assert run.exit_code == 2
    assert run.stderr == "sce: error: stdin (-) cannot be one of several inputs, nor a cluster's: save it to a file\n"
    run = sce("batch", "--engine", "dask", input=f"{HEADER}\n1,2,3,4,5,0\n")
    assert run.exit_code == 2
    assert run.stderr.startswith("sce: error: give the inputs: files, a folder of parts, or a quoted glob")


def test_one_npz_file_of_several_parts_is_refused(tmp_path, sce):
    _, parts = write_parts(tmp_path, 3)
    run = sce("batch", *parts, "-o", tmp_path / "out.npz")
    assert run.exit_code == 2
    assert "write a folder of parts (-o DIR/), or .parquet or .arrow" in run.stderr


def test_without_the_extra_the_dask_engine_names_it(tmp_path, sce, monkeypatch):
    whole, _ = write_parts(tmp_path, 1)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    run = sce("batch", whole, "-o", tmp_path / "out.csv", "--engine", "dask")
    assert run.exit_code == 2
    assert run.stderr == (
        "sce: error: --engine dask needs Dask's distributed package, which is not installed: pip install 'sce[dask]'\n"
    )


def test_a_malformed_scheduler_address_is_one_line_at_once_with_no_dask_traceback(tmp_path):
    whole, _ = write_parts(tmp_path, 1)
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "sce", "batch", str(whole), "-o", str(tmp_path / "out.csv"), "--engine", "dask",
         "--scheduler", "nowhere"],
        capture_output=True, text=True, timeout=60,
    )
    assert time.monotonic() - started < 5
    assert run.returncode == 2
    assert run.stderr == (
        "sce: error: --scheduler: 'nowhere' is not a scheduler's address (missing port number in address "
        "'nowhere'); e.g. tcp://10.0.0.5:8786\n"
    )


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("http://127.0.0.1:8787", "http:// is a web page's, such as the dashboard's; a scheduler's begins with tcp://"),
        ("inproc://192.0.2.2/1/1",
         "inproc:// names a scheduler inside another program's memory, which sce cannot reach"),
        ("ftp://host:21", "unknown scheme ftp://; Dask's are tcp://, tls://, ws://, wss://, ucx://"),
        ("tcp://127.0.0.1:99999", "the port '99999' is not a number from 1 to 65535"),
        ("tcp://127.0.0.1:port", "the port 'port' is not a number from 1 to 65535"),
        ("tcp://:8786", "no host before the port 8786"),
        ("tcp://[::1]", "missing port number in address 'tcp://[::1]'"),
    ],
)
def test_a_malformed_scheduler_address_is_refused_before_anything_is_read(tmp_path, sce, address, why):
    run = sce("batch", tmp_path / "missing.csv", "-o", tmp_path / "out.csv", "--engine", "dask",
              "--scheduler", address)
    assert run.exit_code == 2
    assert run.stderr == f"sce: error: --scheduler: {address!r} is not a scheduler's address ({why}); " \
        "e.g. tcp://10.0.0.5:8786\n"


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def peer():
    """A server on 127.0.0.1 that is not a scheduler: answers each connection with `reply`, or
    (`reply` None) as a web server does, once asked."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    state = {"reply": None}

    def serve():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                if state["reply"] is None:
                    connection.settimeout(5)
                    with __import__("contextlib").suppress(OSError):
                        connection.recv(100)
                        connection.sendall(b"HTTP/1.0 404 Not Found\r\n\r\n")
                else:
                    connection.sendall(state["reply"])
                    time.sleep(0.5)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], state
    server.close()


def test_bad_scheduler_addresses_are_named_in_one_line_at_once(tmp_path, peer, sce):
    """A closed port, an unknown host, a web server, a peer that greets with other bytes than a
    scheduler's (Dask's own client fails on them in ways of its own): one line each, at once, and
    nothing after it (a half-open client of Dask's would wait 12 s on the way out, then print)."""
    import struct

    whole, _ = write_parts(tmp_path, 1)
    port, state = peer
    closed = closed_port()
    cases = [
        (f"tcp://127.0.0.1:{closed}",
         f"no Dask scheduler answers at tcp://127.0.0.1:{closed} (connection refused: nothing listens on port "
         f"{closed} of 127.0.0.1); start one (dask scheduler) or check the address", None),
        ("tcp://no-such-host.invalid:8786",
         "no Dask scheduler answers at tcp://no-such-host.invalid:8786 (no host named no-such-host.invalid is known "
         "here); start one (dask scheduler) or check the address", None),
        (f"127.0.0.1:{port}", f"what answers at 127.0.0.1:{port} is not a Dask scheduler (it is a web server, such "
         "as the dashboard); check the address: a scheduler listens on port 8786 unless told otherwise", None),
        (f"tcp://127.0.0.1:{port}", f"what answers at tcp://127.0.0.1:{port} is not a Dask scheduler (its first "
         "bytes are b'\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff'); check the address: a scheduler listens on port "
         "8786 unless told otherwise", b"\xff" * 16),
        (f"tcp://127.0.0.1:{port}", f"what answers at tcp://127.0.0.1:{port} is not a Dask scheduler (its reply is "
         "not a scheduler's); check the address: a scheduler listens on port 8786 unless told otherwise",
         struct.pack("<Q", 20) + b"not msgpack, not a handshake"),
    ]
    for address, message, reply in cases:
        state["reply"] = reply
        started = time.monotonic()
        if reply is None:  # refused before a client of Dask's is made: in this process
            run = sce("batch", whole, "-o", tmp_path / "out.csv", "--engine", "dask", "--scheduler", address)
            status, stderr = run.exit_code, run.stderr
        else:
            done = subprocess.run(
                [sys.executable, "-m", "sce", "batch", str(whole), "-o", str(tmp_path / "out.csv"), "--engine",
                 "dask", "--scheduler", address],
                capture_output=True, text=True, timeout=60,
            )
            status, stderr = done.returncode, done.stderr
        assert (status, stderr) == (1, f"sce: error: --scheduler: {message}\n")
        assert time.monotonic() - started < 6, address
        assert not (tmp_path / "out.csv").exists()


def big_parts(folder: Path, count: int, rows_each: int) -> list[Path]:
    logits, labels = rows(seed=11, count=rows_each)
    text = "\n".join([HEADER, *csv_lines(logits, labels)]) + "\n"
    parts = []
    for index in range(count):
        part = folder / f"part{index}.csv"
        part.write_text(text)
        parts.append(part)
    return parts


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_ctrl_c_cancels_the_cluster_and_leaves_nothing(tmp_path, signum):
    parts = big_parts(tmp_path, 4, 60_000)
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    process = subprocess.Popen(
        ["sce", "batch", *map(str, parts), "-o", str(out), "-q", "--engine", "dask", "--workers", "2"],
        stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".parts") for p in tmp_path.iterdir()):
        assert process.poll() is None, f"finished before it could be interrupted: {process.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signum)
    process.wait(timeout=60)
    stderr = process.stderr.read()
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in parts] + ["out.csv"])


def test_a_local_cluster_of_the_installed_sce_gives_one_process_bits(tmp_path):
    whole, parts = write_parts(tmp_path, 7)
    common = ["--reduction", "mean", *OPTIONS, "-q"]
    subprocess.run(["sce", "batch", str(whole), "-o", str(tmp_path / "one.csv"), *common], check=True)
    run = subprocess.run(
        ["sce", "batch", str(tmp_path / "parts"), "-o", str(tmp_path / "cut.csv"), *common, "--engine", "dask",
         "--workers", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert CLASSES == 5
    assert np.isfinite(0.0)


def test_score_takes_a_dask_dataframe_and_gives_one_back(tmp_path, cluster):
    """The frame's partitions as parts; the mean is one call of the core's over every row."""
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (pandas) is not installed")
    import pandas as pd

    import sce
    import sce.dask

    logits, labels = rows(seed=4, count=100)
    frame = pd.DataFrame({**{f"logits_{k}": logits[:, k] for k in range(CLASSES)}, "labels": labels})
    scored = sce.dask.score(dd.from_pandas(frame, npartitions=3), tmp_path / "out", client=cluster[1],
                            reduction="mean", label_smoothing=0.1)
    whole = sce.softmax_cross_entropy(logits, labels, reduction="mean", label_smoothing=0.1)
    assert scored.summary.mean_loss == whole.loss
    assert len(scored.parts) == 3
    back = scored.frame().compute()
    assert np.array_equal(np.stack(back["grad"].to_numpy()), whole.gradient)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def importing_a_missing_module(function, *given):
    import sce_not_installed_here  # noqa: F401


def test_a_worker_without_sce_is_named_in_one_line(tmp_path, cluster):
    from sce.errors import DataProblem

    _, parts = write_parts(tmp_path, 3)
    with pytest.raises(DataProblem) as raised:
        run_in_parts(parts, tmp_path / "out.csv", LOSS, "csv", ShuffledOnCluster(cluster[1], 0, importing_a_missing_module))
    assert str(raised.value) == (
        "a worker of the cluster cannot import sce_not_installed_here: install sce on every worker, the same "
        "version as here (pip install 'sce[dask]')"
    )
    assert not (tmp_path / "out.csv").exists()


def sleeping(function, *given):
    time.sleep(3)
    return guarded(function, *given)


def test_a_scheduler_lost_mid_run_is_named_and_nothing_is_written(tmp_path):
    import threading

    from sce.batch.dask_engine import OnCluster
    from sce.errors import DataProblem

    _, parts = write_parts(tmp_path, 3)
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    local = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
    client = distributed.Client(local, set_as_default=False)

    class Sleeping(OnCluster):
        def unordered(self, function, arguments):
            return super().unordered(functools.partial(sleeping, function), arguments)

    closer = threading.Timer(1.0, local.close)
    closer.start()
    try:
        with pytest.raises(DataProblem, match="connection to the Dask scheduler was lost mid-run"):
            run_in_parts(parts, out, LOSS, "csv", Sleeping(client))
    finally:
        closer.join()
        client.close()
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "parts", "whole.csv"]


def test_dask_score_of_no_source_is_a_value_error_naming_it(tmp_path):
    import sce.dask

    with pytest.raises(ValueError, match="source"):
        sce.dask.score([], tmp_path / "scored")


def test_dask_score_refuses_zero_workers_as_the_command_line_does(tmp_path):
    import sce.dask

    (tmp_path / "a.csv").write_text("z0,z1,z2,label\n2,3,4,1\n0,40,-1,1\n")
    with pytest.raises(ValueError, match="workers"):
        sce.dask.score([tmp_path / "a.csv"], tmp_path / "scored", workers=0)
    assert not (tmp_path / "scored").exists()


def test_dask_score_names_a_bad_loss_option_as_a_value_error_before_starting_a_cluster(tmp_path):
    import sce.dask

    (tmp_path / "a.csv").write_text("z0,z1,z2,label\n2,3,4,1\n")
    started = time.monotonic()
    with pytest.raises(ValueError, match="^reduction"):
        sce.dask.score([tmp_path / "a.csv"], tmp_path / "scored", workers=1, reduction="avg")
    assert time.monotonic() - started < 1.5


def bad_score_arguments(folder: Path) -> list[tuple[dict, str]]:
    a = folder / "a.csv"
    return [
        ({"source": [folder / "missing.csv"]}, f"source: cannot read {folder / 'missing.csv'}: No such file or directory"),
        ({"source": str(folder / "none-*.csv")}, f"source: no file matches {folder / 'none-*.csv'}"),
        ({"source": ["-"]}, "source: stdin (-) cannot be one of several inputs, nor a cluster's: save it to a file"),
        ({"source": np.zeros((2, 3))}, "source: ndarray is not files, nor a Dask DataFrame; give paths of parts, or a "
         "Dask DataFrame (dask.dataframe.from_pandas(frame, npartitions=N))"),
        ({"source": [a, 3]}, "source: 3 is not a path; give files, folders of parts or quoted globs"),
        ({"workers": -1}, "workers: -1 worker processes cannot run anything; give 1 to 256"),
        ({"workers": 257}, "workers: 257 worker processes are more than one machine runs; give 1 to 256"),
        ({"workers": 2.0}, "workers: 2.0 is not a whole number; give 1 to 256"),
        ({"digits": 0}, "digits: 0 is out of range; give 1 to 17"),
        ({"digits": True}, "digits: True is not a whole number; give 1 to 17"),
        ({"client": "tcp://10.0.0.5:8786"}, "client: str is not a Dask client; give distributed.Client(…)"),
        ({"client": object(), "workers": 2}, "workers starts a local cluster, client uses a running one: give one of them"),
        ({"label_smoothing": 1.5}, "label_smoothing: label smoothing 1.5 is outside [0, 1]; use a value from 0 (none) to 1"),
        ({"weight": [1, -2, 3]}, "weight (class 1): weight -2 is not a non-negative finite number; class weights must be >= 0"),
        ({"output": a}, f"output: {a} is a file, not a folder; name a folder for the parts"),
        ({"output": ""}, "output: the path is empty; name a folder for the parts"),
        ({"output": folder}, f"output: {folder} holds other files than parts (a.csv); name a new folder, or an empty one"),
        ({"output": folder / "no" / "out"}, f"output: the folder {folder / 'no'} does not exist; create it, or write "
         "the output elsewhere"),
    ]


def test_dask_score_refuses_every_bad_argument_as_a_value_error_naming_it_before_starting_a_cluster(tmp_path):
    import sce.dask

    (tmp_path / "a.csv").write_text("z0,z1,z2,label\n2,3,4,1\n")
    for arguments, message in bad_score_arguments(tmp_path):
        given = {"source": [tmp_path / "a.csv"], "output": tmp_path / "scored", **arguments}
        started = time.monotonic()
        with pytest.raises(ValueError) as refused:
            sce.dask.score(given.pop("source"), given.pop("output"), **given)
        assert str(refused.value) == message
        assert time.monotonic() - started < 1.0, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_dask_score_refuses_a_closed_client(tmp_path):
    import sce.dask

    (tmp_path / "a.csv").write_text("z0,z1,z2,label\n2,3,4,1\n")
    local = distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0", silence_logs=50)
    client = distributed.Client(local, set_as_default=False)
    client.close()
    local.close()
    with pytest.raises(ValueError) as refused:
        sce.dask.score(tmp_path / "a.csv", tmp_path / "scored", client=client)
    assert str(refused.value) == "client: the client is closed; give one connected to a cluster, or leave client out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_dask_score_takes_the_options_once_and_only_the_losss_keywords(tmp_path):
    import sce
    import sce.dask

    (tmp_path / "a.csv").write_text("z0,z1,z2,label\n2,3,4,1\n")
    with pytest.raises(TypeError, match="give the options either as options= or as keywords, not both"):
        sce.dask.score(tmp_path / "a.csv", tmp_path / "scored", options=sce.LossOptions(), reduction="sum")
    with pytest.raises(TypeError, match="unexpected keyword argument 'reductio'"):
        sce.dask.score(tmp_path / "a.csv", tmp_path / "scored", reductio="sum")


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("no/out.csv", "-o: the folder {folder}/no does not exist; create it, or write the output elsewhere"),
        ("no/out/", "-o: the folder {folder}/no does not exist; create it, or write the output elsewhere"),
        ("parts/part0.csv", "-o: parts/part0.csv is an input file; write the output to another file"),
    ],
)
def test_an_output_the_run_cannot_put_in_place_is_refused_before_a_cluster_starts(tmp_path, sce, monkeypatch, output,
                                                                                  message):
    monkeypatch.chdir(tmp_path)
    write_parts(tmp_path, 3)
    started = time.monotonic()
    run = sce("batch", "parts", "-o", output, "--engine", "dask", "--workers", "1")
    assert run.exit_code in (1, 2)
    assert run.stderr == f"sce: error: {message.format(folder=os.path.realpath(tmp_path))}\n"
    assert time.monotonic() - started < 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts", "whole.csv"]


def test_score_skips_a_dask_dataframes_empty_partitions(tmp_path, cluster):
    """A filtered frame has empty partitions: they are empty parts, not errors."""
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (pandas) is not installed")
    import pandas as pd

    import sce
    import sce.dask

    logits, labels = rows(seed=6, count=60)
    frame = pd.DataFrame({**{f"logits_{k}": logits[:, k] for k in range(CLASSES)}, "labels": labels})
    kept = dd.from_pandas(frame, npartitions=3).map_partitions(lambda part: part[part.index < 20], meta=frame[:0])
    assert kept.map_partitions(len).compute().tolist() == [20, 0, 0]
    scored = sce.dask.score(kept, tmp_path / "out", client=cluster[1], reduction="mean")
    whole = sce.softmax_cross_entropy(logits[:20], labels[:20], reduction="mean")
    assert scored.summary.mean_loss == whole.loss
    assert len(scored.parts) == 1


def test_score_names_a_dask_dataframes_missing_columns_and_output_folder_before_writing_it(tmp_path):
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (pandas) is not installed")
    import pandas as pd

    import sce.dask

    frame = dd.from_pandas(pd.DataFrame({"logits_0": [1.0], "logits_1": [2.0], "label": [0]}), npartitions=1)
    with pytest.raises(ValueError) as refused:
        sce.dask.score(frame, tmp_path / "out")
    assert str(refused.value) == (
        "source: the Dask DataFrame has neither a column labels nor targets_0 … (its columns: logits_0, logits_1, "
        "label); add the class-index labels, or the probability targets"
    )
    unnamed = dd.from_pandas(pd.DataFrame({"z0": [1.0], "labels": [0]}), npartitions=1)
    with pytest.raises(ValueError, match=r"^source: the Dask DataFrame has no column logits_0 \(its columns: z0, "):
        sce.dask.score(unnamed, tmp_path / "out")
    with pytest.raises(ValueError) as refused:
        sce.dask.score(frame, tmp_path / "no" / "out")
    assert str(refused.value) == (
        f"output: the folder {tmp_path / 'no'} does not exist; create it, or write the output elsewhere"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_workers_address_given_as_the_schedulers_is_named_in_one_line(tmp_path, sce, cluster):
    """A worker speaks Dask's protocol and greets as a scheduler does, but is not one."""
    whole, _ = write_parts(tmp_path, 1)
    worker = next(iter(cluster[0].workers.values())).worker_address
    run = sce("batch", whole, "-o", tmp_path / "out.csv", "--engine", "dask", "--scheduler", worker)
    assert run.exit_code == 1
    assert run.stderr == (
        f"sce: error: --scheduler: what answers at {worker} is not a Dask scheduler (its reply is not a "
        "scheduler's); check the address: a scheduler listens on port 8786 unless told otherwise\n"
    )
    assert not (tmp_path / "out.csv").exists()


def test_a_closed_pipe_ends_a_run_on_a_cluster_with_141_and_leaves_nothing(tmp_path):
    parts = big_parts(tmp_path, 2, 20_000)
    (tmp_path / "temporary").mkdir()  # where the parts of a run to stdout are staged
    run = subprocess.run(
        f"sce batch {parts[0]} {parts[1]} --engine dask --workers 1 | head -n 1 > /dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True, capture_output=True, text=True, executable="/bin/bash", timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path / "temporary")},
    )
    assert run.stdout.strip() == "141", run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part0.csv", "part1.csv", "temporary"]
    assert not [p.name for p in (tmp_path / "temporary").iterdir() if "sce-output" in p.name]


def test_a_cluster_names_the_same_bad_part_as_one_machine(tmp_path, sce):
    # Two bad parts, the first (a.csv) failing at its last line, long after the second (b.csv) fails at line 2:
    # the cluster named whichever task failed first, so the same command gave another message on each engine.
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_text("\n".join(["z0,z1,label", *["1,2,0"] * 100_000, "1,x,1"]) + "\n")
    (folder / "b.csv").write_text("z0,z1,label\n1,y,0\n")
    one = sce("batch", folder, "-o", tmp_path / "one.csv")
    assert one.exit_code == 1
    assert one.stderr == (
        f"sce: error: {folder / 'a.csv'}: line 100002, column z1: 'x' is not a number; if z1 is not a logit column, "
        "name the logit columns with --logit-cols\n"
    )
    run = sce("batch", folder, "-o", tmp_path / "cut.csv", "--engine", "dask", "--workers", "2")
    assert (run.exit_code, run.stderr) == (one.exit_code, one.stderr)
    assert not (tmp_path / "cut.csv").exists() and not (tmp_path / "one.csv").exists()
