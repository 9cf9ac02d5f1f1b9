"""What the learner's function printed: its stdout and stderr, captured per case and bounded."""

from __future__ import annotations

import fcntl
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from typing import BinaryIO

#: Bytes kept of each stream per case; the rest is counted, not kept.
KEPT_BYTES = 4096


@dataclass(frozen=True)
class CapturedOutput:
    """A case's output: the first :data:`KEPT_BYTES` of each stream, decoded (an undecodable byte as
    ``\\xNN``), and how many bytes were left out."""

    stdout: str = ""
    stderr: str = ""
    stdout_left_out: int = 0
    stderr_left_out: int = 0

    def __bool__(self) -> bool:
        return bool(self.stdout or self.stderr or self.stdout_left_out or self.stderr_left_out)


class OutputFiles:
    """Two files the child's stdout and stderr append to, emptied after each case is read."""

    def __init__(self) -> None:
        self.stdout = _appending_file()
        self.stderr = _appending_file()

    def take(self) -> CapturedOutput:
        """What the child wrote since the last call; the files are emptied."""
        stdout, stdout_left_out = _take(self.stdout)
        stderr, stderr_left_out = _take(self.stderr)
        return CapturedOutput(stdout, stderr, stdout_left_out, stderr_left_out)

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()


def _appending_file() -> BinaryIO:
    # O_APPEND on the open file shared with the child: after the parent empties it, the
    # child's next write lands at its new end, not at its old offset.
    file = tempfile.TemporaryFile()  # noqa: SIM115 - open for the whole run; OutputFiles.close closes it
    flags = fcntl.fcntl(file.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(file.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    return file


def _take(file: BinaryIO) -> tuple[str, int]:
    descriptor = file.fileno()
    size = os.fstat(descriptor).st_size
    kept = os.pread(descriptor, KEPT_BYTES, 0)
    os.ftruncate(descriptor, 0)
    return kept.decode("utf-8", errors="backslashreplace"), max(0, size - len(kept))


def escaped(text: str) -> str:
    """``text`` safe to show in a terminal: every control or format character but the newline and
    the tab (escape sequences, carriage returns, bidirectional overrides) written as ``\\xNN`` or
    ``\\uNNNN``, so that a learner's output can neither move the cursor nor disguise itself."""
    return "".join(
        character
        if character in "\n\t" or not unicodedata.category(character).startswith("C")
        else character.encode("unicode_escape").decode("ascii")
        for character in text
    )
