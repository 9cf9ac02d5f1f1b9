"""`sce check` and `sce grad --verify/--jacobian/--hessian`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sce.cli.declarations import FLAG_OF_FIELD
from sce.explain.finite_differences import finite_difference_check
from sce.grading import catalogue as mistakes
from sce.grading import digit_slip, tolerance_of
from sce.loss import loss_hessian, softmax_cross_entropy, softmax_jacobian

pytestmark = pytest.mark.columns(120)


# The seeds' example by hand.
E = [math.exp(2), math.exp(3), math.exp(4)]
P = [e / sum(E) for e in E]
LOSS = math.log(sum(E)) - 3


def vector(values) -> str:  # type: ignore[no-untyped-def]
    return ",".join(f"{v:.4f}" for v in values)


# --- the textbook example ----------------------------------------------------------------------------


def test_the_posts_typo_fails_on_class_1(sce):
    result = sce("check", "2", "3", "4", "--label", "1", "--grad", "0.090,-0.775,0.665")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    row = next(line for line in lines if line.strip().startswith("1 "))
    assert "-0.75527" in row and "-0.775" in row and "✗" in row
    assert "-0.775 looks like a slip for -0.755 (one digit differs)" in result.stdout
    assert "verdict: not correct" in result.stdout


def test_the_right_answer_passes(sce):
    result = sce("check", "2", "3", "4", "--label", "1", "--grad", "0.090,-0.755,0.665", "--loss", "1.408")
    assert result.exit_code == 0, result.stdout
    assert "verdict: correct" in result.stdout
    assert "0.090" in result.stdout  # shown as typed


def test_the_posts_rounded_loss_fails(sce):
    # The post's 1.406 comes from rounding p first; the loss is 1.4076.
    assert sce("check", "2", "3", "4", "-l", "1", "--loss", "1.406").exit_code == 1


# --- tolerance from the digits typed -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text,tolerance",
    [("0.1", 0.05), ("0.10", 0.005), ("1e-3", 0.0005), ("-0.7553", 0.00005), ("0.090", 0.0005), ("2", 0.5), ("1.5E+2", 5.0)],
)
def test_the_tolerance_follows_the_digits_typed(text, tolerance):
    assert tolerance_of(text) == pytest.approx(tolerance, rel=1e-12)


@pytest.mark.parametrize(
    "loss,passes",
    [("1.4", True), ("1.41", True), ("1.40", False), ("1.4076", True), ("1.4075", False), ("1e0", False)],
)
def test_loss_tolerance_follows_the_digits(loss, passes, sce):
    assert (sce("check", "2", "3", "4", "-l", "1", "--loss", loss).exit_code == 0) is passes


def test_explicit_tolerance(sce):
    assert sce("check", "2", "3", "4", "-l", "1", "--loss", "1.40", "--tol", "0.01").exit_code == 0
    assert sce("check", "2", "3", "4", "-l", "1", "--loss", "1.4", "--tol", "0.001").exit_code == 1


@pytest.mark.parametrize(
    "text,expected,slip",
    [
        ("-0.775", -0.7552715, "one digit differs"),
        ("0.6625", 0.66524096, "two digits swapped"),
        ("-0.900", -0.7552715, None),
    ],
)
def test_a_digit_slip_is_named_and_a_right_answer_is_not(text, expected, slip):
    found = digit_slip(text, expected)
    assert (found is None) if slip is None else (slip in found)


# --- the usual mistakes, each recognised --------------------------------------------------------------


def mistake_of(sce, *args: str) -> str:
    result = sce("check", *args, "-f", "json")
    assert result.exit_code == 1, result.stdout
    quantities = json.loads(result.stdout)["quantities"]
    return next(q["mistake"] for q in quantities if not q["correct"]) or ""


def test_probabilities_without_subtracting_one(sce):
    assert mistakes.PROBABILITIES.name == mistake_of(sce, "2", "3", "4", "-l", "1", "--grad", vector(P))


def test_sign_flipped(sce):
    assert mistakes.SIGN_FLIPPED.name == mistake_of(sce, "2", "3", "4", "-l", "1", "--grad", vector([-P[0], 1 - P[1], -P[2]]))


def test_mean_not_divided_by_the_weight_sum(sce):
    # One row, weight 2 on the label: the mean divides 2·(p - y) by 2.
    summed = [2 * P[0], 2 * (P[1] - 1), 2 * P[2]]
    name = mistake_of(sce, "2", "3", "4", "-l", "1", "-w", "1,2,3", "--reduction", "mean", "--grad", vector(summed))
    assert name == mistakes.SUM_NOT_MEAN.worded_name(FLAG_OF_FIELD)


def test_mean_not_divided_by_n_for_soft_targets(sce):
    result = sce("check", "2", "3", "4", "-t", "0,1,0", "--reduction", "mean", "--loss", f"{LOSS:.4f}")
    assert result.exit_code == 0  # N = 1: nothing to divide


def test_weights_applied_class_by_class(sce):
    weights = [1, 2, 3]
    wrong = [w * (p - (k == 1)) for k, (w, p) in enumerate(zip(weights, P))]
    name = mistake_of(sce, "2", "3", "4", "-l", "1", "-w", "1,2,3", "--grad", vector(wrong))
    assert name == mistakes.WEIGHTS_PER_CLASS.name


def test_temperature_factor_missing(sce):
    t = 2.0
    e = [math.exp(z / t) for z in (2, 3, 4)]
    p = [v / sum(e) for v in e]
    without_factor = [p[0], p[1] - 1, p[2]]  # (p - y), not (p - y) / T
    assert mistakes.TEMPERATURE_FACTOR_MISSING.name == mistake_of(sce, "2", "3", "4", "-l", "1", "-T", "2", "--grad", vector(without_factor))


@pytest.mark.parametrize("base,named", [(10, mistakes.LOG10), (2, mistakes.LOG2)])
def test_loss_in_another_log_base(base, named, sce):
    assert named.name == mistake_of(sce, "2", "3", "4", "-l", "1", "--loss", f"{-math.log(P[1], base):.4f}")


def test_label_smoothing_left_out(sce):
    assert mistakes.SMOOTHING_LEFT_OUT.name == mistake_of(sce, 
        "2", "3", "4", "-l", "1", "--smoothing", "0.1", "--grad", vector([P[0], P[1] - 1, P[2]])
    )


def test_label_read_as_one_based(sce):
    assert mistakes.ONE_BASED.name == mistake_of(sce, "2", "3", "4", "-l", "1", "--grad", vector([P[0] - 1, P[1], P[2]]))


def test_unnormalised_exponentials_for_probabilities(sce):
    shifted = [math.exp(-2), math.exp(-1), 1.0]
    assert mistakes.NOT_NORMALISED.name == mistake_of(sce, "2", "3", "4", "-l", "1", "--probs", vector(shifted))


def test_no_mistake_named_for_an_unrecognised_answer(sce):
    assert mistake_of(sce, "2", "3", "4", "-l", "1", "--grad", "0.3,0.3,0.3") == ""


# --- bad input -------------------------------------------------------------------------------------------

BAD = [
    (["2", "3", "4", "-l", "1"], 2, "nothing to check"),
    (["2", "3", "4", "-l", "1", "--grad", "0.1,0.2"], 2, "--grad: 2 numbers for 3 classes"),
    (["2", "3", "4", "-l", "1", "--probs", "0.1,x,0.2"], 2, "--probs (entry 1): 'x' is not a number"),
    (["2", "3", "4", "-l", "1", "--loss", "1,2"], 2, "--loss: 2 numbers for one loss"),
    (["2", "3", "4", "-l", "1", "--loss", "1.4", "--tol", "0"], 2, "--tol: 0 is not a positive finite number"),
    (["2", "3", "4", "-l", "1", "--loss", "1.4", "--tol", "-1"], 2, "--tol: -1 is not a positive finite number"),
    (["2", "3", "4", "-l", "1", "--grad-cols", "g*", "--loss", "1"], 2, "--grad-cols goes with --csv INPUT"),
]


@pytest.mark.parametrize("args,status,message", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_input_is_one_line_with_its_status(args, status, message, sce):
    result = sce("check", *args)
    assert result.exit_code == status
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr


# --- files ---------------------------------------------------------------------------------------------------


def scored(sce, tmp_path: Path) -> Path:
    source = tmp_path / "in.csv"
    source.write_text("z0,z1,z2,label\n2,3,4,1\n0,40,-1,1\n1.5,-0.5,0.25,0\n-1,2,0.5,2\n")
    out = tmp_path / "scored.csv"
    assert sce("batch", str(source), "-o", str(out), "-q").exit_code == 0
    return out


def test_file_of_right_answers_passes(tmp_path, sce):
    result = sce("check", "--csv", str(scored(sce, tmp_path)), "--grad-cols", "grad_*", "--loss-col", "loss")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "rows checked: 4" in result.stdout and "rows wrong: 0" in result.stdout


def test_file_with_one_wrong_row_found_at_its_line(tmp_path, sce):
    path = scored(sce, tmp_path)
    lines = path.read_text().splitlines()
    fields = lines[3].split(",")
    fields[-2] = "0.5"  # grad_z1 of the third data row (line 4)
    lines[3] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    result = sce("check", "--csv", str(path), "--grad-cols", "grad_*", "-f", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["rows"] == 4 and document["wrong_rows"] == 1
    assert document["worst"][0]["line"] == 4
    assert document["worst"][0]["column"] == "grad_z1"
    # One shape with `sce check`'s entries: numbers as numbers, the text as written, a signed difference.
    assert document["worst"][0]["given"] == 0.5
    assert document["worst"][0]["written"] == "0.5"
    assert document["worst"][0]["difference"] == 0.5 - document["worst"][0]["expected"]


def test_file_rounded_answers_use_their_digits(tmp_path, sce):
    path = tmp_path / "hand.csv"
    path.write_text("z0,z1,z2,label,g0,g1,g2\n2,3,4,1,0.090,-0.755,0.665\n2,3,4,1,0.09,-0.78,0.67\n")
    result = sce("check", "--csv", str(path), "--grad-cols", "g0,g1,g2", "--logit-cols", "z*", "-f", "json")
    document = json.loads(result.stdout)
    assert document["wrong_rows"] == 1
    assert document["worst"][0]["line"] == 3


def test_file_without_the_named_columns(tmp_path, sce):
    path = scored(sce, tmp_path)
    result = sce("check", "--csv", str(path), "--grad-cols", "gradient_*")
    assert result.exit_code == 2  # cannot be graded: not 1, "graded and wrong"
    assert "--grad-cols: 'gradient_*' matches no column" in result.stderr
    result = sce("check", "--csv", str(path), "--loss-col", "nll")
    assert "--loss-col: there is no column 'nll'" in result.stderr


# --- --verify, --jacobian, --hessian ------------------------------------------------------------------------


@settings(deadline=None, max_examples=60)
@given(
    st.integers(2, 8).flatmap(lambda k: st.tuples(arrays(np.float64, k, elements=st.floats(-20, 20)), st.integers(0, k - 1))),
    st.floats(0, 0.5),
    st.floats(0.5, 3),
)
def test_verify_agrees_to_1e7_on_random_inputs(case, smoothing, temperature):
    z, label = case
    result = softmax_cross_entropy(z, label, label_smoothing=smoothing, temperature=temperature)

    def loss_of(x):  # type: ignore[no-untyped-def]
        return softmax_cross_entropy(x, label, label_smoothing=smoothing, temperature=temperature).losses

    assert finite_difference_check(result, loss_of).worst < 1e-7


def test_verify_in_the_cli(sce):
    result = sce("grad", "2", "3", "4", "-l", "1", "--verify", "-f", "json")
    document = json.loads(result.stdout)
    assert document["verify"]["max_relative_difference"] < 1e-7
    assert document["verify"]["numeric"] == pytest.approx([P[0], P[1] - 1, P[2]], rel=1e-8)
    assert "agree" in sce("grad", "2", "3", "4", "-l", "1", "--verify").stdout


def test_jacobian_times_dl_ds_is_the_gradient(sce):
    document = json.loads(sce("grad", "2", "3", "4", "-l", "1", "-w", "1,2,3", "-T", "2", "--jacobian", "-f", "json").stdout)
    np.testing.assert_allclose(document["jacobian"]["product"], document["gradient"], rtol=1e-13)
    # With T = 2 the softmax's Jacobian at its input z/T is diag(s) - s sᵀ, and ∂s/∂z half of it.
    p = np.array(document["probabilities"])
    np.testing.assert_allclose(np.array(document["jacobian"]["ds_db"]), np.diag(p) - np.outer(p, p), rtol=1e-15)
    np.testing.assert_allclose(np.array(document["jacobian"]["ds_dz"]), (np.diag(p) - np.outer(p, p)) / 2, rtol=1e-15)
    assert document["jacobian"]["ds_dz_is"].startswith("∂s/∂z = (diag(s) - s sᵀ) / T")


def test_hessian_eigenvalues(sce):
    document = json.loads(sce("grad", "2", "3", "4", "-l", "1", "--hessian", "-f", "json").stdout)
    hessian = np.array(document["hessian"]["matrix"])
    eigenvalues = np.array(document["hessian"]["eigenvalues"])
    assert (eigenvalues > -1e-15).all()  # positive semidefinite
    assert abs(eigenvalues.min()) < 1e-15  # zero along (1, 1, 1)
    np.testing.assert_allclose(hessian @ np.ones(3), 0, atol=1e-16)
    assert "convex" in sce("grad", "2", "3", "4", "-l", "1", "--hessian").stdout


@pytest.mark.parametrize("kwargs", [{}, {"temperature": 2.0, "weight": [1, 2, 3]}, {"label_smoothing": 0.3}])
def test_hessian_matches_finite_differences_of_the_gradient(kwargs):
    z = np.array([2.0, 3.0, 4.0])
    result = softmax_cross_entropy(z, 1, **kwargs)
    h = 1e-6
    numeric = np.empty((3, 3))
    for j in range(3):
        up, down = z.copy(), z.copy()
        up[j] += h
        down[j] -= h
        numeric[:, j] = (softmax_cross_entropy(up, 1, **kwargs).gradient - softmax_cross_entropy(down, 1, **kwargs).gradient) / (2 * h)
    np.testing.assert_allclose(loss_hessian(result), numeric, atol=1e-8)


def test_softmax_jacobian_rows_sum_to_zero():
    p = np.array(P)
    np.testing.assert_allclose(softmax_jacobian(p).sum(axis=1), 0, atol=1e-16)


def test_proofs_need_table_or_json(sce):
    result = sce("grad", "2", "3", "-l", "0", "--verify", "-f", "csv")
    assert result.exit_code == 2 and "--verify is shown as a table or in JSON" in result.stderr


def test_what_if_runs_do_not_leak_warnings(sce):
    # Regression: the 1-based-label what-if met the -inf logit of class 1 and
    # its LossWarning reached stderr as a raw Python warning.
    result = sce("check", "1", "-inf", "3", "-l", "2", "--grad", "1,1,1")
    assert result.exit_code == 1
    assert result.stderr == ""


def test_the_real_run_still_warns(sce):
    result = sce("check", "1", "-inf", "3", "-l", "1", "--loss", "1")
    assert result.stderr.startswith("sce: warning: the loss is infinite")


def test_regression_a_float32_answer_pasted_with_17_digits_passes_with_dtype_float32(sce):
    """PyTorch's float32 loss and gradient for [2, 3, 4], label 1, printed with 17 digits: with
    --dtype float32 the tolerance came from the digits typed (5e-17), so every other float32
    engine failed by its last ulp. 4 ulps of float32 are now rounding."""
    torch_loss = "1.4076058864593506"  # recorded from torch 2.13's F.cross_entropy in float32
    torch_grad = "0.09003058075904846,-0.7552714943885803,0.665241003036499"
    result = sce("check", "2", "3", "4", "--label", "1", "--dtype", "float32", "--loss", torch_loss, "--grad", torch_grad)
    assert result.exit_code == 0, result.stdout
    # One float32 ulp at 1.4 is 1.2e-7: a loss 1e-6 off is 8 ulps, and fails.
    result = sce("check", "2", "3", "4", "--label", "1", "--dtype", "float32", "--loss", "1.4076068864593506")
    assert result.exit_code == 1
    # Without --dtype float32, the float64 answer's 17 digits still rule: the float32 loss fails.
    assert sce("check", "2", "3", "4", "--label", "1", "--loss", torch_loss).exit_code == 1


def test_regression_every_entry_off_by_one_digit_is_not_five_slips(sce):
    """The gradient for ε = 0.2 where 0.1 was asked, every entry 0.02 (0.08 at the label) off in
    the same digit, was told as five independent digit slips. The numbers are the exact
    gradient of [2, 3, 4, -1, 0.5], label 1, with ε = 0.2: p − (0.8·y + 0.04)."""
    z = np.array([2.0, 3.0, 4.0, -1.0, 0.5])
    p = np.exp(z) / np.exp(z).sum()
    grad = p - 0.04
    grad[1] -= 0.8
    result = sce("check", "2", "3", "4", "-1", "0.5", "--label", "1", "--smoothing", "0.1", "--grad", ",".join(f"{g:.10g}" for g in grad))
    assert result.exit_code == 1
    assert "slip" not in result.stdout


def _exact_gradient(logits: list[float], label: int) -> list[float]:
    """mpmath's gradient at 50 digits (tests/reference.py's log-softmax), rounded to float64."""
    import mpmath as mp

    from tests.reference import log_softmax

    log_p = log_softmax(logits)
    return [float(mp.exp(log_p[k]) - (1 if k == label else 0)) for k in range(len(logits))]


def _ticked_rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line.split()[-1:] == ["✓"] and len(line.split()) >= 5]


def test_typed_check_never_ticks_a_difference_larger_than_the_tolerance_it_shows(sce):
    # float32's nearest value to the exact gradient of [1.5, -0.5, 0.25], label 0: the difference
    # from sce's float32 result (1.5e-08) was ticked beside a tolerance of 5e-18.
    given = [float(np.float32(g)) for g in _exact_gradient([1.5, -0.5, 0.25], 0)]
    result = sce(
        "check", "1.5", "-0.5", "0.25", "-l", "0", f"--grad={','.join(map(repr, given))}", "--dtype", "float32"
    )
    rows = _ticked_rows(result.stdout)
    assert len(rows) == 3
    for cells in rows:
        difference, tolerance = abs(float(cells[-3])), float(cells[-2])
        assert difference <= tolerance, cells


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("extra", [[], ["--tol", "0.0123"], ["--tol", "3.3e-9"]])
def test_every_tick_in_typed_check_is_within_the_tolerance_shown_and_in_json(sce, dtype, extra):
    """Answers rounded to float32, to float64, and typed to 4 digits, over the loss and the gradient:
    every ✓ sits beside a tolerance at least its difference, in the table and in JSON."""
    for logits, label in (([1.5, -0.5, 0.25], 0), ([2.0, 3.0, 4.0], 1), ([0.0, 40.0, -1.0], 1)):
        exact = _exact_gradient(logits, label)
        for rounding in (lambda g: repr(float(np.float32(g))), repr, lambda g: f"{g:.4g}"):
            grad = ",".join(rounding(g) for g in exact)
            args = ("check", *map(str, logits), "-l", str(label), f"--grad={grad}", "--dtype", dtype, *extra)
            for cells in _ticked_rows(sce(*args).stdout):
                assert abs(float(cells[-3])) <= float(cells[-2]), (args, cells)
            document = json.loads(sce(*args, "-f", "json").stdout)
            entries = [entry for quantity in document["quantities"] for entry in quantity["entries"]]
            assert len(entries) == 3
            for entry in entries:
                if entry["correct"]:
                    assert abs(entry["given"] - entry["expected"]) <= entry["tolerance"], (args, entry)


def test_typed_checks_expected_column_shows_the_exact_value_not_float64s_cancelled_one(sce):
    # Logits (0, 2.1972245773362196) put s₀ within 1e-17 of the target 0.1: ∂L/∂z₀ = (Σt)·s₀ − t₀ is
    # -1.9103892584565645e-17 exactly (mpmath, on the float64 inputs), where float64's own difference is
    # -2.7755575615628914e-17, wrong in the first digit. The table shows, and grades against, the exact value.
    import json

    import mpmath

    mpmath.mp.dps = 60
    z1, t0, t1 = (mpmath.mpf(v) for v in (2.1972245773362196, 0.1, 0.9))
    s0 = 1 / (1 + mpmath.exp(z1))
    exact = mpmath.nstr((t0 + t1) * s0 - t0, 17)
    assert exact == "-1.9103892584565645e-17"
    result = sce("check", "0", "2.1972245773362196", "-t", "0.1,0.9", f"--grad={exact},{exact[1:]}")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith("0 "))
    assert row.split()[1:4] == [exact, exact, "0.0"], row
    short = sce("check", "0", "2.1972245773362196", "-t", "0.1,0.9", "--grad=-1.91e-17,1.91e-17")
    assert next(line for line in short.stdout.splitlines() if line.strip().startswith("0 ")).split()[1] == "-1.9104e-17"
    # float64's own answer still passes: it is within float64's rounding of the 0.1 it is formed from.
    cancelled = sce("check", "0", "2.1972245773362196", "-t", "0.1,0.9",
                    "--grad=-2.7755575615628914e-17,1.3877787807814457e-17", "-f", "json")  # fmt: skip
    assert cancelled.exit_code == 0, cancelled.output
    entry = json.loads(cancelled.stdout)["quantities"][0]["entries"][0]
    assert entry["expected"] == float(mpmath.mpf(exact))
