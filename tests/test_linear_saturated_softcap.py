"""A soft cap whose factor 1 − tanh²(a/c) is nearly 0 (pre-cap logits many times the cap): the quick
check and the check on shards count errors at the size of ∂L/∂a, before the factor, as the full
check does, so that a negated gradient fails in every mode, output and profile while a correct
kernel, whose factor formed in float32 or bfloat16 is off by an ulp of 1, still passes.

Expected values: float64 numpy on float32 inputs (products of float32 numbers are exact in float64
and the sums here are short), and the float32 kernels of ``tests/linear_kernels.py``."""

from __future__ import annotations

import numpy as np
import pytest

from sce.grading.linear.profiles import PROFILES
from sce.io.arrays.dump import bfloat16_dtype
from sce.testing import check_linear_cross_entropy
from tests.linear_kernels import Case, kernel, make_case

F32 = np.float32
GRADIENTS = ("grad_hidden", "grad_classifier", "grad_bias")


def exact_softcapped_mean_gradients(hidden, classifier, labels, cap):  # noqa: ANN001, ANN201
    """∂L/∂E and ∂L/∂C of the mean cross-entropy of c·tanh(a/c), a = E·Cᵀ, in float64."""
    e, c = hidden.astype(np.float64), classifier.astype(np.float64)
    a = e @ c.T
    z = cap * np.tanh(a / cap)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = p.copy()
    g[np.arange(len(labels)), labels] -= 1
    g *= (1 - np.tanh(a / cap) ** 2) / len(labels)
    return g @ c, g.T @ e


def _gemma_like_inputs():  # noqa: ANN202
    """softcap=30 (Gemma's) on pre-cap logits of a few hundred."""
    rng = np.random.default_rng(1)
    hidden = (rng.standard_normal((32, 16)) * 20).astype(F32)
    classifier = (rng.standard_normal((20, 16)) * 5).astype(F32)
    return hidden, classifier, rng.integers(0, 20, 32)


def test_quick_mode_does_not_pass_negated_gradients_under_a_soft_cap() -> None:
    # The full check finds them 2e+04 ulp off against 9.5 allowed; quick mode once allowed 6.7e+07 ulp,
    # counting at the capped size the float32 factor's rounding, which is all of a saturated factor.
    hidden, classifier, labels = _gemma_like_inputs()
    grad_hidden, grad_classifier = exact_softcapped_mean_gradients(hidden, classifier, labels, 30.0)
    assert np.abs(grad_hidden).max() > 1e-4  # the cap does not flatten every row's gradient to nothing
    negated = {"grad_hidden": (-grad_hidden).astype(F32), "grad_classifier": (-grad_classifier).astype(F32)}
    assert not check_linear_cross_entropy(hidden, classifier, labels, softcap=30.0, **negated).passed
    quick = check_linear_cross_entropy(hidden, classifier, labels, softcap=30.0, mode="quick", **negated)
    assert not quick.passed, str(quick)


def test_shards_do_not_pass_negated_gradients_under_a_soft_cap() -> None:
    hidden, classifier, labels = _gemma_like_inputs()
    grad_hidden, grad_classifier = exact_softcapped_mean_gradients(hidden, classifier, labels, 30.0)
    negated = (-grad_classifier).astype(F32)
    report = check_linear_cross_entropy(
        hidden, [classifier[:10], classifier[10:]], labels, softcap=30.0,
        grad_hidden=(-grad_hidden).astype(F32), grad_classifier=[negated[:10], negated[10:]],
    )  # fmt: skip
    assert report.mode == "full"
    assert not report.passed, str(report)


def _saturated_case(dtype: object, seed: int, cap: float = 30.0) -> Case:
    """linear_kernels' case with its hidden states scaled until the pre-cap logits reach 5–10 caps."""
    case = make_case(dtype, seed=seed, softcap=cap)
    e, c = case.hidden.astype(np.float64), case.classifier.astype(np.float64)
    scale = 8 * cap / np.abs(e @ c.T).max()
    return Case((e * scale).astype(dtype), case.classifier, case.labels, case.bias, case.options)


def _checked(case: Case, outputs: dict, mode: str, profile: str, shards: bool):  # noqa: ANN202
    classifier, bias = case.classifier, case.bias
    if shards:
        cut = len(classifier) // 3
        classifier, bias = [classifier[:cut], classifier[cut:]], [bias[:cut], bias[cut:]]
        outputs = {
            name: [value[:cut], value[cut:]] if name in ("grad_classifier", "grad_bias") else value
            for name, value in outputs.items()
        }
    return check_linear_cross_entropy(
        case.hidden, classifier, case.labels, bias=bias, mode=mode, profile=profile, **outputs, **case.options
    )


@pytest.mark.parametrize("shards", [False, True], ids=["whole", "shards"])
@pytest.mark.parametrize("mode", ["quick", "full"])
@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_saturated_cap_passes_a_correct_kernel_and_fails_each_negated_gradient(
    dtype: str, profile: str, mode: str, shards: bool
) -> None:
    kind = F32 if dtype == "float32" else bfloat16_dtype()
    case = _saturated_case(kind, seed=3)
    outputs = kernel(case)  # the factor formed from tanh's float32 result, as the common kernels do
    outputs.pop("loss")
    report = _checked(case, outputs, mode, profile, shards)
    assert report.passed, str(report)
    for name in GRADIENTS:
        negated = dict(outputs, **{name: -outputs[name]})
        report = _checked(case, negated, mode, profile, shards)
        failed = getattr(report, name)
        assert not report.passed and failed is not None and not failed.passed, (name, str(report))
