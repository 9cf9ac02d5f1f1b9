"""Signals against a real `sce` process on a large generated file:
every exit path removes the temporary output and the spool, leaves an existing
output exactly as it was, and exits with 128 + the signal's number."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROWS = 300_000
CLASSES = 10


def generate(folder: Path, with_gradients: bool) -> Path:
    import polars as pl

    rng = np.random.default_rng(11)
    columns = {f"z{k}": np.round(rng.normal(0, 3, ROWS), 6) for k in range(CLASSES)}
    columns["label"] = rng.integers(0, CLASSES, ROWS)
    if with_gradients:  # wrong ones: sce check --csv grades every row all the same
        columns |= {f"grad_z{k}": np.round(rng.normal(0, 0.1, ROWS), 4) for k in range(CLASSES)}
    path = folder / ("graded.csv" if with_gradients else "big.csv")
    pl.DataFrame(columns).write_csv(path)
    return path


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """About 25 MB of logits and labels."""
    return generate(tmp_path_factory.mktemp("big"), with_gradients=False)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    """The same with gradient columns, for `sce check --csv`."""
    return generate(tmp_path_factory.mktemp("graded"), with_gradients=True)


def start(args: list[str], tmp_path: Path, **kwargs) -> tuple[subprocess.Popen, Path]:
    """`python -m sce ARGS` with its own temporary folder, which the test checks afterwards."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary)}
    process = subprocess.Popen([sys.executable, "-m", "sce", *args], stderr=subprocess.PIPE, env=env, **kwargs)
    return process, temporary


def wait_for(process: subprocess.Popen, folder: Path, pattern: str) -> None:
    deadline = time.monotonic() + 60
    while not any(folder.glob(pattern)):
        assert process.poll() is None, "finished before the signal could be sent"
        assert time.monotonic() < deadline
        time.sleep(0.005)


def finish(process: subprocess.Popen) -> str:
    process.wait(timeout=60)
    assert process.stderr is not None
    return process.stderr.read().decode()


STOPPING = [
    (signal.SIGINT, 130, "sce: interrupted (SIGINT)\n"),
    (signal.SIGTERM, 143, "sce: interrupted (SIGTERM)\n"),
    (signal.SIGHUP, 129, "sce: interrupted (SIGHUP)\n"),
    (signal.SIGPIPE, 141, ""),
]


@pytest.mark.parametrize("signum,status,said", STOPPING, ids=[s.name for s, _, _ in STOPPING])
def test_signal_during_batch_removes_the_partial_output_and_keeps_the_old_one(tmp_path, big, signum, status, said):
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "out.csv"
    out.write_text("precious\n")
    process, temporary = start(["batch", str(big), "-o", str(out), "-q"], tmp_path)
    wait_for(process, folder, ".out.csv.*.partial")
    process.send_signal(signum)
    stderr = finish(process)
    assert (process.returncode, stderr) == (status, said)
    assert out.read_text() == "precious\n"
    assert [p.name for p in folder.iterdir()] == ["out.csv"]
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize("signum,status,said", STOPPING, ids=[s.name for s, _, _ in STOPPING])
def test_signal_during_batch_mean_from_stdin_removes_the_spool(tmp_path, big, signum, status, said):
    folder = tmp_path / "out"
    folder.mkdir()
    with open(big, "rb") as stdin:
        process, temporary = start(
            ["batch", "-", "--reduction", "mean", "-o", str(folder / "out.csv"), "-q"], tmp_path, stdin=stdin
        )
        wait_for(process, temporary, "sce-spool-*")
        process.send_signal(signum)
        stderr = finish(process)
    assert (process.returncode, stderr) == (status, said)
    assert list(folder.iterdir()) == []
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize("signum,status,said", STOPPING, ids=[s.name for s, _, _ in STOPPING])
def test_signal_during_check_csv_from_stdin_removes_the_spool(tmp_path, graded, signum, status, said):
    with open(graded, "rb") as stdin:
        process, temporary = start(
            ["check", "--csv", "-", "--grad-cols", "grad_*", "--reduction", "mean"],
            tmp_path,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
        )
        wait_for(process, temporary, "sce-spool-*")
        process.send_signal(signum)
        stderr = finish(process)
    assert (process.returncode, stderr) == (status, said)
    assert list(temporary.iterdir()) == []


def test_closed_pipe_during_batch_mean_from_a_pipe_exits_141_and_removes_the_spool(tmp_path, big):
    # The reader goes away after one line: sce learns it on its next write.
    producer = subprocess.Popen(["cat", str(big)], stdout=subprocess.PIPE)
    process, temporary = start(
        ["batch", "-", "--reduction", "mean", "-q"], tmp_path, stdin=producer.stdout, stdout=subprocess.PIPE
    )
    assert producer.stdout is not None and process.stdout is not None
    producer.stdout.close()
    assert process.stdout.readline().startswith(b"z0,z1,")
    process.stdout.close()
    stderr = finish(process)
    producer.wait(timeout=60)
    assert (process.returncode, stderr) == (141, "")
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize("delay", [0.0, 0.3, 0.6, 0.9])
def test_sigterm_at_any_moment_leaves_nothing_behind(tmp_path, big, delay):
    # From start-up on: before, during and after the temporary output's creation.
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "out.csv"
    out.write_text("precious\n")
    process, temporary = start(["batch", str(big), "-o", str(out), "-q", "--reduction", "mean"], tmp_path)
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    stderr = finish(process)
    # -15: before the handlers are in place, SIGTERM kills; 0: a fast machine finished first.
    assert process.returncode in (143, -signal.SIGTERM, 0), stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    # Kept as it was, or (a signal after the rename, when the run is done) the whole new output: never a part.
    text = out.read_text()
    assert (text == "precious\n" and process.returncode != 0) or (
        text.startswith("z0,") and text.count("\n") == ROWS + 1
    )
    assert [p.name for p in folder.iterdir()] == ["out.csv"]
    assert list(temporary.iterdir()) == []


def waiting_on_stdin(process: subprocess.Popen) -> bool:
    """Whether the process sits in read(0, …): it has loaded and is running its command."""
    try:
        return Path(f"/proc/{process.pid}/syscall").read_text().startswith("0 0x0 ")
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="needs /proc/PID/syscall")
@pytest.mark.parametrize("signum, status, said", STOPPING[:3])
def test_a_signal_during_grad_prints_its_line(signum, status, said):
    """Regression: SIGTERM and SIGHUP killed `sce grad` (and `sce check`'s typed
    answers) silently: only sce batch and check --csv handled them."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sce", "grad", "--logits-file", "-", "-l", "1"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not waiting_on_stdin(process):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signum)
    assert (finish(process), process.returncode) == (said, status)


IGNORABLE = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.mark.parametrize("signum", IGNORABLE, ids=[s.name for s in IGNORABLE])
def test_regression_a_signal_the_caller_ignores_stays_ignored(tmp_path, big, signum):
    """`nohup sce batch …` was stopped by SIGHUP (exit 129, the run thrown away), and a script's
    background job (SIGINT ignored) by Ctrl-C: sce installed its handlers over the caller's
    SIG_IGN. The caller's decision is kept; the run finishes."""
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "out.csv"

    def ignore() -> None:
        signal.signal(signum, signal.SIG_IGN)

    process, _ = start(["batch", str(big), "-o", str(out), "-q"], tmp_path, preexec_fn=ignore)
    wait_for(process, folder, ".out.csv.*.partial")
    process.send_signal(signum)
    stderr = finish(process)
    assert (process.returncode, stderr) == (0, "")
    assert len(out.read_text().splitlines()) == ROWS + 1
