"""`sce grad --verify`, `--jacobian` and `--hessian` with --softcap, --z-loss and off-target smoothing.

The Hessian is checked against central differences of the core's gradient, not
against its own formula; the Jacobian route against the core's gradient.
"""

from __future__ import annotations

import json

import mpmath
import numpy as np
import pytest

from sce import softmax_cross_entropy
from tests import reference

CASES = {
    "softcap": (["2", "-3", "4"], 1, dict(softcap=3.0)),
    "z-loss": (["2", "3", "4"], 0, dict(z_loss=0.1)),
    "both, weights, temperature, mean": (
        ["2", "-3", "4", "0.5"],
        1,
        dict(softcap=3.0, z_loss=0.1, temperature=0.8, weight=[1.0, 2.0, 1.0, 0.5], reduction="mean"),
    ),
    "both, off-target smoothing, sum": (
        ["1", "7", "-2"],
        2,
        dict(softcap=2.0, z_loss=0.05, label_smoothing=0.2, smoothing_style="off-target", reduction="sum"),
    ),
}


def command_line(logits: list[str], label: int, options: dict) -> list[str]:
    names = {"softcap": "--softcap", "z_loss": "--z-loss", "temperature": "-T", "label_smoothing": "--smoothing",
             "smoothing_style": "--smoothing-style", "reduction": "--reduction"}  # fmt: skip
    args = [*logits, "--label", str(label)]
    for key, value in options.items():
        args += ["-w", ",".join(map(str, value))] if key == "weight" else [names[key], str(value)]
    return args


