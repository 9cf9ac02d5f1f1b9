"""The effective target distribution: labels or probabilities, after label smoothing.

Two conventions of smoothing by ε over K classes:

* 'uniform' (PyTorch, Liger, flash-attention, optax): q = (1 - ε)·y + ε/K.
* 'off-target' (Megatron, t5x): q = (1 - ε)·y + ε/(K - 1)·(1 - y): 1 - ε on
  the label, ε/(K - 1) on each other class. With K = 1 there is no other
  class to take the mass, and the target is left as it is (q = y = 1).
"""

from __future__ import annotations

import numpy as np


def smoothing_masses(
    eps: np.floating, n_classes: int, style: str, dtype: np.dtype
) -> tuple[np.floating, np.floating, bool]:
    """(the label's share 1 - ε, the mass of each smoothed class, whether that mass leaves out the label).

    'uniform': (1 - ε, ε/K, False); 'off-target': (1 - ε, ε/(K - 1), True),
    or (1, 0, False) with K = 1 or ε = 0.
    """
    if style == "off-target":
        if eps == 0 or n_classes == 1:
            return dtype.type(1), dtype.type(0), False
        return 1 - eps, eps / dtype.type(n_classes - 1), True
    return 1 - eps, eps / dtype.type(n_classes), False


def smoothed_one_hot(
    labels: np.ndarray,
    counted: np.ndarray,
    eps: np.floating,
    n_classes: int,
    dtype: np.dtype,
    style: str = "uniform",
) -> np.ndarray:
    """The smoothed one-hot target of each counted row's label c; a zero row where the label is ignored (N×K)."""
    rows = np.arange(len(labels))
    target = np.zeros((len(labels), n_classes), dtype)
    target[rows[counted], labels[counted]] = 1
    if style == "off-target":
        share, uniform, off = smoothing_masses(eps, n_classes, style, dtype)
        if off:
            target = np.where(counted[:, None], np.where(target == 1, share, uniform), 0).astype(dtype)
        return target
    if eps > 0:
        target = np.where(counted[:, None], (1 - eps) * target + eps / n_classes, 0).astype(dtype)
    return target


def smoothed_targets(
    targets: np.ndarray, eps: np.floating, n_classes: int, dtype: np.dtype, style: str = "uniform"
) -> np.ndarray:
    """Probability targets q smoothed: (1 - ε)·q + ε/K, or (1 - ε)·q + ε/(K - 1)·(1 - q) (N×K; q itself when ε = 0)."""
    if style == "off-target":
        share, uniform, off = smoothing_masses(eps, n_classes, style, dtype)
        if off:
            return (share * targets + uniform * (1 - targets)).astype(dtype)
        return targets
    if eps > 0:
        return ((1 - eps) * targets + eps / n_classes).astype(dtype)
    return targets
