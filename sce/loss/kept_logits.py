"""Logits kept from the pass that finds each row's log-sum-exp, for the passes after it.

A check of a fused linear cross-entropy going by blocks of classes forms every logit four times:
twice in float64 for the reference (each row's log-sum-exp, then ∂L/∂z) and twice in float32 for
the same-type baseline (as a kernel's float32 product gives them). Where memory allows, the first
pass keeps each block's float32 logits zₙ and, in 16 bits an entry, how far the float64 logits z
lie from them. The offset r = z − zₙ is a float32 product's rounding, about 10⁻⁶ of |z|: with a
step of max|r|/32767 per row of a block, z = zₙ + k·step is within step/2 of z, about 10⁻¹¹ of |z|,
as much as the float64 product's own error bound, to which it is added. Six bytes an entry then
save a float64 and a float32 product: per byte, twice what keeping zₙ alone would save.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sce.loss.linear_blocks import HIDDEN_COPY_BYTES

#: The most bytes kept (6 an entry); the blocks beyond them are formed again where they are needed.
KEPT_BYTES = 560 << 20
#: What a check holds beyond its inputs at most, the kept logits included (under 1 GB).
CHECK_BYTES = 950 << 20
#: A pass's blocks, their temporaries and the grading's, besides the sums it holds whole.
_WORKING_BYTES = 160 << 20
#: The largest error a kept block's logits may have (absolute; times the cap under a soft cap below 1,
#: whose factor moves 1/cap times as much): the probabilities then move by 10⁻⁹ of themselves at most,
#: 0.02 of a float32 ulp. Blocks of larger logits (a float32 product's rounding grows with them) are
#: formed again.
TOLERANCE = 2.0**-30
#: Bytes a check holds per class besides the blocks (∂L/∂b and its size, the smoothing's and the
#: baseline's vectors): at millions of classes they, not the blocks, fill the memory.
_PER_CLASS_BYTES = 96
#: The fewest logits (N·V) worth keeping: below, a check takes a second or less and its reference
#: stays the float64 products' own, the same to the bit as a cluster's.
KEPT_FROM = 1 << 22
#: float64's unit roundoff.
_UNIT = 2.0**-53
_LEVELS = 32767.0


@dataclass(frozen=True)
class KeptBlock:
    """One block's float32 logits and the float64 logits' offsets from them."""

    narrow: np.ndarray
    """E·Cᵀ + b formed in float32 (rows × classes)."""
    offsets: np.ndarray
    """round((z − narrow)/step), int16 (rows × classes)."""
    step: np.ndarray
    """Each row's step (rows), float64."""


