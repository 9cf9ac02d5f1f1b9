"""The ``sce`` command line: thin typer commands that parse, call, render and report.

One module per command (:mod:`.grad`, :mod:`.batch`, :mod:`.check`, :mod:`.test`),
the shared option declarations (:mod:`.declarations`), and what they read typed
text into (:mod:`.inputs`, :mod:`.files`). The app itself (:mod:`.application`) is
imported by :func:`main`, not here, so that a signal while typer, numpy and
the command load is reported like one during the command.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

from sce.errors import Interrupted

__all__ = ["app", "main"]

#: Signals that end sce with one line and 128 + their number wherever they
#: arrive. `sce batch` and `sce check --csv` install their own handlers over
#: these for the run, which clean up its files first.
_STOPPING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


_pending: list[int] = []


def handled_stopping_signals() -> list[int]:
    """The stopping signals sce acts on: those the caller did not set to be ignored."""
    return [signum for signum in _STOPPING if signal.getsignal(signum) is not signal.SIG_IGN]


def _note(signum: int, frame: FrameType | None) -> None:
    _pending.append(signum)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _closed_streams_on_devnull() -> None:
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


def main() -> None:
    """The ``sce`` command (the console script and ``python -m sce``).

    A signal while the modules load is noted and acted on once they have:
    raised inside an import it could land in importlib's own callbacks,
    where Python prints it as ignored and goes on.
    """
    _closed_streams_on_devnull()
    # A signal the caller set to be ignored (nohup, `trap '' INT`, a script's background job)
    # stays ignored: that was the caller's decision, as GNU tools keep it.
    handled = handled_stopping_signals()
    for signum in handled:
        signal.signal(signum, _note)
    try:
        from sce.cli.application import main as run

        for signum in handled:
            signal.signal(signum, _stop)
        if _pending:
            raise Interrupted(_pending[0])
        run()
    except Interrupted as interrupted:  # while loading, or outside the command's own handling
        print(f"sce: interrupted ({interrupted.name})", file=sys.stderr, flush=True)
        os._exit(interrupted.exit_code)


def __getattr__(name: str) -> Any:
    if name == "app":
        from sce.cli.application import app

        return app
    raise AttributeError(f"module 'sce.cli' has no attribute {name!r}")
