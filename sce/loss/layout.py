"""The caller's layout of the logits and the rows the core computes in: PyTorch's (N, C, d1, …)
with the classes on one axis, or one unbatched vector, against N×K rows (the classes last, one
row per position of the other axes, in C order)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """The caller's layout: the logits' shape and the axis of the classes in it."""

    shape: tuple[int, ...]
    class_axis: int

    @property
    def rows_shape(self) -> tuple[int, ...]:
        """The logits' shape with the class axis moved last: the rows' order."""
        axis, shape = self.class_axis, self.shape
        return shape[:axis] + shape[axis + 1 :] + (shape[axis],)

    def like_logits(self, rows: np.ndarray) -> np.ndarray:
        """N×K rows shaped like the logits (the classes back on their axis)."""
        return np.moveaxis(rows.reshape(self.rows_shape), -1, self.class_axis)

    def like_labels(self, values: np.ndarray) -> np.ndarray:
        """N per-row values shaped like the labels: the logits without the class axis (0-d for a vector)."""
        return values.reshape(self.rows_shape[:-1])
