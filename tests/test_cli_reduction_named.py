"""Every output names the reduction it used, in the same words ("reduction: none"), and each
command's default is the one rule: the mean where one figure is graded (check --arrays, sce
test), each row's own loss where one row is written per input row (grad, batch, check)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent.parent / "sce" / "samples"
REDUCTIONS = ["none", "mean", "sum"]


def given(reduction: str | None) -> list[str]:
    return [] if reduction is None else ["--reduction", reduction]


@pytest.mark.parametrize("reduction", [None, *REDUCTIONS])
def test_grad_names_its_reduction_in_every_format(sce, reduction):
    shown = reduction or "none"
    args = ["grad", "2", "3", "4", "-l", "1", "-w", "1,2,3", *given(reduction)]
    table = sce(*args).stdout.splitlines()
    assert table[table.index(next(line for line in table if line.startswith("loss L = "))) + 1] == f"reduction: {shown}"
    document = json.loads(sce(*args, "-f", "json").stdout)
    assert document["reduction"] == shown == document["options"]["reduction"]
    rows = sce(*args, "-f", "csv").stdout.splitlines()
    assert rows[0].split(",")[-1] == "reduction" and all(row.split(",")[-1] == shown for row in rows[1:])
    assert f"\nreduction: {shown}\n" in sce(*args, "-f", "markdown").stdout


@pytest.mark.parametrize("reduction", [None, "mean"])
def test_grad_loss_follows_the_reduction_named(sce, reduction):
    # One row of label 1 with weight 2: 'none' reports w·(−log p_1) = 2·1.4076 = 2.8152, and
    # the gradient 2·(p − y); 'mean' divides both by the label's weight, 2 (as PyTorch).
    document = json.loads(sce("grad", "2", "3", "4", "-l", "1", "-w", "1,2,3", *given(reduction), "-f", "json").stdout)
    expected = {"none": 2.8152, "mean": 1.4076}[reduction or "none"]
    assert round(document["loss"], 4) == expected
    assert round(document["gradient"][1], 4) == {"none": -1.5105, "mean": -0.7553}[reduction or "none"]


@pytest.mark.parametrize("reduction", [None, *REDUCTIONS])
def test_batch_summary_names_its_reduction(sce, tmp_path, reduction):
    result = sce("batch", str(SAMPLES / "batch.csv"), "-o", str(tmp_path / "out.csv"), *given(reduction))
    assert result.exit_code == 0, result.stderr
    lines = [line.split() for line in result.stderr.splitlines()]
    assert ["reduction", reduction or "none"] in lines


@pytest.mark.parametrize("reduction", [None, *REDUCTIONS])
def test_typed_check_names_its_reduction(sce, reduction):
    args = ["check", "2", "3", "4", "-l", "1", "--loss", "1.4076", *given(reduction)]
    lines = sce(*args).stdout.splitlines()
    assert lines[-2:] == [f"reduction: {reduction or 'none'}", "verdict: correct"]
    assert json.loads(sce(*args, "-f", "json").stdout)["reduction"] == (reduction or "none")


def test_typed_check_grades_each_rows_own_loss_by_default(sce):
    # With a class weight of 2 on the label, the row's own loss is 2·1.4076 = 2.8152 and the mean 1.4076.
    assert sce("check", "2", "3", "4", "-l", "1", "-w", "1,2,3", "--loss", "2.8152").exit_code == 0
    assert sce("check", "2", "3", "4", "-l", "1", "-w", "1,2,3", "--loss", "1.4076", "--reduction", "mean").exit_code == 0


def test_check_csv_names_its_reduction(sce, tmp_path):
    scored = tmp_path / "scored.csv"
    assert sce("batch", str(SAMPLES / "batch.csv"), "-o", str(scored), "-q").exit_code == 0
    args = ["check", "--csv", str(scored), "--grad-cols", "grad_*", "--loss-col", "loss"]
    result = sce(*args)
    assert result.exit_code == 0, result.stdout
    assert "reduction: none" in result.stdout.splitlines()
    assert json.loads(sce(*args, "-f", "json").stdout)["reduction"] == "none"


@pytest.mark.parametrize("reduction", [None, "mean", "sum"])
def test_check_arrays_names_its_reduction(sce, reduction):
    args = ["check", "--arrays", str(SAMPLES / "dump_float32_correct.npz"), *given(reduction)]
    result = sce(*args)
    lines = result.stdout.splitlines()
    checked = next(n for n, line in enumerate(lines) if line.startswith("checked: "))
    assert lines[checked + 1] == f"reduction: {reduction or 'mean'}"
    assert json.loads(sce(*args, "-f", "json").stdout)["reduction"] == (reduction or "mean")


@pytest.mark.parametrize(
    "function, args, reduction",
    [
        ("implementation_batch.py:softmax_cross_entropy", [], "mean"),
        ("implementation_row.py:row_loss_and_gradient", ["--convention", "row"], "none"),
    ],
)
def test_sce_test_names_its_reduction(sce, tmp_path, function, args, reduction):
    folder = tmp_path / "samples"
    assert sce("samples", str(folder)).exit_code == 0
    spec = str(folder / function)
    lines = sce("test", spec, *args).stdout.splitlines()
    assert lines[-2] == f"reduction: {reduction}"
    assert json.loads(sce("test", spec, *args, "-f", "json").stdout)["reduction"] == reduction


@pytest.mark.parametrize("output_format", ["table", "markdown", "json"])
@pytest.mark.parametrize("reduction", [None, "mean"])
def test_steps_name_their_reduction(sce, output_format, reduction):
    result = sce("grad", "2", "3", "4", "-l", "1", "--steps", "-f", output_format, *given(reduction))
    assert result.exit_code == 0, result.stderr
    if output_format == "json":
        assert json.loads(result.stdout)["reduction"] == (reduction or "none")
    else:
        assert result.stdout.splitlines()[-1] == f"reduction: {reduction or 'none'}"
