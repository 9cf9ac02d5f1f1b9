"""Writing without losing data: the atomic output target, the base of the
background writers, and the spool of an input read twice."""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import re
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO

from sce.errors import DataProblem, OptionDataProblem, OptionProblem, UsageProblem
from sce.io.signals import committed, raise_if_interrupted, shielded
from sce.io.writers.replace import put_in_place

#: A file name to suggest in a message, by what the file holds, where the writer names none (else NOUN.json).
EXAMPLE_FILES = {"output": "out.csv", "page": "page.html"}


class OutputTarget:
    """Where the output goes, written so that a failure destroys nothing.

    A regular file is written to a temporary file beside it and renamed into
    place only when everything has been written; on any failure (a signal
    included) the temporary file is removed and an existing file is left as
    it was. A symbolic link is followed: the temporary file goes beside the
    link's target and is renamed onto the target, so the link stays a link.
    stdout, pipes and devices (/dev/null) are written directly: a rename
    over a device would replace it.
    """

    def __init__(
        self,
        path: str | None,
        input_path: str | None,
        field: str = "output_path",
        noun: str = "output",
        example: str | None = None,
    ) -> None:
        self.path = None if path in (None, "-") else path
        self.field, self.noun = field, noun
        """The option that names the file, and what it holds, for the messages."""
        self.example = example or EXAMPLE_FILES.get(noun, f"{noun}.json")
        """A file name to suggest where a folder is named: of the kind written, without spaces."""
        self.temporary: str | None = None
        self.still_written = False
        """A writer thread may still write into the stream: abandon() leaves it open."""
        self.stream: BinaryIO
        if self.path is None:
            _refuse_input_behind(1, "stdout", input_path)
            self.stream = sys.stdout.buffer
            return
        if not self.path:
            raise OptionProblem(field, f"the {noun} file name is empty; name a file, or give - for stdout")
        if self.path.endswith(os.sep) and not os.path.isdir(self.path):
            example = os.path.join(self.path, self.example)
            raise OptionProblem(
                field, f"{self.path} names a folder, which does not exist; create it, or name a file: {example}"
            )
        descriptor = _own_descriptor(self.path)
        if descriptor is not None:
            # /dev/stdout, /dev/fd/N: the file behind is what the shell opened (`>> log`, a pipe);
            # followed to that file and replaced by a rename, it would lose what it held.
            self.written = self.path
            _refuse_input_behind(descriptor, self.path, input_path)
            try:
                self.stream = os.fdopen(os.dup(descriptor), "wb")
            except OSError as error:
                raise OptionDataProblem(field, f"cannot write {self.path}: {reason(error)}") from None
            return
        self.written = os.path.realpath(self.path)
        self._check_destination(input_path)
        if os.path.exists(self.written) and not stat.S_ISREG(os.stat(self.written).st_mode):
            self.stream = self._open_directly()
            return
        directory = os.path.dirname(self.written)
        with shielded():  # the temporary file is ours to remove from the moment it exists
            try:
                handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (renamed or removed in finish/abandon)
                    dir=directory, prefix=f".{os.path.basename(self.written)}.", suffix=".partial", delete=False
                )
            except OSError as error:
                raise OptionDataProblem(field, cannot_create_in(directory, error, noun)) from None
            self.temporary = handle.name
            self.stream = handle  # type: ignore[assignment]

    def _check_destination(self, input_path: str | None) -> None:
        """Neither a folder nor the input file."""
        if os.path.isdir(self.written):
            example = os.path.join(self.path or "", self.example)
            raise OptionProblem(self.field, f"{self.path} is a folder; name a file in it, e.g. {example}")
        if not os.path.exists(self.written):
            return
        if _same_file(self.written, input_path):
            raise OptionProblem(self.field, f"{self.path} is the input file; write the {self.noun} to another file")
        if stat.S_ISREG(os.stat(self.written).st_mode) and not os.access(self.written, os.W_OK):
            # The rename needs only the folder's permission: it would replace a file one may not write.
            raise OptionDataProblem(
                self.field, f"{self.path} is not writable (read-only, or not yours); make it writable or write "
                f"the {self.noun} elsewhere",
            )

    def _open_directly(self) -> BinaryIO:
        assert self.path is not None
        try:
            return open(self.path, "wb")  # noqa: SIM115 (closed in finish/abandon)
        except OSError as error:
            raise OptionDataProblem(self.field, f"cannot write {self.path}: {reason(error)}") from None

    def write_failure(self, error: OSError) -> DataProblem | OptionProblem:
        """A failed write, worded: which file, why, and that nothing was replaced."""
        name = "stdout" if self.path is None else self.path
        kept = f"; {self.path} is unchanged" if self.temporary is not None and os.path.exists(self.written) else ""
        full = error.errno == errno.ENOSPC or errno_in_text(str(error)) == errno.ENOSPC
        hint = f"; free some space or write the {self.noun} elsewhere" if full else ""
        if self.path is None:  # no -o to name
            return DataProblem(f"writing the output to stdout failed: {reason(error)}{hint}")
        return OptionDataProblem(self.field, f"writing the {self.noun} {name} failed: {reason(error)}{kept}{hint}")

    def finish(self) -> None:
        """Close the file and put it in place: see :func:`put_in_place_together`."""
        put_in_place_together([self])

    def closed(self) -> None:
        """Everything written and closed, with the old file's mode, ready to be put in place."""
        if self.path is None:
            self.stream.flush()
            return
        try:
            self.stream.close()
        except OSError as error:
            if is_broken_pipe(error):
                raise
            raise self.write_failure(error) from None
        if self.temporary is not None:
            mode = 0o666 & ~current_umask()
            if os.path.exists(self.written):
                mode = stat.S_IMODE(os.stat(self.written).st_mode)
            os.chmod(self.temporary, mode)

    def put_in_place(self) -> None:
        if self.temporary is not None:
            put_in_place(self.temporary, self.written)
            self.temporary = None

    def abandon(self) -> None:
        # Closed under a thread still writing into it, its descriptor could be reused by a file
        # opened next, and the thread's writes would land there; left open, they land in the
        # removed temporary file, and the descriptor closes when the process exits.
        if self.path is not None and not self.still_written:
            with contextlib.suppress(OSError):
                self.stream.close()
        if self.temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temporary)
            self.temporary = None


