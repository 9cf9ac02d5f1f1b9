"""The effective target distribution: labels or probabilities, after label smoothing."""

from __future__ import annotations

import numpy as np


def smoothed_one_hot(
    labels: np.ndarray, counted: np.ndarray, eps: np.floating, n_classes: int, dtype: np.dtype
) -> np.ndarray:
    """(1 - ε)·e_c + ε/K for each counted row's label c; a zero row where the label is ignored (N×K)."""
    rows = np.arange(len(labels))
    target = np.zeros((len(labels), n_classes), dtype)
    target[rows[counted], labels[counted]] = 1
    if eps > 0:
        target = np.where(counted[:, None], (1 - eps) * target + eps / n_classes, 0).astype(dtype)
    return target


def smoothed_targets(targets: np.ndarray, eps: np.floating, n_classes: int, dtype: np.dtype) -> np.ndarray:
    """(1 - ε)·q + ε/K for probability targets q (N×K; q itself when ε = 0)."""
    if eps > 0:
        return ((1 - eps) * targets + eps / n_classes).astype(dtype)
    return targets
