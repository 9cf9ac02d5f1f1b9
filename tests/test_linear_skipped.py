"""The cce profile excuses what cut cross-entropy's filter leaves out, the gradient entries below ε/32 of the type
(each type's own ε, as ``torch.finfo(dtype).eps`` gives it), and no more: a kernel skipping entries far above that
threshold fails (one skipping below it passes: here and in tests/test_linear_cross_entropy.py). Expected values from
float64 numpy and numpy's (ml_dtypes') ``finfo``."""

from __future__ import annotations

import numpy as np
import pytest

from sce.grading.linear import skipped
from sce.grading.linear.profiles import PROFILES
from sce.loss.linear_terms import linear_terms
from sce.options import LossOptions
from sce.testing import check_linear_cross_entropy


def test_the_cce_profile_allows_skipping_below_its_threshold_not_sixteen_times_above():
    # profile="cce" allows a kernel to skip gradient entries below ε/32 of the type (2⁻¹² in bfloat16). A kernel that
    # skips every entry whose probability is below 4e-3, 16 times that threshold (96 % of the entries here), must
    # fail: taking every entry at the threshold (ε/32 times the sum of |C| over every class) would excuse it; the
    # entries the exact probabilities put below the threshold do not.
    bfloat16 = pytest.importorskip("ml_dtypes", reason="the bfloat16 extra (sce[bfloat16]) is not installed").bfloat16
    rng = np.random.default_rng(0)
    n, d, v = 64, 32, 200
    hidden = (rng.standard_normal((n, d)) * 2).astype(bfloat16)
    classifier = (rng.standard_normal((v, d)) / 2).astype(bfloat16)
    labels = rng.integers(0, v, n)
    e, c = hidden.astype(np.float64), classifier.astype(np.float64)
    z = e @ c.T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    skipped = p < 4e-3
    assert skipped.mean() > 0.9
    g = np.where(skipped, 0.0, p)
    g[np.arange(n), labels] -= 1
    g /= n
    answer = {"grad_hidden": (g @ c).astype(bfloat16), "grad_classifier": (g.T @ e).astype(bfloat16)}
    assert not check_linear_cross_entropy(hidden, classifier, labels, profile="liger", **answer).passed
    report = check_linear_cross_entropy(hidden, classifier, labels, profile="cce", **answer)
    assert not report.passed, str(report)


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64"])
def test_the_cce_threshold_is_each_types_own_epsilon_over_32(name: str) -> None:
    # cut cross-entropy's filter_eps="auto" is torch.finfo(dtype).eps / 32: 2⁻¹⁵ in float16, 2⁻¹² in bfloat16,
    # 2⁻²⁸ in float32. One row, reduction sum: the row's threshold on an entry of ∂L/∂z is that alone.
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="the bfloat16 extra (sce[bfloat16]) is not installed")
    dtype = np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)
    eps = float(ml_dtypes.finfo(dtype).eps)
    terms = linear_terms(np.array([0]), 3, LossOptions(reduction="sum"), 1.0)
    threshold = skipped.skipped_per_row(terms, dtype, PROFILES["cce"])
    assert threshold is not None and threshold.tolist() == [eps / 32]
    assert skipped.skipped_per_row(terms, dtype, PROFILES["liger"]) is None


def _float16_kernel_skipping_below(threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """float16 inputs (V = 1000, so many probabilities lie near 10⁻⁴) and the gradients of the mean cross-entropy
    formed in float64 from the exact probabilities, with every entry whose probability is below ``threshold`` left
    out, rounded to float16: a filtering kernel without any rounding of its own."""
    rng = np.random.default_rng(0)
    n, d, v = 64, 32, 1000
    hidden = rng.standard_normal((n, d)).astype(np.float16)
    classifier = (rng.standard_normal((v, d)) / 2).astype(np.float16)
    labels = rng.integers(0, v, n)
    e, c = hidden.astype(np.float64), classifier.astype(np.float64)
    z = e @ c.T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = np.where(p < threshold, 0.0, p)
    g[np.arange(n), labels] -= 1
    g /= n
    answer = {"grad_hidden": (g @ c).astype(np.float16), "grad_classifier": (g.T @ e).astype(np.float16)}
    return hidden, classifier, labels, answer


def test_the_cce_profile_takes_float16s_own_epsilon_not_bfloat16s() -> None:
    # float16's ε is 2⁻¹⁰, so cut cross-entropy skips entries below 2⁻¹⁵ in float16; bfloat16's ε is 2⁻⁷, 8 times
    # larger, its threshold 2⁻¹². A float16 kernel that skips below bfloat16's threshold leaves out entries from 2 to 8
    # times float16's own (16 % of all entries here), past the twice its threshold a kernel's own probabilities may
    # move an entry: it fails. Excused at bfloat16's threshold, it would pass.
    float16_threshold, bfloat16_threshold = float(np.finfo(np.float16).eps) / 32, 2.0**-7 / 32
    assert bfloat16_threshold == 8 * float16_threshold
    hidden, classifier, labels, answer = _float16_kernel_skipping_below(bfloat16_threshold)
    report = check_linear_cross_entropy(hidden, classifier, labels, profile="cce", **answer)
    assert not report.passed, str(report)
    assert report.grad_classifier is not None and not report.grad_classifier.passed


def test_a_float16_kernel_skipping_below_float16s_threshold_passes_under_cce_only() -> None:
    # The same kernel skipping only what cut cross-entropy skips in float16 (p < 2⁻¹⁵, half the entries here) passes
    # under cce, and fails where nothing may be skipped: the entries left out matter at float16's precision.
    hidden, classifier, labels, answer = _float16_kernel_skipping_below(float(np.finfo(np.float16).eps) / 32)
    report = check_linear_cross_entropy(hidden, classifier, labels, profile="cce", **answer)
    assert report.passed, str(report)
    assert not check_linear_cross_entropy(hidden, classifier, labels, profile="liger", **answer).passed