def put_in_place_together(targets: Sequence[OutputTarget]) -> None:
    """The run's commit: close every target, then put them all in place in one shielded step.

    A signal before the step keeps every old file (the caller abandons the targets); one
    during or after it finds the new files in place, and the run has succeeded
    (:func:`sce.io.signals.committed`): it no longer ends as interrupted.
    """
    for target in targets:
        target.closed()
    raise_if_interrupted()  # the last moment at which the old files can still be kept
    with shielded():
        for target in targets:
            target.put_in_place()
        committed()


@contextmanager
def abandoned_on_failure() -> Iterator[list[OutputTarget]]:
    """A list to put the run's targets in: each abandoned (its old file kept) if the block raises,
    by a signal too."""
    targets: list[OutputTarget] = []
    try:
        yield targets
    except BaseException:
        with shielded():
            for target in targets:
                target.abandon()
        raise


def refuse_same_file(path: str, other: str | int, field: str, problem: str) -> None:
    """Refuse ``path`` where it names the file ``other`` names (a path, or a descriptor of
    this process: 0 for what stdin reads, 1 for stdout): by name once links are followed,
    or by inode (a hard link, /dev/stdout)."""
    try:
        if isinstance(other, int):
            behind, named = os.fstat(other), os.stat(path)
            same = (behind.st_dev, behind.st_ino) == (named.st_dev, named.st_ino)
        else:
            same = os.path.realpath(path) == os.path.realpath(other) or (
                os.path.exists(path) and os.path.exists(other) and os.path.samefile(path, other)
            )
    except (OSError, ValueError):
        return
    if same:
        raise OptionProblem(field, problem)


