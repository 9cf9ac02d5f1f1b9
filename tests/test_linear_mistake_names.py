"""A named mistake must explain the failing answer: a what-if that gives the right answer itself (the mean of
per-chunk means where every chunk weighs the same) is never named, however wrong the answer."""

from __future__ import annotations

import numpy as np

from sce.loss import linear_cross_entropy
from sce.testing import check_linear_cross_entropy


def _float64_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    e = rng.standard_normal((12, 16)).astype(np.float32).astype(np.float64)
    c = (rng.standard_normal((40, 16)) / 4).astype(np.float32).astype(np.float64)
    y = rng.integers(0, 40, 12)
    return e, c, y


def test_a_float64_answer_30_ulps_off_everywhere_is_not_named_a_mistake_that_equals_the_right_answer() -> None:
    # No row is ignored and every weight is 1: "the mean of per-chunk means" is then the mean itself
    # (chunks of one row: 1/(12·1) each), so it cannot explain an answer the exact grading fails.
    e, c, y = _float64_case()
    right = linear_cross_entropy(e, c, y)
    d_e, d_c = right.grad_hidden.copy(), right.grad_classifier.copy()
    for _ in range(30):
        d_e, d_c = np.nextafter(d_e, np.inf), np.nextafter(d_c, np.inf)
    report = check_linear_cross_entropy(e, c, y, grad_hidden=d_e, grad_classifier=d_c)
    assert not report.passed
    assert report.mistake is None, report.summary


def test_a_zero_answer_at_huge_hidden_states_is_not_named_the_mean_of_per_chunk_means() -> None:
    rng = np.random.default_rng(1)
    n, d, v = 16, 8, 24
    for _ in range(3):  # the draws of the scales 1, 1e-39 and 1e-42 before it
        rng.standard_normal((n, d)), rng.standard_normal((v, d)), rng.integers(0, v, n)
    e = (rng.standard_normal((n, d)) * 1e20).astype(np.float32)
    c = (rng.standard_normal((v, d)) / 4).astype(np.float32)
    y = rng.integers(0, v, n)
    report = check_linear_cross_entropy(
        e, c, y, grad_hidden=np.zeros_like(e), grad_classifier=np.zeros_like(c)
    )
    assert not report.passed
    assert report.mistake is None, report.summary
