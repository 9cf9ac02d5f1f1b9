"""The pieces a linear layer's blocked cross-entropy shares between its passes: the operands'
size bounded over small groups of rows or classes, and the blocks of rows a pass over blocks of
classes visits again for every block of classes."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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


#: glibc's mallopt parameters: the free space at the heap's top kept rather than given back, the
#: extra space asked for when the heap grows, and the size from which an allocation is a mapping of its own.
_TRIM_THRESHOLD, _TOP_PAD, _MMAP_THRESHOLD = -1, -2, -3
#: Inside :func:`steady_heap`.
_HELD = {"trim": 1 << 30, "pad": 64 << 20, "mmap": 256 << 20}
#: After it: where glibc's own adjustment takes them once a block of 32 MiB has been freed.
_AFTER = {"trim": 64 << 20, "pad": 128 << 10, "mmap": 32 << 20}
_depth = 0
_depth_lock = threading.Lock()


@contextmanager
def steady_heap() -> Iterator[None]:
    """Keep freed blocks' pages for the next blocks while a blocked pass runs.

    A pass over blocks allocates and frees temporaries of a few MiB thousands of times. glibc
    maps an allocation past its mmap threshold afresh and gives the top of its heap back past its
    trim threshold, so every block's temporaries fault their pages in again (about 0.3 ms a MiB
    on a 2-core machine: 5 s of a 38 s check at 4096 × 2048 × 32000 without it). Inside, both thresholds are raised; on
    leaving the outermost, the free pages go back to the system and the thresholds are left where
    glibc's own adjustment puts them after a large block is freed. Elsewhere than glibc, nothing.

    Examples
    --------
    >>> import numpy as np
    >>> with steady_heap():
    ...     total = sum(float((np.ones((512, 1024)) * k).sum()) for k in range(3))
    >>> total
    1572864.0
    """
    global _depth
    libc = _glibc()
    with _depth_lock:
        _depth += 1
        if _depth == 1 and libc is not None:
            _set(libc, _HELD)
    try:
        yield
    finally:
        with _depth_lock:
            _depth -= 1
            if _depth == 0 and libc is not None:
                libc.malloc_trim(0)
                _set(libc, _AFTER)


def _set(libc: ctypes.CDLL, values: dict[str, int]) -> None:
    libc.mallopt(_TRIM_THRESHOLD, values["trim"])
    libc.mallopt(_TOP_PAD, values["pad"])
    libc.mallopt(_MMAP_THRESHOLD, values["mmap"])


def _glibc() -> ctypes.CDLL | None:
    """The C library where it is glibc (which has mallopt and malloc_trim), else None."""
    global _libc
    if _libc is False:
        name = ctypes.util.find_library("c")
        try:
            found = ctypes.CDLL(name) if name else None
            _libc = found if found is not None and hasattr(found, "malloc_trim") else None
        except OSError:
            _libc = None
    return _libc  # type: ignore[return-value]


_libc: ctypes.CDLL | None | bool = False
