"""Standard streams the caller closed (`<&-`, `>&-`, `2>&-`): one line and a status, never an
internal error or a traceback, and never an error line inside the output. Regression: Python
leaves sys.stdin/stdout/stderr None for a closed descriptor, and sce ended in AttributeErrors
(exit 70); with stderr closed, the next file opened took descriptor 2, so the error line
landed in the CSV written to stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = "z0,z1,z2,label\n2,3,4,1\n"


def sce_process(args: list[str], close: int, stdout=subprocess.PIPE, stdin=None) -> subprocess.CompletedProcess:
    def closed() -> None:
        os.close(close)

    return subprocess.run(
        [sys.executable, "-m", "sce", *args],
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE if close != 2 else None,
        preexec_fn=closed,
    )


def test_closed_stdin_is_an_empty_input():
    done = sce_process(["batch", "-", "-q"], close=0)
    assert done.returncode == 1
    assert done.stderr == b"sce: error: the input is empty; it needs a header line and rows of logits\n"
    done = sce_process(["grad", "--logits-file", "-", "-l", "0"], close=0)
    assert done.returncode == 1
    assert done.stderr == b"sce: error: --logits-file: stdin holds no numbers\n"


@pytest.mark.parametrize("args", [["grad", "1", "2", "-l", "0"], ["batch", "IN", "-q"]])
def test_closed_stdout_is_no_internal_error(tmp_path, args):
    (tmp_path / "in.csv").write_text(GOOD)
    args = [str(tmp_path / "in.csv") if a == "IN" else a for a in args]
    done = sce_process(args, close=1)
    assert done.returncode == 0
    assert done.stderr == b""


def test_closed_stderr_keeps_the_error_out_of_the_output(tmp_path: Path):
    (tmp_path / "bad.csv").write_text(GOOD + "1,2,x,0\n")
    with open(tmp_path / "out.csv", "wb") as out:
        done = sce_process(["batch", str(tmp_path / "bad.csv"), "-q"], close=2, stdout=out)
    assert done.returncode == 1
    assert b"error" not in (tmp_path / "out.csv").read_bytes()


def command_names() -> list[str]:
    import typer

    from sce.cli.application import app

    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def into_a_closed_pipe(args: list[str]) -> tuple[int, bytes]:
    """Run ``sce ARGS`` with its stdout a pipe whose reader is gone before the first byte (`| true`)."""
    process = subprocess.Popen([sys.executable, "-m", "sce", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    return process.wait(), stderr


def test_every_help_into_a_closed_pipe_ends_with_141_quietly():
    # rich writes the help; into a closed pipe it pointed stdout at /dev/null and exited 1.
    names = command_names()
    assert {"grad", "batch", "check", "test"} <= set(names)
    for args in [["--help"], [], *([name, "--help"] for name in names), *([name] for name in names)]:
        status, stderr = into_a_closed_pipe(args)
        assert (status, stderr) == (141, b""), (args, status, stderr)


def test_help_into_an_open_pipe_is_unchanged():
    done = subprocess.run([sys.executable, "-m", "sce", "grad", "--help"], capture_output=True)
    assert done.returncode == 0 and b"--label" in done.stdout and done.stderr == b""
    bare = subprocess.run([sys.executable, "-m", "sce", "grad"], capture_output=True)
    assert bare.returncode == 2 and b"Usage" in bare.stdout
    assert bare.stderr == b"sce grad: error: no arguments given; the help above shows what sce grad takes\n"
