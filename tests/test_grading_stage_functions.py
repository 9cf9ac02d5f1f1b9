"""`sce test --returns stages`: a function that returns the derivation's intermediates, each stage compared."""

from __future__ import annotations

import json
from pathlib import Path

import mpmath
import numpy as np
import pytest

from sce.grading import catalogue
from sce.grading.implementations.cases import Case
from sce.grading.implementations.grade import exact_answer
from sce.grading.implementations.report import Configuration
from sce.grading.implementations.stage_answers import exact_stage
from sce.testing import Verdict, check_implementation

pytestmark = pytest.mark.columns(200)

IMPLEMENTATIONS = Path(__file__).parent / "implementations"
FIRST = "for the textbook example: [2, 3, 4], label 1"
KNOWN = "shifted, exp, sum_exp, probs, loss, dL_ds, ds_dz, grad"


def spec(name: str, function: str = "softmax_stages") -> str:
    return f"{IMPLEMENTATIONS / name}.py:{function}"


def stages_of(report, case_name: str):  # type: ignore[no-untyped-def]
    case = next(c for c in report.cases if c.name.startswith(case_name))
    return {compared.stage: compared for compared in case.stages}


# --- the exact stages -----------------------------------------------------------------------------


def _mpmath_stages(z: list[float], label: int) -> dict[str, list]:
    mpmath.mp.dps = 50
    top = max(z)
    shifted = [mpmath.mpf(v) - top for v in z]
    exps = [mpmath.exp(v) for v in shifted]
    total = mpmath.fsum(exps)
    s = [e / total for e in exps]
    k = len(z)
    return {
        "shifted": shifted,
        "exp": exps,
        "sum_exp": [total],
        "probs": s,
        "loss": [-mpmath.log(s[label])],
        "dL_ds": [-1 / s[j] if j == label else 0 for j in range(k)],
        # s_j(δ_jk − s_k), with 1 − s_j as the other classes' share: exact in mpmath either way
        "ds_dz": [s[j] * ((1 - s[j]) if j == m else -s[m]) for j in range(k) for m in range(k)],
        "grad": [s[j] - (1 if j == label else 0) for j in range(k)],
    }


@pytest.mark.parametrize("logits, label", [([2.0, 3.0, 4.0], 1), ([0.0, 40.0], 1), ([-3.5, 0.25, 7.0, 1e-3], 3)])
@pytest.mark.parametrize("stage", ["shifted", "exp", "sum_exp", "probs", "loss", "dL_ds", "ds_dz", "grad"])
def test_each_exact_stage_agrees_with_mpmath(logits, label, stage):
    case = Case("one row", np.array([logits]), np.array([label]))
    found = exact_stage(exact_answer(case, Configuration()), stage).ravel()
    expected = [float(v) for v in _mpmath_stages(logits, label)[stage]]
    assert found.tolist() == pytest.approx(expected, rel=4e-16, abs=0)


# --- verdicts -------------------------------------------------------------------------------------


def test_every_stage_of_a_robust_derivation_is_correct():
    report = check_implementation(spec("returns_stages_all"), returns="stages")
    assert report.verdict is Verdict.correct
    for case in report.cases:
        assert [c.stage for c in case.stages] == KNOWN.split(", ")
        assert all(c.close and c.shape_ok for c in case.stages), case.name


def test_the_textbook_stages_are_correct_but_not_robust():
    report = check_implementation(spec("returns_stages"), returns="stages")
    assert report.verdict is Verdict.not_robust
    [failed] = report.failed
    assert failed.name.startswith("the label's probability rounds to 0")
    assert failed.mistake is catalogue.LOG_OF_ZERO
    assert [c.stage for c in failed.stages if not c.close] == ["loss"]
    # keepdims=True: the sums as an N×1 column are the N sums
    assert stages_of(report, "small random batch (4 rows")["sum_exp"].shape == (4, 1)
    assert stages_of(report, "small random batch (4 rows")["sum_exp"].close


