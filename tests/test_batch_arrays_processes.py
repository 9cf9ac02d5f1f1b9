"""`sce batch` on arrays as a real process: its peak memory on a large
memory-mapped .npy, and signals during .npz, Parquet and Arrow output, in the
style of tests/test_batch_memory.py and tests/test_batch_signals.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_batch_memory import PROBE
from tests.test_batch_signals import STOPPING, finish, generate, start, wait_for

#: The interpreter with numpy, polars and sce loaded is about 64 MB; a block of
#: 2^18 entries costs a few MB for each of its arrays. A run that read the
#: 200 MB file whole (or kept its memory map's pages) would need at least
#: 64 + 200 MB, and its float64 copy 400 MB more.
LIMIT_MB = 160


def peak_mb(command: list[str]) -> float:
    # Measured from a small intermediate process: a child's ru_maxrss counts the
    # resident size of the process it was forked from at exec (pytest's, here).
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, *command], capture_output=True, text=True, check=False, timeout=600
    )
    assert probe.returncode == 0, probe.stderr
    return int(probe.stdout) / 1024  # kilobytes on Linux


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> tuple[Path, Path]:
    """100,000 × 500 float32 logits (200 MB) and their labels, as .npy files."""
    folder = tmp_path_factory.mktemp("large")
    rows, classes = 100_000, 500
    logits = np.lib.format.open_memmap(folder / "z.npy", mode="w+", dtype=np.float32, shape=(rows, classes))
    rng = np.random.default_rng(15)
    for first in range(0, rows, 10_000):
        logits[first : first + 10_000] = rng.normal(0, 3, (10_000, classes))
    logits.flush()
    del logits
    labels = rng.integers(0, classes, rows)
    labels[::8] = -100
    np.save(folder / "y.npy", labels)
    return folder / "z.npy", folder / "y.npy"


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs os.wait4 for a child's peak memory")
def test_peak_memory_stays_bounded_on_a_large_memory_mapped_npy(large):
    logits, labels = large
    assert logits.stat().st_size > 190e6
    command = [sys.executable, "-m", "sce", "batch", str(logits), "--labels", str(labels)]
    peak = peak_mb([*command, "--reduction", "mean", "-f", "npz", "-o", os.devnull, "-q"])
    assert peak < LIMIT_MB, f"peak RSS {peak:.0f} MB on a {logits.stat().st_size / 1e6:.0f} MB .npy"


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs os.wait4 for a child's peak memory")
def test_parquet_output_is_written_in_row_groups_not_gathered(tmp_path):
    # 60,000 × 200: an output of 3 × 96 MB of float64 arrays. polars' sink, left to
    # itself, gathers about 500,000 rows before it writes (all of this output).
    rng = np.random.default_rng(16)
    np.save(tmp_path / "z.npy", rng.normal(0, 3, (60_000, 200)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 200, 60_000))
    out = tmp_path / "o.parquet"
    command = [sys.executable, "-m", "sce", "batch", str(tmp_path / "z.npy"), "--labels", str(tmp_path / "y.npy")]
    peak = peak_mb([*command, "-o", str(out), "-q"])
    assert out.stat().st_size > 100e6
    assert peak < 64 + 288 - 60, f"peak RSS {peak:.0f} MB"


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> Path:
    """200,000 × 50 float32 logits and labels in one .npz: a second or more of work for each output."""
    folder = tmp_path_factory.mktemp("medium")
    rng = np.random.default_rng(17)
    path = folder / "d.npz"
    np.savez(path, logits=rng.normal(0, 3, (200_000, 50)).astype(np.float32), labels=rng.integers(0, 50, 200_000))
    return path


@pytest.mark.parametrize("suffix", [".npz", ".parquet", ".arrow"])
@pytest.mark.parametrize("signum,status,said", STOPPING, ids=[s.name for s, _, _ in STOPPING])
def test_signal_during_array_output_keeps_the_old_file(tmp_path, medium, suffix, signum, status, said):
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / f"out{suffix}"
    out.write_bytes(b"precious\n")
    process, temporary = start(["batch", str(medium), "-o", str(out), "-q", "--reduction", "mean"], tmp_path)
    wait_for(process, folder, f".out{suffix}.*.partial")
    process.send_signal(signum)
    stderr = finish(process)
    assert (process.returncode, stderr) == (status, said)
    assert out.read_bytes() == b"precious\n"
    assert [p.name for p in folder.iterdir()] == [out.name]
    assert list(temporary.iterdir()) == []


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """tests/test_batch_signals.py's 25 MB of CSV logits and labels."""
    return generate(tmp_path_factory.mktemp("big"), with_gradients=False)


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_signal_during_csv_into_arrays_from_stdin_removes_spool_and_partial_output(tmp_path, big, suffix):
    # .npz from a pipe: the input is spooled for its two passes; the signal comes in the first or the second.
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / f"out{suffix}"
    out.write_bytes(b"precious\n")
    with open(big, "rb") as stdin:
        process, temporary = start(["batch", "-", "-o", str(out), "-q"], tmp_path, stdin=stdin)
        wait_for(process, folder, f".out{suffix}.*.partial")
        process.send_signal(signal.SIGINT)
        stderr = finish(process)
    assert (process.returncode, stderr) == (130, "sce: interrupted (SIGINT)\n")
    assert out.read_bytes() == b"precious\n"
    assert [p.name for p in folder.iterdir()] == [out.name]
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize("delay", [0.0, 0.4, 0.8])
def test_sigterm_at_any_moment_leaves_the_old_npz_or_a_whole_new_one(tmp_path, medium, delay):
    import time

    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "out.npz"
    out.write_bytes(b"precious\n")
    process, temporary = start(["batch", str(medium), "-o", str(out), "-q"], tmp_path)
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    stderr = finish(process)
    assert process.returncode in (143, -signal.SIGTERM, 0), stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    # Kept as it was, or (a signal after the rename, when the run is done) the whole new output: never a part.
    if out.read_bytes() == b"precious\n":
        assert process.returncode != 0
    else:
        with np.load(out) as archive:
            assert archive["grad"].shape == (200_000, 50)
    assert [p.name for p in folder.iterdir()] == ["out.npz"]
    assert list(temporary.iterdir()) == []


def test_arrays_piped_on_stdin_are_refused_in_one_line(tmp_path, medium):
    with open(medium, "rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "sce", "batch", "-"], stdin=stdin, capture_output=True, check=False, timeout=60
        )
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr == (
        b"sce: error: stdin holds arrays (.npz), which sce batch reads from a file: save them and give the file's name\n"
    )


def test_a_closed_pipe_during_csv_output_of_arrays_exits_141_quietly(tmp_path, medium):
    process, temporary = start(["batch", str(medium), "-q"], tmp_path, stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline().startswith(b"z0,z1,")
    process.stdout.close()
    stderr = finish(process)
    assert (process.returncode, stderr) == (141, "")
    assert list(temporary.iterdir()) == []
