"""The kinds of target, each giving a block of rows' losses and gradient.

Class labels (uniform or off-target smoothing) and probability targets: each
is a small object with the same ``block`` method, so that the loop over
blocks, the scaling and the reduction (:mod:`.loss`, :mod:`.reduction`) are
written once. At the predicted class every kind forms its gradient without
cancellation (:func:`_gradient_at_max`).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from sce.loss.log_softmax import LogSoftmax
from sce.loss.reduction import class_counts, weighted_total
from sce.loss.row_blocks import flat, flat_indices
from sce.loss.targets import smoothed_targets


class Terms(Protocol):
    """What each kind of target computes: per-row numbers first, then each block's losses and gradient."""

    counted: np.ndarray
    """Rows that count (N)."""
    denominator: float
    """What 'mean' divides these rows by: the counted label weights, or N."""

    def block(self, rows: slice, ls: LogSoftmax, probabilities: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        """The rows' own losses; their ∂(row loss)/∂(z/T) written into ``gradient`` (before 1/T and 1/D)."""
        ...


class HardLabels:
    """Class-index targets, smoothed or not: the target row is q = (1 - ε)·e_c + ε/K
    and the gradient p·Σ_j w_j q_j - w ⊙ q, formed without the dense one-hot."""

    def __init__(
        self, labels: np.ndarray, argmax: np.ndarray, weight_vec: np.ndarray, eps: np.floating, ignore_index: int
    ) -> None:
        n_classes = len(weight_vec)
        dtype = weight_vec.dtype
        self.counted = labels != ignore_index
        self.all_counted = bool(self.counted.all())
        self.safe_labels = labels if self.all_counted else np.where(self.counted, labels, 0)
        if (weight_vec == 1).all():
            label_weight = self.counted.astype(dtype)  # the same 1s and 0s, without the gather
            self.denominator = float(np.count_nonzero(self.counted))  # weighted_total's value, without the counts
        else:
            label_weight = np.where(self.counted, weight_vec[self.safe_labels], 0).astype(dtype)
            self.denominator = weighted_total(class_counts(self.safe_labels, self.counted, n_classes), weight_vec)
        self.eps = eps
        self.weight_vec = weight_vec
        self.uniform = eps / dtype.type(n_classes)  # ε/K, the smoothed mass of every class
        # Without smoothing the terms of ε below are exactly (1 - 0)·x = x and x + 0·w = x
        # (no weight is -0.0, which + 0 would turn into +0.0): skipping them keeps every bit.
        plain = eps == 0 and not np.signbit(weight_vec).any()
        self.one_hot_weight = label_weight if plain else (1 - eps) * label_weight  # (1 - ε)·w_c, the label's share
        # w ⊙ q summed, for each row, over all classes and over all but the argmax.
        if plain:
            self.mass = self.one_hot_weight
        else:
            self.mass = self.one_hot_weight + self.uniform * weight_vec.sum(dtype=dtype)
        at_max = self.safe_labels == argmax
        mass_but_max = np.where(at_max, 0, self.one_hot_weight)
        if eps > 0:
            mass_but_max = mass_but_max + self.uniform * sums_leaving_one_out(weight_vec)[argmax]
        self.mass_but_max = mass_but_max
        self.target_at_max = np.where(at_max, self.one_hot_weight, 0)
        if not plain:
            self.target_at_max = self.target_at_max + self.uniform * weight_vec[argmax]

    def block(self, rows: slice, ls: LogSoftmax, probabilities: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        labels, counted, one_hot_weight = self.safe_labels[rows], self.counted[rows], self.one_hot_weight[rows]
        dtype = probabilities.dtype
        nll = -ls.log_probabilities_at(labels)
        # A label of weight 0 (or an ignored row) contributes 0, even where -log p_c
        # is infinite: never 0·∞, which is NaN.
        with np.errstate(over="ignore"):  # a loss beyond 1.8e308 is inf, and warned about
            losses = np.multiply(one_hot_weight, nll, out=np.zeros_like(nll), where=one_hot_weight > 0)
            if self.uniform > 0:
                # PyTorch adds ε/K times the "smooth loss" Σ_j w_j (-log p_j); a class
                # of weight 0 adds nothing, even where its -log p_j is infinite. (An ε/K
                # that underflows to 0 adds nothing either: never 0·∞.)
                losses = losses + self.uniform * _weighted_sum(-ls.log_probabilities(), self.weight_vec)
        losses = np.where(counted, losses, 0).astype(dtype) + 0.0  # + 0.0: no -0.0

        np.multiply(probabilities, self.mass[rows, None], out=gradient)
        if self.eps > 0:
            gradient -= self.uniform * self.weight_vec
        flat_gradient = flat(gradient)
        at_label = flat_indices(labels, gradient.shape[1])
        flat_gradient[at_label] = flat_gradient.take(at_label) - one_hot_weight
        at_max = _gradient_at_max(ls, probabilities, self.mass_but_max[rows], self.target_at_max[rows])
        flat_gradient[ls.at_max] = at_max
        if not self.all_counted:
            gradient[~counted] = 0
        return losses


class OffTargetLabels:
    """Class-index targets smoothed off the label (Megatron, t5x): q = (1 - ε) on the
    label c and u = ε/(K - 1) on every other class; the gradient p·Σ_j w_j q_j - w ⊙ q
    again without the dense target, and every sum over "all but" formed as such."""

    def __init__(
        self,
        labels: np.ndarray,
        argmax: np.ndarray,
        weight_vec: np.ndarray,
        label_share: np.floating,
        uniform: np.floating,
        ignore_index: int,
    ) -> None:
        dtype = weight_vec.dtype
        self.counted = labels != ignore_index
        self.safe_labels = np.where(self.counted, labels, 0)
        label_weight = np.where(self.counted, weight_vec[self.safe_labels], 0).astype(dtype)
        self.denominator = weighted_total(class_counts(self.safe_labels, self.counted, len(weight_vec)), weight_vec)
        self.weight_vec = weight_vec
        self.uniform = uniform
        self.one_hot_weight = label_share * label_weight  # (1 - ε)·w_c
        leave_one_out = sums_leaving_one_out(weight_vec)  # Σ_{j≠k} w_j
        others = np.where(self.counted, leave_one_out[self.safe_labels], 0)  # Σ_{j≠c} w_j
        self.mass = self.one_hot_weight + uniform * others
        at_max = self.safe_labels == argmax
        # Σ_{j≠m} w_j q_j: u·Σ_{j≠c} w_j where the label is the argmax m, else
        # (1 - ε)·w_c + u·Σ_{j≠c,m} w_j.
        but_both = np.maximum(leave_one_out[argmax] - weight_vec[self.safe_labels], 0)
        self.mass_but_max = np.where(
            at_max, uniform * others, self.one_hot_weight + uniform * np.where(self.counted, but_both, 0)
        ).astype(dtype)
        self.target_at_max = np.where(at_max, self.one_hot_weight, uniform * weight_vec[argmax]).astype(dtype)
        self.target_at_max = np.where(self.counted, self.target_at_max, 0).astype(dtype)

    def block(self, rows: slice, ls: LogSoftmax, probabilities: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        labels, counted, one_hot_weight = self.safe_labels[rows], self.counted[rows], self.one_hot_weight[rows]
        dtype = probabilities.dtype
        n_classes = gradient.shape[1]
        at_label = flat_indices(labels, n_classes)
        with np.errstate(over="ignore", invalid="ignore"):
            nll = -ls.log_probabilities_at(labels)
            losses = np.multiply(one_hot_weight, nll, out=np.zeros_like(nll), where=one_hot_weight > 0)
            if self.uniform > 0:
                # u·Σ_{j≠c} w_j (-log p_j): the label's term left out, not subtracted.
                minus_log_p = -ls.log_probabilities()
                flat(minus_log_p)[at_label] = 0
                losses = losses + self.uniform * _weighted_sum(minus_log_p, self.weight_vec)
        losses = np.where(counted, losses, 0).astype(dtype) + 0.0

        np.multiply(probabilities, self.mass[rows, None], out=gradient)
        gradient -= self.uniform * self.weight_vec
        flat_gradient = flat(gradient)
        flat_gradient[at_label] = flat(probabilities).take(at_label) * self.mass[rows] - one_hot_weight
        at_max = _gradient_at_max(ls, probabilities, self.mass_but_max[rows], self.target_at_max[rows])
        flat_gradient[ls.at_max] = at_max
        gradient[~counted] = 0
        return losses


class SoftTargets:
    """Probability targets q, smoothed or not: the loss -Σ_j w_j q_j log p_j and the
    gradient p·Σ_j w_j q_j - w ⊙ q."""

    def __init__(self, targets: np.ndarray, weight_vec: np.ndarray, eps: np.floating, style: str = "uniform") -> None:
        self.targets = targets
        self.weight_vec = weight_vec
        self.eps = eps
        self.style = style
        self.counted = np.ones(len(targets), dtype=bool)
        self.denominator = float(len(targets))

    def block(self, rows: slice, ls: LogSoftmax, probabilities: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        n_classes = len(self.weight_vec)
        dtype = probabilities.dtype
        within = np.arange(probabilities.shape[0])
        target = smoothed_targets(self.targets[rows], self.eps, n_classes, dtype, self.style)
        weighted_target = self.weight_vec * target
        # 0·log 0 = 0: a class the target (or its weight) gives no mass contributes
        # nothing, even when its logit is -inf (where frameworks produce NaN).
        with np.errstate(invalid="ignore", over="ignore"):  # a loss beyond 1.8e308 is inf, and warned about
            terms = np.where(weighted_target > 0, weighted_target * ls.log_probabilities(), 0)
            losses = -terms.sum(axis=1).astype(dtype) + 0.0  # + 0.0: a loss of 0 is not -0.0
        mass = weighted_target.sum(axis=1)
        at_max = weighted_target[within, ls.argmax]
        weighted_target[within, ls.argmax] = 0
        mass_but_max = weighted_target.sum(axis=1)
        weighted_target[within, ls.argmax] = at_max
        np.multiply(probabilities, mass[:, None], out=gradient)
        gradient -= weighted_target
        gradient[within, ls.argmax] = _gradient_at_max(ls, probabilities, mass_but_max, at_max)
        return losses


def _gradient_at_max(
    ls: LogSoftmax, probabilities: np.ndarray, mass_but_max: np.ndarray, target_at_max: np.ndarray
) -> np.ndarray:
    """p_m·Σ_j w_j q_j - w_m q_m at the argmax m, as p_m·Σ_{j≠m} w_j q_j - w_m q_m·(1 - p_m).

    The direct form subtracts two numbers near w_m q_m when the target's mass
    sits on the predicted class and cancels to 0 for a confident prediction
    ([0, 40] with target (0, 1): -4.2e-18 becomes 0); in this form each
    product keeps its digits and 1 - p_m = S / (1 + S) is never formed by a
    subtraction.
    """
    p_max = flat(probabilities).take(ls.at_max)
    return p_max * mass_but_max - target_at_max * ls.complement_of_max


def _weighted_sum(values: np.ndarray, weight_vec: np.ndarray) -> np.ndarray:
    """Σ_j w_j·values_j per row, leaving out classes of weight 0 (0·∞ is 0 here, not NaN).

    numpy's row-wise (pairwise) sum, not a matrix-vector product: BLAS splits
    that work by the number of rows and threads, so a row's last bits would
    depend on the rows computed with it.
    """
    products = np.multiply(values, weight_vec, out=np.zeros_like(values), where=weight_vec > 0)
    return products.sum(axis=1)


def sums_leaving_one_out(values: np.ndarray) -> np.ndarray:
    """Σ_{j≠k} values_j for every k, accurately even where values_k is nearly the whole sum.

    The total is kept as an unevaluated sum high + low (Neumaier); high - v_k
    is then exact where it would cancel (Sterbenz), and low restores the rest.
    """
    wide = values.astype(np.float64)
    with np.errstate(over="ignore"):
        high = wide.sum()
    if not np.isfinite(high) and np.isfinite(wide).all():
        # Weights near 1.8e308 whose total overflows: summed at a power-of-two scale, exact but where
        # a subnormal weight loses bits that a sum this large cannot show; the sums beyond the range are ∞.
        scale = 2.0 ** -math.ceil(math.log2(len(wide) + 1))
        with np.errstate(over="ignore"):
            return (sums_leaving_one_out(wide * scale) / scale).astype(values.dtype)
    low = math.fsum([*wide.tolist(), -high]) if np.isfinite(high) else 0.0
    return ((high - wide) + low).astype(values.dtype)
