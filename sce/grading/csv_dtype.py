"""What a file's answers computed in float32 may be off by (``sce check --csv --dtype float32``).

A float32 program reads each logit as the float32 nearest it and rounds at every step; its best
answer is the float32 nearest the exact value of those logits, and a framework's is a few ulps
further (PyTorch's gradient comes through exp(log-softmax)). So each entry is compared with the
exact value of the float32 logits, as ``sce check --arrays --claimed-dtype float32`` compares it,
with the same allowance: four times a straightforward float32 computation's error on the row,
plus 8 ulps of float32 at the size of the entry's operands (the label's p − 1 of a confident row
is tiny, but computed from numbers near 1: its error is counted in ulps of 1).

Row by row: a row's allowance is its own baseline's, whatever rows share its block, so that the
verdict does not depend on how the file is cut into blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from sce.grading.dump.baseline import (
    autograd_route_applies,
    baseline,
    coefficients,
    operand_sizes,
    result_magnitudes,
    ulp_unit,
    ulps,
)
from sce.grading.dump.verdict import allowance
from sce.loss import SoftmaxCrossEntropyResult
from sce.options import LossOptions


def exact_options(options: LossOptions) -> LossOptions:
    """The options the exact values are computed with: float64, whatever type the answers were computed in."""
    return options if options.dtype == "float64" else replace(options, dtype="float64")


def in_type(logits: np.ndarray, dtype: str) -> np.ndarray:
    """The logits as a program computing in ``dtype`` holds them (kept as float64)."""
    with np.errstate(over="ignore"):  # beyond the type's range: inf, which the caller refuses
        return np.asarray(logits, dtype=np.float64).astype(dtype).astype(np.float64)


def type_allowances(
    result: SoftmaxCrossEntropyResult,
    targets: np.ndarray | None,
    dtype: str,
    denominators: tuple[float, float],
) -> Mapping[str, np.ndarray]:
    """The absolute error each entry computed in ``dtype`` may have: 'gradient' (N×K) and 'loss' (N×1).

    Parameters
    ----------
    result : SoftmaxCrossEntropyResult
        The exact (float64) result of the logits as held in ``dtype`` (:func:`in_type`).
    targets : numpy.ndarray or None
        The probability targets as given, if any.
    dtype : str
        The type the answers were computed in ("float32").
    denominators : (float, float)
        What a 'mean' divides the cross-entropy and the z-loss by (the whole file's).
    """
    options = result.options
    labels = None if result.labels is None else np.asarray(result.labels)
    coef = coefficients(labels, targets, result.num_classes, options, *denominators)
    base = baseline(result.logits, coef, options, dtype, autograd_route_applies(targets, options))
    gradient_size, loss_size = result_magnitudes(result, coef)
    exact = result.gradient.astype(np.float64)
    with np.errstate(all="ignore"):  # a zero's sign times inf, an overflow: the errors say so, not a warning
        route_errors = np.max([_row_worst(ulps(g, exact, gradient_size, dtype)) for g in base.gradients], axis=0)
        loss_errors = ulps(base.losses[0], result.losses.astype(np.float64), loss_size, dtype)
    row_allowance = np.vectorize(allowance, otypes=[np.float64])
    return {
        "gradient": row_allowance(route_errors)[:, None] * ulp_unit(gradient_size, dtype),
        "loss": (row_allowance(_finite(loss_errors)) * ulp_unit(loss_size, dtype))[:, None],
    }


def float64_allowances(
    result: SoftmaxCrossEntropyResult, targets: np.ndarray | None, denominators: tuple[float, float]
) -> Mapping[str, np.ndarray]:
    """The absolute error each entry of a straightforward float64 computation may have: four ulps
    of float64 at the size of the entry's operands, as :func:`type_allowances` counts them (the
    label's p − 1 of a confident row is tiny, but a textbook loop forms it from numbers near 1)."""
    gradient_size, loss_size = operand_sizes(result, targets, denominators)
    rounding = 4 * float(np.finfo(np.float64).eps)
    return {"gradient": rounding * gradient_size, "loss": (rounding * loss_size)[:, None]}


def _row_worst(errors: np.ndarray) -> np.ndarray:
    """Each row's worst finite error in ulps."""
    return np.max(_finite(errors), axis=1, initial=0.0)


def _finite(errors: np.ndarray) -> np.ndarray:
    """Errors with the baseline's overflows left out: an infinite allowance would pass any answer."""
    return np.where(np.isfinite(errors), errors, 0.0)

