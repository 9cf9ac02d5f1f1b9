"""`sce test` with the language-model loss options: the function computes the loss with the
options built in (Gemma's softcap 30, a z-loss of 1e-4, Megatron's smoothing), and sce
test grades it against the reference with those options."""

from __future__ import annotations

import json
from pathlib import Path

import mpmath
import numpy as np
import pytest

from sce.cli.declarations import FLAG_OF_FIELD
from sce.grading import catalogue as mistakes
from sce.grading.implementations.cases import build_cases
from sce.options import LossOptions
from sce.testing import check_implementation

pytestmark = pytest.mark.columns(200)

IMPLEMENTATIONS = Path(__file__).parent / "implementations"
GEMMA = ("--softcap", "30", "--z-loss", "1e-4")
MEGATRON = ("--smoothing", "0.1", "--smoothing-style", "off-target")
PYTORCH_SMOOTHING = ("--smoothing", "0.1")


def spec(name: str) -> str:
    return f"{IMPLEMENTATIONS / name}.py:softmax_loss"


@pytest.mark.parametrize(
    ("name", "options"),
    [("llm_correct", GEMMA), ("llm_correct_float32", GEMMA), ("llm_smoothing_off_target", MEGATRON)],
)
def test_a_correct_implementation_of_the_options_passes(name, options, sce):
    result = sce("test", spec(name), *options, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["passed"] and document["mistakes"] == []


@pytest.mark.parametrize(
    ("name", "options", "mistake"),
    [
        ("llm_softcap_left_out", GEMMA, mistakes.SOFTCAP_LEFT_OUT),
        ("llm_tanh_derivative_left_out", GEMMA, mistakes.TANH_DERIVATIVE_LEFT_OUT),
        ("llm_cap_factor_digits", GEMMA, mistakes.CAP_FACTOR_LOSES_DIGITS),
        ("llm_z_loss_missing", GEMMA, mistakes.Z_LOSS_LEFT_OUT),
        ("llm_z_loss_summed", GEMMA, mistakes.Z_LOSS_SUMMED),
        ("llm_smoothing_off_target", PYTORCH_SMOOTHING, mistakes.OTHER_SMOOTHING_STYLE),
        ("correct_vectorized", MEGATRON, mistakes.SMOOTHING_LEFT_OUT),
        ("correct_vectorized", ("--temperature", "2"), mistakes.TEMPERATURE_LEFT_OUT),
    ],
)
def test_each_slip_of_the_options_is_named(name, options, mistake, sce):
    result = sce("test", spec(name), *options, "--format", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    assert document["mistakes"][0] == mistake.name
    table = sce("test", spec(name), *options)
    assert table.exit_code == 1
    # the catalog names options by their fields; sce test words them as its flags
    assert f"fix first: {mistake.name}: {mistake.worded_fix(FLAG_OF_FIELD)}" in table.output


def test_the_cap_factor_slip_fails_only_where_tanh_is_near_1():
    # 1 − tanh² rounded from tanh near 1 is exact enough for small z/c: the cases with
    # logits of 1000 and beyond (z/c ≥ 33) fail, the small random ones pass.
    report = check_implementation(spec("llm_cap_factor_digits"), softcap=30, z_loss=1e-4)
    failing = {case.name for case in report.failed}
    assert "small random batch (4 rows, 3 classes)" not in failing
    assert {"large logits: 1000 and 0", "logits far beyond the cap: 5c and 20c (c = 30)"} <= failing
    assert all(case.mistake == mistakes.CAP_FACTOR_LOSES_DIGITS for case in report.failed)


def test_the_python_api_takes_the_options_and_the_header_names_them(sce):
    report = check_implementation(spec("llm_correct"), softcap=30, z_loss=1e-4)
    assert report.passed
    assert report.configuration.loss == LossOptions(softcap=30, z_loss=1e-4)
    result = sce("test", spec("llm_correct"), *GEMMA)
    assert "(batch convention, returns loss,grad, softcap 30, z-loss 0.0001, numpy)" in result.output
    # The same function graded as the plain loss is not correct, and says why.
    plain = check_implementation(spec("llm_correct"))
    assert not plain.passed


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ("--smoothing-style", "off-target"),
            "sce: error: --smoothing-style changes only how label smoothing spreads ε: give --smoothing too",
        ),
        (("--softcap", "0"), "sce: error: --softcap: softcap 0.0 is not a positive finite number"),
        (("--softcap", "inf"), "sce: error: --softcap: softcap inf is not a positive finite number"),
        (("--z-loss", "-1"), "sce: error: --z-loss: z-loss -1.0 is not a non-negative finite number"),
        (("--z-loss", "nan"), "sce: error: --z-loss: z-loss nan is not a non-negative finite number"),
        (("--smoothing", "1.5"), "sce: error: --smoothing: label smoothing 1.5 is outside [0, 1]"),
        (("--temperature", "0"), "sce: error: --temperature: temperature 0.0 is not a positive finite number"),
    ],
)
def test_bad_options_are_one_line_and_status_2(arguments, message, sce):
    result = sce("test", spec("llm_correct"), *arguments)
    assert result.exit_code == 2
    assert result.output.startswith(message) and result.output.count("\n") == 1