#: Seconds an abort waits for a writer's thread, stuck perhaps in a write to a stalled pipe or a
#: slow disk, before the run goes on to exit without it (the thread is a daemon).
ABORT_WAIT = 2.0


class BackgroundWriter:
    """The base of every output writer: what :meth:`put` queues is written on a second thread.

    Encoding and writing (polars' CSV writer, a file's writes, CRC-32s) let go of the interpreter
    lock, so on two cores the next block is read and computed while this one is written. At most
    ``depth`` items wait, which bounds the memory. A failure on the writer's thread is raised on
    the main thread at the next :meth:`put` or at :meth:`close`, a failed write worded by the target.

    One abort rule for every writer: drop what is queued, let the item being written finish, and
    wait at most :data:`ABORT_WAIT` seconds; a thread still writing after that keeps the target's
    file open (see :meth:`OutputTarget.abandon`).
    """

    _DONE = object()

    def __init__(self, target: OutputTarget, depth: int = 2) -> None:
        self.target = target
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.stopping = False
        self.thread: threading.Thread | None = None

    def write_all(self, items: Iterator[Any]) -> None:
        """Write every item, on the writer's thread (each kind of output its own way)."""
        raise NotImplementedError

    def finished(self) -> None:
        """After the last item is written, on the main thread (an archive's directory)."""

    def worded(self, error: BaseException) -> BaseException:
        """A failure of the writer's thread, as the main thread raises it."""
        if isinstance(error, OSError):
            return error if is_broken_pipe(error) else self.target.write_failure(error)
        return error

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="sce-batch-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.write_all(self.items())
        except BaseException as error:  # re-raised on the main thread
            self.error = self.worded(error)

    def items(self) -> Iterator[Any]:
        """What put() queues, until close() or abort()."""
        while True:
            item = self.queue.get()
            if item is self._DONE or self.stopping:
                return
            yield item

    def put(self, item: Any) -> None:
        self._raise_if_failed()
        while True:  # in steps, so that a writer that failed (and no longer reads) cannot block the put
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                self._raise_if_failed()

    def close(self) -> None:
        """Wait until everything queued is written; raise what the thread met."""
        if self.thread is not None:
            self._put_done()
            self.thread.join()
        self._raise_if_failed()
        try:
            self.finished()
        except OSError as error:
            raise self.target.write_failure(error) from None

    def abort(self) -> None:
        """Stop after a failure elsewhere (see the class's abort rule)."""
        if self.thread is None or not self.thread.is_alive():
            return
        self.stopping = True
        self._put_done()
        self.thread.join(timeout=ABORT_WAIT)
        self.target.still_written = self.thread.is_alive()  # stuck in a write: see OutputTarget.abandon

    def _put_done(self) -> None:
        while True:
            try:
                self.queue.put(self._DONE, timeout=0.1)
                return
            except queue.Full:
                if self.thread is None or not self.thread.is_alive():
                    return
                if self.stopping:
                    with contextlib.suppress(queue.Empty):
                        self.queue.get_nowait()  # dropped: nothing more is written after an abort

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is not None and not self.thread.is_alive() and self.queue.full():
            raise DataProblem(f"writing {self.target.path}: the writer stopped")


def current_umask() -> int:
    """The process's file mode creation mask (read by setting it, then setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def spooled_copy(stream: BinaryIO, name: str) -> Iterator[str]:
    """A copy of a stream that cannot be read twice (stdin, a pipe), for a
    second pass, in the temporary folder; removed on leaving, whatever
    happens. ``name`` is the input's name, for errors."""
    spool: str | None = None
    try:
        with shielded():  # from the moment the file exists, the finally below removes it
            try:
                handle = tempfile.NamedTemporaryFile(prefix="sce-spool-", suffix=".csv", delete=False)  # noqa: SIM115
            except OSError as error:
                raise DataProblem(
                    f"cannot create a spool file in {tempfile.gettempdir()}: {reason(error)}{_TMPDIR_HINT}"
                ) from None
            spool = handle.name
        with handle:
            try:
                shutil.copyfileobj(stream, handle, 1 << 20)
            except OSError as error:
                raise DataProblem(
                    f"copying {name} to the spool file {spool} (kept to read the input twice) failed: "
                    f"{reason(error)}{_TMPDIR_HINT}"
                ) from None
        yield spool
    finally:
        with shielded():
            if spool is not None:
                with contextlib.suppress(OSError):
                    os.unlink(spool)


