"""The figures of a fused check's report say what they are: an answer that is not finite has a typical
error that is not finite (not the mean of the entries that are), and a hopeless answer's errors are
written with significant digits, not as 45-digit integers of float noise in a table 200 columns wide."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from sce.number_text import ulp_count
from sce.testing import check_linear_cross_entropy

F32 = np.float32


def _inputs(n: int = 8, d: int = 4, v: int = 6):  # noqa: ANN202
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((n, d)).astype(F32)
    classifier = (rng.standard_normal((v, d)) / 4).astype(F32)
    return hidden, classifier, rng.integers(0, v, n)


@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
def test_the_typical_error_of_an_answer_that_is_not_finite_is_not_finite(fill: float) -> None:
    # Every entry of ∂L/∂E NaN, and the loss: the report read "worst inf ulp … typical 0", the non-finite
    # entries left out of the typical error, which then described an answer that is not there.
    hidden, classifier, labels = _inputs()
    report = check_linear_cross_entropy(
        hidden, classifier, labels, loss=F32(fill), grad_hidden=np.full_like(hidden, fill)
    )
    assert not report.passed
    for output in (report.loss, report.grad_hidden):
        assert output is not None and math.isinf(output.rms_ulp), str(report)
        assert output.to_dict()["rms_ulp"] == "inf"
    assert "typical 0 " not in str(report) and "typical inf" in str(report)


def test_one_entry_not_finite_makes_the_typical_error_not_finite() -> None:
    hidden, classifier, labels = _inputs()
    z = hidden.astype(np.float64) @ classifier.astype(np.float64).T  # float32 products are exact in float64
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1
    grad_hidden = (p @ classifier.astype(np.float64) / len(labels)).astype(F32)
    grad_hidden[3, 1] = np.nan
    report = check_linear_cross_entropy(hidden, classifier, labels, grad_hidden=grad_hidden)
    assert report.grad_hidden is not None and not report.grad_hidden.passed
    assert math.isinf(report.grad_hidden.rms_ulp)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1789, "0.179"), (999.4, "999"), (123456.7, "123,457"), (999_999_999.0, "999,999,999"),
     (1e9, "1.000e+09"), (2.3092699999999998e43, "2.309e+43"), (math.inf, "inf"), (math.nan, "inf")],
)  # fmt: skip
def test_ulp_counts_are_written_with_significant_digits_past_a_billion(value: float, text: str) -> None:
    assert ulp_count(value) == text


FIGURE = re.compile(r"^(inf|–|\d{1,3}(,\d{3}){0,2}|\d\.\d{3}e\+\d+|\d+(\.\d+)?)$")


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_a_hopeless_answers_errors_are_not_printed_as_45_digit_integers(tmp_path, sce, quick: bool) -> None:  # noqa: ANN001
    # Every row ignored but the outputs nonzero: the exact gradients are 0 at an operands' size of 0, so the
    # errors are ~1e44 ulp; the table and the lines once printed "23,092,699,999,999,998,090,498,065,920,…".
    hidden, classifier, labels = _inputs(12, 8, 10)
    labels[:] = -100
    dump = tmp_path / "all_ignored.npz"
    np.savez(dump, hidden=hidden, classifier=classifier, labels=labels, grad_hidden=np.ones_like(hidden),
             grad_classifier=np.ones_like(classifier))  # fmt: skip
    result = sce("check", "--arrays", dump, *(["--quick"] if quick else []))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    table = lines[: lines.index("")]
    # The table's own layout (a failing output's mark "✗ beyond" makes it 103 wide) with figures of at most
    # 9 characters, never the figures' digits.
    assert max(len(line.rstrip()) for line in table) <= 105, "\n".join(table)
    for row in table[3:]:
        cells = row.split()
        figures = cells[2:7]
        assert all(FIGURE.match(cell) for cell in figures), row
    assert not re.search(r"\d{1,3}(,\d{3}){3,}", result.stdout), result.stdout  # nothing past 999,999,999
    assert re.search(r"grad_hidden: worst error \d\.\d{3}e\+\d+ ulp", result.stdout), result.stdout


def test_a_failing_table_fits_a_terminal_of_100_columns_by_dropping_the_baselines_column() -> None:
    import io

    from rich.console import Console

    from sce.render.linear_check import print_linear_check

    hidden, classifier, labels = _inputs(12, 8, 10)
    labels[:] = -100
    report = check_linear_cross_entropy(hidden, classifier, labels, loss=F32(1e30),
                                        grad_hidden=np.ones_like(hidden), grad_classifier=np.ones_like(classifier))  # fmt: skip
    tables = {}
    for width in (100, 140):
        written = io.StringIO()
        console = Console(file=written, force_terminal=True, width=width, color_system=None)
        print_linear_check(console, report, (12, 8, 10), "mean")
        tables[width] = written.getvalue().split("\n\n")[0].splitlines()
    assert max(len(line.rstrip()) for line in tables[100]) <= 100, "\n".join(tables[100])
    assert "baseline" not in tables[100][1] and "baseline" in tables[140][1]
    assert f"{2.0**149:.4g}" in tables[100][4]  # 1 where the truth is 0 at a size of 0: 2¹⁴⁹ ulps of 2⁻¹⁴⁹


def test_check_arrays_says_an_answer_is_not_finite_and_its_typical_error_is_inf(tmp_path, sce) -> None:  # noqa: ANN001
    hidden, classifier, labels = _inputs()
    grad_hidden = np.zeros_like(hidden)
    grad_hidden[2, 1] = np.nan
    dump = tmp_path / "one_nan.npz"
    np.savez(dump, hidden=hidden, classifier=classifier, labels=labels, grad_hidden=grad_hidden, loss=F32(np.inf))
    result = sce("check", "--arrays", dump)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    for name in ("loss", "grad_hidden"):
        row = next(line for line in lines if line.startswith(f"{name} ") and "float32" in line).split()
        assert row[2] == "inf" and row[5] == "inf", row  # worst and typical
        line = next(line for line in lines if line.startswith(f"{name}: worst error"))
        assert line.startswith(f"{name}: worst error inf ulp;") and line.endswith(
            "; beyond (not finite where the exact value is)"
        ), line
