"""Every assertion of sce.testing says its verdict on the first line, where pytest's short summary
shows it; every check_* returns a report and never raises for a wrong answer."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sce.testing import CrossEntropyReport, check_cross_entropy, check_implementation

NUMPY_KERNELS = '''
import numpy as np

def softmax_loss(z, y):
    z = z - z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(z).sum(axis=1))
    n = len(y)
    g = np.exp(z - log_sum[:, None])
    g[np.arange(n), y] -= 1
    return (log_sum - z[np.arange(n), y]).mean(), g / n

def sign_flipped(z, y):
    loss, g = softmax_loss(z, y)
    return loss, -g

def sum_not_mean(z, y):
    loss, g = softmax_loss(z, y)
    return loss * len(y), g * len(y)
'''


def summary_lines(tmp_path: Path, test_source: str) -> list[str]:
    """pytest run in a child process on one test file: the lines of its short summary ("FAILED …")."""
    (tmp_path / "kernels.py").write_text(NUMPY_KERNELS)
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(test_source))
    env = {**os.environ, "COLUMNS": "400", "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "test_sample.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return [line for line in result.stdout.splitlines() if line.startswith("FAILED ")]


def test_pytest_summary_names_the_verdict_of_assert_cross_entropy_close(tmp_path: Path) -> None:
    lines = summary_lines(
        tmp_path,
        """
        import numpy as np
        from sce.testing import assert_cross_entropy_close

        def test_probabilities_given_for_the_gradient():
            z = np.array([[2.0, 3.0, 4.0]], dtype=np.float32)
            p = np.exp(z - z.max())
            assert_cross_entropy_close(z, np.array([1]), p / p.sum())
        """,
    )
    assert len(lines) == 1
    _, _, message = lines[0].partition(" - ")
    assert message.startswith("AssertionError: not correct for float32: gradient worst error ")
    assert message.endswith("; mistake: −1 missing: these are the probabilities")


def test_pytest_summary_names_the_verdict_of_assert_implementation_correct(tmp_path: Path) -> None:
    lines = summary_lines(
        tmp_path,
        """
        from sce.testing import assert_implementation_correct

        def test_right():
            assert_implementation_correct("kernels:softmax_loss")

        def test_flipped():
            assert_implementation_correct("kernels:sign_flipped")
        """,
    )
    assert len(lines) == 1
    assert lines[0].startswith("FAILED test_sample.py::test_flipped - AssertionError: not correct: kernels:sign_flipped (")
    assert "cases fail); fix first: sign flipped: y − p instead of p − y" in lines[0]


def test_the_message_is_the_verdict_then_the_whole_report() -> None:
    z = np.array([[2.0, 3.0, 4.0], [1.0, -1.0, 0.5]], dtype=np.float32)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = (p - np.eye(3, dtype=np.float32)[[1, 0]]) / 2
    from sce.testing import assert_cross_entropy_close

    with pytest.raises(AssertionError) as raised:
        assert_cross_entropy_close(z, np.array([1, 0]), -grad)
    first, blank, *rest = str(raised.value).splitlines()
    assert first.startswith("not correct for float32: gradient worst error")
    assert blank == ""
    assert rest[-1] == "verdict: not correct for float32"  # the report as sce check --arrays prints it


def plain_float32(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return (p - np.eye(z.shape[1], dtype=np.float32)[labels]) / np.float32(len(labels))


def test_check_cross_entropy_reports_without_raising() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(6, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=6)
    right = check_cross_entropy(z, labels, plain_float32(z, labels))
    assert isinstance(right, CrossEntropyReport)
    assert (right.passed, right.verdict, right.mistake) == (True, "correct", None)
    # A float32 computation is within a few ulps of the exact gradient (its own rounding, not 0).
    assert 0 < right.worst_ulp < 16
    wrong = check_cross_entropy(z, labels, plain_float32(z, labels) * 6)
    assert (wrong.passed, wrong.verdict) == (False, "not_correct")
    assert wrong.mistake == "1/N missing: the sum over rows, not the mean"
    # Each entry is 6× the truth: 5× its size off, which is millions of ulps.
    assert wrong.worst_ulp > 1e6
    document = json.loads(json.dumps(wrong.to_dict(), allow_nan=False))
    assert (document["passed"], document["verdict"], document["mistake"]) == (False, "not_correct", wrong.mistake)
    assert document["quantities"]["gradient"]["wrong"] == 30


def test_check_cross_entropy_reports_a_nan_answer_as_infinitely_far() -> None:
    z = np.zeros((2, 3), np.float32)
    grad = plain_float32(z, np.array([0, 1]))
    grad[1, 2] = np.nan
    report = check_cross_entropy(z, np.array([0, 1]), grad)
    assert (report.passed, report.worst_ulp) == (False, math.inf)
    assert report.summary == "not correct for float32: gradient worst error inf ulp, not finite where the exact value is"
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))["worst_ulp"] == "inf"


def test_check_cross_entropy_raises_only_for_arrays_that_do_not_fit() -> None:
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="labels"):
        check_cross_entropy(z, np.array([0, 3]), np.zeros_like(z))
    with pytest.raises(ValueError, match="grad"):
        check_cross_entropy(z, np.array([0, 1]), np.zeros((2, 4), np.float32))


def write_kernels(tmp_path: Path) -> str:
    (tmp_path / "kernels.py").write_text(NUMPY_KERNELS)
    return str(tmp_path / "kernels.py")


def test_implementation_report_has_the_shared_report_attributes(tmp_path: Path) -> None:
    path = write_kernels(tmp_path)
    right = check_implementation(f"{path}:softmax_loss", reduction="mean")
    wrong = check_implementation(f"{path}:sum_not_mean", reduction="mean")
    assert (right.mistake, right.verdict.value) == (None, "correct")
    assert right.summary == f"correct: {path}:softmax_loss ({len(right.cases)} of {len(right.cases)} cases pass)"
    assert (wrong.passed, wrong.verdict.value) == (False, "not_correct")
    assert wrong.mistake == "1/N missing: the sum over rows, not the mean"
    assert wrong.summary.startswith(f"not correct: {path}:sum_not_mean (")
    # N times the mean gradient, for N ≥ 2 rows: off by at least its own size, millions of ulps.
    assert wrong.worst_ulp > 1e6
    assert 0 < right.worst_ulp < 1e3
    document = json.loads(json.dumps(wrong.to_dict(), allow_nan=False))
    assert (document["verdict"], document["mistake"]) == ("not_correct", wrong.mistake)
    assert len(document["cases"]) == len(wrong.cases)


def test_an_answer_its_type_cannot_judge_is_neither_passed_nor_named() -> None:
    """float16 logits near 1,000 at T = 0.05: z/T ≈ 20,000, where float16's ulp is 16; an all-zero
    gradient is neither right nor wrong there, and the assertion says so on its first line."""
    from sce.testing import assert_cross_entropy_close

    rng = np.random.default_rng(8)
    z = (rng.normal(size=(16, 2000)) * 3 + 1000).astype(np.float16)
    y = rng.integers(0, 2000, 16)
    report = check_cross_entropy(z, y, np.zeros_like(z), temperature=0.05)
    assert (report.passed, report.verdict, report.mistake) == (False, "cannot_be_judged", None)
    with pytest.raises(AssertionError) as raised:
        assert_cross_entropy_close(z, y, np.zeros_like(z), temperature=0.05)
    assert str(raised.value).splitlines()[0] == report.summary
    assert report.summary.startswith("cannot be judged in float16: ")