def proofs(sce, name: str) -> dict:
    logits, label, options = CASES[name]
    result = sce("grad", *command_line(logits, label, options), "--verify", "--jacobian", "--hessian", "-f", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def gradient_at(z: np.ndarray, label: int, options: dict) -> np.ndarray:
    return softmax_cross_entropy(z[None], [label], **options).gradient[0]


@pytest.mark.parametrize("name", list(CASES))
def test_the_hessian_is_the_derivative_of_the_gradient(name, sce):
    logits, label, options = CASES[name]
    z = np.array([float(v) for v in logits])
    h = 1e-5
    numeric = np.array(
        [(gradient_at(z + h * e, label, options) - gradient_at(z - h * e, label, options)) / (2 * h)
         for e in np.eye(len(z))]
    )  # fmt: skip
    hessian = np.array(proofs(sce, name)["hessian"]["matrix"])
    assert np.allclose(hessian, hessian.T, atol=1e-15)
    assert np.max(np.abs(hessian - numeric)) < 1e-8 * max(1.0, np.max(np.abs(numeric)))


@pytest.mark.parametrize("name", list(CASES))
def test_the_jacobian_route_and_the_finite_differences_give_the_gradient(name, sce):
    document = proofs(sce, name)
    logits, label, options = CASES[name]
    expected = gradient_at(np.array([float(v) for v in logits]), label, options)
    shown = np.array(document["gradient"])
    # The JSON carries the exact gradient rounded once (mpmath, 50 digits): within half an ulp of it, and so
    # within an ulp or two of the library's float64 computation.
    with mpmath.workdps(50):
        exact = reference.gradient([[mpmath.mpf(v) for v in logits]], labels=[label], **{"reduction": "none", **options})[0]
        assert all(abs(mpmath.mpf(float(g)) - e) <= mpmath.mpf(np.spacing(abs(g))) / 2 * (1 + 1e-9)
                   for g, e in zip(shown, exact)), (shown, exact)  # fmt: skip
    assert np.max(np.abs(shown - expected) / np.spacing(np.abs(expected))) <= 4
    assert np.max(np.abs(np.array(document["jacobian"]["product"]) - expected)) < 1e-14
    assert document["verify"]["verdict"] == "agree"


def test_the_hessian_with_the_options_refuses_beyond_the_matrix_limit_in_one_line(sce):
    logits = [str(k % 7) for k in range(1001)]
    result = sce("grad", *logits, "--label", "3", "--z-loss", "0.1", "--hessian")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith("sce: error: --hessian with --z-loss forms the K×K matrix (it is no multiple")


def finite_difference_of_probabilities(z: np.ndarray, label: int, options: dict) -> np.ndarray:
    h = 1e-6
    return np.array(
        [(softmax_cross_entropy((z + h * e)[None], [label], **options).probabilities[0]
          - softmax_cross_entropy((z - h * e)[None], [label], **options).probabilities[0]) / (2 * h)
         for e in np.eye(len(z))]
    ).T  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_ds_dz_is_the_derivative_of_the_probabilities_with_the_options(name, sce):
    # The words say ∂s/∂z, with respect to the logits as given: central differences agree.
    logits, label, options = CASES[name]
    document = proofs(sce, name)["jacobian"]
    z = np.array([float(v) for v in logits])
    numeric = finite_difference_of_probabilities(z, label, options)
    assert np.max(np.abs(np.array(document["ds_dz"]) - numeric)) < 1e-8
    p = softmax_cross_entropy(z[None], [label], **options).probabilities[0]
    if "softcap" in options or "temperature" in options:
        assert np.allclose(document["ds_db"], np.diag(p) - np.outer(p, p), rtol=1e-15, atol=0)
    else:
        assert "ds_db" not in document  # b is z itself
    assert ("tanh" in document["ds_dz_is"]) == ("softcap" in options)
    assert ("z-loss" in document["product_is"]) == ("z_loss" in options)


def hessian_of(sce, args: list[str]) -> dict:
    result = sce("grad", *args, "--hessian", "-f", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["hessian"]


def test_convexity_is_stated_only_where_the_eigenvalues_show_it(sce):
    plain = hessian_of(sce, ["2", "3", "4", "-l", "1"])
    assert plain["statement"].startswith("All are ≥ 0 (up to rounding): the loss is convex in z.")
    capped = hessian_of(sce, ["2", "-3", "4", "-l", "1", "--softcap", "3"])
    assert min(capped["eigenvalues"]) < 0
    assert "is negative: the loss is not convex in z at these logits (tanh bends the logits)" in capped["statement"]
    negative_lse = hessian_of(sce, ["-5", "-6", "-7", "-l", "0", "--z-loss", "3"])
    assert min(negative_lse["eigenvalues"]) < 0
    assert "(λ·lse² is not convex where lse < 0, as here)" in negative_lse["statement"]
    convex_here = hessian_of(sce, ["2", "3", "4", "-l", "0", "--z-loss", "0.1"])
    assert min(convex_here["eigenvalues"]) > 0
    assert convex_here["statement"].startswith("All are ≥ 0 (up to rounding) here: the loss is convex near these")
    assert "no eigenvalue need be 0" in convex_here["statement"] and "convex in z." not in convex_here["statement"]
    assert "tanh" not in convex_here["formula"]


def test_the_hessian_refusal_names_the_option_given(sce):
    logits = [str(k % 7) for k in range(1001)]
    result = sce("grad", *logits, "--label", "3", "--softcap", "30", "--hessian")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith("sce: error: --hessian with --softcap forms the K×K matrix")
    assert result.output.endswith("up to 1,000 classes (here 1,001); leave out --hessian or --softcap\n")
    both = sce("grad", *logits, "--label", "3", "--softcap", "30", "--z-loss", "1", "--hessian")
    assert "--hessian with --softcap and --z-loss forms" in both.output


def test_the_json_warning_about_omitted_matrices_says_what_ds_dz_is_with_a_cap(sce):
    logits = [str(k % 7) for k in range(1001)]
    result = sce("grad", *logits, "--label", "3", "--softcap", "30", "--jacobian", "-f", "json")
    assert result.exit_code == 0
    assert "∂s/∂z is (diag(s) - s sᵀ)·diag(1 − tanh²(z/c))/T" in result.stderr
    assert json.loads(result.stdout)["jacobian"]["ds_dz"] is None


def exact_capped_hessian_eigenvalues(logits: list[float], label: int, cap: float) -> list:
    """mpmath's eigenvalues of ∇²L with a cap, from the definition: diag(a′) J diag(a′) + diag((s - y) ⊙ a″)."""
    import mpmath as mp

    with mp.workdps(60):
        c = mp.mpf(cap)
        z = [mp.mpf(v) for v in logits]
        a = [c * mp.tanh(v / c) for v in z]
        top = max(a)
        e = [mp.exp(v - top) for v in a]
        s = [v / mp.fsum(e) for v in e]
        first = [1 - mp.tanh(v / c) ** 2 for v in z]
        second = [-2 * mp.tanh(v / c) * (1 - mp.tanh(v / c) ** 2) / c for v in z]
        size = len(z)
        matrix = mp.matrix(size, size)
        for i in range(size):
            for j in range(size):
                jacobian = s[i] * ((1 if i == j else 0) - s[j])
                matrix[i, j] = first[i] * jacobian * first[j] + ((s[i] - (i == label)) * second[i] if i == j else 0)
        return sorted(mp.eigsy(matrix, eigvals_only=True))


@pytest.mark.parametrize("cap", [1e6, 1e3, 30.0, 3.0])
def test_every_digit_of_a_capped_hessians_eigenvalue_is_the_exact_ones(sce, cap):
    # With c = 1e6 the smallest eigenvalue is -3.8347e-13 (mpmath); the float64 matrix and its eigensolver
    # give -3.8355e-13: only the digits above their rounding (about 4e-15) are the exact value's.
    import mpmath as mp

    result = sce("grad", "2", "3", "4", "-l", "1", "--softcap", cap, "--hessian")
    line = next(line for line in result.stdout.splitlines() if line.startswith("eigenvalues:"))
    shown = [text.strip() for text in line.removeprefix("eigenvalues:").split(",")]
    exact = exact_capped_hessian_eigenvalues([2, 3, 4], 1, cap)
    for text, value in zip(shown, exact):
        if text.startswith("0 ± "):  # within the rounding: only a bound is shown
            assert abs(value) <= mp.mpf(text.removeprefix("0 ± ")), (text, value)
            continue
        mantissa, _, exponent = text.partition("e")
        half_unit = mp.mpf(5) * mp.mpf(10) ** (int(exponent or 0) - len(mantissa.partition(".")[2]) - 1)
        assert abs(mp.mpf(text) - value) < half_unit, (text, value)