def test_the_jacobians_diagonal_alone_is_named_on_every_failing_case():
    report = check_implementation(spec("returns_stages_wrong"), returns="stages")
    assert report.verdict is Verdict.not_correct
    assert {case.mistake for case in report.failed} == {catalogue.JACOBIAN_DIAGONAL}
    assert all(stages_of(report, case.name)["probs"].close for case in report.cases)


def test_a_gradient_summed_not_averaged_is_named_as_for_loss_and_gradient():
    as_stages = check_implementation(spec("returns_stages_sum"), returns="stages")
    as_pair = check_implementation(spec("sum_not_mean", "softmax_loss"))
    assert as_stages.mistakes == as_pair.mistakes == [catalogue.SUM_NOT_MEAN]


def test_a_row_function_and_a_function_of_targets():
    row = check_implementation(spec("returns_stages_bad", "row"), returns="stages", convention="row")
    assert row.verdict is Verdict.not_robust
    assert stages_of(row, "small random batch (4 rows")["ds_dz"].expected_shape == (3, 3)
    targets = check_implementation(spec("returns_stages_bad", "targets"), returns="stages", targets=True)
    assert targets.verdict is Verdict.correct


def test_nan_stages_fail_every_case():
    report = check_implementation(spec("returns_stages_bad", "nan_probs"), returns="stages")
    assert report.verdict is Verdict.not_correct
    assert all(case.message == "probs: NaN entries" for case in report.cases)


# --- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "function, message",
    [
        ("pair", f"expected a dict of stages (any of {KNOWN}); found a tuple of 2 "
                 f"(if it returns (loss, grad), use --returns loss,grad), {FIRST}"),
        ("unknown", f"unknown stage 'softmax' in the dict returned; the stages are {KNOWN}, {FIRST}"),
        ("intkey", f"unknown stage '1' in the dict returned; the stages are {KNOWN}, {FIRST}"),
        ("empty", f"the dict returned has no stage; return at least one of {KNOWN}, {FIRST}"),
    ],
)  # fmt: skip
def test_what_is_not_a_dict_of_known_stages_is_one_line_and_exit_2(function, message, sce):
    result = sce("test", spec("returns_stages_bad", function), "--returns", "stages")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"sce: error: {message}\n")


def test_dl_ds_is_refused_under_a_z_loss(sce):
    result = sce("test", spec("returns_stages_bad", "dlds"), "--returns", "stages", "--z-loss", "1e-4")
    assert result.exit_code == 2
    assert result.stderr == (
        "sce: error: the stage dL_ds is not one of this loss: with --z-loss the loss depends on the logits "
        f"through log Σ e^z as well, not through s alone, {FIRST}\n"
    )


def test_a_dict_graded_as_a_pair_gets_a_hint(sce):
    result = sce("test", spec("returns_stages_all"))
    assert result.exit_code == 2
    assert "found a dict (if it returns a dict of the derivation's stages, use --returns stages)" in result.stderr


def test_wrong_shapes_and_values_that_are_not_arrays_are_named_failures(sce):
    result = sce("test", spec("returns_stages_bad", "shape"), "--returns", "stages")
    assert result.exit_code == 1
    table = result.stdout[result.stdout.index("\nstage ") :]
    assert "sum_exp   0 of 17   0 of 17                    ✗ None; expected (1,)" in table
    assert "✗ (3, 4); expected (4, 3)" in table
    document = json.loads(sce("test", spec("returns_stages_bad", "shape"), "--returns", "stages", "-f", "json").stdout)
    four = next(case for case in document["cases"] if case["name"].startswith("small random batch (4 rows"))
    probs, sum_exp = (next(s for s in four["stages"] if s["stage"] == name) for name in ("probs", "sum_exp"))
    assert (probs["shape"], probs["expected_shape"], probs["shape_ok"], probs["close"]) == (
        [3, 4],
        [4, 3],
        False,
        False,
    )
    assert (sum_exp["shape"], sum_exp["found"], sum_exp["shape_ok"]) == (None, "None", False)
    assert "probs: shape (3, 4), expected shape (4, 3)" in four["message"]