def test_python_api_names_the_keyword_of_a_bad_option():
    with pytest.raises(ValueError, match=r"^softcap=-1: softcap -1 is not a positive finite number"):
        check_implementation(spec("llm_correct"), softcap=-1)
    with pytest.raises(ValueError, match=r"^smoothing_style='megatron': unknown smoothing style"):
        check_implementation(spec("llm_correct"), label_smoothing=0.1, smoothing_style="megatron")


def test_the_z_loss_case_has_a_log_sum_exp_near_0_by_mpmath():
    for options in (LossOptions(z_loss=1e-4), LossOptions(z_loss=1e-4, softcap=30, temperature=2)):
        case = next(c for c in build_cases(options=options) if c.name.startswith("rows whose log-sum-exp"))
        mpmath.mp.dps = 50
        for row in case.logits:
            b = [
                (
                    mpmath.mpf(options.softcap) * mpmath.tanh(mpmath.mpf(z) / options.softcap)
                    if options.softcap
                    else mpmath.mpf(z)
                )
                / options.temperature
                for z in row
            ]
            assert abs(mpmath.log(mpmath.fsum(mpmath.exp(x) for x in b))) < 1e-15


def test_the_option_cases_are_added_only_with_their_options():
    plain = [case.name for case in build_cases()]
    capped = [case.name for case in build_cases(options=LossOptions(softcap=30))]
    assert capped[: len(plain)] == plain
    assert capped[len(plain) :] == ["logits far beyond the cap: 5c and 20c (c = 30)"]
    # A cap too large for 20c to be a float: the case is left out rather than made of inf.
    assert len(build_cases(options=LossOptions(softcap=1e307))) == len(plain)
    with_targets = build_cases(targets=True, options=LossOptions(z_loss=1e-4))
    assert with_targets[-1].targets is not None and np.allclose(with_targets[-1].targets.sum(axis=1), 1)


@pytest.mark.parametrize(
    "options",
    [
        dict(softcap=1.0),
        dict(softcap=1.0, z_loss=0.3, temperature=2.0),
        dict(softcap=5.0, z_loss=1e-4, temperature=0.5, label_smoothing=0.1, smoothing_style="off-target"),
        dict(softcap=30.0, z_loss=1e-4, dtype="float32"),
        dict(softcap=2.0, z_loss=0.01, temperature=3.0, label_smoothing=0.2, dtype="float32"),
        dict(softcap=1e6, z_loss=1e-4),
        dict(softcap=1e-3),
    ],
)
def test_a_correct_kernel_passes_under_every_combination_of_options(options, monkeypatch):
    # The function reads its options from the environment, which its child process inherits.
    names = {"softcap": "CAP", "z_loss": "ZL", "temperature": "TT", "label_smoothing": "EPS",
             "smoothing_style": "STYLE", "dtype": "DT"}  # fmt: skip
    for key, value in options.items():
        monkeypatch.setenv(names[key], str(value))
    loss_options = {key: value for key, value in options.items() if key != "dtype"}
    report = check_implementation(spec("llm_general"), **loss_options)
    assert report.passed, [(case.name, case.message) for case in report.failed]
    # And the same kernel graded without its cap is wrong, and named so on the first case.
    uncapped = check_implementation(spec("llm_general"), **{**loss_options, "softcap": None})
    assert not uncapped.passed


def test_regression_an_overflowing_exact_answer_does_not_give_an_infinite_allowance():
    # --z-loss 1e300: λ·lse² overflows float64 on the large-logit cases, and the allowance
    # (8 ulps of the largest entry, inf) once passed the plain cross-entropy there.
    report = check_implementation(spec("llm_correct"), softcap=30, z_loss=1e300)
    assert all(case.allowance is None or np.isfinite(case.allowance) for case in report.cases)
    assert not report.passed
    huge = check_implementation(spec("llm_correct"), temperature=1e-300)
    assert all(not case.passed for case in huge.cases if case.name.startswith("the textbook example"))


def test_regression_a_capped_gradients_error_is_told_per_unit_of_the_factor_and_in_itself():
    """'the gradient is off by 0.333 (allowed 4e-13)' read as a large error, where the gradient
    itself was off by ~1e-29 (a factor of ~1e-29 at logits of 1000 under a cap of 30)."""
    report = check_implementation(spec("llm_cap_factor_digits"), softcap=30, z_loss=1e-4)
    case = next(c for c in report.failed if c.name == "large logits: 1000 and 0")
    assert "per unit of the cap's factor 1 − tanh²(z/c)" in case.message
    itself = float(case.message.rsplit("in the gradient itself by ", 1)[1])
    assert 0 < itself < 1e-25
