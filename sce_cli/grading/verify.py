"""`sce grad --verify`: the gradient against central finite differences of the loss."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core import SoftmaxCrossEntropyResult, softmax_cross_entropy


@dataclass(frozen=True)
class Verification:
    analytic: np.ndarray
    numeric: np.ndarray
    steps: np.ndarray
    relative_difference: np.ndarray

    @property
    def worst(self) -> float:
        return float(np.max(self.relative_difference)) if self.relative_difference.size else 0.0


def finite_difference_check(result: SoftmaxCrossEntropyResult, loss_of: Callable[[np.ndarray], float]) -> Verification:
    """Central differences of the loss, one logit at a time, beside the analytic gradient.

    The step for logit i is ε^(1/3)·max(1, |z_i|) (ε the float64 epsilon,
    about 6e-6 for logits near 1): the step that balances the O(h²) error of
    the central difference against the rounding in (L(z+h) - L(z-h)) / 2h.
    The difference is relative to the largest gradient entry, so that an
    entry of 1e-18 beside entries of 0.5 is not judged on its own digits.
    """
    z = result.logits[0].astype(np.float64)
    analytic = result.gradient[0].astype(np.float64)
    steps = np.cbrt(np.finfo(np.float64).eps) * np.maximum(1.0, np.abs(z))
    numeric = np.zeros_like(z)
    for i in range(len(z)):
        if not np.isfinite(z[i]):
            continue  # a masked class: its gradient is 0
        up, down = z.copy(), z.copy()
        up[i] += steps[i]
        down[i] -= steps[i]
        numeric[i] = (loss_of(up) - loss_of(down)) / (up[i] - down[i])
    scale = max(float(np.max(np.abs(analytic))), np.finfo(np.float64).tiny)
    return Verification(analytic, numeric, steps, np.abs(numeric - analytic) / scale)


def verify_gradient(result: SoftmaxCrossEntropyResult) -> Verification:
    """`sce grad --verify`: finite differences of the same loss, in float64."""
    options = result.options
    labels = result.labels

    def loss_of(logits: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the result's own warnings were reported already
            moved = softmax_cross_entropy(
                logits,
                labels,
                # For probability targets the effective (already smoothed) target is passed as it is.
                targets=None if labels is not None else result.target[:1],
                options=options.replace(
                    dtype="float64", label_smoothing=options.label_smoothing if labels is not None else 0.0
                ),
            )
        return moved.reported_loss()

    return finite_difference_check(result, loss_of)
