"""What `sce` loads to start: only what the command needs (timings are in bench/, not here)."""

from __future__ import annotations

import inspect
import io
import json
import os
import subprocess
import sys

import pytest

from sce.cli.application import BLAS_THREAD_VARIABLES, COMMANDS
from sce.render.grid import PlainConsole, console_for

# The console script's own two lines, then what it left loaded and the BLAS variables.
ENTRY_POINT = """
import atexit, json, os, sys
path = sys.argv.pop(1)
def report():
    with open(path, "w") as out:
        json.dump({"modules": sorted(sys.modules), "environ": dict(os.environ)}, out)
atexit.register(report)
sys.argv[0] = "sce"
from sce.cli import main
main()
"""
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", *BLAS_THREAD_VARIABLES)}


def run_sce(tmp_path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run sce as its console script does, stdout a pipe; its output and what it had loaded at exit."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", ENTRY_POINT, str(report), *args],
        capture_output=True, text=True, env={**ENV, **env}, check=False,
    )
    return done, json.loads(report.read_text())


def loaded(modules: list[str], package: str) -> list[str]:
    return [m for m in modules if m == package or m.startswith(package + ".")]


def test_grad_into_a_pipe_loads_neither_rich_nor_polars_nor_the_other_commands(tmp_path):
    done, report = run_sce(tmp_path, "grad", "2", "3", "4", "-l", "1")
    assert done.returncode == 0, done.stderr
    assert "loss L = 1.4076" in done.stdout
    modules = report["modules"]
    assert "sce.cli.grad" in modules
    for package in ("rich", "polars", "typer.rich_utils", "sce.batch", "sce.grading.implementations", "sce.grading"):
        assert loaded(modules, package) == [], package
    for command in ("batch", "check", "test"):
        assert f"sce.cli.{command}" not in modules


def test_grad_on_a_terminal_still_draws_with_rich(tmp_path):
    done, report = run_sce(tmp_path, "grad", "2", "3", "4", "-l", "1", FORCE_COLOR="1", TERM="xterm-256color")
    assert done.returncode == 0, done.stderr
    assert "\x1b[36m" in done.stdout
    assert "rich.table" in report["modules"]