_TMPDIR_HINT = "; set TMPDIR to a folder with room"


def _refuse_input_behind(descriptor: int, name: str, input_path: str | None) -> None:
    """Refuse a descriptor opened on the input file (`sce batch in.csv >> in.csv`): the run
    would read what it writes, and alter its input."""
    if input_path is None:
        return
    try:
        behind = os.fstat(descriptor)
        given = os.fstat(0) if input_path == "-" else os.stat(input_path)  # stdin: what it reads
    except (OSError, ValueError):
        return
    if stat.S_ISREG(behind.st_mode) and (behind.st_dev, behind.st_ino) == (given.st_dev, given.st_ino):
        if descriptor == 1 and name == "stdout":
            raise UsageProblem("stdout is the input file; write the output to another file")
        raise OptionProblem("output_path", f"{name} is the input file; write the output to another file")


def _same_file(path: str, input_path: str | None) -> bool:
    """Whether ``path`` is the input: the file named, or the one stdin reads (`- < a.csv`)."""
    if input_path is None:
        return False
    try:
        if input_path == "-":
            given, written = os.fstat(0), os.stat(path)
            return stat.S_ISREG(given.st_mode) and (given.st_dev, given.st_ino) == (written.st_dev, written.st_ino)
        return os.path.samefile(path, input_path)
    except (OSError, ValueError):
        return False


_OWN_DESCRIPTOR = re.compile(r"/proc/(?:self|thread-self|(\d+))(?:/task/\d+)?/fd/(\d+)")


def _own_descriptor(path: str) -> int | None:
    """The descriptor N that ``path`` names, where it is one of this process's own
    (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N, through links too), else None."""
    current = path
    for _ in range(40):  # the kernel's own limit on links followed
        try:
            candidate = os.path.join(os.path.realpath(os.path.dirname(current) or "."), os.path.basename(current))
        except OSError:
            return None
        found = _OWN_DESCRIPTOR.fullmatch(candidate)
        if found is not None:
            return int(found.group(2)) if found.group(1) in (None, str(os.getpid())) else None
        if not os.path.islink(candidate):
            return None
        target = os.readlink(candidate)
        current = target if os.path.isabs(target) else os.path.join(os.path.dirname(candidate), target)
    return None


def cannot_create_in(directory: str, error: OSError, noun: str = "output") -> str:
    """Why the output's temporary file cannot be made in its folder, and what to do."""
    if not os.path.isdir(directory):
        return f"the folder {directory} does not exist; create it, or write the {noun} elsewhere"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot create a file in {directory}: {reason(error)}; write the {noun} elsewhere"
    # /proc and its kind exist but take no new files (ENOENT there, not "no such folder").
    return f"cannot create a file in {directory} ({reason(error)}: it takes no new files); write the {noun} elsewhere"


def reason(error: OSError) -> str:
    """What went wrong, in words, without "[Errno 28]" (Python's) or "(os error 28)" (polars')."""
    text = error.strerror or str(error).split(" (os error")[0] or type(error).__name__
    text = re.sub(r"^\[Errno \d+\] ", "", text)
    return text[0].lower() + text[1:]


def errno_in_text(text: str) -> int | None:
    """The error number an OSError's text carries ("[Errno 28] …", "… (os error 28)"), if any."""
    found = re.search(r"\[Errno (\d+)\]|os error (\d+)", text)
    return None if found is None else int(found.group(1) or found.group(2))


def is_broken_pipe(error: OSError) -> bool:
    # polars reports a closed pipe as a plain OSError("Broken pipe (os error 32)").
    return isinstance(error, BrokenPipeError) or error.errno == errno.EPIPE or errno_in_text(str(error)) == errno.EPIPE
