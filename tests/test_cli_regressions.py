"""Regression tests named after what broke, through the command line.

Expected values are derived by hand here (math.exp and the formulas), never
taken from sce's own output.
"""

from __future__ import annotations

import json
import math
import tracemalloc
import warnings

import numpy as np
import pytest

from sce.explain.derivation import build_derivation
from sce.explain.proofs import prove
from sce.loss import softmax_cross_entropy

pytestmark = pytest.mark.columns(200)


def softmax(z: list[float], temperature: float = 1.0) -> list[float]:
    top = max(z)
    e = [math.exp((v - top) / temperature) for v in z]
    return [v / sum(e) for v in e]


# --- the zero-denominator crashes -----------------------------------------------

ZERO_DENOMINATOR = ["2", "3", "4", "-l", "0", "-w", "0,1,1", "--reduction", "mean"]


def test_zero_denominator_hessian_prints_a_zero_matrix_not_an_internal_error(sce):
    result = sce("grad", *ZERO_DENOMINATOR, "--hessian")
    assert result.exit_code == 0, result.stderr
    assert "eigenvalues: 0.0000, 0.0000, 0.0000" in result.stdout
    assert "the mean divides by 0" in result.stderr


def test_zero_denominator_jacobian_prints_a_zero_product(sce):
    result = sce("grad", *ZERO_DENOMINATOR, "--jacobian", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["jacobian"]["product"] == [0.0, 0.0, 0.0]


def test_zero_denominator_steps_say_why_the_gradient_is_zero(sce):
    result = sce("grad", *ZERO_DENOMINATOR, "--steps")
    assert result.exit_code == 0, result.stderr
    assert "divides by D = 0" in result.stdout
    assert "NaN (as in PyTorch)" in result.stdout


def test_zero_denominator_check_of_a_wrong_answer_is_graded_not_crashed(sce):
    result = sce("check", *ZERO_DENOMINATOR, "--grad", "1,2,3")
    assert result.exit_code == 1, result.stderr
    assert "verdict: not correct" in result.stdout


# --- fair verdicts ---------------------------------------------------------------


def test_tiny_wrong_loss_no_longer_passes_on_an_absolute_floor(sce):
    # log(1 + e^-40) = 4.25e-18; 5e-10 is 1e8 times too large.
    assert sce("check", "0", "40", "-l", "1", "--loss", "5e-10").exit_code == 1
    assert sce("check", "0", "40", "-l", "1", "--loss", "4.248e-18").exit_code == 0


def test_slip_hint_names_the_entry_it_is_about(sce):
    p = softmax([2, 3, 4])
    assert round(p[2], 4) == 0.6652  # so 0.6752 is one digit off at class 2
    result = sce("check", "2", "3", "4", "-l", "1", "--grad", "0.3000,-0.7553,0.6752")
    assert "Class 2: 0.6752 looks like a slip for 0.6652" in result.stdout
    assert "Class 0: 0.6752" not in result.stdout


def test_expected_column_shows_at_least_the_answers_digits(sce):
    loss = math.log(sum(math.exp(v) for v in (2, 3, 4))) - 3  # 1.4076060…
    result = sce("check", "2", "3", "4", "-l", "1", "--loss", "1.40760")
    assert f"{loss:.5f}" in result.stdout  # 1.40761, not 1.4076


def test_answer_with_too_few_digits_is_flagged_and_not_correct(sce):
    # 1e0 is within 0.5 of the loss 1.4076 and of its log-10 twin 0.6113.
    result = sce("check", "2", "3", "4", "-l", "1", "--loss", "1e0")
    assert result.exit_code == 3
    assert "also fit a usual mistake (log base 10 in the loss)" in result.stdout
    assert result.stdout.splitlines()[-1] == "verdict: too few digits to grade"


def test_temperature_mistakes_named_for_the_gradient(sce):
    p, q = softmax([2, 3, 4], 2.0), softmax([2, 3, 4])
    without_factor = ",".join(f"{v - (k == 1):.6f}" for k, v in enumerate(p))
    untempered = ",".join(f"{v - (k == 1):.6f}" for k, v in enumerate(q))
    result = sce("check", "2", "3", "4", "-l", "1", "-T", "2", "--grad", without_factor)
    assert "mistake: the temperature's factor 1/T missing from the gradient" in result.stdout
    result = sce("check", "2", "3", "4", "-l", "1", "-T", "2", "--grad", untempered)
    assert "mistake: temperature left out: the softmax of z, not of z/T, and no factor 1/T" in result.stdout


def test_verify_says_cannot_verify_where_differences_cannot_resolve(sce):
    # T = 1e-5 and logits 1e-5 apart: the curvature over the step dwarfs the difference.
    result = sce("grad", "0", "0.00001", "-l", "0", "-T", "0.00001", "--verify", "-f", "json")
    assert json.loads(result.stdout)["verify"]["verdict"] == "cannot verify"
    result = sce("grad", "2", "3", "4", "-l", "1", "--verify", "-f", "json")
    assert json.loads(result.stdout)["verify"]["verdict"] == "agree"


# --- the derivation agrees with itself -------------------------------------------


def test_steps_formula_carries_the_1_over_D_its_number_includes(sce):
    result = sce("grad", "2", "3", "4", "-l", "1", "-w", "0.5,2,1", "-T", "2", "--reduction", "mean", "--steps")
    p = softmax([2, 3, 4], 2.0)
    # ∂L/∂z₀ = w₁/D·(p₀ − 0)/T with D = w₁ = 2 (the one-hot route: the weight is one more factor).
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("∂L/∂z₀ = ((w₁/D) · (s₀ - y₀))/T"))
    assert line.endswith(f" = {p[0] * 2 / (2 * 2):#.5g}")


