"""`-o /dev/stdout` and its kin name the process's own descriptors: what the shell opened
(`>> log`, a pipe, a file). Regression: sce followed /dev/stdout to the file behind it and
renamed its temporary output over that file, so `sce batch in.csv -o /dev/stdout >> log`
lost the log's earlier lines; on a pipe it failed ("cannot write in /proc/N/fd")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

INPUT = "z0,z1,z2,label\n2,3,4,1\n"
# p = softmax([2, 3, 4]) and loss −log p₁, worked out independently of sce:
P = np.exp([2.0, 3.0, 4.0]) / np.exp([2.0, 3.0, 4.0]).sum()


def sce_process(*args: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sce", *args], stdout=stdout, stderr=subprocess.PIPE)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(INPUT)
    return path


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("2,3,4,1,")]


@pytest.mark.parametrize("name", ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
def test_regression_output_to_dev_stdout_appends_where_the_shell_appends(tmp_path, source, name):
    log = tmp_path / "log.txt"
    log.write_text("PRECIOUS 1\nPRECIOUS 2\n")
    with open(log, "ab") as appended:
        done = sce_process("batch", str(source), "-o", name, "-q", stdout=appended)
    assert done.returncode == 0, done.stderr
    lines = log.read_text().splitlines()
    assert lines[:2] == ["PRECIOUS 1", "PRECIOUS 2"]
    (row,) = _rows(log.read_text())
    loss = float(row.split(",")[7])
    assert loss == pytest.approx(-np.log(P[1]), rel=1e-15)


def test_regression_output_to_dev_stdout_goes_down_a_pipe(source):
    done = sce_process("batch", str(source), "-o", "/dev/stdout", "-q")  # stdout is a pipe here
    assert done.returncode == 0, done.stderr
    assert len(_rows(done.stdout.decode())) == 1


def test_a_link_to_dev_stdout_is_followed_to_the_descriptor(tmp_path, source):
    link = tmp_path / "out"
    link.symlink_to("/dev/stdout")
    done = sce_process("batch", str(source), "-o", str(link), "-q")
    assert done.returncode == 0, done.stderr
    assert len(_rows(done.stdout.decode())) == 1
    assert link.is_symlink()


def test_npz_output_to_a_descriptor_open_for_appending_is_refused(tmp_path, source):
    target = tmp_path / "out.npz"
    target.write_bytes(b"old")
    with open(target, "ab") as appended:
        done = sce_process("batch", str(source), "-f", "npz", "-o", "/dev/stdout", "-q", stdout=appended)
    assert done.returncode == 2
    assert done.stderr.decode() == (
        "sce: error: -o: /dev/stdout is open for appending (>>); .npz output is written out of order: name a file\n"
    )
    assert target.read_bytes() == b"old"


def test_npz_output_to_dev_stdout_redirected_to_a_file_is_whole(tmp_path, source):
    target = tmp_path / "out.npz"
    with open(target, "wb") as written:
        done = sce_process("batch", str(source), "-f", "npz", "-o", "/dev/stdout", "-q", stdout=written)
    assert done.returncode == 0, done.stderr
    with np.load(target) as arrays:
        assert arrays["loss"][0] == pytest.approx(-np.log(P[1]), rel=1e-15)


def test_regression_stdin_read_from_the_output_file_is_refused(tmp_path, source):
    """`sce batch - -o a.csv < a.csv` replaced the input; `sce batch a.csv -o a.csv` was caught."""
    before = source.read_bytes()
    with open(source, "rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "sce", "batch", "-", "-o", str(source), "-q"], stdin=stdin, capture_output=True
        )
    assert done.returncode == 2
    assert done.stderr.decode() == f"sce: error: -o: {source} is the input file; write the output to another file\n"
    assert source.read_bytes() == before


def test_regression_a_read_only_output_is_not_replaced(tmp_path, source, monkeypatch, sce):
    """The temporary file renamed over the output needs only the folder's permission, so a file
    its owner made read-only (or another user's) was replaced; `>` would have been refused."""

    from sce.io.writers import atomic as output

    out = tmp_path / "out.csv"
    out.write_text("KEEP\n")
    real_access = output.os.access
    monkeypatch.setattr(output.os, "access", lambda path, mode: False if path == str(out) else real_access(path, mode))
    result = sce("batch", str(source), "-o", str(out), "-q")
    assert result.exit_code == 1
    assert result.stderr == (
        f"sce: error: -o: {out} is not writable (read-only, or not yours); make it writable or write the output "
        "elsewhere\n"
    )
    assert out.read_text() == "KEEP\n"


@pytest.mark.parametrize(("output", "said"), [(["-o", "/dev/stdout"], "-o: /dev/stdout"), ([], "stdout")])
def test_regression_a_descriptor_opened_on_the_input_is_refused(tmp_path, source, output, said):
    """`sce batch in.csv -o /dev/stdout >> in.csv` wrote into its own input (a 6 MB input grew to
    45 MB before the run failed on its own output rows)."""
    before = source.read_bytes()
    with open(source, "ab") as appended:
        done = sce_process("batch", str(source), *output, "-q", stdout=appended)
    assert done.returncode == 2
    assert done.stderr.decode() == f"sce: error: {said} is the input file; write the output to another file\n"
    assert source.read_bytes() == before


def test_regression_stdin_and_stdout_on_one_file_are_refused(tmp_path, source):
    """`sce batch - < in.csv >> in.csv` read its own output (a 4 MB input grew to 28 MB)."""
    before = source.read_bytes()
    with open(source, "rb") as stdin, open(source, "ab") as appended:
        done = subprocess.run(
            [sys.executable, "-m", "sce", "batch", "-", "-q"], stdin=stdin, stdout=appended, stderr=subprocess.PIPE
        )
    assert done.returncode == 2
    assert done.stderr.decode() == "sce: error: stdout is the input file; write the output to another file\n"
    assert source.read_bytes() == before