@dataclass
class KeptLogits:
    """Blocks of logits kept by their first row and class, up to ``capacity`` entries, with a
    bound per row on how far the float64 logits given back lie from the ones kept."""

    n_rows: int
    capacity: int = KEPT_BYTES // 6
    tolerance: float = TOLERANCE
    """The largest error of a block kept (:data:`TOLERANCE`, less under a small soft cap)."""
    blocks: dict[tuple[int, int], KeptBlock] = field(default_factory=dict)
    error: np.ndarray = field(init=False)
    """Each row's bound on |z given back − z formed| (0 where nothing is kept)."""
    entries: int = 0
    refused: set[tuple[int, int]] = field(default_factory=set)
    """Blocks not kept (logits not finite, or too large): formed again, never offered again."""
    scratch: dict[tuple[int, ...], np.ndarray] = field(default_factory=dict)
    """One float64 buffer per block shape for the offsets as they are formed: a temporary allocated
    between two kept blocks would fault in fresh pages every time (the kept ones fill the holes)."""

    def __post_init__(self) -> None:
        self.error = np.zeros(self.n_rows)

    def _scratch(self, shape: tuple[int, ...]) -> np.ndarray:
        if shape not in self.scratch:
            self.scratch[shape] = np.empty(shape)
        return self.scratch[shape]

    def wants(self, rows: slice, classes: slice) -> bool:
        """Whether a block not yet kept fits in what is left."""
        size = (rows.stop - rows.start) * (classes.stop - classes.start)
        key = (rows.start, classes.start)
        return key not in self.blocks and key not in self.refused and self.entries + size <= self.capacity

    def keep(self, rows: slice, classes: slice, wide: np.ndarray, narrow: np.ndarray) -> None:
        """Keep a block's float32 logits and its float64 logits' offsets from them (nothing where
        either is not finite: that block is formed again)."""
        offset = np.subtract(wide, narrow, out=self._scratch(wide.shape))
        largest = np.maximum(offset.max(axis=1, initial=0.0), -offset.min(axis=1, initial=0.0))
        if not np.isfinite(largest).all():  # an infinite or NaN logit in either
            self.refused.add((rows.start, classes.start))
            return
        step = largest / _LEVELS  # 0 where a row's logits are exact in float32 (or past float64's smallest)
        # r·(1/step) is within 2·32767 ulps of r/step: rint is then off a half step by 10⁻¹¹ at most.
        inverse = np.divide(1.0, step, out=np.zeros_like(step), where=step > 0)
        offsets = np.rint(np.multiply(offset, inverse[:, None], out=offset), out=offset).astype(np.int16)
        # |z − (zₙ + k·step)| ≤ step·(1/2 + 10⁻¹¹) (all of r where the step underflows), and the
        # rounding of k·step and of the sum, each within an ulp of |z| + step.
        reach = np.maximum(wide.max(axis=1, initial=0.0), -wide.min(axis=1, initial=0.0)) + step
        bound = np.where(step > 0, step * (0.5 + 2**-30), largest) + 3 * _UNIT * reach
        if bound.max(initial=0.0) > self.tolerance:  # logits too large for 16 bits of offset: formed again
            self.refused.add((rows.start, classes.start))
            return
        self.blocks[rows.start, classes.start] = KeptBlock(narrow, offsets, step)
        self.entries += narrow.size
        np.maximum(self.error[rows], bound, out=self.error[rows])

    def narrow(self, rows: slice, classes: slice) -> np.ndarray | None:
        """A kept block's float32 logits, or None."""
        block = self._block(rows, classes)
        return None if block is None else block.narrow

    def wide(self, rows: slice, classes: slice) -> np.ndarray | None:
        """A kept block's float64 logits (within :attr:`error` of those formed), or None."""
        block = self._block(rows, classes)
        if block is None:
            return None
        found = block.offsets.astype(np.float64)
        found *= block.step[:, None]
        found += block.narrow
        return found

    def _block(self, rows: slice, classes: slice) -> KeptBlock | None:
        block = self.blocks.get((rows.start, classes.start))
        shape = (rows.stop - rows.start, classes.stop - classes.start)
        return block if block is not None and block.narrow.shape == shape else None


def capacity(n_rows: int, width: int, n_classes: int, hidden_held: bool) -> int:
    """The logits to keep: what CHECK_BYTES leaves, at 6 bytes each, beside ∂L/∂E held whole (float64,
    its float32 size and the baseline's float32: 16 bytes an entry), E's float64 copy, the vectors
    of every class and the blocks."""
    rest = (n_rows * width * 16 if hidden_held else 0) + min(n_rows * width * 8, HIDDEN_COPY_BYTES) + _WORKING_BYTES
    rest += n_classes * _PER_CLASS_BYTES
    return max(0, min(KEPT_BYTES, CHECK_BYTES - rest)) // 6


def narrow_logits(e_rows: np.ndarray, c: np.ndarray, b: np.ndarray | None, classes: slice) -> np.ndarray:
    """A block's logits E·Cᵀ + b formed in float32, as a float32 kernel's product forms them."""
    z: np.ndarray = np.asarray(e_rows, np.float32) @ np.asarray(c[classes], np.float32).T
    if b is not None:
        z += b[classes].astype(np.float32)
    return z
