"""An output written over an existing file: put in place atomically (the name holds the old
file or the new one, whole, at every moment), the old file removed, nothing else left behind,
the old file's other names untouched, its mode kept; where the system cannot swap two names
in one step, a plain rename does the same."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sce.io.writers import replace
from sce.io.writers.atomic import OutputTarget

INPUT = "z0,z1,z2,label\n2,3,4,1\n"


@pytest.fixture(params=["exchanged", "renamed"])
def swap(request, monkeypatch):
    """Both ways of putting a file in place: the exchange, and os.replace where it is refused."""
    if request.param == "renamed":
        monkeypatch.setattr(replace, "_exchanged", lambda first, second: False)
    return request.param


def _written(folder: Path, text: bytes, name: str = "out.csv") -> OutputTarget:
    target = OutputTarget(str(folder / name), None)
    target.stream.write(text)
    return target


def test_the_exchange_is_what_this_system_does(tmp_path):
    """The tests' folder is on a file system that swaps names (ext4, tmpfs): the fast way is the one tested."""
    if not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux's")
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text("A")
    second.write_text("B")
    assert replace._exchanged(str(first), str(second))
    assert (first.read_text(), second.read_text()) == ("B", "A")


def test_an_exchange_with_nothing_there_is_refused_not_half_done(tmp_path):
    first = tmp_path / "a"
    first.write_text("A")
    assert not replace._exchanged(str(first), str(tmp_path / "missing"))
    assert [path.name for path in tmp_path.iterdir()] == ["a"]


def test_an_existing_output_is_replaced_whole_and_nothing_is_left(tmp_path, swap):
    out = tmp_path / "out.csv"
    out.write_bytes(b"OLD\n" * 1000)
    target = _written(tmp_path, b"NEW\n")
    assert out.read_bytes() == b"OLD\n" * 1000  # untouched until finish
    target.finish()
    assert out.read_bytes() == b"NEW\n"
    assert [path.name for path in tmp_path.iterdir()] == ["out.csv"]


def test_the_old_outputs_other_names_keep_its_bytes(tmp_path, swap):
    out = tmp_path / "out.csv"
    out.write_bytes(b"OLD\n")
    os.link(out, tmp_path / "kept.csv")
    _written(tmp_path, b"NEW\n").finish()
    assert (out.read_bytes(), (tmp_path / "kept.csv").read_bytes()) == (b"NEW\n", b"OLD\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept.csv", "out.csv"]


def test_the_old_outputs_mode_is_kept(tmp_path, swap):
    out = tmp_path / "out.csv"
    out.write_bytes(b"OLD\n")
    out.chmod(0o640)
    _written(tmp_path, b"NEW\n").finish()
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_a_link_to_the_output_stays_a_link(tmp_path, swap):
    real = tmp_path / "real.csv"
    real.write_bytes(b"OLD\n")
    (tmp_path / "link.csv").symlink_to(real)
    _written(tmp_path, b"NEW\n", "link.csv").finish()
    assert (tmp_path / "link.csv").is_symlink()
    assert real.read_bytes() == b"NEW\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["link.csv", "real.csv"]


def test_removed_last_the_old_output_waits_for_the_end_then_goes(tmp_path):
    out = tmp_path / "out.csv"
    out.write_bytes(b"OLD\n")
    with replace.old_outputs_removed_last():
        _written(tmp_path, b"NEW\n").finish()
        assert out.read_bytes() == b"NEW\n"
        (kept,) = [path for path in tmp_path.iterdir() if path.name != "out.csv"]
        assert kept.read_bytes() == b"OLD\n"  # still there: a summary may be shown first
    assert [path.name for path in tmp_path.iterdir()] == ["out.csv"]


def test_removed_last_the_old_output_goes_when_the_block_fails(tmp_path):
    out = tmp_path / "out.csv"
    out.write_bytes(b"OLD\n")
    with pytest.raises(KeyboardInterrupt), replace.old_outputs_removed_last():
        _written(tmp_path, b"NEW\n").finish()
        raise KeyboardInterrupt
    assert [path.name for path in tmp_path.iterdir()] == ["out.csv"]
    assert out.read_bytes() == b"NEW\n"


def test_nested_removals_wait_for_the_outer_block(tmp_path):
    out = tmp_path / "out.csv"
    out.write_bytes(b"OLD\n")
    with replace.old_outputs_removed_last():
        with replace.old_outputs_removed_last():
            _written(tmp_path, b"NEW\n").finish()
        assert len(list(tmp_path.iterdir())) == 2
    assert [path.name for path in tmp_path.iterdir()] == ["out.csv"]


@pytest.mark.parametrize("quiet", [True, False])
def test_sce_batch_over_its_own_output_leaves_one_file(tmp_path, quiet):
    source = tmp_path / "in.csv"
    source.write_text(INPUT)
    out = tmp_path / "out.csv"
    command = [sys.executable, "-m", "sce", "batch", str(source), "-o", str(out), *(["-q"] if quiet else [])]
    first = subprocess.run(command, capture_output=True)
    assert first.returncode == 0, first.stderr
    written = out.read_bytes()
    out.write_bytes(b"OLD\n" * 100_000)
    second = subprocess.run(command, capture_output=True)
    assert second.returncode == 0, second.stderr
    assert out.read_bytes() == written
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv", "out.csv"]


@pytest.mark.parametrize("kind", ["text", "npz"])
def test_every_writer_stuck_in_a_write_is_waited_for_the_same_time_then_left_its_file(tmp_path, monkeypatch, kind):
    """One abort rule for every writer: the item being written may finish within ABORT_WAIT; a
    thread still writing after that keeps its file open (a descriptor closed under it could be
    taken by a file opened next), and the temporary file is removed all the same."""
    import threading
    import time

    import numpy as np

    from sce.io.writers import arrays, atomic, text

    monkeypatch.setattr(atomic, "ABORT_WAIT", 0.2)
    entered, release = threading.Event(), threading.Event()
    calls = []

    def stuck(*args, **kwargs):
        calls.append(1)
        entered.set()
        release.wait(10)

    target = OutputTarget(str(tmp_path / f"out.{kind}"), None)
    if kind == "text":
        monkeypatch.setattr(text, "write_frame", stuck)
        writer: atomic.BackgroundWriter = text.TextWriter(target, "csv")
    else:
        writer = arrays.NpzSink(target, {"loss": (np.dtype(np.float64), (4,))})
        monkeypatch.setattr(writer.writer, "write", stuck)
    writer.put({"loss": np.zeros(4)} if kind == "npz" else object())
    writer.put({"loss": np.zeros(4)} if kind == "npz" else object())  # queued: dropped by the abort
    assert entered.wait(5)
    started = time.perf_counter()
    writer.abort()
    assert 0.15 < time.perf_counter() - started < 2
    target.abandon()
    assert target.still_written and not target.stream.closed
    assert list(tmp_path.iterdir()) == []
    release.set()
    assert writer.thread is not None
    writer.thread.join(5)
    assert not writer.thread.is_alive()
    assert len(calls) == 1  # the queued item was dropped, never written
    target.stream.close()
