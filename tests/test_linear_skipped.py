"""The cce profile excuses what cut cross-entropy's filter leaves out, the gradient entries below ε/32 of the type,
and no more: a kernel skipping entries far above that threshold fails (one skipping below it passes:
tests/test_linear_cross_entropy.py). Expected values from float64 numpy."""

from __future__ import annotations

import numpy as np
import pytest

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
