"""The matrices behind ``--jacobian`` and ``--hessian``, for one row of a result."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sce.loss.result import SoftmaxCrossEntropyResult


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
    result = result.as_rows  # row ``row`` of N×K, whatever layout the logits came in
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
    result = result.as_rows  # row ``row`` of N×K, whatever layout the logits came in
    with np.errstate(over="ignore", invalid="ignore"):
        return hessian_scale(result, row) * softmax_jacobian(result.probabilities[row])


def hessian_scale(result: SoftmaxCrossEntropyResult, row: int = 0) -> float:
    """(Σ_c w_c y_c)/(T²·D): the Hessian is this times diag(s) - s sᵀ (0 where D is 0)."""
    result = result.as_rows  # row ``row`` of N×K, whatever layout the logits came in
    mass = float((result.class_weights.astype(np.float64) * result.target[row]).sum())
    with np.errstate(over="ignore", invalid="ignore"):  # a tiny T: the Hessian overflows, as the gradient did
        return float(np.float64(mass) * result.gradient_scale / result.options.temperature)


def gradient_via_jacobian(result: SoftmaxCrossEntropyResult, row: int = 0) -> np.ndarray:
    """The gradient the long way: ∂l/∂s · ∂s/∂z, times 1/T and 1/D.

    With ∂s/∂z = diag(s) - s sᵀ the product is v ⊙ s - s (v · s) for v = ∂l/∂s:
    O(K), never the K×K matrix. Equal to ``result.gradient[row]`` up to
    rounding, except where a probability with target mass underflows to 0:
    then ∂l/∂s is infinite and the product meets ∞ × 0 (NaN), which is why
    the core never takes this route.
    """
    result = result.as_rows  # row ``row`` of N×K, whatever layout the logits came in
    s = result.probabilities[row].astype(np.float64)
    dl_ds = loss_gradient_wrt_probabilities(result, row).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        product = result.gradient_scale * (dl_ds * s - s * float(dl_ds @ s))
        if not result.options.has_llm_options:
            return product
        # The z-loss's gradient with respect to b is 2λ·lse·s (over D_z), and the cap's chain factor
        # 1 − tanh²(z/c) multiplies everything: the same chain rule as the core's gradient.
        return (product + z_loss_gradient(result, row)) * result.cap_derivative[row].astype(np.float64)


def z_loss_gradient(result: SoftmaxCrossEntropyResult, row: int = 0) -> np.ndarray:
    """∂(λ·lse²/D_z)/∂a for one row, a the capped logits: 2λ·lse·s/(T·D_z) (0 without a z-loss) (K)."""
    result = result.as_rows  # row ``row`` of N×K, whatever layout the logits came in
    s = result.probabilities[row].astype(np.float64)
    if not result.options.z_loss or result.log_sum_exp is None or not result.counted[row]:
        return np.zeros_like(s)
    factor = 2 * result.options.z_loss * float(result.log_sum_exp[row]) / result.z_loss_denominator
    return factor * s / result.options.temperature


def language_model_hessian(result: SoftmaxCrossEntropyResult, row: int = 0) -> np.ndarray:
    """∇²L with respect to one row's logits as given, with the cap and the z-loss (K×K, float64).

    With respect to b = a/T the cross-entropy gives (Σ w y / D)(diag(s) − s sᵀ) and
    λ·lse²/D_z gives (λ/D_z)(2 s sᵀ + 2·lse·(diag(s) − s sᵀ)); b = a/T divides by T²;
    a = c·tanh(z/c) elementwise gives diag(a′) H_a diag(a′) + diag(g_a ⊙ a″), with
    a′ = 1 − tanh², a″ = −2·tanh·(1 − tanh²)/c and g_a = ∂L/∂a.
    """
    result = result.as_rows  # row ``row`` of N×K, whatever layout the logits came in
    s = result.probabilities[row].astype(np.float64)
    jacobian = softmax_jacobian(s)
    temperature = result.options.temperature
    with np.errstate(over="ignore", invalid="ignore"):
        hessian_a = hessian_scale(result, row) * jacobian
        if result.options.z_loss and result.counted[row] and result.log_sum_exp is not None:
            lse = float(result.log_sum_exp[row])
            z_part = 2 * np.outer(s, s) + 2 * lse * jacobian
            hessian_a = hessian_a + result.options.z_loss / result.z_loss_denominator * z_part / temperature**2
        if result.options.softcap is None:
            return hessian_a
        cap = float(result.options.softcap)
        first = result.cap_derivative[row].astype(np.float64)
        tanh = result.capped_logits[row].astype(np.float64) / cap
        second = -2 * tanh * first / cap
        w, y = result.class_weights.astype(np.float64), result.target[row].astype(np.float64)
        gradient_a = result.gradient_scale * (s * float((w * y).sum()) - w * y) + z_loss_gradient(result, row)
        return first[:, None] * hessian_a * first[None, :] + np.diag(gradient_a * second)


def softmax_jacobian_top_eigenvalues(probabilities: ArrayLike, count: int) -> np.ndarray:
    """The ``count`` largest eigenvalues of diag(s) - s sᵀ, in O(K) each, never forming K×K.

    A rank-one update of a diagonal: between consecutive distinct values
    u < v of s lies exactly one eigenvalue, the root of the secular equation
    1 = Σ_i s_i² / (s_i - λ) (which decreases from +∞ to -∞ there), and a
    value that s takes m times is also an eigenvalue m - 1 times. The
    smallest eigenvalue is 0, along (1, …, 1). Returned in descending order.
    """
    s = np.asarray(probabilities, dtype=np.float64)
    values, counts = np.unique(s, return_counts=True)
    # Repeated values, the roots of the `count` highest intervals (each at least
    # every root below it) and 0: the `count` largest are among these.
    found = [float(v) for v, m in zip(values, counts) for _ in range(min(m - 1, count))]
    squares = s * s
    for upper, lower in list(zip(values[::-1], values[-2::-1]))[:count]:
        found.append(_secular_root(s, squares, float(lower), float(upper)))
    found.append(0.0)
    return np.array(sorted(found, reverse=True)[:count])


def _secular_root(s: np.ndarray, squares: np.ndarray, lower: float, upper: float) -> float:
    """The root of 1 - Σ s_i²/(s_i - λ) in (lower, upper), by bisection to the last bit."""
    for _ in range(200):
        middle = 0.5 * (lower + upper)
        if middle in (lower, upper):
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            value = 1.0 - float(np.sum(squares / (s - middle)))
        if value > 0:
            lower = middle
        else:
            upper = middle
    return 0.5 * (lower + upper)
