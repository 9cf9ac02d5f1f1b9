"""`sce test`: grading a user's implementation (tests/implementations/ holds the implementations)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mpmath
import numpy as np
import pytest

from sce.grading import catalogue as mistakes
from sce.grading.implementations.cases import build_cases
from sce.grading.implementations.loading import UnusableImplementation
from sce.render.implementation_report import report_text
from sce.testing import Verdict, assert_implementation_correct, check_implementation

pytestmark = pytest.mark.columns(200)

HERE = Path(__file__).parent
IMPLEMENTATIONS = HERE / "implementations"
REPO = HERE.parent


def spec(name: str, function: str = "softmax_loss") -> str:
    return f"{IMPLEMENTATIONS / name}.py:{function}"


def case(report, name_start: str):  # type: ignore[no-untyped-def]
    return next(c for c in report.cases if c.name.startswith(name_start))


# --- correct implementations pass ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, function, options",
    [
        ("correct_vectorized", "softmax_loss", {}),
        ("correct_loops", "softmax_loss", {}),
        ("correct_log_softmax", "softmax_loss", {}),
        ("returns_lists", "softmax_loss", {}),
        ("global_state", "softmax_loss", {}),
        ("correct_row", "row_loss", {"convention": "row"}),
        ("correct_targets", "soft_loss", {"targets": True}),
        ("correct_grad_only", "softmax_grad", {"returns": "grad"}),
        # The gradient of the *sum* is right when the reduction is sum.
        ("sum_not_mean", "softmax_loss", {"reduction": "sum"}),
    ],
)
def test_correct_implementations_pass(name, function, options):
    report = check_implementation(spec(name, function), **options)
    assert report.passed, [(c.name, c.message) for c in report.failed]
    assert report.mistakes == []
    assert len(report.cases) >= 15


def test_float32_answers_are_judged_as_float32():
    report = check_implementation(spec("correct_float32"))
    assert report.passed
    # Errors of float32 size (~1e-8) that would fail a float64 answer by far.
    assert max(c.max_error for c in report.cases) > 1e-9
    assert case(report, "float32 logits").message == "keeps float32"
    upcast = check_implementation(spec("correct_vectorized"))
    assert case(upcast, "float32 logits").message == "keeps float32"


def test_torch_implementation_passes():
    pytest.importorskip("torch")
    report = check_implementation(spec("correct_torch"))
    assert report.framework == "torch"
    assert report.passed, [(c.name, c.message) for c in report.failed]


def test_regression_pytorchs_own_cross_entropy_passes_without_a_long_cast():
    pytest.importorskip("torch")
    report = check_implementation(spec("plain_torch"))
    assert report.passed, [(c.name, c.message) for c in report.failed]
    assert "labels as int32" not in [c.name for c in report.cases]


def test_the_int32_labels_case_is_left_out_for_pytorch_alone():
    from sce.grading.implementations.cases import for_framework

    cases = build_cases()
    assert "labels as int32" in [c.name for c in cases]
    assert [c.name for c in for_framework(cases, "torch")] == [c.name for c in cases if c.name != "labels as int32"]
    assert for_framework(cases, "jax") == cases and for_framework(cases, "numpy") == cases


def test_regression_a_float16_answer_for_float64_logits_says_it_cannot_hold_the_precision():
    """A kernel returning float16 for float64 logits passed by float16's allowances (0.5 to 9.4
    per entry at large logits), so that a gradient missing its 1/N passed some cases, and
    nothing said the precision was thrown away. Every case fails, saying so."""
    report = check_implementation(spec("half_float16"))
    assert not report.passed and len(report.failed) == len(report.cases)
    for case in report.failed:
        assert case.note.startswith("returns float16 for float"), case.note
        assert "logits: it cannot hold the precision asked for" in case.note
    off = check_implementation(spec("half_float16_off"))
    assert not off.passed
    assert "the gradient is off by" in off.failed[0].message


def test_regression_a_float16_gradient_missing_its_1_over_n_fails_every_batch_case():
    report = check_implementation(spec("half_float16_no_mean"))
    assert len(report.failed) == len(report.cases)
    named = [case for case in report.failed if case.mistake is not None]
    assert named and all(case.mistake.name.startswith("1/N missing") for case in named)


def test_regression_a_bfloat16_answer_is_refused_for_what_it_is(sce):
    """A bfloat16 answer was refused as "the loss should be a number; found an array of
    bfloat16": it is a number. sce test's floor of 16 ulps is 12 % in bfloat16, too loose to
    judge, so it says so and points to check --arrays."""
    pytest.importorskip("ml_dtypes")
    result = sce("test", spec("half_bfloat16"))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "sce: error: the loss is bfloat16: sce test grades float16, float32 and float64 answers; grade a bfloat16 "
        "kernel's arrays, dumped, with sce check"
    )


def test_jax_implementations_are_graded_in_jax():
    # Run with jax 0.10.2 installed: a correct one passes; one without the max shift is named.
    pytest.importorskip("jax")
    report = check_implementation(spec("correct_jax"))
    assert report.framework == "jax"
    assert report.passed, [(c.name, c.message) for c in report.failed]
    wrong = check_implementation(spec("no_max_shift_jax"))
    assert not wrong.passed
    assert wrong.mistakes[0] == mistakes.NO_MAX_SHIFT


def test_torch_file_without_torch_installed_is_one_line(sce):
    if _installed("torch"):
        pytest.skip("torch is installed")
    result = sce("test", spec("correct_torch"))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "sce: error: importing correct_torch.py raised ModuleNotFoundError: No module named 'torch' "
        "(correct_torch.py, line 3: import torch)"
    )


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize(
    "sample, options",
    [
        ("implementation_batch.py:softmax_cross_entropy", []),
        ("implementation_row.py:row_loss_and_gradient", ["--convention", "row"]),
        ("implementation_targets.py:soft_cross_entropy", ["--targets"]),
        ("implementation_grad_only.py:softmax_backward", ["--returns", "grad"]),
        ("implementation_torch.py:softmax_cross_entropy", []),
    ],
)
def test_the_samples_pass_as_the_readme_runs_them(sample, options, sce):
    if "torch" in sample:
        pytest.importorskip("torch")
    result = sce("test", str(REPO / "sce" / "samples" / sample), *options)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("verdict: correct (")


# --- each named mistake ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("no_max_shift", [mistakes.NO_MAX_SHIFT]),
        ("sum_not_mean", [mistakes.SUM_NOT_MEAN]),
        ("mean_twice", [mistakes.MEAN_TWICE]),
        ("sign_flipped", [mistakes.SIGN_FLIPPED]),
        ("probabilities_returned", [mistakes.PROBABILITIES]),
        ("label_off_by_one", [mistakes.LABEL_PLUS_ONE]),
        ("one_based", [mistakes.ONE_BASED]),
        ("wrong_axis", [mistakes.WRONG_AXIS]),
        ("in_place", [mistakes.LOGITS_IN_PLACE]),
        ("one_row_for_all", [mistakes.ONE_ROW_FOR_ALL]),
        ("log10_loss", [mistakes.LOG10, mistakes.LOG_OF_ZERO]),
        ("log2_loss", [mistakes.LOG2, mistakes.LOG_OF_ZERO]),
        ("not_normalised", [mistakes.NOT_NORMALISED, mistakes.LOG_OF_ZERO]),
        ("log_of_probability", [mistakes.LOG_OF_ZERO]),
        ("jacobian_route", [mistakes.DIVIDED_BY_P]),
    ],
)
def test_each_mistake_is_named(name, expected):
    report = check_implementation(spec("jacobian_route", "jacobian_route") if name == "jacobian_route" else spec(name))
    # A mistake of range alone (the formula right, its arithmetic overflowing) is "correct, not robust".
    of_range_only = name in ("no_max_shift", "log_of_probability", "jacobian_route")
    assert report.verdict is (Verdict.not_robust if of_range_only else Verdict.not_correct)
    assert report.failed
    assert report.mistakes == expected
    assert report.fix_first is not None and report.fix_first.startswith(expected[0].name)


def test_no_max_shift_fails_exactly_the_large_logit_cases():
    report = check_implementation(spec("no_max_shift"))
    assert [c.name for c in report.failed] == [
        "large logits: 1000 and 0",
        "huge logits: 1e4",
        "very negative logits: -1000",
        "the label's probability rounds to 0: [0, 1000], label 0",
    ]


def test_a_missing_mean_passes_the_one_row_cases():
    # With N = 1, the sum and the mean are the same: nothing to see there.
    report = check_implementation(spec("sum_not_mean"))
    assert case(report, "the textbook example").passed
    assert case(report, "a batch of one row").passed
    assert case(report, "small random batch (4 rows").mistake == mistakes.SUM_NOT_MEAN


def test_the_mean_is_wrong_for_reduction_sum():
    report = check_implementation(spec("correct_vectorized"), reduction="sum")
    assert report.mistakes == [mistakes.MEAN_NOT_SUM]


def test_in_place_write_into_a_read_only_input_shows_the_users_line():
    report = check_implementation(spec("in_place"))
    read_only = case(report, "read-only inputs")
    assert read_only.message == (
        "ValueError: output array is read-only (in_place.py, line 9: logits -= logits.max(axis=1, keepdims=True))"
    )
    assert read_only.mistake == mistakes.LOGITS_IN_PLACE
    assert case(report, "the textbook example").message == "right answer, but the function wrote into its input"


def test_nan_everywhere_is_not_called_a_missing_max_shift():
    report = check_implementation(spec("returns_nan"))
    assert not report.passed and report.mistakes == []
    assert case(report, "the textbook example").message == "the gradient has NaN entries; the loss has NaN entries"


# --- errors and allowances from independent sources ------------------------------------------------


def test_the_posts_rounded_numbers_are_off_by_what_mpmath_says():
    mpmath.mp.dps = 40
    exps = [mpmath.e**2, mpmath.e**3, mpmath.e**4]
    p = [e / sum(exps) for e in exps]
    exact_gradient = [p[0], p[1] - 1, p[2]]
    expected = max(abs(mpmath.mpf(g) - e) for g, e in zip(("0.090", "-0.775", "0.665"), exact_gradient))
    report = check_implementation(spec("posts_rounded_answer"))
    first = report.cases[0]
    assert not first.passed
    assert first.max_error == pytest.approx(float(expected), rel=1e-12)  # 0.01972848…
    assert first.allowance < 1e-13


def test_an_error_of_1e12_fails_where_logits_are_small():
    report = check_implementation(spec("slightly_off"))
    first = report.cases[0]
    assert not first.passed and first.max_error == pytest.approx(1e-12, rel=1e-3)
    assert first.error_ratio > 100
    # At logits of 1e4 the inputs' own last digits are worth ~1e-12: that case is allowed more. It fails all the
    # same, by its signs: +1e-12 at a label whose p − 1 is −e^−10000, which no rounding makes positive.
    huge = case(report, "huge logits: 1e4")
    assert huge.max_error <= huge.allowance and not huge.passed
    assert "gradient entries of a sign no rounding gives" in huge.message


def test_allowance_is_a_few_ulps_for_the_posts_example():
    report = check_implementation(spec("correct_vectorized"))
    first = report.cases[0]
    eps = np.finfo(np.float64).eps
    # The loss is 1.4076…: at least 8 ulps of it, and no more than a few hundred.
    assert 8 * eps < first.allowance < 300 * eps


# --- functions that misbehave -----------------------------------------------------------------------


def test_a_hanging_function_times_out_and_the_run_finishes():
    started = time.monotonic()
    report = check_implementation(spec("hangs"), timeout=0.5)
    assert time.monotonic() - started < 10
    assert [c.message for c in report.cases[:2]] == ["timed out after 0.5 s"] * 2
    assert report.cases[2].message == "not run: the 2 cases before timed out"
    assert not any(c.passed for c in report.cases)


def test_a_case_that_hangs_does_not_stop_the_others():
    report = check_implementation(spec("hangs_on_many_classes"), timeout=1)
    assert [(c.name, c.message) for c in report.failed] == [("a thousand classes (K = 1000)", "timed out after 1 s")]


@pytest.mark.parametrize(
    "name, message",
    [
        ("raises", "ZeroDivisionError: division by zero (raises.py, line 9: scale = 1 / (n - len(labels)))"),
        ("calls_exit", "sys.exit(3) (calls_exit.py, line 7: sys.exit(3))"),
        ("keyboard_interrupt", "KeyboardInterrupt (keyboard_interrupt.py, line 5: raise KeyboardInterrupt)"),
        ("recursion", "RecursionError: maximum recursion depth exceeded "
                      "(recursion.py, line 5: return softmax_loss(logits, labels))"),
        ("calls_os_exit", "the process running your function ended during the call "
                          "(exit status 7: os._exit() or a crash)"),
    ],
)
def test_a_function_that_raises_or_exits_fails_its_cases_with_its_own_line(name, message, sce):
    result = sce("test", spec(name), "--format", "json")
    assert result.exit_code == 1, result.output
    assert result.stderr == ""
    cases = json.loads(result.stdout)["cases"]
    assert cases[0]["message"] == message
    assert not any(c["passed"] for c in cases)


def test_a_function_that_keeps_ending_its_process_is_given_up_on():
    report = check_implementation(spec("calls_os_exit"))
    assert report.cases[2].message == "not run: the 2 cases before ended the process"


def test_prints_do_not_reach_the_json_output(sce):
    result = sce("test", spec("prints"), "--format", "json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["passed"] is True
    # The prints are data in each case's "output", nowhere else.
    assert document["cases"][0]["output"]["stdout"].startswith("importing my homework\n")
    for each in document["cases"]:
        del each["output"]
    assert "importing my homework" not in json.dumps(document) and "importing" not in result.stderr


# --- functions that cannot be called as configured: exit 2, one line -------------------------------

FIRST = "for the textbook example: [2, 3, 4], label 1"


@pytest.mark.parametrize(
    "name, message",
    [
        ("wrong_signature", "softmax_loss takes (W, X, y, reg); with --convention batch sce calls "
                            "softmax_loss(logits, labels) with 2 arguments"),
        ("returns_three", f"expected a pair (loss, grad); found a tuple of 3, {FIRST}"),
        ("returns_none", f"expected a pair (loss, grad); found None, {FIRST}"),
        ("returns_generator", f"expected a pair (loss, grad); found a generator, {FIRST}"),
        ("returns_loss_only", "expected a pair (loss, grad); found a number "
                              f"(if it returns only the loss, use --returns loss), {FIRST}"),
        ("returns_text", f"the loss should be a number; found a str, {FIRST}"),
        ("returns_huge", f"the gradient should be an array of shape (1, 3); found an array of shape (10000000,), {FIRST}"),
    ],
)
def test_unusable_functions_are_one_line_and_exit_2(name, message, sce):
    result = sce("test", spec(name))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"sce: error: {message}\n"


def test_gradient_only_function_without_returns_grad_gets_a_hint(sce):
    result = sce("test", spec("correct_grad_only", "softmax_grad"))
    assert result.exit_code == 2
    assert "found an array of shape (1, 3) (if it returns only the gradient, use --returns grad)" in result.stderr


def test_bad_specs(tmp_path, monkeypatch, sce):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.py").write_text("def f(logits, labels)\n    return 1\n")
    (tmp_path / "explodes.py").write_text("import numpy\n\nraise RuntimeError('not today')\n")
    (tmp_path / "hw.py").write_text("def softmax_loss_naive(a, b):\n    pass\n\n\ndef helper(x, y):\n    pass\n")
    cases = {
        "missing.py:f": "missing.py: no such file",
        "hw.py:": "'hw.py:': say which function to test, as FILE.py:FUNCTION or package.module:FUNCTION",
        "hw.py": "'hw.py': say which function to test, as FILE.py:FUNCTION or package.module:FUNCTION",
        "hw.py:softmax_loss": "hw.py has no function 'softmax_loss'; it defines softmax_loss_naive, helper",
        "broken.py:f": "broken.py, line 1: SyntaxError: expected ':'",
        "explodes.py:f": "importing explodes.py raised RuntimeError: not today (explodes.py, line 3: "
                         "raise RuntimeError('not today'))",
        "no_such_package.module:f": "no module named 'no_such_package.module' (run sce test from the folder "
                                    "that holds it, or give FILE.py:FUNCTION)",
    }
    for given, message in cases.items():
        result = sce("test", given)
        assert (result.exit_code, result.stderr) == (2, f"sce: error: {message}\n"), given


def test_a_module_spec_works_from_its_folder(monkeypatch, sce):
    monkeypatch.chdir(REPO)
    result = sce("test", "tests.implementations.correct_vectorized:softmax_loss")
    assert result.exit_code == 0, result.output


def test_option_problems(sce):
    result = sce("test", spec("correct_row", "row_loss"), "--convention", "row", "--reduction", "sum")
    assert (result.exit_code, result.stderr) == (
        2, "sce: error: --reduction goes with --convention batch; a row function returns its row's own loss\n")
    result = sce("test", spec("correct_vectorized"), "--timeout", "0")
    assert (result.exit_code, result.stderr) == (
        2, "sce: error: --timeout 0.0: give the seconds each case may take, e.g. 3 (at most 3600)\n")
    result = sce("test", spec("correct_vectorized"), "--timeout", "1e12")
    assert result.exit_code == 2 and "(at most 3600)" in result.stderr
    result = sce("test", spec("correct_vectorized"), "--seed", "-1")
    assert (result.exit_code, result.stderr) == (2, "sce: error: --seed -1: give a whole number >= 0\n")


# --- output ---------------------------------------------------------------------------------------


def test_table_verdict_and_what_to_fix_first(sce):
    result = sce("test", spec("sign_flipped"))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    # y − p is off by 2|p − y|: beyond the allowance in every case but [0, 40]'s, where 2|p − y| ≈ e^−40 is
    # within it; there its entries have signs no rounding gives (p − 1 > 0 at the label), so that case fails too.
    assert "verdict: not correct (17 of 17 cases fail)" in lines
    assert (
        "fix first: sign flipped: y − p instead of p − y: the gradient is p − y, probabilities minus the target "
        "(case “the textbook example: [2, 3, 4], label 1”)"
    ) in lines


def test_a_mistake_of_range_alone_is_correct_not_robust(sce):
    result = sce("test", spec("no_max_shift"), env={"COLUMNS": "300"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "verdict: correct, not robust (13 of 17 cases pass; 4 fail only for their extreme logits)" in lines
    assert lines[-2:] == [
        "not robust: no max shift: exp overflows or underflows, in cases “large logits: 1000 and 0”, “huge logits: "
        "1e4”, “very negative logits: -1000”, “the label's probability rounds to 0: [0, 1000], label 0”",
        "  fix: subtract each row's largest logit before exp, softmax(z) = softmax(z − max z)",
    ]
    assert not any(line.startswith("fix first") for line in lines)
    row = next(line for line in lines if line.startswith("large logits: 1000 and 0"))
    assert "✗ fail" in row and "no max shift" in row
    row = next(line for line in lines if line.startswith("the textbook example"))
    assert "✓ pass" in row
    assert sce("test", spec("no_max_shift"), "--strict").exit_code == 1
    document = json.loads(sce("test", spec("no_max_shift"), "-f", "json").stdout)
    assert (document["verdict"], document["passed"]) == ("not_robust", True)


def test_the_textbook_solution_is_correct_not_robust(sce, tmp_path):
    # shift, softmax, −log p[y], p[y] −= 1, /N: only −log p of [0, 1000]'s label 0 (p = e^−1000 → 0) fails.
    (tmp_path / "textbook.py").write_text(
        "import numpy as np\n\n"
        "def softmax_loss(logits, labels):\n"
        "    n = logits.shape[0]\n"
        "    shifted = logits - logits.max(axis=1, keepdims=True)\n"
        "    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)\n"
        "    loss = -np.log(p[np.arange(n), labels]).mean()\n"
        "    p[np.arange(n), labels] -= 1\n"
        "    return loss, p / n\n"
    )
    result = sce("test", f"{tmp_path / 'textbook.py'}:softmax_loss")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "verdict: correct, not robust (16 of 17 cases pass; 1 fails only for its extreme logits)" in lines
    assert lines[-2:] == [
        "not robust: log of a probability that rounded to 0 (−log p gives inf), in case “the label's probability "
        "rounds to 0: [0, 1000], label 0”",
        "  fix: compute the loss as log Σ exp(z − max) − (z_c − max) (log-sum-exp) instead of −log p_c",
    ]
    report = check_implementation(f"{tmp_path / 'textbook.py'}:softmax_loss")
    assert (report.verdict.value, report.passed) == ("not_robust", True)
    assert assert_implementation_correct(f"{tmp_path / 'textbook.py'}:softmax_loss") is not None
    with pytest.raises(AssertionError, match="correct, not robust"):
        assert_implementation_correct(f"{tmp_path / 'textbook.py'}:softmax_loss", strict=True)


def test_a_finite_wrong_answer_on_extreme_logits_is_not_correct(tmp_path):
    # Clipping p at 1e-12 before the log: every ordinary case passes, but [0, 1000]'s loss is
    # −log 1e-12 = 27.6 where it is 1000: a silently wrong number, not a failure of range.
    (tmp_path / "clipped.py").write_text(
        "import numpy as np\n\n"
        "def softmax_loss(logits, labels):\n"
        "    n = logits.shape[0]\n"
        "    shifted = logits - logits.max(axis=1, keepdims=True)\n"
        "    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)\n"
        "    loss = -np.log(np.maximum(p[np.arange(n), labels], 1e-12)).mean()\n"
        "    p[np.arange(n), labels] -= 1\n"
        "    return loss, p / n\n"
    )
    report = check_implementation(f"{tmp_path / 'clipped.py'}:softmax_loss")
    assert [case.name for case in report.failed] == ["the label's probability rounds to 0: [0, 1000], label 0"]
    assert report.verdict is Verdict.not_correct and not report.passed


def test_correct_verdict(sce):
    result = sce("test", spec("correct_vectorized"))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "verdict: correct (17 of 17 cases pass)"


def test_json_document_has_exactly_the_promised_keys(sce):
    result = sce("test", spec("sign_flipped"), "-f", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert list(document) == ["verdict", "passed", "function", "reduction", "options", "cases", "mistakes"]
    assert document["verdict"] == "not_correct"
    assert document["passed"] is False
    assert document["function"].endswith("sign_flipped.py:softmax_loss")
    assert document["mistakes"] == ["sign flipped: y − p instead of p − y"]
    first = document["cases"][0]
    assert list(first) == [
        "name", "passed", "max_error", "allowance", "mistake", "message", "fails_only_in_range",
        "inputs", "expected", "given", "agrees", "output",
    ]
    # p − y against y − p: twice the largest |gradient entry|, 2·|p₁ − 1| = 2·0.7552715…
    assert first["max_error"] == pytest.approx(2 * 0.7552715289452023, rel=1e-12)


def test_python_dash_m_in_a_separate_process():
    done = subprocess.run(
        [sys.executable, "-m", "sce", "test", spec("prints"), "--format", "json"],
        capture_output=True, text=True, cwd=REPO, check=False,
        env={k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout)["passed"] is True


# --- the Python API ---------------------------------------------------------------------------------


def test_assert_implementation_correct():
    sys.path.insert(0, str(IMPLEMENTATIONS))
    try:
        from correct_vectorized import softmax_loss as right  # type: ignore[import-not-found]
        from sign_flipped import softmax_loss as flipped  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(IMPLEMENTATIONS))
    assert assert_implementation_correct(right).passed
    with pytest.raises(AssertionError) as raised:
        assert_implementation_correct(flipped)
    text = str(raised.value)
    assert "sign flipped: y − p instead of p − y" in text and "verdict: not correct" in text


def test_a_lambda_cannot_run_in_a_child_process():
    with pytest.raises(UnusableImplementation, match="not defined at the top level"):
        check_implementation(lambda logits, labels: (0.0, logits))
    with pytest.raises(AssertionError, match="not defined at the top level"):
        assert_implementation_correct(lambda logits, labels: (0.0, logits))


def test_bad_options_are_value_errors():
    with pytest.raises(ValueError, match="convention='rows'"):
        check_implementation(spec("correct_vectorized"), convention="rows")


def test_seed_varies_only_the_random_cases():
    zero, one = build_cases(0), build_cases(1)
    assert [c.name for c in zero] == [c.name for c in one]
    assert np.array_equal(zero[0].logits, [[2.0, 3.0, 4.0]])
    assert np.array_equal(zero[0].logits, one[0].logits)
    assert not np.array_equal(zero[1].logits, one[1].logits)
    assert np.array_equal(build_cases(1)[1].logits, one[1].logits)  # deterministic


def test_ctrl_c_stops_sce_and_the_child_process(tmp_path):
    pid_file = tmp_path / "pid"
    (tmp_path / "spin.py").write_text(
        "import os\n\n\ndef f(logits, labels):\n"
        f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    while True:\n        pass\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "sce", "test", f"{tmp_path / 'spin.py'}:f", "--timeout", "60"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the function never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)
    assert process.returncode == 130
    # The child is killed on the way out; under load its exit can take a moment to show.
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_oddities():
    odd = str(IMPLEMENTATIONS / "oddities.py")
    report = check_implementation(f"{odd}:bad_error")
    assert report.cases[0].message == "BadError: (its message cannot be shown) (oddities.py, line 21: raise BadError())"
    report = check_implementation(f"{odd}:bad_array")
    assert report.cases[0].message == (
        'converting the answer raised RuntimeError: no array for you (oddities.py, line 8: '
        'raise RuntimeError("no array for you"))'
    )
    report = check_implementation(f"{odd}:upcast")
    assert report.passed and case(report, "float32 logits").message == "returns float64 for float32 logits"
    report = check_implementation(f"{odd}:labels_in_place")
    assert report.mistakes[0] == mistakes.LABELS_IN_PLACE
    assert check_implementation(f"{odd}:defaults").passed  # an extra parameter with a default is fine
    for function, message in (
        ("complex_out", "the gradient should be an array of shape (1, 3); found an array of complex128, " + FIRST),
        ("kwonly", "kwonly takes (logits, *, labels); with convention='batch' sce calls kwonly(logits, labels) "
                   "with 2 arguments"),
        ("Softmax", "expected a pair (loss, grad); found a Softmax, " + FIRST),
    ):
        with pytest.raises(UnusableImplementation) as raised:
            check_implementation(f"{odd}:{function}")
        assert str(raised.value) == message


def test_torch_tensors_in_and_out_with_a_stand_in_torch(tmp_path):
    # torch is not a dependency: a minimal stand-in checks the conversions both ways.
    (tmp_path / "torch.py").write_text(
        "class Tensor:\n"
        "    def __init__(self, array):\n        self.array = array\n"
        "    def detach(self):\n        return self\n"
        "    def cpu(self):\n        return self\n"
        "    def numpy(self):\n        return self.array\n\n\n"
        "def from_numpy(array):\n    return Tensor(array)\n"
    )
    (tmp_path / "homework.py").write_text(
        "import numpy as np\nimport torch\n\n\n"
        "def f(logits, labels):\n"
        "    assert isinstance(logits, torch.Tensor) and isinstance(labels, torch.Tensor)\n"
        "    z, y = logits.numpy(), labels.numpy()\n"
        "    n = z.shape[0]\n"
        "    s = z - z.max(axis=1, keepdims=True)\n"
        "    t = np.exp(s).sum(axis=1, keepdims=True)\n"
        "    g = np.exp(s) / t\n"
        "    g[np.arange(n), y] -= 1\n"
        "    loss = np.mean(np.log(t[:, 0]) - s[np.arange(n), y])\n"
        "    return torch.from_numpy(np.asarray(loss)), torch.from_numpy(g / n)\n"
    )
    report = check_implementation(f"{tmp_path / 'homework.py'}:f")
    assert report.framework == "torch"
    assert report.passed, [(c.name, c.message) for c in report.failed]


def test_framework_not_installed_is_one_line(sce):
    if _installed("jax"):
        pytest.skip("jax is installed")
    result = sce("test", spec("correct_vectorized"), "--framework", "jax")
    assert (result.exit_code, result.stderr) == (2, "sce: error: --framework jax: JAX is not installed here\n")


# --- the failing case shown -----------------------------------------------------------------------


def _softmax_row(logits: list[int]) -> list[float]:
    exps = [mpmath.exp(mpmath.mpf(z)) for z in logits]
    return [float(e / mpmath.fsum(exps)) for e in exps]


def test_a_failing_case_shows_its_inputs_and_expected_beside_given(sce):
    result = sce("test", spec("sign_flipped"), "-f", "json")
    first = json.loads(result.stdout)["cases"][0]
    assert first["inputs"] == {"rows": [0], "classes": [0, 1, 2], "logits": [[2.0, 3.0, 4.0]], "labels": [1]}
    p = _softmax_row([2, 3, 4])
    expected = [p[0], p[1] - 1, p[2]]
    assert first["expected"]["gradient"][0] == pytest.approx(expected, rel=1e-14)
    assert first["given"]["gradient"][0] == pytest.approx([-g for g in expected], rel=1e-14)
    assert first["agrees"] == {"gradient": [[False, False, False]], "loss": True}
    loss = float(mpmath.log(mpmath.fsum(mpmath.exp(z) for z in (2, 3, 4))) - 3)
    assert first["expected"]["loss"] == pytest.approx(loss, rel=1e-15)
    passing = json.loads(sce("test", spec("correct_vectorized"), "-f", "json").stdout)["cases"][0]
    assert passing["passed"] and (passing["inputs"], passing["expected"], passing["given"]) == (None, None, None)

    lines = sce("test", spec("sign_flipped")).stdout.splitlines()
    start = lines.index("✗ the textbook example: [2, 3, 4], label 1: the gradient is off by 1.51 (allowed 2.9e-15)")
    # 2·|p₁ − 1| = 2·0.75527 = 1.51; the rows: p − y rounded to 5 digits, and its negative.
    assert [line.split() for line in lines[start + 1 : start + 7]] == [
        ["row", "class", "logit", "label", "expected", "∂L/∂z", "given", "∂L/∂z"],
        ["─" * len(lines[start + 2].strip())],
        ["0", "0", "2", "0.090031", "-0.090031", "✗"],
        ["0", "1", "3", "●", "-0.75527", "0.75527", "✗"],
        ["0", "2", "4", "0.66524", "-0.66524", "✗"],
        ["loss:", "expected", "1.4076,", "given", "1.4076", "✓"],
    ]
    assert "14 other failing cases shown in full by --format json" in lines


def test_a_large_case_is_cut_to_its_worst_row(tmp_path, sce):
    (tmp_path / "last_row.py").write_text(
        "import numpy as np\n\n"
        "def softmax_loss(logits, labels):\n"
        "    n = logits.shape[0]\n"
        "    shifted = logits - logits.max(axis=1, keepdims=True)\n"
        "    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)\n"
        "    loss = (np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(n), labels]).mean()\n"
        "    p[np.arange(n), labels] -= 1\n"
        "    p[-1] *= 2  # the last row's gradient doubled\n"
        "    return loss, p / n\n"
    )
    report = check_implementation(f"{tmp_path / 'last_row.py'}:softmax_loss")
    batch = case(report, "small random batch (8 rows, 5 classes)")
    assert batch.evidence is not None
    assert (batch.evidence.rows, batch.evidence.classes) == ((7,), (0, 1, 2, 3, 4))
    assert batch.evidence.wrong_elsewhere == {"gradient": 0, "loss": 0}
    assert batch.evidence.logits.tolist() == [build_cases()[2].logits[7].tolist()]
    wide = case(report, "a thousand classes (K = 1000)").evidence
    assert wide is not None and wide.rows == (2,) and len(wide.classes) == 8
    label = int(build_cases()[4].labels[2])
    assert label in wide.classes  # the label's class, and the 7 worst others
    lines = sce("test", f"{tmp_path / 'last_row.py'}:softmax_loss").stdout.splitlines()
    assert "  shown: row 7 of 8, the one with the most wrong entries; 0 wrong entries elsewhere" in lines


# --- what the function printed ---------------------------------------------------------------------

PRINTS_WHILE_FAILING = (
    "import sys\n"
    "import numpy as np\n\n"
    "print('importing')\n\n"
    "def softmax_loss(logits, labels):\n"
    "    n = logits.shape[0]\n"
    "    print('shape', logits.shape)\n"
    "    print('\\x1b[31mred\\x1b[0m and back\\rover \\u202eflipped', file=sys.stderr)\n"
    "    shifted = logits - logits.max(axis=1, keepdims=True)\n"
    "    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)\n"
    "    loss = (np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(n), labels]).mean()\n"
    "    p[np.arange(n), labels] -= 1\n"
    "    return loss, p  # the mean's 1/N left out of the gradient\n"
)


def test_a_failing_case_shows_what_the_function_printed_escaped(tmp_path, sce):
    (tmp_path / "prints_while_failing.py").write_text(PRINTS_WHILE_FAILING)
    function = f"{tmp_path / 'prints_while_failing.py'}:softmax_loss"
    lines = [line.rstrip() for line in sce("test", function).stdout.splitlines()]
    start = lines.index("✗ small random batch (4 rows, 3 classes): the gradient is off by 0.748 (allowed 1e-15)")
    block = lines[start : lines.index("", start)]
    assert block[-4:] == [
        "  stdout:",
        "  │ shape (4, 3)",
        "  stderr:",
        "  │ \\x1b[31mred\\x1b[0m and back\\rover \\u202eflipped",
    ]
    assert not any("\x1b" in line or "\r" in line or "\u202e" in line for line in lines)

    document = sce("test", function, "-f", "json").stdout
    assert "\\u001b[31mred" in document and "\\u202eflipped" in document  # escaped in the JSON text too
    assert not any(character in document for character in "\x1b\r\u202e")
    cases = json.loads(document)["cases"]
    # The first case also holds what importing the file printed; JSON keeps the text as written.
    assert cases[0]["output"] == {
        "stdout": "importing\nshape (1, 3)\n",
        "stderr": "\x1b[31mred\x1b[0m and back\rover \u202eflipped\n",
        "stdout_left_out": 0,
        "stderr_left_out": 0,
    }
    assert cases[1]["output"]["stdout"] == "shape (4, 3)\n"


def test_show_output_shows_every_case_that_printed(sce):
    plain = sce("test", spec("prints")).stdout
    assert "importing my homework" not in plain  # a passing case's output only with --show-output
    lines = [line.rstrip() for line in sce("test", spec("prints"), "--show-output").stdout.splitlines()]
    start = lines.index("✓ the textbook example: [2, 3, 4], label 1: what the function printed")
    assert lines[start + 1 : start + 7] == [
        "  stdout:",
        "  │ importing my homework",
        "  │ logits: [[2. 3. 4.]]",
        '  │ {"passed": false}',
        "  stderr:",
        "  │ to stderr",
    ]
    assert lines[-1] == "verdict: correct (17 of 17 cases pass)"


def test_output_is_bounded_and_kept_when_a_case_times_out(tmp_path):
    (tmp_path / "chatty.py").write_text(
        "import time\n\n"
        "def softmax_loss(logits, labels):\n"
        "    print('x' * 9999)\n"
        "    if logits.shape[1] == 1000:\n"
        "        print('stuck', flush=True)\n"
        "        time.sleep(60)\n"
        "    return 0.0, logits\n"
    )
    report = check_implementation(f"{tmp_path / 'chatty.py'}:softmax_loss", timeout=1)
    shown = report_text(report, width=300).splitlines()
    assert f"  │ {'x' * 200} … (3,896 more characters)" in [line.rstrip() for line in shown]  # 4096 kept
    assert "  │ … 5,904 more bytes not kept" in [line.rstrip() for line in shown]  # 10000 − 4096
    first = report.cases[0].output
    # 9999 x's and a newline: 10000 bytes, of which the first 4096 are kept.
    assert (first.stdout, first.stdout_left_out) == ("x" * 4096, 10000 - 4096)
    stuck = case(report, "a thousand classes")
    assert stuck.note.startswith("timed out")
    assert stuck.output.stdout_left_out == 10000 + 6 - 4096 and stuck.output.stdout == "x" * 4096


def test_pure_python_that_overflows_is_correct_not_robust(tmp_path):
    # math.exp without the shift: OverflowError at exp(1000) (also in [0, 1000]), ZeroDivisionError where
    # every exp underflows to 0 (-1000); right on every ordinary case.
    (tmp_path / "pure.py").write_text(
        "import math\n\n"
        "def softmax_loss(logits, labels):\n"
        "    n, k = len(logits), len(logits[0])\n"
        "    loss, grad = 0.0, []\n"
        "    for row, label in zip(logits.tolist(), labels.tolist()):\n"
        "        exps = [math.exp(z) for z in row]\n"
        "        total = sum(exps)\n"
        "        loss -= math.log(exps[label] / total)\n"
        "        grad.append([(e / total - (j == label)) / n for j, e in enumerate(exps)])\n"
        "    return loss / n, grad\n"
    )
    report = check_implementation(f"{tmp_path / 'pure.py'}:softmax_loss")
    assert [c.name for c in report.failed] == [
        "large logits: 1000 and 0",
        "huge logits: 1e4",
        "very negative logits: -1000",
        "the label's probability rounds to 0: [0, 1000], label 0",
    ]
    assert [c.note.split(":")[0] for c in report.failed] == [
        "OverflowError", "OverflowError", "ZeroDivisionError", "OverflowError",
    ]
    assert report.verdict is Verdict.not_robust
    assert list(report.range_failures) == [mistakes.NO_MAX_SHIFT]


def test_tiny_values_of_a_sign_no_rounding_gives_fail_the_confident_case(sce):
    # [0, 40], label 1: the mean loss is 4.2e-18 and the label's entry −2.1e-18 (mpmath); −1e-17 and +5e-18 are
    # within the rounding of the numbers they are formed from, but no computation rounds a loss below 0 or p − 1
    # above it. The textbook solution, which gives 0 there, passes the same case.
    result = sce("test", spec("tiny_wrong_signs"))
    assert result.exit_code == 1, result.stdout
    text = " ".join(result.stdout.split())  # the notes wrap at the terminal's width
    assert "✗ a confident row: [0, 40], label 1" in text
    assert "2 of 4 gradient entries of a sign no rounding gives (p − 1 ≤ 0 at the label and p ≥ 0 elsewhere)" in text
    assert "1 of 1 loss entries of a sign no rounding gives (a loss is never negative)" in text
    document = json.loads(sce("test", spec("tiny_wrong_signs"), "--format", "json").stdout)
    confident = next(c for c in document["cases"] if c["name"].startswith("a confident row"))
    assert not confident["passed"] and confident["mistake"] == mistakes.NEGATIVE_LOSS.name, confident
