"""The library names options by their fields; only the command line words them as flags.

A message names an option with errors.option(); str(error) (the Python API)
words it as the field's Python name, the command line's reporter as its flag.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from sce.batch import BatchRequest, run_batch
from sce.cli.commandline import run_reporting_errors
from sce.cli.declarations import FLAG_OF_FIELD
from sce.cli.exit_status import exit_status
from sce.errors import DataProblem, OptionProblem, SceError, UsageProblem, option, worded
from sce.loss import InvalidInput, softmax_cross_entropy

PACKAGE = Path(__file__).parent.parent / "sce"


def reported(error: SceError, capsys: pytest.CaptureFixture[str]) -> str:
    """The one line the command line's reporter writes for ``error``."""

    def fail() -> None:
        raise error

    assert run_reporting_errors(fail) == exit_status(error)
    return capsys.readouterr().err


def test_an_option_is_its_flag_on_the_command_line_and_its_field_elsewhere(capsys):
    error = DataProblem(f"line 3: bytes that are not utf-8; give the file's encoding with {option('encoding')}")
    assert str(error) == "line 3: bytes that are not utf-8; give the file's encoding with encoding"
    assert reported(error, capsys) == (
        "sce: error: line 3: bytes that are not utf-8; give the file's encoding with --encoding\n"
    )


def test_an_option_with_a_value_is_a_keyword_argument_or_the_flag_and_its_value(capsys):
    error = UsageProblem(f"for example {option('encoding', 'latin-1')} or {option('reduction', 'mean')}")
    assert str(error) == "for example encoding='latin-1' or reduction='mean'"
    assert reported(error, capsys) == "sce: error: for example --encoding latin-1 or --reduction mean\n"


def test_a_switch_is_worded_as_its_own_flag(capsys):
    error = DataProblem(f"read the file with {option('has_header', False)}")
    assert str(error) == "read the file with has_header=False"
    assert reported(error, capsys) == "sce: error: read the file with --no-header\n"


def test_a_value_the_command_line_spells_its_own_way():
    assert worded(f"say {option('delimiter', chr(9))}") == "say delimiter='\\t'"
    assert worded(f"say {option('delimiter', chr(9))}", FLAG_OF_FIELD) == "say --delimiter tab"
    assert worded(f"say {option('delimiter', ';')}", FLAG_OF_FIELD) == "say --delimiter ';'"


def test_an_option_problem_names_its_option_and_the_options_in_its_problem(capsys):
    error = OptionProblem("label_col", f"there is no column 'y'; or give {option('target_cols')}", column=2)
    assert str(error) == "label_col (class 2): there is no column 'y'; or give target_cols"
    assert reported(error, capsys) == "sce: error: --label-col (class 2): there is no column 'y'; or give --target-cols\n"


def test_a_field_the_command_line_has_no_flag_for_keeps_its_name():
    assert worded(f"see {option('no_such_field')}", FLAG_OF_FIELD) == "see no_such_field"


def test_text_that_only_looks_like_a_marker_is_left_alone():
    text = "column '{encoding}' and encoding= and --encoding"
    assert worded(text) == text
    assert worded(text, FLAG_OF_FIELD) == text


def test_the_cores_hint_names_the_dtype_field_in_python_and_the_flag_on_the_command_line(sce):
    with pytest.raises(InvalidInput) as caught:
        softmax_cross_entropy(np.array([[1e39, 0.0]]), np.array([0]), dtype="float32")
    assert str(caught.value).endswith("; compute in float64 (dtype='float64')")
    assert caught.value.hint == "compute in float64 (dtype='float64')"
    result = sce("grad", "1e39", "0", "--label", "0", "--dtype", "float32")
    assert result.exit_code == 2
    assert result.stderr.endswith("; compute in float64 (--dtype float64)\n")