def test_steps_sums_under_a_temperature_carry_the_division(sce):
    result = sce("grad", "2", "3", "4", "-l", "1", "-T", "2", "--steps")
    assert "Σⱼ e^((zⱼ - M) / T) = " in result.stdout
    assert "Σⱼ e^(zⱼ - M) =" not in result.stdout


def test_steps_minus_one_over_a_small_probability_checks_by_hand(sce):
    # Four decimals (0.0900) gave -1/0.0900 = -11.1073, which does not check; five significant
    # digits of s₀ = 0.0900306 give -1/0.090031 = -11.107, which does.
    s0 = softmax([2, 3, 4])[0]
    assert f"{-1 / s0:#.5g}" == f"{-1 / 0.090031:#.5g}" == "-11.107"
    result = sce("grad", "2", "3", "4", "-l", "0", "--steps")
    assert "-1/0.090031 = -11.107" in result.stdout


def test_gradients_never_print_negative_zero(sce):
    result = sce("grad", "5", "-l", "0", "-f", "json")
    assert json.loads(result.stdout)["gradient"] == [0.0]
    assert "-0.0" not in result.stdout
    assert "-0.0000" not in sce("grad", "0", "800", "-l", "1").stdout


def test_scaling_before_shifting_no_longer_gives_nan_everywhere(sce):
    result = sce("grad", "2", "3", "4", "-l", "1", "--temperature", "1e-310", "-f", "json")
    document = json.loads(result.stdout)
    assert document["probabilities"] == [0.0, 0.0, 1.0]
    assert document["predicted"] == 2
    assert "overflows float64" in result.stderr
    assert "nan" not in json.dumps(document["probabilities"])


def test_silent_nan_with_a_weight_0_masked_class_is_the_exact_loss(sce):
    # Classes 1 and 2 only (class 0 has weight 0): (1 - ε + ε/3)·(-log p₁) + (ε/3)·(-log p₂).
    p = softmax([3, 4])
    expected = (1 - 0.1 + 0.1 / 3) * -math.log(p[0]) + (0.1 / 3) * -math.log(p[1])
    result = sce("grad", "-inf", "3", "4", "-l", "1", "--smoothing", "0.1", "-w", "0,1,1", "-f", "json")
    assert math.isclose(json.loads(result.stdout)["loss"], expected, rel_tol=1e-14)
    assert round(expected, 7) == 1.2361530


# --- large K -------------------------------------------------------------------------


