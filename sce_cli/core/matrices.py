"""The matrices behind ``--jacobian`` and ``--hessian``, for one row of a result."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .result import SoftmaxCrossEntropyResult


def softmax_jacobian(probabilities: ArrayLike) -> np.ndarray:
    """∂s/∂z of the softmax at one row of probabilities s: diag(s) - s sᵀ (K×K).

    (With a temperature T the Jacobian with respect to the logits as given is
    this divided by T.)
    """
    s = np.asarray(probabilities)
    return np.diag(s) - np.outer(s, s)


def loss_gradient_wrt_probabilities(result: SoftmaxCrossEntropyResult, row: int = 0) -> np.ndarray:
    """∂l/∂s for one row's loss l = -Σ_c w_c y_c log s_c: -w ⊙ y / s (0 where y is 0).

    Before the reduction and the temperature, which scale the gradient with
    respect to the logits by 1/D and 1/T.
    """
    s = result.probabilities[row]
    y = result.target[row]
    w = result.class_weights
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, -(w * y) / s, 0).astype(s.dtype)


def loss_hessian(result: SoftmaxCrossEntropyResult, row: int = 0) -> np.ndarray:
    """∇²l with respect to one row's logits (K×K), for the reduced loss.

    ∂l/∂z_i = (s_i Σ_c w_c y_c - w_i y_i) / T differentiates to
    (Σ_c w_c y_c) s_i (δ_ij - s_j) / T²: a positive semidefinite matrix (a
    scaled softmax Jacobian) that is zero along the all-ones direction, since
    adding a constant to every logit changes nothing. Divided by D for 'mean'
    (and 0 where D is 0, as the gradient is).
    """
    s = result.probabilities[row]
    mass = float((result.class_weights * result.target[row]).sum())
    scale = mass * result.gradient_scale / result.options.temperature
    return scale * softmax_jacobian(s)


def gradient_via_jacobian(result: SoftmaxCrossEntropyResult, row: int = 0) -> np.ndarray:
    """The gradient the long way: ∂l/∂s · ∂s/∂z, times 1/T and 1/D.

    Equal to ``result.gradient[row]`` up to rounding, except where a
    probability with target mass underflows to 0: then ∂l/∂s is infinite and
    the product meets ∞ × 0 (NaN), which is why the core never takes this route.
    """
    s = result.probabilities[row].astype(np.float64)
    dl_ds = loss_gradient_wrt_probabilities(result, row).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return result.gradient_scale * (dl_ds @ softmax_jacobian(s))