def test_version_and_help_load_no_numpy(tmp_path):
    for args in (["--version"], ["--help"]):
        done, report = run_sce(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        assert loaded(report["modules"], "numpy") == [], args


def test_version_loads_no_option_declarations(tmp_path):
    """The group alone: the commands (and the options they declare) are built when named."""
    done, report = run_sce(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert "sce.cli.declarations" not in report["modules"]


def test_importing_the_cli_loads_no_numpy():
    # main() sets the BLAS variables after this import and before numpy loads.
    done = subprocess.run(
        [sys.executable, "-c", "import sys, sce.cli; print('numpy' in sys.modules)"],
        capture_output=True, text=True, env=ENV, check=True,
    )
    assert done.stdout == "False\n"


def test_the_command_line_runs_one_blas_thread(tmp_path):
    done, report = run_sce(tmp_path, "grad", "2", "3", "4", "-l", "1")
    assert done.returncode == 0, done.stderr
    assert {name: report["environ"].get(name) for name in BLAS_THREAD_VARIABLES} == dict.fromkeys(
        BLAS_THREAD_VARIABLES, "1"
    )


@pytest.mark.parametrize("name", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_a_users_thread_count_is_kept(tmp_path, name):
    done, report = run_sce(tmp_path, "grad", "2", "3", "4", "-l", "1", **{name: "2"})
    assert done.returncode == 0, done.stderr
    assert {v: report["environ"].get(v) for v in BLAS_THREAD_VARIABLES} == {
        v: "2" if v == name else None for v in BLAS_THREAD_VARIABLES
    }


def test_a_program_importing_sce_keeps_its_threads():
    code = (
        "import os, sce, sce.cli; from sce import softmax_cross_entropy; "
        "softmax_cross_entropy([[2.0, 3.0, 4.0]], [1]); print(os.environ.get('OPENBLAS_NUM_THREADS'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    assert done.stdout == "None\n"


def test_help_lists_every_command_with_its_one_line_help(sce):
    result = sce("--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    listed = [line.split("│")[1].split() for line in lines if line.startswith("│ ") and "--" not in line]
    assert [words[0] for words in listed] == ["grad", "batch", "check", "test", "exercise", "samples", "completion"]
    for name, words in zip(COMMANDS, listed):
        module = __import__(f"sce.cli.{name}", fromlist=[name])
        first_line = inspect.getdoc(getattr(module, name)).splitlines()[0]
        assert " ".join(words[1:]) == first_line


def test_an_unknown_command_is_still_named_with_a_suggestion(sce):
    result = sce("gard", "1")
    assert result.exit_code == 2
    assert "No such command 'gard'. Did you mean 'grad'?" in result.stderr


# The plain console prints exactly what rich's Console prints away from a terminal.

LINES = [
    "",
    "loss L = 1.4076",
    "with label smoothing 0.1; temperature 2",
    "∂s/∂z = diag(s) - s sᵀ is 1000×1000: too large to print.",
    "with class weights " + ", ".join(["0.125"] * 30),  # longer than 80: rich wraps it
    "[bold]markup[/bold] and [brackets]",
    "an :emoji: code, a :smile:",
    "tab\tand\nnewline",
    "trailing spaces   ",
    "漢字 " * 30,
]


def rich_output(call, columns: str) -> str:
    from rich.console import Console

    file = io.StringIO()
    os.environ["COLUMNS"] = columns
    try:
        call(Console(file=file, highlight=False))
    finally:
        del os.environ["COLUMNS"]
    return file.getvalue()


def plain_output(call, columns: str) -> str:
    file = io.StringIO()
    os.environ["COLUMNS"] = columns
    try:
        console = console_for(file)
        assert isinstance(console, PlainConsole)
        call(console)
    finally:
        del os.environ["COLUMNS"]
    return file.getvalue()


@pytest.mark.parametrize("columns", ["80", "40", "200"])
@pytest.mark.parametrize("line", LINES)
def test_the_plain_console_prints_what_rich_prints(line, columns, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    from rich.text import Text

    from sce.render.grid import print_styled

    for call in (
        lambda c: c.print(line),
        lambda c: c.print(line, highlight=False),
        lambda c: print_styled(c, (line, "bold"), " end"),
        lambda c: c.print(Text(line), style="bold"),
        lambda c: c.print(),
    ):
        assert plain_output(call, columns) == rich_output(call, columns)


def test_rich_decides_where_it_might_see_a_terminal(monkeypatch):
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not isinstance(console_for(io.StringIO()), PlainConsole)
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert not isinstance(console_for(io.StringIO()), PlainConsole)
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    assert isinstance(console_for(io.StringIO()), PlainConsole)


# After the command, sce leaves without the interpreter's teardown when nothing waits for it.

SEED_TABLE_END = "    2         4     0.0000     0.66524   █████▍      0.66524        │███▌    predicted\n\nloss L = 1.4076\nreduction: none\n"


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sce", *args], capture_output=True, text=True, env=ENV, check=False
    )


def test_a_quick_exit_keeps_the_whole_output_and_the_status():
    done = run_module("grad", "2", "3", "4", "-l", "1")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.endswith(SEED_TABLE_END)
    failed = run_module("grad", "2", "3", "4", "-l", "7")
    assert failed.returncode == 2
    assert failed.stdout == "" and failed.stderr.count("\n") == 1
    assert run_module("--version").stdout == "sce 0.1.0\n"


def test_a_quick_exit_into_a_closed_pipe_still_ends_quietly_with_141():
    done = subprocess.run(
        f"'{sys.executable}' -m sce grad $(seq 1 3000) --label 5 | head -1; echo \"${{PIPESTATUS[0]}}\"",
        shell=True, executable="/bin/bash", capture_output=True, text=True, env=ENV, check=False,
    )
    assert done.stdout.splitlines()[1] == "141"
    assert done.stderr == ""


def test_atexit_callbacks_still_run(tmp_path):
    # run_sce's report is an atexit callback: with one registered, sce exits the usual way.
    done, report = run_sce(tmp_path, "grad", "2", "3", "4", "-l", "7")
    assert done.returncode == 2
    assert "sce.cli.grad" in report["modules"]