def test_large_k_explanations_never_form_a_k_by_k_matrix():
    # 100,000 classes: a K×K float64 matrix would take 80 GB; everything here stays far below 1 GB.
    logits = np.random.default_rng(0).normal(size=(1, 100_000))
    result = softmax_cross_entropy(logits, [7])
    tracemalloc.start()
    build_derivation(result)
    proofs = prove(result, verify=True, jacobian=True, hessian=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200e6, peak
    assert proofs.jacobian is not None and proofs.jacobian.jacobian is None
    assert proofs.hessian is not None and proofs.hessian.hessian is None
    assert abs(proofs.jacobian.product - result.gradient[0]).max() < 1e-15
    # The largest Hessian eigenvalue lies between the two largest probabilities (interlacing).
    top_two = np.sort(result.probabilities[0])[-2:]
    assert top_two[0] <= proofs.hessian.eigenvalues[0] <= top_two[1]


# --- found by a hostile sce check ----------------------------------------------------------


def test_an_infinite_expected_value_is_matched_only_by_the_same_infinity(sce):
    # T = 1e-310: the gradient is (0, -inf, inf); a finite answer once passed, the
    # relative rounding allowance of an infinite value being infinite.
    result = sce("check", "2", "3", "4", "-l", "1", "-T", "1e-310", "--grad", "0,-1,1")
    assert result.exit_code == 1
    assert sce("check", "2", "3", "4", "-l", "1", "-T", "1e-310", "--grad", "0,-inf,inf").exit_code == 0


def test_nan_is_the_right_answer_for_a_mean_over_no_counted_rows(sce):
    """Regression: PyTorch's NaN (every row ignored, mean) failed as an answer,
    and then was flagged as fitting the log-10 mistake, whose NaN is the same."""
    right = sce("check", "2", "3", "4", "-l", "-100", "--reduction", "mean", "--loss", "nan", "-f", "json")
    assert right.exit_code == 0
    assert json.loads(right.stdout)["quantities"][0]["ambiguous_with"] is None
    assert sce("check", "2", "3", "4", "-l", "-100", "--reduction", "mean", "--loss", "0").exit_code == 1
    assert sce("check", "2", "3", "4", "-l", "1", "--loss", "nan").exit_code == 1


def test_a_typed_number_beyond_float64_is_refused_not_read_as_inf(sce):
    result = sce("check", "2", "3", "4", "-l", "1", "--grad", "1e400,0,0")
    assert result.exit_code == 2
    assert result.stderr == (
        "sce: error: --grad (entry 0): 1e400 is beyond float64's range (±1.8e308); write a smaller number or inf\n"
    )


def test_a_coarse_answer_is_not_blamed_on_a_mistake_it_cannot_tell_apart(sce):
    # 0,0,0 with a tolerance of 0.5 is within 0.5 of the log-10 gradient too.
    result = sce("check", "-inf", "3", "4", "-l", "0", "--grad", "0,0,0")
    assert result.exit_code == 1
    assert "This is" not in result.stdout


def test_one_digit_answers_are_not_called_slips(sce):
    result = sce("check", "-inf", "3", "4", "-l", "0", "--grad", "0,0,0")
    assert "looks like a slip" not in result.stdout


def test_arabic_indic_digits_are_read_and_graded_like_ascii_ones(sce):
    # ٠٫٠٩٠ is 0.090 with the Arabic decimal separator: the same tolerance, the same slip hint.
    assert sce("check", "2", "3", "4", "-l", "1", "--probs", "٠٫٠٩٠,٠٫٢٤٥,٠٫٦٦٥").exit_code == 0
    result = sce("check", "2", "3", "4", "-l", "1", "--grad", "٠.٠٩٠,-٠.٧٧٥,٠.٦٦٥")
    assert "Class 1: -0.775 looks like a slip for -0.755" in result.stdout


def test_a_what_if_under_a_tiny_temperature_prints_no_raw_warning(sce):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = sce("check", "2", "3", "4", "-l", "1", "-T", "1e-310", "--grad", "0,-1,1")
    assert result.exit_code == 1
    assert all(line.startswith("sce: warning: ") for line in result.stderr.splitlines())


# --- found by a hostile --logits-file ---------------------------------------------------------


def test_a_logits_file_number_beyond_float64_is_named_with_its_line(tmp_path, sce):
    path = tmp_path / "logits.txt"
    path.write_text("2 3\n1e400\n")
    result = sce("grad", "--logits-file", str(path), "-l", "0")
    assert result.exit_code == 1
    assert result.stderr == "sce: error: --logits-file: line 2: 1e400 is beyond float64's range (±1.8e308)\n"


def test_a_bad_logit_in_a_file_names_the_file_option_and_is_bad_data(tmp_path, sce):
    path = tmp_path / "logits.txt"
    path.write_text("2 3 nan\n")
    result = sce("grad", "--logits-file", str(path), "-l", "0")
    assert result.exit_code == 1
    assert result.stderr == (
        "sce: error: --logits-file (class 2): logit nan is not allowed; "
        "logits must be finite numbers or -inf (a masked class)\n"
    )
    typed = sce("grad", "2", "3", "nan", "-l", "0")
    assert typed.exit_code == 2 and typed.stderr.startswith("sce: error: LOGITS (class 2): ")


def test_verify_with_a_tiny_softcap_cannot_verify_rather_than_crash(sce):
    # --softcap 1e-300: the truncation bound divided by c² in Python floats (ZeroDivisionError).
    for extra in (["--softcap", "1e-300"], ["--softcap", "1e-300", "-T", "1e-300"]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no raw numpy warning either
            result = sce("grad", "-inf", "3", "4", "-l", "1", *extra, "--verify", "-f", "json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["verify"]["verdict"] in ("agree", "cannot verify")


def test_a_vanishing_softcap_factor_gives_a_zero_gradient_not_nan(sce):
    # --softcap 1e-300: 1 - tanh²(z/c) = 4e^(-2|z|/c)/(1 + …)² is 0 in float64 and the z-loss's
    # 2λ·lse·p overflows; the product was inf·0 = NaN, where the true entries are e^(-4e300)·… = 0.
    result = sce("grad", "2", "3", "4", "-l", "1", "--softcap", "1e-300", "--z-loss", "1e308", "-f", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["gradient"] == [0.0, 0.0, 0.0]
    assert "NaN" not in result.stderr


def test_the_empty_mean_warning_mentions_the_z_loss_gradient_only_when_one_is_kept():
    """Regression: with every row ignored, or with a softcap and no z-loss at all,
    the warning said "the z-loss keeps its own" gradient; there was none."""
    from sce import LossWarning

    def warning_of(**options) -> str:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            softmax_cross_entropy([[2.0, 3.0, 4.0]], labels=options.pop("labels"), reduction="mean", **options)
        return " ".join(str(w.message) for w in caught if issubclass(w.category, LossWarning))

    assert warning_of(labels=[-100], z_loss=0.1).endswith("and the gradient is 0")
    assert warning_of(labels=[-100], softcap=3.0).endswith("and the gradient is 0")
    # Weight 0 on the label: the row still counts for the z-loss, whose gradient remains.
    assert warning_of(labels=[1], weight=[1.0, 0.0, 1.0], z_loss=0.1).endswith("(the z-loss keeps its own)")


def test_a_label_beyond_64_bits_is_named_as_too_large_not_as_not_an_integer(sce):
    result = sce("grad", "2", "3", "4", "-l", "99999999999999999999")
    assert (result.exit_code, result.stderr) == (
        2,
        "sce: error: --label: label 99999999999999999999 is too large for a class index "
        "(beyond a 64-bit integer); labels are 0-based class indices\n",
    )


def test_counts_of_one_are_singular(sce):
    from sce.number_text import count_of

    assert [count_of(1, "row"), count_of(2, "row"), count_of(1000, "class", "classes")] == [
        "1 row",
        "2 rows",
        "1,000 classes",
    ]
    result = sce("batch", "-", "-q", input="z0,z1,label\n-inf,2,0\n3,4,1\n")
    assert result.stderr == "sce: warning: 1 row has an infinite loss (a target class with probability 0)\n"


def test_weights_whose_sum_exceeds_float64_do_not_crash_the_exact_divisor():
    """Regression: the exactly rounded weight sum (math.fsum) raised OverflowError
    ('intermediate overflow in fsum') for two weights of 1e308; the sum is inf, as a plain
    sum says, and the mean NaN."""
    from sce.loss.reduction import weighted_total

    assert weighted_total(np.array([1, 1]), np.array([1e308, 1e308])) == math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = softmax_cross_entropy([[1.0, 2.0], [3.0, 1.0]], labels=[0, 1], weight=[1e308, 1e308], reduction="mean")
    assert math.isnan(result.loss) and result.denominator == math.inf


# --- the Hessian's eigenvalues: 0 exactly, and small ones to their own digits -------------------------------------


def exact_hessian_eigenvalues(logits: list[float], temperature: float = 1.0, scale: float = 1.0) -> list:
    """mpmath's eigenvalues of scale·(diag(s) - s sᵀ)/T², s the 50-digit softmax of z/T."""
    import mpmath as mp

    from .reference import log_softmax

    s = [mp.exp(v) for v in log_softmax(logits, temperature)]
    size = len(s)
    matrix = mp.matrix(size, size)
    for i in range(size):
        for j in range(size):
            matrix[i, j] = mp.mpf(scale) * (s[i] * ((1 if i == j else 0) - s[j])) / mp.mpf(temperature) ** 2
    return sorted(mp.eigsy(matrix, eigvals_only=True))


@pytest.mark.parametrize(
    "logits,extra,scale",
    [
        ([2, 3, 4], [], 1.0),
        ([2, 3, 4], ["-T", "2"], 1.0),
        ([2, 3, 4], ["-w", "0.5,2,1"], 2.0),  # Σ w y = w_1
        ([0, -30, -60, 5], [], 1.0),  # eigenvalues 7.8e-29 and 9.4e-16: far below 1e-16 of the largest
        ([1, 1, 1, 1], [], 1.0),  # 1/4 three times
        ([0.5, -2, 0.5, 3, -2], ["-T", "0.3"], 1.0),
    ],
)
def test_the_hessians_eigenvalues_are_0_along_the_ones_and_exact_elsewhere(sce, logits, extra, scale):
    import mpmath as mp

    temperature = float(extra[1]) if extra[:1] == ["-T"] else 1.0
    result = sce("grad", *map(str, logits), "-l", "1", "--hessian", *extra, "-f", "json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)["hessian"]["eigenvalues"]
    with mp.workdps(60):
        exact = exact_hessian_eigenvalues(logits, temperature, scale)
    # The mathematics says 0 along (1, …, 1): not -6.9e-18 or 5.2e-17, which are rounding.
    assert shown[0] == 0.0
    for value, reference in zip(shown[1:], exact[1:]):
        assert abs(value - float(reference)) <= 1e-13 * abs(float(reference)), (value, reference)
    text = sce("grad", *map(str, logits), "-l", "1", "--hessian", *extra).stdout
    line = next(line for line in text.splitlines() if line.startswith("eigenvalues:"))
    assert line.split(":")[1].split(",")[0].strip() == "0.0000", line


def test_a_class_of_probability_0_adds_an_eigenvalue_0(sce):
    result = sce("grad", "-inf", "3", "4", "-l", "1", "--hessian", "-f", "json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)["hessian"]["eigenvalues"]
    s = softmax([3, 4])
    # The class of logit -inf: a row and a column of zeros. The rest: 0 and s_0·s_1·2 (a 2×2 block).
    assert shown[:2] == [0.0, 0.0]
    assert shown[2] == pytest.approx(2 * s[0] * s[1], rel=1e-14)


@pytest.mark.parametrize("flag,key", [("--jacobian", "jacobian"), ("--hessian", "hessian")])
def test_the_jacobians_diagonal_keeps_its_digits_on_a_confident_prediction(sce, flag, key):
    # [0, 40]: s₁(1 - s₁) = s₀s₁ = e^-40/(1 + e^-40)² = 4.2484e-18 (by hand: math.exp), where 1 - s₁ rounds to 0.
    expected = math.exp(-40) / (1 + math.exp(-40)) ** 2
    document = json.loads(sce("grad", "0", "40", "-l", "1", flag, "-f", "json").stdout)
    matrix = document[key]["ds_dz" if key == "jacobian" else "matrix"]
    assert matrix[1][1] == pytest.approx(expected, rel=1e-15)
    assert matrix[0][0] == pytest.approx(expected, rel=1e-15)
    text = sce("grad", "0", "40", "-l", "1", flag).stdout
    assert " 1   -4.2484e-18    4.2484e-18" in text
