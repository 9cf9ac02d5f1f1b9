"""Grading an answer as one sequential sum over the classes: a common factor per row, bounded.

A textbook loop (one thread per row, ``total += exp(z_j − max)``) sums a
vocabulary's exponentials one after another. Its rounding errors add up to a
relative error δ of the sum, |δ| ≤ (K − 1)·u (u the unit roundoff of the type it
sums in: float32 for the half types): some 2,000 ulp of float32 at K = 128,000
(each addition rounds at the running sum's size), and every probability of the
row inherits the same factor 1/(1 + δ). Frameworks' sums in lanes or pairs are far closer, and the
default verdict allows only theirs; with ``sum_order="sequential"`` each row's
gradient may carry one such factor: δ is fitted to the answer's own errors
(least squares, in ulps), bounded by (K − 1)·u, and its term taken out before
the usual grading. One number per row, bounded, and of that shape only: a
negated gradient, a missing 1/N or a label off by one still fail.

(K − 1)·u is the worst case, reached only where every addition rounds the same
way, not what a running sum over a row's own terms gives: over 128,000 classes
of normal logits some 2e-5, a hundredth of it. A loop that stops 500 classes
early is 0.3 % off, within the worst case and far beyond any sum. So each row's
δ is bounded by what running sums over its own exponentials give, forwards,
backwards and largest first (where the later terms are lost whole), 4× that as
the verdict allows 4× its baseline, plus λ·√(K − 1)·u for the rounding errors'
spread in any other order (Higham and Mary's probabilistic bound, λ = 6), and
never more than (K − 1)·u.
"""

from __future__ import annotations

import numpy as np

from sce.grading.dump.baseline import RowCoefficients, RowScale, ulp_unit
from sce.loss import SoftmaxCrossEntropyResult

#: The sum orders a verdict knows: "parallel", frameworks' sums in lanes or pairs (the
#: baseline's); "sequential", one running sum per row.
SUM_ORDERS = ("parallel", "sequential")
#: The largest |δ| allowed however many classes (float32 at K > 1,000,000 would reach 1).
LARGEST_FACTOR = 2.0**-4


def sum_error_bound(classes: int, dtype: str) -> float:
    """(K − 1)·u: the bound on a sequential sum's relative error over K positive terms, u the unit
    roundoff of the type the sum is taken in (float32 for half types, as frameworks sum them).

    Examples
    --------
    >>> round(sum_error_bound(128_000, "float32"), 5)
    0.00763
    >>> sum_error_bound(128_000, "float64") < 1e-10
    True
    """
    unit_roundoff = 2.0**-53 if dtype == "float64" else 2.0**-24
    return min(LARGEST_FACTOR, max(classes - 1, 0) * unit_roundoff)


#: How many times the largest simulated running sum's error a row's δ may be (as the verdict's MARGIN_FACTOR).
SIMULATED_FACTOR = 4.0
#: λ in λ·√(K − 1)·u: the spread of a running sum's rounding errors in any order (Higham and Mary,
#: "A new approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 41 (2019): the
#: bound fails with probability below 2·exp(−λ²/2), 3e-8 a row at λ = 6).
SPREAD = 6.0


def row_sum_bounds(probabilities: np.ndarray, dtype: str) -> np.ndarray:
    """Each row's bound on a sequential sum's relative error δ (B): SIMULATED_FACTOR × the largest
    error of running sums over the row's exponentials e^(z − max) (= p / max p) in the type the sum
    is taken in (forwards, backwards, largest first), plus SPREAD·√(K − 1)·u, at most
    :func:`sum_error_bound`.

    Examples
    --------
    >>> p = np.full((1, 128_000), 1 / 128_000)  # equal terms of 1: every running sum is exact
    >>> bound = row_sum_bounds(p, "float32")[0]
    >>> bool(bound < sum_error_bound(128_000, "float32") / 30), round(float(bound) / (6 * 127_999**0.5 * 2.0**-24), 6)
    (True, 1.0)
    """
    rows, classes = probabilities.shape
    if not classes:
        return np.zeros(rows)
    work = np.float64 if dtype == "float64" else np.float32
    unit_roundoff = 2.0**-53 if dtype == "float64" else 2.0**-24
    with np.errstate(all="ignore"):
        top = probabilities.max(axis=1, keepdims=True)
        terms = (probabilities / np.where(top > 0, top, 1.0)).astype(work)
        exact = terms.sum(axis=1, dtype=np.float64)
        errors = [
            np.abs(np.cumsum(ordered, axis=1, dtype=work)[:, -1].astype(np.float64) / exact - 1.0)
            for ordered in (terms, terms[:, ::-1], np.sort(terms, axis=1)[:, ::-1])
        ]
        simulated = np.nan_to_num(np.maximum.reduce(errors), nan=0.0)
    spread = SPREAD * np.sqrt(max(classes - 1, 0)) * unit_roundoff
    return np.minimum(SIMULATED_FACTOR * simulated + spread, sum_error_bound(classes, dtype))


