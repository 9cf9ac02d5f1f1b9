"""What the blocks of classes of a linear layer's cross-entropy add up over every row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClassSums:
    """What blocks of classes add up: ∂L/∂E (N×D, 0×D unless wanted) and its operands' size, each
    row's Σ c·(m − a), ∂L/∂b and its operands' size (V), all float64 but the sizes (float32)."""

    grad_hidden: np.ndarray
    hidden_magnitude: np.ndarray
    cross_entropy: np.ndarray
    grad_bias: np.ndarray
    bias_magnitude: np.ndarray

    @classmethod
    def zeros(cls, n: int, d: int, v: int, rows: bool) -> ClassSums:
        """Sums of nothing yet, for ``n`` rows of width ``d`` and ``v`` classes (∂L/∂E only with ``rows``)."""
        shape = (n, d) if rows else (0, d)
        return cls(np.zeros(shape), np.zeros(shape, np.float32), np.zeros(n), np.zeros(v), np.zeros(v))

    def add(self, part: ClassSums, classes: slice) -> None:
        """A block's sums (``part``, begun from zeros) added in: as the block's own loop adds them,
        to the bit, since 0 + x is x."""
        self.grad_hidden += part.grad_hidden
        self.hidden_magnitude += part.hidden_magnitude
        self.cross_entropy += part.cross_entropy
        self.grad_bias[classes] += part.grad_bias[classes]
        self.bias_magnitude[classes] += part.bias_magnitude[classes]
