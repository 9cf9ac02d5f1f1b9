"""Putting a finished output in place of an existing file, atomically, without
freeing the old file on the way.

``os.replace`` over an existing file does two slow things inside the rename, on a
run's critical path: the old file's pages and blocks are freed there (it was the
last name of the old file), and ext4 (``auto_da_alloc``, on by default) first
flushes the new file's data, as if the program had asked for it. Measured on
ext4, a 210 MB output replaced over one of the same size: 80–190 ms in the
rename, against 0.1 ms for an exchange, followed by 15–100 ms to remove the
old file.

So where the system can, the new file and the old one swap names in one step
(``renameat2`` with ``RENAME_EXCHANGE``, Linux 3.15 and later on ext4, XFS,
Btrfs and tmpfs): the output's name holds the old file or the new one, whole,
at every moment. The old file, now under the temporary name, is removed
right after, or at the end of :func:`old_outputs_removed_last`, where a
command shows its summary first. The new data is then written back by the
kernel in its own time, as for any new file. Elsewhere, ``os.replace``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sce.io.signals import shielded

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class _Pending:
    removals: list[str] | None = None  # None: each old file is removed at once


_pending = _Pending()


def put_in_place(finished: str, destination: str) -> None:
    """Rename ``finished`` to ``destination``; an existing file there is replaced
    atomically, and removed at once or at the end of :func:`old_outputs_removed_last`."""
    if not (os.path.exists(destination) and _exchanged(finished, destination)):
        os.replace(finished, destination)
        return
    # ``finished`` now names the old output.
    if _pending.removals is None:
        _remove(finished)
    else:
        _pending.removals.append(finished)


@contextmanager
def old_outputs_removed_last() -> Iterator[None]:
    """Within, the old files that outputs replaced are removed on leaving, whatever happens."""
    if _pending.removals is not None:  # nested: the outer one removes them
        yield
        return
    _pending.removals = []
    try:
        yield
    finally:
        with shielded():
            removals, _pending.removals = _pending.removals, None
            for path in removals:
                _remove(path)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _exchanged(first: str, second: str) -> bool:
    """Whether the two names were swapped in one step (False where the system cannot)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # a C library without it (older than glibc 2.28, some musl)
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    return done == 0  # EINVAL where the file system cannot exchange, ENOENT if the old file went: os.replace then
