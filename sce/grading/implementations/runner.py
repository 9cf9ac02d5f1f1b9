"""Driving the child process that runs the user's function, with a time limit per case.

One child serves a whole run; it is replaced only after a case kills it or
runs out of time (the user's module is then imported again).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sce.grading.implementations.captured import CapturedOutput, OutputFiles
from sce.grading.implementations.cases import Case
from sce.grading.implementations.loading import FunctionSpec, UnusableImplementation

#: Importing the user's module may take a while (torch takes seconds); this is on top of --timeout.
IMPORT_GRACE_SECONDS = 10.0


@dataclass
class CaseOutcome:
    """What happened when the function ran on one case."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    """One description per call (one call per row with --convention row)."""
    error: str | None = None
    """The user's exception, or why there is no answer (timed out, the process ended)."""
    changed: list[str] = field(default_factory=list)
    """Inputs the function wrote into: "logits", "second"."""
    read_only_violation: bool = False
    timed_out: bool = False
    process_ended: bool = False
    output: CapturedOutput = field(default_factory=CapturedOutput)
    """What the function printed during the call (the first call's, also what importing its file printed)."""


class ChildRunner:
    """Runs the user's function in a child process (``python -m sce.grading.implementations.worker``)."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        convention: str,
        targets: bool,
        returns: str,
        framework: str | None,
        timeout: float,
        memory_limit: int | None = None,
    ) -> None:
        self.spec = spec
        self.convention = convention
        self.targets = targets
        self.returns = returns
        self.framework = framework
        self.timeout = timeout
        self.memory_limit = memory_limit
        self._process: subprocess.Popen[bytes] | None = None
        self._outbox: Connection | None = None
        self._inbox: Connection | None = None
        self._output = OutputFiles()

    def __enter__(self) -> ChildRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._output.close()

    def start(self) -> str:
        """Start the child and import the function; return the framework it uses.
        Raises UnusableImplementation when the function cannot be loaded."""
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sce.grading.implementations.worker",
                str(to_child_read),
                str(from_child_write),
                str(os.getpid()),
            ],
            pass_fds=(to_child_read, from_child_write),
            stdin=subprocess.DEVNULL,
            stdout=self._output.stdout,
            stderr=self._output.stderr,
            start_new_session=True,  # its own process group: a timeout kills whatever it started too
            # Unbuffered, so that what a case printed is in the files when its answer (or its end) comes.
            env={**os.environ, "PYTHONPATH": _with_sce_on_path(), "PYTHONUNBUFFERED": "1"},
        )
        os.close(to_child_read)
        os.close(from_child_write)
        self._outbox = Connection(to_child_write, readable=False)
        self._inbox = Connection(from_child_read, writable=False)
        self._outbox.send(
            {
                "spec": self.spec,
                "convention": self.convention,
                "targets": self.targets,
                "framework": self.framework,
                "memory_limit": self.memory_limit,
            }
        )
        reply = self._receive(self.timeout + IMPORT_GRACE_SECONDS)
        where = Path(self.spec.path).name if self.spec.path else self.spec.module
        if reply is None:
            self.close(graceful=False)
            raise UnusableImplementation(
                f"importing {where} did not finish within {self.timeout + IMPORT_GRACE_SECONDS:g} s"
            )
        if isinstance(reply, str):
            self.close()
            raise UnusableImplementation(f"importing {where} ended the process ({reply})")
        if "load_error" in reply:
            self.close()
            raise UnusableImplementation(reply["load_error"])
        self.framework = reply["framework"]
        return str(reply["framework"])

    def run(self, case: Case) -> CaseOutcome:
        if self._process is None:
            self.start()
        assert self._outbox is not None
        second = case.targets if case.targets is not None else case.labels
        with contextlib.suppress(OSError):  # the child is gone; _receive says how
            self._outbox.send(
                {
                    "logits": case.logits,
                    "second": second,
                    "convention": self.convention,
                    "returns": self.returns,
                    "read_only": case.read_only,
                }
            )
        reply = self._receive(self.timeout)
        if reply is None:
            self.close(graceful=False)
            return CaseOutcome(
                error=f"timed out after {self.timeout:g} s", timed_out=True, output=self._output.take()
            )
        if isinstance(reply, str):
            self.close(graceful=False)
            return CaseOutcome(
                error=f"the process running your function ended during the call ({reply})",
                process_ended=True,
                output=self._output.take(),
            )
        return CaseOutcome(
            reply.get("answers", []),
            reply.get("error"),
            reply.get("changed", []),
            reply.get("read_only_violation", False),
            output=self._output.take(),
        )

    def _receive(self, seconds: float) -> dict[str, Any] | str | None:
        """The child's next message; None after ``seconds``; a string saying how the child ended."""
        assert self._inbox is not None and self._process is not None
        try:
            if not self._inbox.poll(seconds):
                return None
            return self._inbox.recv()
        except (EOFError, OSError):
            return _how_it_ended(self._process)

    def close(self, graceful: bool = True) -> None:
        for connection in (self._outbox, self._inbox):
            if connection is not None:
                connection.close()
        self._outbox = self._inbox = None
        if self._process is not None and graceful:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(0.5)  # it leaves on its own once its inbox closes
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None


def _how_it_ended(process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 2.0
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    code = process.returncode
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}: os._exit() or a crash"


def _with_sce_on_path() -> str:
    # The child runs `-m sce...` from the user's folder; make sure it finds this sce.
    here = str(Path(__file__).resolve().parent.parent.parent)
    existing = os.environ.get("PYTHONPATH")
    return here if not existing else here + os.pathsep + existing
