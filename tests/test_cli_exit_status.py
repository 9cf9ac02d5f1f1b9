"""Exit statuses come from one table (cli/exit_status.py): the library's errors carry
none, every kind of error has one, and a command's own status for a kind is a row of
that table, not an ``except`` that rewrites an error."""

from __future__ import annotations

import ast
import doctest
import inspect
from pathlib import Path

import numpy as np
import pytest

import sce.errors
from sce.cli import app, exit_status
from sce.cli.application import COMMANDS
from sce.cli.exit_status import (
    MEANING,
    STATUS_IN_COMMAND,
    STATUS_OF_KIND,
    ExitStatus,
    command_as_run,
    status_table,
)
from sce.errors import DataProblem, OptionDataProblem, OptionProblem, SceError, UnreadableFile, UsageProblem

PACKAGE = Path(__file__).parent.parent / "sce"


def _error_kinds() -> list[type[SceError]]:
    return [
        kind
        for _, kind in inspect.getmembers(sce.errors, inspect.isclass)
        if issubclass(kind, SceError) and kind.__module__ == "sce.errors"
    ]


def test_every_kind_of_error_has_its_own_row():
    kinds = _error_kinds()
    assert len(kinds) >= 6
    assert sorted(kind.__name__ for kind in kinds) == sorted(kind.__name__ for kind in STATUS_OF_KIND)


@pytest.mark.parametrize(
    ("error", "command", "status"),
    [
        (UsageProblem("give --label or --target"), "grad", 2),
        (OptionProblem("temperature", "must be > 0"), "grad", 2),
        (DataProblem("line 3: 'x' is not a number"), "batch", 1),
        (OptionDataProblem("label_col", "there is no column 'y'"), "batch", 1),
        (UnreadableFile("a.npz: cannot read: no such file"), "check", 2),
        (UnreadableFile("a.npz: cannot read: no such file"), "batch", 1),
        (DataProblem("line 3: 'x' is not a number"), "check", 1),
        (DataProblem("line 3: 'x' is not a number"), "check --csv", 2),
        (OptionDataProblem("label_col", "there is no column 'y'"), "check --csv", 2),
        (UsageProblem("give --grad-cols"), "check --csv", 2),
    ],
)
def test_the_status_of_a_kind_in_a_command(error, command, status):
    assert exit_status.exit_status(error, command) == status


def test_a_library_error_has_no_exit_status():
    for kind in _error_kinds():
        error = kind("label_col", "x") if issubclass(kind, OptionProblem) else kind("x")
        assert not hasattr(error, "exit_code"), kind


def test_every_command_row_names_a_command_and_one_of_its_flags():
    from typer.main import get_group

    group = get_group(app)
    for command, kind in STATUS_IN_COMMAND:
        name, *mode = command.split()
        assert name in COMMANDS, command
        assert issubclass(kind, SceError)
        flags = {flag for param in group.commands[name].params for flag in param.opts}
        assert set(mode) <= flags, command


def test_the_command_as_run_has_its_mode_only_when_the_modes_flag_is_given():
    assert command_as_run("check", {"--csv", "--grad-cols"}) == "check --csv"
    assert command_as_run("check", {"--arrays"}) == "check"
    assert command_as_run("batch", {"--csv"}) == "batch"


def test_the_table_for_the_docs_has_every_status_and_name():
    table = status_table()
    assert [name for _, name, _ in table] == list(ExitStatus.__members__)
    assert set(MEANING) == set(ExitStatus.__members__)
    assert {number for number, _, _ in table} == {0, 1, 2, 3, 70, 130, 141}
    assert all(meaning for _, _, meaning in table)


def test_the_examples_in_the_docstrings_run():
    assert doctest.testmod(exit_status).failed == 0


def _status_writes(tree: ast.AST) -> list[int]:
    """Lines that set an error's status, or pass a literal status to typer.Exit."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "exit_code" and isinstance(node.ctx, ast.Store):
            found.append(node.lineno)
        if isinstance(node, ast.keyword) and node.arg == "exit_code":
            found.append(node.value.lineno)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "Exit"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append(node.lineno)
    return found


def test_no_module_sets_an_exit_status_outside_the_table():
    writes = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = _status_writes(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            writes[str(path.relative_to(PACKAGE))] = lines
    assert writes == {}


def test_the_scan_finds_a_rewritten_status():
    tree = ast.parse("try:\n    f()\nexcept E as error:\n    error.exit_code = 2\nraise typer.Exit(1)\n")
    assert sorted(_status_writes(tree)) == [4, 5]


@pytest.fixture
def dump(tmp_path):
    np.savez(tmp_path / "d.npz", logits=np.array([[2.0, 3.0, 4.0]]), labels=np.array([1]), grad=np.zeros((1, 3)))
    return tmp_path


def test_a_missing_array_file_is_1_in_sce_batch_and_2_in_sce_check(dump, sce):
    missing = str(dump / "missing.npz")
    said = f"sce: error: {missing}: cannot read: no such file\n"
    batch = sce("batch", missing, "-q")
    check = sce("check", "--arrays", missing)
    assert (batch.exit_code, batch.stderr) == (1, said)
    assert (check.exit_code, check.stderr) == (2, said)


def test_bad_data_is_1_in_sce_check_arrays_and_2_in_sce_check_csv(dump, sce):
    np.savez(dump / "ints.npz", logits=np.array([[2.0, 3.0, 4.0]]), labels=np.array([1]), grad=np.zeros((1, 3), int))
    arrays = sce("check", "--arrays", str(dump / "ints.npz"))
    assert arrays.exit_code == 1
    assert "array 'grad' has type int64" in arrays.stderr
    (dump / "bad.csv").write_text("z0,z1,label,grad_z0,grad_z1\n1,x,0,0.1,0.2\n")
    csv = sce("check", "--csv", str(dump / "bad.csv"), "--grad-cols", "grad_*")
    assert csv.exit_code == 2
    assert csv.stderr.startswith("sce: error: line 2, column z1: 'x' is not a number")


def test_the_table_of_kinds_for_the_docs_says_what_each_kind_is_and_where_its_status_differs():
    rows = {name: (what, status, elsewhere) for name, what, status, elsewhere in exit_status.kind_table()}
    assert set(rows) == {kind.__name__ for kind in STATUS_OF_KIND}
    assert all(what for what, _, _ in rows.values())
    assert rows["OptionDataProblem"][1:] == (1, {"check --csv": 2})
    assert rows["UsageProblem"][1:] == (2, {})
