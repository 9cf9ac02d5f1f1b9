"""Hidden states or a classifier below the type's smallest normal number (1e-39 in float32): the gradients
are then subnormal, where an ulp is the type's smallest whatever the value's size. A correct kernel (the
float32 kernels of ``tests/linear_kernels.py``) passes quick mode and the check on shards, whose
projections once allowed only rounding relative to the values; a negated gradient still fails."""

from __future__ import annotations

import numpy as np
import pytest

from sce.io.arrays.dump import bfloat16_dtype
from sce.testing import check_linear_cross_entropy
from tests.linear_kernels import Case, kernel, make_case


def _tiny_case(dtype: object, which: str, factor: float) -> Case:
    case = make_case(dtype, seed=4)
    hidden, classifier = case.hidden, case.classifier
    if which in ("hidden", "both"):
        hidden = (hidden.astype(np.float64) * factor).astype(dtype)
    if which in ("classifier", "both"):
        classifier = (classifier.astype(np.float64) * factor).astype(dtype)
    return Case(hidden, classifier, case.labels, case.bias)


def _checked(case: Case, outputs: dict, mode: str, shards: bool):  # noqa: ANN202
    classifier, bias = case.classifier, case.bias
    if shards:
        classifier, bias = [classifier[:13], classifier[13:]], [bias[:13], bias[13:]]
        outputs = {name: [value[:13], value[13:]] if name in ("grad_classifier", "grad_bias") else value
                   for name, value in outputs.items()}  # fmt: skip
    return check_linear_cross_entropy(case.hidden, classifier, case.labels, bias=bias, mode=mode, **outputs)


@pytest.mark.parametrize(("mode", "shards"), [("quick", False), ("quick", True), ("full", True)])
@pytest.mark.parametrize("which", ["hidden", "classifier", "both"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("factor", [1e-39, 1e-42])
def test_subnormal_inputs_pass_a_correct_kernel_and_fail_a_negated_gradient(
    factor: float, dtype: str, which: str, mode: str, shards: bool
) -> None:
    kind = np.float32 if dtype == "float32" else bfloat16_dtype()
    case = _tiny_case(kind, which, factor)
    outputs = kernel(case)
    report = _checked(case, outputs, mode, shards)
    assert report.passed, str(report)
    name = "grad_classifier" if which == "hidden" else "grad_hidden"  # the gradient made subnormal
    if not np.asarray(outputs[name], dtype=np.float64).any():
        # bfloat16's smallest subnormal (2⁻¹³³, 9e-41) is above these gradients: they round to 0, and so
        # does their negation, which is then the right answer.
        assert (dtype, factor) == ("bfloat16", 1e-42)
        return
    negated = dict(outputs, **{name: -outputs[name]})
    report = _checked(case, negated, mode, shards)
    assert not report.passed, str(report)
