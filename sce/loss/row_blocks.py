"""Rows in blocks that fit the cache: every N×K step of the core works block by block.

A block's intermediates (shifted logits, their exponentials, the rounding
errors) are formed, used and dropped while they are still in the cache, and
only the outputs (probabilities, gradient) are written to memory: the cost
of the accurate algorithm is then its arithmetic, not its traffic. Every
step is row by row, so the results do not depend on the block size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: The bytes of one N×K intermediate of a block (a few such are live at once).
BLOCK_BYTES = 1 << 19


def block_rows(n_classes: int, itemsize: int) -> int:
    """Rows per block: an N×K intermediate of about :data:`BLOCK_BYTES`, at least one row."""
    return max(1, BLOCK_BYTES // max(1, n_classes * itemsize))


def row_blocks(n_rows: int, n_classes: int, itemsize: int) -> Iterator[slice]:
    """Consecutive slices of the rows, each a block (the last one possibly shorter)."""
    step = block_rows(n_classes, itemsize)
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def flat_indices(classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Where each row's class sits in the flattened (row-major) block."""
    return np.arange(0, len(classes) * n_classes, n_classes) + classes


def flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of a row-major array: indexing it with :func:`flat_indices` reads and writes ``a``."""
    if not a.flags.c_contiguous:
        raise ValueError("a flat view needs a row-major array")
    return a.reshape(-1)
