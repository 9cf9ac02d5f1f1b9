"""Rows of a (possibly memory-mapped) array, one block at a time, without keeping them mapped.

Slicing a memory-mapped .npy file maps its pages into the process, and they
stay counted in its memory until the mapping goes: grading a 4 GB dump by
slices would end with 4 GB resident. A block of rows is therefore read from
the file itself into a fresh array (one ``readinto``, as fast as the page
fault it replaces), and the mapping's pages are never touched.
"""

from __future__ import annotations

import math
import mmap

import numpy as np

from sce.errors import DataProblem


def block_bounds(rows: int, classes: int, entries: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive blocks of about ``entries`` entries (at least one row each)."""
    step = max(1, entries // max(1, classes))
    return [(start, min(rows, start + step)) for start in range(0, rows, step)]


def read_rows(array: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``array[start:stop]`` as an array of its own (read from the file when memory-mapped)."""
    root = _mapped_root(array)
    if root is None:
        # Row-major always: a Fortran-order array's rows would be summed in another order, and
        # the same-type baseline (so the allowance) would depend on how the dump was stored.
        return np.ascontiguousarray(array[start:stop])
    row_shape = tuple(array.shape[1:])
    out = np.empty((stop - start, *row_shape), dtype=array.dtype)
    row_bytes = array.dtype.itemsize * math.prod(row_shape)
    raw = out.reshape(-1).view(np.uint8)
    with open(str(root.filename), "rb", buffering=0) as handle:
        handle.seek(int(root.offset) + start * row_bytes)
        got = handle.readinto(raw.data)
    if got != raw.size:
        raise DataProblem(f"{root.filename}: the file shrank while being read (rows {start:,} to {stop - 1:,})")
    return out


def _mapped_root(array: np.ndarray) -> np.memmap | None:
    """The whole-file memory map whose bytes ``array`` is, in the same order, or None."""
    if array.ndim == 0 or not array.flags.c_contiguous:
        return None
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not (isinstance(root, np.memmap) and isinstance(root.base, mmap.mmap) and root.filename):
        return None
    if root.ctypes.data != array.ctypes.data or root.nbytes != array.nbytes or not root.flags.c_contiguous:
        return None  # a slice or a reordering of the file: read it through the map
    return root
