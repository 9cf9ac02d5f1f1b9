"""Signals during a run: SIGINT, SIGTERM, SIGHUP and SIGPIPE end it as an
:class:`Interrupted` exception, so that the temporary output and the spool are
removed on the way out, however the run was stopped.

Python runs signal handlers in the main thread only, whichever thread the
signal was delivered to (polars' worker threads included), so one handler
covers the whole process. It raises at once, except inside a
:func:`shielded` section (creating a temporary file and taking charge of it,
closing a stream in a generator's ``finally``, cleaning up) or in polars'
code: there it only records the signal, and :func:`raise_if_interrupted` raises it at the next
safe point. A raise inside a generator's ``finally`` would be printed as
"Exception ignored in generator" and lost.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sce.errors import Interrupted

#: The signals that stop a run; each exits with 128 + its number.
STOPPING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE") if hasattr(signal, name))


class _State:
    pending: int | None = None
    raised = False  # once raised, later signals only wait for the cleanup already under way
    shield_depth = 0
    installed = 0
    committed = False  # the run's files are in place: it has succeeded, and no signal undoes that
    after_commit: int | None = None


_state = _State()


def _record(signum: int, frame: FrameType | None) -> None:
    if _state.committed:
        note_after_commit(signum)
        return
    if _state.pending is None:
        _state.pending = signum
    # Raised in polars' Python code called back from Rust, the exception
    # would be printed as "Exception ignored in 'DataTypeClass'" and lost;
    # a closed pipe fails the write itself. Both wait for the next safe point.
    if signum != getattr(signal, "SIGPIPE", None) and not _in_polars(frame):
        raise_if_interrupted()


def _in_polars(frame: FrameType | None) -> bool:
    while frame is not None:
        if _POLARS in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


_POLARS = f"{os.sep}polars{os.sep}"


@contextmanager
def stopping_signals_handled() -> Iterator[None]:
    """Turn the stopping signals into :class:`Interrupted` for the duration.

    Outside the main thread (a library user's worker) handlers cannot be
    installed; the run then behaves as Python does by default.
    """
    if threading.current_thread() is not threading.main_thread() or _state.installed:
        yield
        return
    # Left ignored where the caller ignores them (nohup); Python itself ignores SIGPIPE, which
    # is always handled: a closed pipe ends the run.
    previous = {
        signum: handler
        for signum in STOPPING
        if (handler := signal.getsignal(signum)) is not signal.SIG_IGN or signum == getattr(signal, "SIGPIPE", None)
    }
    for signum in set(STOPPING) - set(previous):
        # Ignored again for the operating system: importing polars puts its own SIGINT handler
        # under Python's, which would turn an ignored Ctrl-C during polars' work into an interrupt.
        signal.signal(signum, signal.SIG_IGN)
    _state.pending, _state.raised = None, False
    _state.committed, _state.after_commit = False, None
    for signum in previous:
        signal.signal(signum, _record)
    _state.installed += 1
    try:
        yield
        raise_if_interrupted()
    finally:
        _state.installed -= 1
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _state.pending, _state.raised = None, False


@contextmanager
def shielded() -> Iterator[None]:
    """A section a signal must not cut short: the signal is recorded, and
    raised by the next :func:`raise_if_interrupted` (never on leaving)."""
    _state.shield_depth += 1
    try:
        yield
    finally:
        _state.shield_depth -= 1


def raise_if_interrupted() -> None:
    """A safe point: raise the signal recorded in a shielded section, if any (never once
    the run is :func:`committed`)."""
    if _state.committed:
        return
    if _state.pending is not None and _state.shield_depth == 0 and _state.installed and not _state.raised:
        _state.raised = True
        raise Interrupted(_state.pending)


def committed() -> None:
    """The run's files are in place: it has succeeded. A stopping signal from now on (or one
    recorded while they were put in place) is noted, never raised: the run goes on to its
    end, and the command line reports it with :func:`signal_after_commit`."""
    if _state.pending is not None and not _state.raised:
        note_after_commit(_state.pending)
    _state.committed = True


@contextmanager
def part_of_a_run() -> Iterator[None]:
    """A step that puts files in place which are not yet the run's output (a part of it, in a
    staging folder): its commit does not commit the run. A signal that arrived once its files
    were in place is raised at the next safe point, as before any commit."""
    try:
        yield
    finally:
        if _state.committed:
            _state.committed = False
            if _state.after_commit is not None and _state.pending is None:
                _state.pending = _state.after_commit
            _state.after_commit = None


def is_committed() -> bool:
    """Whether the last run's files are in place (until the next run begins)."""
    return _state.committed


def note_after_commit(signum: int) -> None:
    if _state.after_commit is None:
        _state.after_commit = signum


def signal_after_commit() -> int | None:
    """The stopping signal that arrived once the run's files were in place, if one did."""
    return _state.after_commit
