"""The fused check grades ∂L/∂E and ∂L/∂C by the compiled loop of sce check --arrays, with the
operands' size given: the same report as numpy's passes give (the sums of squares added in another
order, equal to the 6 digits the typical errors show)."""

from __future__ import annotations

import numpy as np
import pytest

from sce.grading.dump import ulp_kernel
from sce.testing import check_linear_cross_entropy

from .linear_kernels import kernel, make_case

needs_the_loop = pytest.mark.skipif(ulp_kernel.library() is None, reason="the compiled loop was not built")


def _reports(monkeypatch, case, outputs, **keywords):  # noqa: ANN001, ANN003, ANN202
    """The report with the compiled loop, then without it, and how many blocks the loop graded."""
    graded = []
    original = ulp_kernel.grade_sized

    def counted(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        found = original(*args, **kw)
        graded.append(found is not None)
        return found

    monkeypatch.setattr(ulp_kernel, "grade_sized", counted)
    arguments = dict(bias=case.bias, **case.options, **keywords)
    compiled = check_linear_cross_entropy(case.hidden, case.classifier, case.labels, **outputs, **arguments)
    monkeypatch.setattr(ulp_kernel, "library", lambda: None)
    plain = check_linear_cross_entropy(case.hidden, case.classifier, case.labels, **outputs, **arguments)
    return compiled.to_dict(), plain.to_dict(), graded


def _assert_same(compiled: dict, plain: dict) -> None:
    """Every field alike, the typical (rms) errors to the 6 digits they are rounded to."""
    for name in ("loss", "grad_hidden", "grad_classifier", "grad_bias"):
        a, b = compiled.get(name), plain.get(name)
        if a is None or b is None:
            assert a is b is None
            continue
        for field in ("rms_ulp", "allowed_rms_ulp"):
            found, expected = a.pop(field), b.pop(field)
            if isinstance(expected, str):  # "inf" (an entry not finite), as to_dict writes it
                assert found == expected
            else:
                assert found == pytest.approx(expected, rel=2e-6, abs=0)
    assert compiled == plain


@needs_the_loop
@pytest.mark.parametrize(
    "options",
    [{}, {"softcap": 2.0, "z_loss": 1e-3}, {"label_smoothing": 0.1, "reduction": "sum"}, {"reduction": "none"}],
    ids=["plain", "softcap-z-loss", "smoothing-sum", "none"],
)
@pytest.mark.parametrize("mistake", [None, "classifier_in_input_type", "mean_of_chunk_means", "label_rounded_early"])
def test_the_compiled_loop_gives_the_fused_checks_report_of_numpy(monkeypatch, options, mistake):
    case = make_case(np.float32, n=24, d=16, v=56, seed=3, **options)
    outputs = kernel(case, mistake)
    compiled, plain, graded = _reports(monkeypatch, case, outputs)
    assert graded and all(graded)  # ∂L/∂E and ∂L/∂C went through the loop
    _assert_same(compiled, plain)


@needs_the_loop
@pytest.mark.parametrize("spoil", [np.nan, np.inf, -np.inf])
def test_an_answer_not_finite_is_left_to_numpy_and_fails(monkeypatch, spoil):
    case = make_case(np.float32, n=12, d=8, v=24, seed=5)
    outputs = kernel(case)
    outputs["grad_classifier"] = outputs["grad_classifier"].copy()
    outputs["grad_classifier"][3, 2] = spoil
    compiled, plain, graded = _reports(monkeypatch, case, outputs)
    assert False in graded  # the block holding it went to numpy
    assert compiled["passed"] is False
    _assert_same(compiled, plain)


@needs_the_loop
def test_float64_answers_and_inputs_are_graded_alike_by_the_loop(monkeypatch):
    from sce.loss import linear_cross_entropy

    case = make_case(np.float64, n=16, d=8, v=32, seed=7)
    found = linear_cross_entropy(case.hidden, case.classifier, case.labels, bias=case.bias, **case.options)
    outputs = {"loss": np.float64(found.loss), "grad_hidden": found.grad_hidden + 0.0,
               "grad_classifier": found.grad_classifier * (1 + 2.0**-50), "grad_bias": found.grad_bias}  # fmt: skip
    compiled, plain, graded = _reports(monkeypatch, case, outputs)
    assert graded and all(graded)
    assert compiled["passed"] is True
    _assert_same(compiled, plain)


def test_bfloat16_answers_are_graded_by_numpy(monkeypatch):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    case = make_case(ml_dtypes.bfloat16, n=12, d=8, v=24, seed=2)
    outputs = kernel(case)
    compiled, plain, graded = _reports(monkeypatch, case, outputs)
    assert not any(graded)
    assert compiled == plain
