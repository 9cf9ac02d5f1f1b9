"""Standard output, written whole or not at all: a closed pipe is always a BrokenPipeError.

Python's buffered writer can return a short count for one large write (a
pipe whose reader went away after taking part of it: ``sce grad … -f csv |
head -c 100``), and ``sys.stdout.write`` ignores that count: the rest of the
output would be dropped without an error, and sce would exit 0. Here every
write is finished or fails, so the command line's one handler exits 141.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console


class WholeWrites:
    """A text stream (stdout) whose ``write`` writes every byte or raises."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        buffer = getattr(self.stream, "buffer", None)
        if buffer is None:  # a stream of text only (io.StringIO): nothing is ever short
            return self.stream.write(text)
        self.stream.flush()
        data = memoryview(text.encode(self.stream.encoding or "utf-8", self.stream.errors or "strict"))
        while data:
            data = data[buffer.write(data) :]
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def write_stdout(text: str) -> None:
    WholeWrites(sys.stdout).write(text)


def stdout_console() -> Console:
    from sce.render.grid import console_for

    return console_for(WholeWrites(sys.stdout))  # type: ignore[arg-type]