def test_sce_batch_says_no_header_where_run_batch_says_has_header(tmp_path, sce):
    source = tmp_path / "unnamed.csv"
    source.write_text("z0,,label\n1,2,0\n")
    with pytest.raises(SceError) as caught:
        run_batch(BatchRequest(str(source), str(tmp_path / "out.csv")))
    assert str(caught.value) == (
        "line 1: column 2 has no name; name every column, or read the file with has_header=False"
    )
    result = sce("batch", str(source), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 1
    assert result.stderr == (
        "sce: error: line 1: column 2 has no name; name every column, or read the file with --no-header\n"
    )


def _option_fields() -> list[tuple[str, int, str]]:
    """Every field named by a call option('field', ...) in the package, where it is
    (errors.py's own OptionProblem names whatever field it is given)."""
    found = []
    for path in sorted(set(PACKAGE.rglob("*.py")) - {PACKAGE / "errors.py"}):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "option":
                argument = node.args[0]
                if isinstance(argument, ast.Constant):
                    value = node.args[1] if len(node.args) > 1 else None
                    if isinstance(value, ast.Constant) and isinstance(value.value, bool):  # a switch
                        found.append((str(path.relative_to(PACKAGE)), node.lineno, f"{argument.value}={value.value}"))
                    else:
                        found.append((str(path.relative_to(PACKAGE)), node.lineno, str(argument.value)))
                elif isinstance(argument, ast.BinOp) and isinstance(argument.left, ast.Constant):
                    # option("key_" + role): every role has its key's flag
                    for role in ("logits", "labels", "targets", "grad", "loss"):
                        found.append((str(path.relative_to(PACKAGE)), node.lineno, f"{argument.left.value}{role}"))
                else:
                    raise AssertionError(f"{path}:{node.lineno}: option() of a field this test cannot read")
    return found


def test_every_option_named_in_a_message_has_a_flag():
    fields = _option_fields()
    assert len(fields) > 20
    missing = [place for place in fields if place[2] not in FLAG_OF_FIELD]
    assert not missing


IMPLEMENTATIONS = Path(__file__).parent / "implementations"


def test_sce_tests_advice_is_a_keyword_in_python_and_a_flag_in_sce_test(sce):
    from sce.grading import catalogue as mistakes
    from sce.testing import check_implementation

    assert mistakes.MEAN_NOT_SUM.name == "divided by N, but reduction='sum' has no 1/N"
    assert mistakes.MEAN_NOT_SUM.fix == "drop the division by N (or grade with reduction='mean')"
    spec = f"{IMPLEMENTATIONS / 'correct_vectorized'}.py:softmax_loss"
    report = check_implementation(spec, reduction="sum")
    assert report.fix_first is not None
    assert report.fix_first.startswith(
        "divided by N, but reduction='sum' has no 1/N: drop the division by N (or grade with reduction='mean')"
    )
    result = sce("test", spec, "--reduction", "sum", env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert (
        "fix first: divided by N, but --reduction sum has no 1/N: drop the division by N "
        "(or grade with --reduction mean)"
    ) in result.output
    assert "reduction='" not in result.output


def test_a_dump_mistake_names_the_reduction_as_a_keyword_in_python_and_a_flag_in_sce_check(tmp_path, sce):
    from sce.testing import assert_cross_entropy_close

    logits = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    labels = np.array([2, 0])
    mean_grad = softmax_cross_entropy(logits, labels, reduction="mean").gradient
    with pytest.raises(AssertionError) as caught:
        assert_cross_entropy_close(logits, labels, mean_grad, reduction="none")
    assert "divided by N, but reduction='none' gives each row its own gradient" in str(caught.value)
    np.savez(tmp_path / "dump.npz", logits=logits, labels=labels, grad=mean_grad)
    result = sce("check", "--arrays", str(tmp_path / "dump.npz"), "--reduction", "none")
    assert result.exit_code == 1
    assert "mistake: divided by N, but --reduction none gives each row its own gradient" in result.output
    assert "fix: drop the division by N (or grade with --reduction mean)" in result.output


def test_a_marker_with_a_value_option_never_writes_is_left_as_it_is():
    odd = "\x0eencoding=latin-1\x0f"  # not a repr: option() never writes it
    assert worded(odd, FLAG_OF_FIELD) == odd
