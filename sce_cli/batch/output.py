"""Writing without losing data: the atomic output target, the background
writer, holding Ctrl-C while cleanup is not yet in force, and the stdin spool."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from typing import BinaryIO

import polars as pl

from ..errors import DATA, OptionProblem
from .frames import write_frame


class OutputTarget:
    """Where the output goes, written so that a failure destroys nothing.

    A regular file is written to a temporary file beside it and renamed into
    place only when everything has been written; on any failure (Ctrl-C
    included) the temporary file is removed and an existing file is left as
    it was. stdout, pipes and devices (/dev/null) are written directly: a
    rename over a device would replace it.
    """

    def __init__(self, path: str | None, input_path: str | None) -> None:
        self.path = None if path in (None, "-") else path
        self.temporary: str | None = None
        self.stream: BinaryIO
        if self.path is None:
            self.stream = sys.stdout.buffer
            return
        if input_path not in (None, "-") and os.path.exists(self.path):
            try:
                same = os.path.samefile(self.path, input_path)
            except OSError:
                same = False
            if same:
                raise OptionProblem("output_path", f"{self.path} is the input file; write the output to another file")
        if os.path.exists(self.path) and not stat.S_ISREG(os.stat(self.path).st_mode):
            self.stream = open(self.path, "wb")  # noqa: SIM115 (closed in finish/abandon)
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (renamed or removed in finish/abandon)
                dir=directory, prefix=f".{os.path.basename(self.path)}.", suffix=".partial", delete=False
            )
        except OSError as error:
            raise OptionProblem("output_path", f"cannot write in {directory}: {error.strerror}", DATA) from None
        self.temporary = handle.name
        self.stream = handle  # type: ignore[assignment]

    def finish(self) -> None:
        if self.path is None:
            self.stream.flush()
            return
        self.stream.close()
        if self.temporary is not None:
            mode = 0o666 & ~_umask()
            if os.path.exists(self.path):
                mode = stat.S_IMODE(os.stat(self.path).st_mode)
            os.chmod(self.temporary, mode)
            os.replace(self.temporary, self.path)
            self.temporary = None

    def abandon(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.stream.close()
        if self.temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temporary)
            self.temporary = None


class BackgroundWriter:
    """Encodes and writes output frames on a second thread.

    polars' CSV writer and the file write release the GIL, so on two cores
    the next block is read and computed while this one is written. At most
    ``depth`` frames wait, which bounds the memory.
    """

    _DONE = object()

    def __init__(self, target: OutputTarget, output_format: str, depth: int = 2) -> None:
        import queue
        import threading

        self.target = target
        self.output_format = output_format
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.header = True
        self.thread = threading.Thread(target=self._run, name="sce-batch-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            frame = self.queue.get()
            if frame is self._DONE:
                return
            if self.error is not None:
                continue  # drain after a failure, so that put() never blocks
            try:
                write_frame(frame, self.target.stream, self.output_format, header=self.header)
                self.header = False
            except BaseException as error:  # re-raised on the main thread
                self.error = error

    def put(self, frame: pl.DataFrame) -> None:
        self._raise_if_failed()
        self.queue.put(frame)

    def abort(self) -> None:
        """Stop after a failure elsewhere: drop what is queued, wait for the thread."""
        if self.thread.is_alive():
            # With an error set, the thread drains the queue without writing.
            self.error = self.error or KeyboardInterrupt()
            self.queue.put(self._DONE)
            self.thread.join()

    def close(self) -> None:
        """Wait until everything queued is written; raise what the thread met."""
        self.queue.put(self._DONE)
        self.thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error


def _hold_interrupts() -> Callable[[], None]:
    """Block SIGINT in this thread; return a function that unblocks it (once).

    A Ctrl-C that arrives meanwhile is delivered on release, as a
    KeyboardInterrupt where the caller is ready to clean up.
    """
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return lambda: None
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    return release


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def spool_to_temporary(stream: BinaryIO) -> str:
    """Copy a stream (stdin) to a temporary file, for inputs read twice."""
    release_interrupts = _hold_interrupts()
    handle = tempfile.NamedTemporaryFile(prefix="sce-batch-", suffix=".csv", delete=False)  # noqa: SIM115 (removed by the caller)
    try:
        release_interrupts()
        with handle:
            shutil.copyfileobj(stream, handle, 1 << 20)
    except BaseException:
        release_interrupts()
        os.unlink(handle.name)
        raise
    return handle.name
