"""The pieces a linear layer's blocked cross-entropy shares between its passes: the operands'
size bounded over small groups of rows or classes, and the blocks of rows a pass over blocks of
classes visits again for every block of classes."""

from __future__ import annotations

import numpy as np

#: Classes (or rows) whose operands' size is bounded together: Σ|G| over the group times the group's
#: largest |C| (or |E|). The size sets only the binade of an ulp, and a group of 8 Gaussian rows has its
#: largest entry within about 2× of their mean: the float32 products of the sizes cost 8 times less
#: than the gradients' own (groups of 4 would add about 0.7 s at 4096 × 2048 × 32000).
SIZE_GROUP = 8


def group_sums(size: np.ndarray, axis: int) -> np.ndarray:
    """Sums of |G| over consecutive groups of SIZE_GROUP along ``axis`` (the last group may be
    shorter), each added in order, ((a₀ + a₁) + a₂) + a₃: strided additions, several times faster
    than ``np.add.reduceat``, whose order of addition is numpy's own affair."""
    return _by_groups(size, axis, np.add)


def group_maxima(a: np.ndarray) -> np.ndarray:
    """The largest |a| of each column over consecutive groups of SIZE_GROUP rows, in float32."""
    return _by_groups(_absolute(a), 0, np.maximum)


def _by_groups(values: np.ndarray, axis: int, combine: np.ufunc) -> np.ndarray:
    def along(part: slice) -> tuple[slice, ...]:
        return (slice(None),) * axis + (part,)

    found = values[along(slice(0, None, SIZE_GROUP))].copy()
    for k in range(1, SIZE_GROUP):
        part = values[along(slice(k, None, SIZE_GROUP))]
        kept = along(slice(0, part.shape[axis]))
        combine(found[kept], part, out=found[kept])
    return found


def _absolute(a: np.ndarray) -> np.ndarray:
    """|a| in float32: the operands' size needs a digit or two, not float64's sixteen."""
    return np.abs(np.asarray(a, np.float32))


#: The largest float64 copy of E (N×D) made once for every block of classes to use; beyond it,
#: each block of rows is copied where it is used.
HIDDEN_COPY_BYTES = 128 << 20


class RowBlocks:
    """The blocks of rows a pass over blocks of classes visits again for every block of classes:
    each one's float64 copy of E (made once where small enough) and its groups' largest |E|."""

    def __init__(self, e: np.ndarray, step: int) -> None:
        self.e = e
        self.slices = [slice(start, min(start + step, len(e))) for start in range(0, len(e), step)]
        whole = e.size * 8 <= HIDDEN_COPY_BYTES
        self.copies = [np.asarray(e[rows], np.float64) for rows in self.slices] if whole else None
        self.maxima: list[np.ndarray | None] = [None] * len(self.slices)

    def float64(self, k: int) -> np.ndarray:
        return self.copies[k] if self.copies is not None else np.asarray(self.e[self.slices[k]], np.float64)

    def group_maxima(self, k: int) -> np.ndarray:
        found = self.maxima[k]
        if found is None:
            found = self.maxima[k] = group_maxima(self.e[self.slices[k]])
        return found

