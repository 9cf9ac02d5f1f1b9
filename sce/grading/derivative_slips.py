"""The slips of the derivation itself, computed from the exact result of every row.

What a learner gets who strays on the way from L = −Σ_k t_k·log s_k to
∂L/∂z = s − t: stopping at ∂L/∂s, keeping the label's entry alone or the
Jacobian's diagonal alone, taking e^z for the probabilities, putting the −1 at
the predicted class or, with ``grad[:, labels] -= 1``, at every row's label in
every row. The typed and file graders (:mod:`sce.grading.mistakes`) and the
dump grader (:mod:`sce.grading.dump.kernel_mistakes`) both take them from
here, so that each names the same numbers.

Each function gives N×K float64 (or N losses), or None where the options make
the slip another computation than the one written here (a z-loss, class
weights): an answer is named only from a what-if that is exactly the slip.
"""

from __future__ import annotations

import numpy as np

from sce.loss import SoftmaxCrossEntropyResult


def _row_factor(result: SoftmaxCrossEntropyResult, per_temperature: bool = True) -> np.ndarray:
    """Each row's 1/(T·D) (1/D where ``per_temperature`` is False), 0 on rows not counted (N×1)."""
    scale = result.gradient_scale * (1.0 if per_temperature else result.options.temperature)
    return np.where(result.counted, scale, 0.0)[:, None]


def _plain(result: SoftmaxCrossEntropyResult) -> bool:
    """Neither a z-loss nor class weights: the slips below are then the whole of the mistake."""
    return not result.options.z_loss and result.options.weight is None


def stopped_at_probabilities(result: SoftmaxCrossEntropyResult) -> np.ndarray | None:
    """∂L/∂s = −t/s: the chain rule stopped before the softmax (no 1/T, no softcap factor:
    both come after s on the way back to z)."""
    if not _plain(result):
        return None
    t, p = result.target.astype(np.float64), result.probabilities.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, -t / p, 0.0) * _row_factor(result, per_temperature=False)


def label_entry_only(result: SoftmaxCrossEntropyResult) -> np.ndarray | None:
    """The exact gradient at each row's label, 0 at every other class."""
    if result.labels is None or not _plain(result):
        return None
    columns = np.arange(result.num_classes)[None, :]
    at_label = (columns == np.asarray(result.labels)[:, None]) & result.counted[:, None]
    return np.where(at_label, result.gradient.astype(np.float64), 0.0)


def jacobian_diagonal(result: SoftmaxCrossEntropyResult) -> np.ndarray | None:
    """∂L/∂s_k · ∂s_k/∂z_k = (−t_k/s_k)·s_k(1 − s_k) = −t_k(1 − s_k): the Jacobian's off-diagonal
    left out. With a one-hot target it is :func:`label_entry_only`'s numbers, named once, there."""
    if not _plain(result) or (result.labels is not None and not result.options.label_smoothing):
        return None
    t, p = result.target.astype(np.float64), result.probabilities.astype(np.float64)
    return -t * (1.0 - p) * _row_factor(result) * result.cap_derivative.astype(np.float64)


def unnormalised_exp(result: SoftmaxCrossEntropyResult) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(e^z, its gradient e^z·Σt − t, each row's loss −Σ_k t_k·z_k) with e^z (of the logits as the
    softmax takes them: scaled by 1/T, capped) for the probabilities. An overflowing e^z gives
    inf, which no finite answer matches."""
    if not _plain(result):
        return None
    z, t = result.scaled_logits.astype(np.float64), result.target.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        exp = np.exp(z)
        gradient = (exp * t.sum(axis=1, keepdims=True) - t) * _row_factor(result) * result.cap_derivative
        losses = np.where(result.counted, -(np.where(t > 0, t * z, 0.0)).sum(axis=1), 0.0)
    return exp, gradient, losses


def predicted_labels(result: SoftmaxCrossEntropyResult) -> np.ndarray | None:
    """Each counted row's predicted class (the first largest logit) as its label; None where no
    counted row predicts another class than its label (the slip changes nothing there)."""
    if result.labels is None:
        return None
    labels = np.asarray(result.labels)
    predicted = np.where(result.counted, result.argmax, labels)
    return None if bool((predicted == labels).all()) else predicted


def labels_broadcast(result: SoftmaxCrossEntropyResult, batch_labels: np.ndarray | None = None) -> np.ndarray | None:
    """``grad[:, labels] -= 1``: every row gets −1 at every label of the batch (``batch_labels``,
    the result's own by default), not at its own alone. None where the batch has one label (the
    same numbers then), and where a row is ignored or the target is smoothed (the slip is then
    another code)."""
    if result.labels is None or not _plain(result) or result.options.label_smoothing:
        return None
    every = np.unique(np.asarray(result.labels if batch_labels is None else batch_labels))
    if not result.counted.all() or len(every) < 2 or every.min() < 0 or every.max() >= result.num_classes:
        return None
    every_label = np.zeros(result.num_classes)
    every_label[every] = 1.0
    t = result.target.astype(np.float64)
    shift = (t - every_label[None, :]) * _row_factor(result) * result.cap_derivative.astype(np.float64)
    return result.gradient.astype(np.float64) + shift


def reduced(result: SoftmaxCrossEntropyResult, losses: np.ndarray) -> np.ndarray:
    """Each row's (mistaken) loss reduced as the result's options say: 0-d for mean and sum."""
    if result.options.reduction == "none":
        return losses
    total = float(np.sum(np.where(result.counted, losses, 0.0)))
    if result.options.reduction == "sum":
        return np.array(total)
    return np.array(total / result.denominator if result.denominator else np.nan)