def factor_derivative(exact: SoftmaxCrossEntropyResult, coef: RowScale) -> np.ndarray:
    """How each gradient entry moves with the row's factor 1 + δ on its probabilities (B×K):
    (a·s + 2λ·lse/(T·D_z))·p times the cap's factor (the z-loss's lse moves by δ too: its
    smaller term, −2λ·p/(T·D_z), is included)."""
    per_row = abs(coef.a) * np.asarray(coef.s, dtype=np.float64)
    if isinstance(coef, RowCoefficients) and coef.z_scale and exact.log_sum_exp is not None:
        counted = np.ones(len(per_row), bool) if coef.counted is None else coef.counted
        z_term = coef.z_scale * (np.asarray(exact.log_sum_exp, dtype=np.float64) - 1.0)
        per_row = per_row + np.where(counted, z_term, 0.0)
    derivative = per_row[:, None] * exact.probabilities
    if exact.options.softcap is not None:
        derivative = derivative * exact.cap_derivative
    return derivative


def loss_shifts(exact: SoftmaxCrossEntropyResult, coef: RowScale, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How each row's loss moves with its factor 1 + δ on the probabilities (lse moves by −δ):
    the cross-entropy's −δ·s, and the z-loss's −δ·2λ·lse (0 without a z-loss), each before any
    reduction (B each)."""
    cross_entropy = -delta * np.asarray(coef.s, dtype=np.float64)
    z_loss = np.zeros_like(cross_entropy)
    lam = exact.options.z_loss
    if lam and exact.log_sum_exp is not None:
        z_loss = np.where(exact.counted, -delta * 2 * lam * np.asarray(exact.log_sum_exp, dtype=np.float64), 0.0)
    return cross_entropy, z_loss


def without_row_factors(
    given: np.ndarray,
    expected: np.ndarray,
    derivative: np.ndarray,
    magnitude: np.ndarray,
    dtype: str,
    bound: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The answer (float64) with each row's best-fitting factor's term δ·derivative taken out,
    |δ| ≤ ``bound`` (one for every row, or each row's), and the δ of each row; δ minimises the
    row's Σ e² in ulps of ``dtype`` at ``magnitude``.

    Examples
    --------
    >>> expected = np.array([[0.25, -0.5, 0.25]])
    >>> derivative = np.array([[0.25, 0.5, 0.25]])
    >>> given = expected + 1e-3 * derivative  # every probability 0.1 % larger
    >>> values, delta = without_row_factors(given, expected, derivative, np.ones((1, 3)), "float32", 2e-3)
    >>> values.round(12).tolist(), delta.round(6).tolist()
    ([[0.25, -0.5, 0.25]], [0.001])
    >>> bool(without_row_factors(given, expected, derivative, np.ones((1, 3)), "float32", 1e-4)[0][0, 0] > 0.25)
    True
    """
    unit = ulp_unit(magnitude, dtype)
    with np.errstate(all="ignore"):
        values = np.asarray(given, dtype=np.float64)
        weighted = derivative / unit
        residual = (values - expected) / unit
        finite = np.isfinite(residual) & np.isfinite(weighted)
        top = np.where(finite, residual * weighted, 0.0).sum(axis=1)
        bottom = np.where(finite, weighted * weighted, 0.0).sum(axis=1)
        delta = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), 0.0)
    delta = np.clip(np.nan_to_num(delta), -bound, bound)
    if not delta.any():
        return values, delta
    return values - delta[:, None] * derivative, delta
