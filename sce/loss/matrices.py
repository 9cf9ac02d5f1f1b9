"""The matrices behind ``--jacobian`` and ``--hessian``, for one row of a result."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sce.loss.result import SoftmaxCrossEntropyResult
from sce.loss.target_kinds import sums_leaving_one_out


def softmax_jacobian(probabilities: ArrayLike) -> np.ndarray:
    """∂s/∂z of the softmax at one row of probabilities s: diag(s) - s sᵀ (K×K).

    (With a temperature T the Jacobian with respect to the logits as given is
    this divided by T.)
    """
    s = np.asarray(probabilities)
    jacobian = -np.outer(s, s)
    # s_i(1 - s_i) as s_i·Σ_{j≠i} s_j: 1 - s_i of a confident prediction (1 - 4e-18) would round to 0.
    np.fill_diagonal(jacobian, s * sums_leaving_one_out(s))
    return jacobian


def loss_gradient_wrt_probabilities(result: SoftmaxCrossEntropyResult, row: int = 0) -> np.ndarray:
    """∂l/∂s for one row's loss l = -Σ_c w_c y_c log s_c: -w ⊙ y / s (0 where y is 0).

    Before the reduction and the temperature, which scale the gradient with
    respect to the logits by 1/D and 1/T.
    """
    result = result.as_rows  # row ``row`` of N×K, whatever layout the logits came in
    s = result.probabilities[row]
    y = result.target[row]
    w = result.class_weights
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # w·y/s beyond 1.8e308: ∞, said where shown
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
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # T² below 1e-308: ∞, said where shown
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


def softmax_jacobian_eigenvalues(probabilities: ArrayLike) -> np.ndarray:
    """Every eigenvalue of diag(s) - s sᵀ, ascending, each to a few ulps of itself.

    A rank-one update of a diagonal. With Σ s = 1 (a softmax's output) the
    eigenvalue along (1, …, 1) is exactly 0, and so is one along each class
    whose s is 0; a value that s takes m times is an eigenvalue m - 1 times;
    and between consecutive distinct positive values u < v of s lies exactly
    one more, the root of Σ_i s_i / (s_i - λ) = 0. That form of the secular
    equation (1 - Σ s_i²/(s_i - λ), divided by -λ) has no 1 to cancel against,
    so an eigenvalue of 1e-20 keeps its digits, where a general eigensolver is
    accurate only to about 1e-16 of the largest.

    Examples
    --------
    >>> softmax_jacobian_eigenvalues([0.25, 0.25, 0.5]).tolist()
    [0.0, 0.25, 0.375]
    """
    s = np.asarray(probabilities, dtype=np.float64)
    positive = s[s > 0]
    values, counts = np.unique(positive, return_counts=True)
    repeated = np.repeat(values, counts - 1)
    roots = _secular_roots(positive, values[:-1], values[1:])
    zeros = np.zeros(s.size - positive.size + 1)
    return np.sort(np.concatenate([zeros, repeated, roots]))


def softmax_jacobian_top_eigenvalues(probabilities: ArrayLike, count: int) -> np.ndarray:
    """The ``count`` largest eigenvalues of diag(s) - s sᵀ, in O(K) each, never forming K×K.

    As :func:`softmax_jacobian_eigenvalues`, only the roots in the ``count``
    highest intervals between distinct values, the repeated values and 0: the
    ``count`` largest are among these. Returned in descending order.
    """
    s = np.asarray(probabilities, dtype=np.float64)
    positive = s[s > 0]
    values, counts = np.unique(positive, return_counts=True)
    found = [float(v) for v, m in zip(values, counts) for _ in range(min(m - 1, count))]
    top = values[-count - 1 :]
    found.extend(_secular_roots(positive, top[:-1], top[1:]).tolist())
    found.append(0.0)
    return np.array(sorted(found, reverse=True)[:count])


def _secular_roots(s: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The root of h(λ) = Σ_i s_i / (s_i - λ) in each (lower, upper), to a few ulps.

    h rises from -∞ to +∞ across each interval. Newton's steps, kept inside the
    bracket the signs of h narrow; where a step would leave it, the bracket is
    halved instead (geometrically where it spans more than an octave, so that a
    root near 1e-300 is found in a few dozen steps, not a thousand).
    """
    lower, upper = lower.astype(np.float64), upper.astype(np.float64)
    root = np.where(upper > 2 * lower, np.sqrt(lower) * np.sqrt(upper), 0.5 * (lower + upper))
    active = np.arange(root.size)
    for _ in range(200):
        if active.size == 0:
            break
        x, low, high = root[active], lower[active], upper[active]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            terms = s[None, :] / (s[None, :] - x[:, None])
            value = terms.sum(axis=1)
            slope = (terms * terms / s[None, :]).sum(axis=1)
            step = x - value / slope
        low = np.where(value < 0, x, low)
        high = np.where(value < 0, high, x)
        halved = np.where(high > 2 * low, np.sqrt(low) * np.sqrt(high), 0.5 * (low + high))
        inside = (step > low) & (step < high)
        following = np.where(inside, step, halved)
        done = (value == 0) | (np.abs(following - x) <= 2 * np.finfo(np.float64).eps * np.abs(x)) | (
            (halved <= low) | (halved >= high)
        )
        lower[active], upper[active] = low, high
        root[active] = np.where(value == 0, x, following)
        active = active[~done]
    return root
