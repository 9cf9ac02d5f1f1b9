"""Signs no computation gets wrong: entries of a dump whose sign no rounding explains.

A loss is never negative: −log p ≥ 0 for p ≤ 1 however p is rounded (lse ≥ max z ≥ z_c, its
z-loss a square, its weights ≥ 0). With one-hot labels and neither smoothing nor a z-loss each
gradient entry is (p − y) times factors ≥ 0 (the weight, 1/(T·D), the cap's 1 − tanh²), and a
rounded p lies in [0, 1]: p − 1 ≤ 0 at the label and p ≥ 0 elsewhere. An entry of the other sign
is wrong however small: the ulps it is counted in are those of its operands (a confident row's
p − 1 is formed from numbers near 1), where a sign flip of a tiny value is a fraction of one.
"""

from __future__ import annotations

import numpy as np

from sce.options import LossOptions


def gradient_signs_kept(options: LossOptions, labels_given: bool) -> bool:
    """Whether every computation gets each gradient entry's sign right: one-hot labels without
    smoothing or a z-loss (whose 2λ·lse·p takes lse's sign, which may be either).

    Examples
    --------
    >>> gradient_signs_kept(LossOptions(), True), gradient_signs_kept(LossOptions(z_loss=1e-4), True)
    (True, False)
    >>> gradient_signs_kept(LossOptions(), False)  # soft targets: p − t may round either way
    False
    """
    return labels_given and not options.label_smoothing and not options.z_loss


def label_gradient_flips(given: np.ndarray, labels: np.ndarray, options: LossOptions) -> int:
    """Entries of the answer ``given`` (B×K, as stored) of the wrong sign for labels without
    smoothing: positive at a counted row's label, negative anywhere else. −0.0 is no sign.

    Two passes over the block in its own type: the negatives, then the label entries.

    Examples
    --------
    >>> given = np.array([[0.1, 1e-16], [-0.2, -0.3], [0.5, -0.5]])
    >>> label_gradient_flips(given, np.array([1, 1, -100]), LossOptions())  # +1e-16 at a label; −0.2; −0.5
    3
    """
    values = given if given.dtype.kind == "f" else np.asarray(given, dtype=np.float32)
    negatives = int(np.count_nonzero(values < 0))
    counted = np.flatnonzero((labels != options.ignore_index) & (labels >= 0) & (labels < values.shape[1]))
    at_label = np.asarray(values[counted, labels[counted].astype(np.int64)], dtype=np.float64)
    return negatives - int(np.count_nonzero(at_label < 0)) + int(np.count_nonzero(at_label > 0))


def negative_losses(given: np.ndarray) -> int:
    """Losses below 0 (the exact loss never is): −0.0 and NaN are not.

    Examples
    --------
    >>> negative_losses(np.array([0.0, -0.0, -3e-16, np.nan]))
    1
    """
    values = np.asarray(given)
    values = values if values.dtype.kind == "f" else values.astype(np.float32)
    return int(np.count_nonzero(values < 0))


#: Why a sign is wrong, per quantity, as a report says it.
WHY_LOSS = "a loss is never negative: −log p ≥ 0 for every p ≤ 1"
WHY_LABEL_GRADIENT = "p − 1 ≤ 0 at the label and p ≥ 0 elsewhere, however p is rounded"
WHY_CAPPED_GRADIENT = "the cap's factor 1 − tanh² is never negative"


def why_sign(quantity: str, options: LossOptions, labels_given: bool) -> str:
    """The reason no rounding explains a sign flip of ``quantity`` ("gradient" or "loss")."""
    if quantity == "loss":
        return WHY_LOSS
    return WHY_LABEL_GRADIENT if gradient_signs_kept(options, labels_given) else WHY_CAPPED_GRADIENT
