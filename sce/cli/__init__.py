"""The ``sce`` command line: thin typer commands that parse, call, render and report.

One module per command (:mod:`.grad`, :mod:`.batch`, :mod:`.check`, :mod:`.test`),
the shared option declarations (:mod:`.declarations`), what they read typed text
into (:mod:`.typed_inputs`, :mod:`.file_request`), and one table of exit statuses
(:mod:`.exit_status`). The app itself (:mod:`.application`) is imported by
:func:`main`, not here, after :mod:`.startup` has set up the process.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sce.cli.exit_status import signal_status
from sce.cli.startup import (
    closed_streams_on_devnull,
    handled_stopping_signals,
    note_stopping_signals,
    stop_on_stopping_signals,
)
from sce.errors import Interrupted

__all__ = ["app", "main"]


def main() -> None:
    """The ``sce`` command (the console script and ``python -m sce``).

    A signal while the modules load is noted and acted on once they have.
    """
    closed_streams_on_devnull()
    handled = handled_stopping_signals()
    note_stopping_signals(handled)
    try:
        from sce.cli.application import main as run

        stop_on_stopping_signals(handled)
        run()
    except Interrupted as interrupted:  # while loading, or outside the command's own handling
        print(f"sce: interrupted ({interrupted.name})", file=sys.stderr, flush=True)
        os._exit(signal_status(interrupted.signum))


def __getattr__(name: str) -> Any:
    if name == "app":
        from sce.cli.application import app

        return app
    raise AttributeError(f"module 'sce.cli' has no attribute {name!r}")
