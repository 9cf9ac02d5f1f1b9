"""The loop profile: a kernel that sums each result in one running sum (a textbook loop over the vocabulary,
∂L/∂C added one row at a time) is allowed the worst case of such a sum, Higham's K·u, as quick mode allows; a
planted mistake still fails under it. Expected values from float64 numpy on float32 inputs, and Higham's bound."""

from __future__ import annotations

import numpy as np
import pytest

from sce.testing import check_linear_cross_entropy

from .linear_kernels import exact_mean_outputs, kernel, make_case, random_inputs

F32 = np.float32

def test_a_textbook_float32_loop_summing_in_order_passes_the_loop_profile_and_quick_mode():
    # A kernel that sums every product in float32 one after another (a textbook loop, a naive Triton kernel's inner
    # loop) errs by at most K·u₃₂ of the operands' size (Higham), K = V = 16,000 here: every entry of its ∂L/∂E is
    # within that bound. The default profile allows 4× what frameworks' blocked sums err (70 ulp > 38 allowed);
    # quick mode and the loop profile allow Higham's bound.
    n, d, v = 16, 16, 16000
    hidden, classifier, labels = random_inputs(n, d, v, seed=1)
    z = np.cumsum(hidden[:, None, :] * classifier[None, :, :], axis=2, dtype=F32)[:, :, -1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p = p / np.cumsum(p, axis=1, dtype=F32)[:, -1:]
    rows = np.arange(n)
    loss = np.cumsum(-np.log(p[rows, labels]), dtype=F32)[-1] / F32(n)
    g = p.copy()
    g[rows, labels] -= F32(1)
    g /= F32(n)
    grad_hidden = np.cumsum(g[:, :, None] * classifier[None, :, :], axis=1, dtype=F32)[:, -1, :]
    _, exact_grad_hidden, _ = exact_mean_outputs(hidden, classifier, labels)
    size = np.abs(g.astype(np.float64)) @ np.abs(classifier.astype(np.float64))
    higham = v * 2.0**-24 * size
    assert np.all(np.abs(grad_hidden - exact_grad_hidden) <= higham)  # a correct float32 kernel, by Higham's bound
    assert check_linear_cross_entropy(hidden, classifier, labels, loss=loss, grad_hidden=grad_hidden, mode="quick").passed
    assert not check_linear_cross_entropy(hidden, classifier, labels, loss=loss, grad_hidden=grad_hidden).passed
    report = check_linear_cross_entropy(hidden, classifier, labels, loss=loss, grad_hidden=grad_hidden, profile="loop")
    assert report.passed, str(report)
    assert report.profile == "loop" and report.grad_hidden.allowed_ulp >= v  # Higham's K·u, in ulps


def test_a_classifier_gradient_summed_row_by_row_in_float32_passes_the_loop_profile():
    # ∂L/∂C = Σₙ Gₙᵥ·Eₙ summed one row after another in float32 (a loop over the batch, or atomics in row order)
    # over 50,000 rows: within Higham's N·u₃₂; quick mode and the loop profile pass it, where the default profile
    # allows 4× a BLAS product's error ("grad_classifier 12.7 ulp > 11.3 allowed").
    n, d, v = 50_000, 4, 8
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((n, d)).astype(F32)
    classifier = (rng.standard_normal((v, d)) / 2).astype(F32)
    labels = rng.integers(0, v, n)
    bias = (rng.standard_normal(v) / 2).astype(F32)
    z = hidden @ classifier.T + bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = p.copy()
    g[np.arange(n), labels] -= F32(1)
    g /= F32(n)
    grad_classifier = np.cumsum(g[:, :, None] * hidden[:, None, :], axis=0, dtype=F32)[-1]
    g64, e64 = g.astype(np.float64), hidden.astype(np.float64)
    higham = (n + 1) * 2.0**-24 * (np.abs(g64).T @ np.abs(e64))  # g's own rounding is a correct kernel's too
    assert np.all(np.abs(grad_classifier - g64.T @ e64) <= higham)
    answer = {"bias": bias, "grad_classifier": grad_classifier}
    assert check_linear_cross_entropy(hidden, classifier, labels, mode="quick", **answer).passed
    report = check_linear_cross_entropy(hidden, classifier, labels, profile="loop", **answer)
    assert report.passed, str(report)


@pytest.mark.parametrize(
    ("dtype", "mistake"),
    [("float32", "mean_of_chunk_means"), ("float32", "skips_small"), ("bfloat16", "mean_of_chunk_means"),
     ("bfloat16", "label_rounded_early"), ("bfloat16", "skips_small")],
)  # fmt: skip
def test_a_planted_mistake_still_fails_under_the_loop_profile_and_is_named_alike(dtype, mistake):
    kind = pytest.importorskip("ml_dtypes").bfloat16 if dtype == "bfloat16" else np.float32
    case = make_case(kind, n=24, d=16, v=40, seed=4)

    def checked(outputs, profile):  # noqa: ANN001, ANN202
        return check_linear_cross_entropy(
            case.hidden, case.classifier, case.labels, bias=case.bias, profile=profile, **outputs, **case.options
        )

    assert checked(kernel(case), "loop").passed
    wrong = checked(kernel(case, mistake), "loop")
    assert not wrong.passed, str(wrong)
    assert wrong.mistake == checked(kernel(case, mistake), "pytorch").mistake


def test_the_loop_profile_fails_a_classifiers_gradient_that_counts_an_ignored_row_in_the_mean() -> None:
    # profile="loop" allows ∂L/∂C Higham's N·u over N rows; a mean divided by N instead of N − 1 is off
    # by 1/(N − 1) relatively, under N·u from N ≈ 4096 up: at 8192 rows the worst case alone would pass it
    # (562 ulp), but a pass the frameworks' allowance refuses stands only where no named mistake explains it.
    rng = np.random.default_rng(0)
    for n in (2048,):  # the draws of the smaller case before it
        rng.standard_normal((n, 4)), rng.standard_normal((8, 4)), rng.integers(0, 8, n)
    n, d, v = 8192, 4, 8
    e = rng.standard_normal((n, d)).astype(np.float32)
    c = rng.standard_normal((v, d)).astype(np.float32)
    y = rng.integers(0, v, n)
    y[0] = -100
    z = e.astype(np.float64) @ c.T.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    counted = y != -100
    g = p.copy()
    g[np.arange(n)[counted], y[counted]] -= 1
    g[~counted] = 0
    wrong = (g.T @ e / n).astype(np.float32)  # divided by every row, the ignored one too
    assert not check_linear_cross_entropy(e, c, y, grad_classifier=wrong).passed
    report = check_linear_cross_entropy(e, c, y, grad_classifier=wrong, profile="loop")
    assert not report.passed, report.summary
    assert report.profile == "loop" and report.mistake == "ignored rows counted in the mean"
