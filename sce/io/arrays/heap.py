"""Keeping freed blocks in the process's heap while a large dump is graded.

glibc hands every allocation above its mmap threshold (128 KB at first, at
most 32 MB) to the kernel and back again, so each N×K temporary of a block
(8 MB in float64) arrives as fresh pages that the kernel must fault in and
zero: measured, that was more than half the CPU time of `sce check --arrays`
on a large dump (9 of 16 s were system time). Raising the threshold and the trim
threshold for the duration of the check lets the next block reuse the last
one's memory; the peak stays what one block needs. Elsewhere (not glibc:
macOS, musl) nothing is changed. Any mallopt ends glibc's own adjustment of
the threshold for the rest of the process, so only the command line's own
process does this (`sce check --arrays`), never a library caller's
(`assert_cross_entropy_close` inside a training process).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: The largest mmap threshold glibc accepts on 64-bit systems (and the most its own adjustment reaches).
_KEPT_BELOW = 32 * 1024 * 1024
_KEPT_FREE = 1 << 30
#: Afterwards: the mmap threshold stays where glibc's own adjustment ends after large blocks, and the
#: free memory kept at the top of the heap is twice that, as glibc's rule sets it. (Any mallopt turns
#: that adjustment off for good; its first defaults, 128 KB, measured 7 times the page faults of this
#: on the next large check in the same process.)
_AFTER_TRIM = 2 * _KEPT_BELOW


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    # Only glibc has gnu_get_libc_version; mallopt's parameters below are glibc's.
    wanted = ("gnu_get_libc_version", "mallopt", "malloc_trim")
    return libc if all(hasattr(libc, name) for name in wanted) else None


@contextmanager
def reused_heap(enabled: bool = True) -> Iterator[None]:
    """Freed memory stays in the heap for reuse while inside; on leaving, at most 64 MB of it is
    kept free and the rest is handed back to the system."""
    libc = _glibc() if enabled else None
    if libc is None or not libc.mallopt(_M_MMAP_THRESHOLD, _KEPT_BELOW):
        yield
        return
    libc.mallopt(_M_TRIM_THRESHOLD, _KEPT_FREE)
    try:
        yield
    finally:
        libc.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM)
        libc.malloc_trim(0)


def reused_heap_environment() -> dict[str, str]:
    """The environment variables that give a new process :func:`reused_heap`'s settings for its
    whole life (glibc reads them when the process starts): for worker processes started only to
    run sce's work, which free and allocate blocks of the same sizes over and over.

    Examples
    --------
    >>> reused_heap_environment()["MALLOC_MMAP_THRESHOLD_"]
    '33554432'
    """
    return {"MALLOC_MMAP_THRESHOLD_": str(_KEPT_BELOW), "MALLOC_TRIM_THRESHOLD_": str(_KEPT_FREE)}