def test_json_carries_each_stage_of_each_case(sce):
    result = sce("test", spec("returns_stages_wrong"), "--returns", "stages", "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["verdict"] == "not_correct"
    first = document["cases"][0]
    assert [s["stage"] for s in first["stages"]] == ["probs", "ds_dz", "grad"]
    ds_dz = first["stages"][1]
    assert (ds_dz["exact"], ds_dz["close"], ds_dz["shape"]) == (False, False, [1, 3, 3])
    # the textbook example: the off-diagonal −s_j·s_k left out; the largest is s_1·s_2 = e^-1/(Σ)²
    s = np.exp([-2.0, -1.0, 0.0]) / np.exp([-2.0, -1.0, 0.0]).sum()
    assert ds_dz["max_difference"] == pytest.approx(s[1] * s[2], rel=1e-12)
    assert first["mistake"] == catalogue.JACOBIAN_DIAGONAL.name


def test_float16_stages_for_float64_logits_fail_as_a_float16_gradient_does():
    report = check_implementation(spec("returns_stages_more", "half"), returns="stages")
    assert report.verdict is Verdict.not_correct
    first = report.cases[0]
    assert first.message.startswith("returns float16 for float64 logits: it cannot hold the precision asked for")
    assert first.stages[0].close  # by float16's own measure: the numbers are not what is wrong


def test_stages_under_a_temperature_are_of_z_over_t():
    report = check_implementation(spec("returns_stages_more", "tempered"), returns="stages", temperature=2.0)
    assert report.verdict is Verdict.correct
    # a Jacobian left without its 1/T fails: ∂s/∂z is ∂s/∂b over T
    as_if_t_were_1 = check_implementation(spec("returns_stages_more", "tempered"), returns="stages", temperature=1.0)
    assert as_if_t_were_1.verdict is Verdict.not_correct


def test_a_loss_per_row_graded_as_a_mean_gets_the_reduction_hint(sce):
    result = sce("test", spec("returns_stages_more", "summed"), "--returns", "stages", "--reduction", "sum")
    assert result.exit_code == 1
    assert "loss: shape (4,), expected a number (a loss per row? use --reduction none)" in result.stdout
    right = sce("test", spec("returns_stages_more", "summed"), "--returns", "stages", "--reduction", "none")
    assert right.exit_code == 0


def test_a_typed_jacobian_of_a_confident_row_keeps_its_diagonal(sce):
    mpmath.mp.dps = 50
    s1 = 1 / (1 + mpmath.exp(-40))
    d = mpmath.nstr(s1 * (1 - s1), 4)  # s_1(1 − s_1) = 4.248e-18, where 1 − s_1 rounds to 0 in float64
    result = sce("check", "0", "40", "-l", "1", "--stage", f"ds_dz={d},-{d},-{d},{d}")
    assert result.exit_code == 0
    assert result.stdout.endswith("verdict: correct\n")


def test_stages_under_a_softcap_are_judged_with_the_caps_own_rounding():
    # float32 tanh and cosh err by more than the capped logits' rounding: a correct float32 learner still passes
    report = check_implementation(spec("returns_stages_more", "capped"), returns="stages", softcap=30.0)
    assert report.verdict is Verdict.correct, [case.message for case in report.failed]
    without_cap = check_implementation(spec("returns_stages_more", "capped"), returns="stages")
    assert without_cap.verdict is Verdict.not_correct


def test_a_caps_factor_that_lost_its_digits_is_named_as_for_loss_and_gradient():
    report = check_implementation(spec("returns_stages_more", "capped_grad_loses_digits"), returns="stages", softcap=30)
    failed = report.failed[0]
    assert "small random batch (4 rows, 3 classes)" not in {case.name for case in report.failed}
    assert {case.mistake for case in report.failed} == {catalogue.CAP_FACTOR_LOSES_DIGITS}
    assert "grad: off by" in failed.message and "per unit of the cap's factor 1 − tanh²(z/c)" in failed.message
