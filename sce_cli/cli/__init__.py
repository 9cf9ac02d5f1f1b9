"""The ``sce`` command line: thin typer commands that parse, call, render and report.

One module per command (:mod:`.grad`, :mod:`.batch`, :mod:`.check`), the
shared option declarations (:mod:`.declarations`), and what they read typed
text into (:mod:`.inputs`, :mod:`.files`).
"""

from .app import app, main

__all__ = ["app", "main"]
