"""Every option is declared once (cli/declarations.py): the commands' parameters, the
table that words the library's fields as flags, and --help's panels all come from it."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from sce.cli import app
from sce.cli.application import COMMANDS
from sce.cli.declarations import DECLARED, FLAG_OF_FIELD, LOSS_OPTIONS, Declared, flag_table, flags_of_command
from sce.options import LossOptions

PACKAGE = Path(__file__).parent.parent / "sce"


def _command(name: str):
    return app_group().commands[name]


def app_group():
    import typer.main

    return typer.main.get_group(app)


def _record_of(param) -> Declared | None:
    found = [
        record
        for record in DECLARED
        if record.flags and set(record.flags) <= set(param.opts) and record.parameter_name == param.name
    ]
    assert len(found) <= 1
    return found[0] if found else None


def test_the_flag_table_is_made_from_the_declarations():
    assert flag_table(DECLARED) == FLAG_OF_FIELD
    assert FLAG_OF_FIELD["label_smoothing"] == "--smoothing"
    assert FLAG_OF_FIELD["has_header=False"] == "--no-header"
    assert FLAG_OF_FIELD["output_path"] == "-o"
    assert FLAG_OF_FIELD["logits"] == "LOGITS"


def test_every_field_of_loss_options_is_declared_once_with_a_flag():
    fields = [field.name for field in dataclasses.fields(LossOptions)]
    assert sorted(record.field for record in LOSS_OPTIONS) == sorted(fields)
    for field in fields:
        assert FLAG_OF_FIELD[field].startswith("--"), field


def test_no_flag_is_declared_twice_for_two_fields():
    seen: dict[str, str] = {}
    for record in DECLARED:
        for flag in record.flags:
            assert seen.setdefault(flag, record.field) == record.field, flag


def _fields_named_by_raise_sites() -> set[str]:
    """The first argument of every OptionProblem / OptionDataProblem and every field= of an
    InvalidInput in the package, where it is a string constant."""
    fields = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            named = node.func.id in ("OptionProblem", "OptionDataProblem") and node.args
            if named and isinstance(node.args[0], ast.Constant):
                fields.add(node.args[0].value)
            if node.func.id == "InvalidInput":
                for keyword in node.keywords:
                    if keyword.arg == "field" and isinstance(keyword.value, ast.Constant):
                        fields.add(keyword.value.value)
    return fields


#: Keywords of the Python API that no command sets, so no message on the command line names them.
#: ("outputs": a fused check given none of loss=, grad_hidden=, …; a dump without them is refused in its own words.)
PYTHON_ONLY = {"class_axis", "grad_output", "mode", "outputs"}
#: The arrays of a dump of hidden states: check --arrays names them by their place in the file, not by a flag.
DUMP_ARRAYS = {"hidden", "classifier", "bias", "grad_hidden", "grad_classifier", "grad_bias"}


def test_every_field_an_error_names_has_a_flag():
    fields = _fields_named_by_raise_sites()
    assert {"output_path", "label_col", "encoding", "logits", "weight"} <= fields  # the scan finds them
    assert sorted(field for field in fields - PYTHON_ONLY - DUMP_ARRAYS if field not in FLAG_OF_FIELD) == []
    assert fields >= PYTHON_ONLY  # a keyword that stops being named leaves the list


# The commands that take the shared options; `sce samples` and `sce completion` have only their own one
# argument and flag, declared where they are used.
SHARING = [name for name in COMMANDS if name not in ("samples", "completion")]


@pytest.mark.parametrize("name", SHARING)
def test_every_option_of_a_command_that_has_a_record_is_in_its_panel(name):
    command = _command(name)
    declared = 0
    for param in command.params:
        record = _record_of(param)
        if record is None:
            continue
        declared += 1
        assert param.rich_help_panel == record.panel, (name, param.opts)
    assert declared >= 6


def test_every_record_is_a_parameter_of_some_command():
    used = {(param.name, tuple(param.opts)) for name in COMMANDS for param in _command(name).params}
    for record in DECLARED:
        assert any(name == record.parameter_name and set(record.flags) <= set(opts) for name, opts in used), record


def _panels_in_help(sce, name: str) -> dict[str, str]:
    """Each flag in ``sce NAME --help`` and the title of the panel it is listed under."""
    text = sce(name, "--help", env={"COLUMNS": "200", "NO_COLOR": "1"}).stdout
    panel_of: dict[str, str] = {}
    panel = ""
    for line in text.splitlines():
        title = re.match(r"╭─ (.+?) ─", line)
        if title:
            panel = title.group(1)
            continue
        flag = re.match(r"│\s+(--[a-z][a-z-]*)", line)
        if flag:
            panel_of[flag.group(1)] = panel
    return panel_of


@pytest.mark.parametrize("name", SHARING)
def test_help_lists_each_declared_option_under_its_panel(name, sce):
    panel_of = _panels_in_help(sce, name)
    checked = 0
    for param in _command(name).params:
        record = _record_of(param)
        if record is not None:
            assert panel_of[record.flags[0]] == record.panel, (name, record.flags[0])
            checked += 1
    assert checked >= 6


@pytest.mark.parametrize("name", ["grad", "batch", "check"])
def test_the_computing_commands_take_every_loss_option(name, sce):
    panel_of = _panels_in_help(sce, name)
    assert {record.flags[0] for record in LOSS_OPTIONS} <= {flag for flag, panel in panel_of.items() if panel == "The loss"}


def test_a_loss_option_given_reaches_the_loss_and_one_left_out_keeps_its_default(sce):
    plain = sce("grad", "2", "3", "4", "-l", "1", "-f", "csv")
    smoothed = sce("grad", "2", "3", "4", "-l", "1", "-f", "csv", "--smoothing", "0.1")
    said_zero = sce("grad", "2", "3", "4", "-l", "1", "-f", "csv", "--smoothing", "0")
    assert plain.exit_code == smoothed.exit_code == said_zero.exit_code == 0
    assert plain.stdout == said_zero.stdout != smoothed.stdout
    # the target column: 1 on the label without smoothing, 1 - ε + ε/K with it
    assert plain.stdout.splitlines()[2].split(",")[2] == "1.0"
    assert smoothed.stdout.splitlines()[2].split(",")[2].startswith("0.93333")


def test_each_command_words_a_field_its_own_way():
    assert flags_of_command(_command("batch").params)["input_path"] == "INPUT"
    assert flags_of_command(_command("check").params)["input_path"] == "--csv"
    assert flags_of_command(_command("grad").params)["labels"] == "--label"


def test_sce_check_names_the_file_it_could_not_read_by_csv_and_sce_batch_by_input(tmp_path, sce):
    missing = str(tmp_path / "nope.csv")
    check = sce("check", "--csv", missing, "--grad-cols", "grad_*")
    batch = sce("batch", missing, "-q")
    assert (check.exit_code, check.stderr) == (2, f"sce: error: --csv: cannot read {missing}: No such file or directory\n")
    assert (batch.exit_code, batch.stderr) == (1, f"sce: error: INPUT: cannot read {missing}: No such file or directory\n")


def test_the_examples_in_the_docstrings_run():
    import doctest

    from sce.cli import declarations

    assert doctest.testmod(declarations).attempted >= 2
    assert doctest.testmod(declarations).failed == 0


def test_the_defaults_help_shows_are_loss_options_own(sce):
    text = sce("grad", "--help", env={"COLUMNS": "250", "NO_COLOR": "1"}).stdout
    defaults = LossOptions()
    for flag, value in (("--temperature", "1.0"), ("--ignore-index", "-100")):
        line = next(line for line in text.splitlines() if f"│ {flag} " in line)
        assert f"[default: {value}]" in line, line
    assert (defaults.temperature, defaults.reduction, defaults.ignore_index) == (1.0, "mean", -100)


@pytest.mark.parametrize(
    "command, shown",
    [
        ("grad", "[default: none]"),
        ("batch", "[default: none]"),
        ("check", "[default: none; with --arrays mean, or none for a loss per row]"),
        ("test", "mean (default, as PyTorch)"),
    ],
)
def test_each_command_shows_its_own_default_reduction(sce, command, shown):
    # One figure returned or graded: the mean, as PyTorch; one row written per input row: none.
    text = sce(command, "--help", env={"COLUMNS": "250", "NO_COLOR": "1"}).stdout
    line = next(line for line in text.splitlines() if "│ --reduction " in line)
    assert shown in line, line
