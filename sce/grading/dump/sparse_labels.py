"""The verdict's pass over one block of class-index labels without smoothing, without the
dense coefficient matrix.

With labels and no smoothing, a row's loss coefficients c are w[y] at its
label and 0 everywhere else (all 0 for an ignored row), so that every step of
:mod:`.dtype_baseline` that touches c is the same number as without it
except at the label: p·s − 0 is p·s, max(s·p, 0) is s·p (s·p ≥ 0 or NaN),
and a row of products with c sums to its one product at the label. This
module takes those steps once per row instead of once per entry, and builds
the same-type baseline from the logits as stored (float32 arithmetic on the
stored float32, rather than through a float64 copy rounded back). Every
number it gives is bit for bit the one :func:`.dtype_baseline.baseline` and
:func:`.dtype_baseline.gradient_magnitude` give (tested on generated dumps of
every type and option); a block whose baseline is not finite everywhere is
left to them, as is anything else than labels without smoothing, softcap or
z-loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sce.grading.dump.baseline import lane_sum, numpy_dtype
from sce.grading.dump.ulp_kernel import RouteParts
from sce.options import LossOptions


@dataclass(frozen=True)
class LabelCoefficients:
    """:class:`.dtype_baseline.RowCoefficients` of labels without smoothing, kept sparse."""

    at: np.ndarray
    """Each counted row's label as an index into the flattened block (counted rows only)."""
    counted: np.ndarray
    """Which rows are counted (B, bool)."""
    c: np.ndarray
    """w[y] of each counted row (float64, counted rows only): c at the label."""
    s: np.ndarray
    """Each row's sum of c: w[y], or 0 for an ignored row (B)."""
    a: float
    unweighted: bool
    """No class weights: s is 1 for a counted row and 0 for an ignored one."""

    def row_c(self) -> np.ndarray:
        """c at each row's label, 0 for an ignored row (B, float64)."""
        c = np.zeros(len(self.counted))
        c[self.counted] = self.c
        return c


def applies(labels: np.ndarray | None, options: LossOptions) -> bool:
    """Labels without smoothing, softcap or z-loss (the options' terms are the dense path's)."""
    return labels is not None and options.label_smoothing == 0 and not options.has_llm_options


def label_coefficients(labels: np.ndarray, classes: int, options: LossOptions, denominator: float) -> LabelCoefficients:
    """What :func:`.dtype_baseline.coefficients` computes, for labels without smoothing."""
    counted = labels != options.ignore_index
    rows = np.flatnonzero(counted)
    y = labels[counted].astype(np.int64)
    weights = np.ones(classes) if options.weight is None else np.asarray(options.weight, dtype=np.float64)
    c = weights[y]  # (0 + (ε/K)·w) + (1 − ε)·w with ε = 0 is w, exactly
    s = np.zeros(len(labels))
    s[rows] = c
    scale = 1.0 / options.temperature
    if options.reduction == "mean":
        scale = 0.0 if denominator == 0 else scale / denominator
    return LabelCoefficients(rows * classes + y, counted, c, s, scale, options.weight is None)


def gradient_magnitude(probabilities: np.ndarray, coef: LabelCoefficients) -> np.ndarray:
    """a·max(s·p, c), as :func:`.dtype_baseline.gradient_magnitude`. Without weights s is 1 or 0,
    so that a·(s·p) off the labels is p·(s·a), one pass instead of two."""
    if coef.unweighted:
        magnitude = np.multiply(probabilities, (coef.s * coef.a)[:, None])
    else:
        magnitude = np.multiply(probabilities, coef.s[:, None])
        magnitude *= coef.a
    at_labels = np.maximum(probabilities.reshape(-1)[coef.at] * coef.s[coef.counted], coef.c)
    magnitude.reshape(-1)[coef.at] = at_labels * coef.a
    return magnitude


@dataclass(frozen=True)
class LabelBaseline:
    """:class:`.dtype_baseline.Baseline` of labels without smoothing, its gradients formed on
    demand from the routes' probabilities (the compiled loop forms float32 ones itself)."""

    exponentials: np.ndarray
    totals: np.ndarray
    """Σe of each row (B×1), in the work type."""
    via_log: np.ndarray
    coef: LabelCoefficients
    dtype: np.dtype
    losses: tuple[np.ndarray, ...]
    z_losses: None = None

    @property
    def gradients(self) -> tuple[np.ndarray, ...]:
        dtype = self.dtype
        with np.errstate(all="ignore"):
            direct = (self.exponentials / self.totals).astype(dtype, copy=False)
            c, s, a = self.coef.c.astype(dtype), self.coef.s.astype(dtype)[:, None], dtype.type(self.coef.a)
            return tuple(_gradient(p, s, c, a, self.coef.at, dtype) for p in (direct, self.via_log))

    @property
    def parts(self) -> RouteParts | None:
        """The routes for the compiled loop, for a float32 claim."""
        if self.dtype != np.float32:
            return None
        c, s = self.coef.row_c().astype(np.float32), self.coef.s.astype(np.float32)
        return RouteParts(self.exponentials, self.totals.reshape(-1), self.via_log, s, c, np.float32(self.coef.a))


def baseline(
    logits: np.ndarray, coef: LabelCoefficients, options: LossOptions, dtype_name: str, losses: bool
) -> LabelBaseline | None:
    """:func:`.dtype_baseline.baseline` of ``logits`` (as stored, or float64), the row losses only
    when ``losses``; None where a log-probability is not finite (the general path knows NaN)."""
    dtype = numpy_dtype(dtype_name)
    work = np.dtype(np.float32) if dtype.itemsize == 2 else dtype
    with np.errstate(all="ignore"):
        x = logits.astype(dtype, copy=False)
        if options.temperature != 1.0:
            x = (x / dtype.type(options.temperature)).astype(dtype, copy=False)
        shifted = (x - x.max(axis=1, keepdims=True)).astype(dtype, copy=False).astype(work, copy=False)
        exponentials = np.exp(shifted)
        total = exponentials.sum(axis=1, keepdims=True)
        log_p = (shifted - np.log(lane_sum(exponentials, work))).astype(dtype, copy=False)
        del shifted
        if losses and not np.isfinite(log_p.sum(dtype=np.float64)):
            return None
        via_log = np.exp(log_p.astype(work, copy=False)).astype(dtype, copy=False)
        row_losses: tuple[np.ndarray, ...] = ()
        if losses:
            products = log_p.reshape(-1)[coef.at].astype(work) * coef.c.astype(dtype).astype(work)
            loss = np.zeros(len(x), dtype=work)
            loss[coef.counted] = -products
            row_losses = (loss.astype(dtype, copy=False),)
    return LabelBaseline(exponentials, total, via_log, coef, dtype, row_losses)


def _gradient(
    p: np.ndarray, s: np.ndarray, c: np.ndarray, a: np.generic, at: np.ndarray, dtype: np.dtype
) -> np.ndarray:
    """((p·s) − c)·a in the claimed type: p·s off the labels (minus 0), p·s − c at them."""
    gradient = (p * s).astype(dtype, copy=False)
    flat = gradient.reshape(-1)
    flat[at] = (flat[at] - c).astype(dtype, copy=False)
    gradient = (gradient * a).astype(dtype, copy=False)
    return gradient
