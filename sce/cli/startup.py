"""What the ``sce`` process sets up before the command loads: its standard streams and its stopping signals.

Kept apart from the app (:mod:`.application`), which :func:`sce.cli.main` imports
after this has run, so that a signal while typer, numpy and the command load is
reported like one during the command.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from sce.errors import Interrupted

#: Signals that end sce with one line and 128 + their number wherever they
#: arrive. `sce batch` and `sce check --csv` install their own handlers over
#: these for the run, which clean up its files first.
STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

_pending: list[int] = []


def handled_stopping_signals() -> list[int]:
    """The stopping signals sce acts on: those the caller did not set to be ignored.

    A signal the caller set to be ignored (nohup, `trap '' INT`, a script's background
    job) stays ignored: that was the caller's decision, as GNU tools keep it."""
    return [signum for signum in STOPPING_SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN]


def note_stopping_signals(signals: list[int]) -> None:
    """Note ``signals`` for later instead of acting on them: raised inside an import, a
    signal could land in importlib's own callbacks, where Python prints it as ignored
    and goes on."""
    for signum in signals:
        signal.signal(signum, _note)


def stop_on_stopping_signals(signals: list[int]) -> None:
    """From now on each of ``signals`` raises :class:`~sce.errors.Interrupted`; one noted
    while the modules loaded is raised at once."""
    for signum in signals:
        signal.signal(signum, _stop)
    if _pending:
        raise Interrupted(_pending[0])


def _note(signum: int, frame: FrameType | None) -> None:
    _pending.append(signum)


def _stop(signum: int, frame: FrameType | None) -> None:
    # Once a run's files are in place it has succeeded: a signal while its summary is shown
    # is noted, and the command says so, but it exits as it would have without it.
    signals = sys.modules.get("sce.io.signals")  # loaded only by the commands that write files
    if signals is not None and signals.is_committed():
        signals.note_after_commit(signum)
        return
    raise Interrupted(signum)


def closed_streams_on_devnull() -> None:
    """A standard stream the caller closed (`<&-`, `2>&-`) gets /dev/null, as daemons do: else
    the next file sce opens takes its number, and an error line meant for stderr lands in the
    output file (Python leaves sys.stderr None, and sce would end in an AttributeError)."""
    for descriptor, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(descriptor)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)
            setattr(sys, name, open(descriptor, mode, encoding="utf-8", closefd=False))  # noqa: SIM115
