"""Exit statuses: one enum, and one table from each kind of error to its status.

The library raises errors by kind (:mod:`sce.errors`) and knows no status;
here the command line gives each kind one, as httpie's ``status.py`` does.
Where a command gives a kind another status than the rest, that is a row of
:data:`STATUS_IN_COMMAND`, not an ``except`` that rewrites it. The docs'
tables of statuses and of errors are made from :func:`status_table` and
:func:`kind_table`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import IntEnum

from sce.errors import (
    DataProblem,
    NothingToGrade,
    OptionDataProblem,
    OptionProblem,
    SceError,
    UnreadableFile,
    UsageProblem,
)


class ExitStatus(IntEnum):
    """How ``sce`` ends; what each name means is in :data:`MEANING`. A stopping
    signal N ends it with 128 + N (:func:`signal_status`)."""

    SUCCESS = 0
    ERROR = 1
    WRONG = 1
    USAGE = 2
    UNGRADED = 2
    TOO_FEW_DIGITS = 3
    INTERNAL_ERROR = 70
    INTERRUPTED = 130
    BROKEN_PIPE = 141


def signal_status(signum: int) -> int:
    """The status of a run stopped by signal ``signum``: 128 + its number, as shells report it."""
    return 128 + signum


#: The status of each kind of error, in every command unless STATUS_IN_COMMAND says otherwise.
STATUS_OF_KIND: Mapping[type[SceError], ExitStatus] = {
    SceError: ExitStatus.USAGE,
    UsageProblem: ExitStatus.USAGE,
    OptionProblem: ExitStatus.USAGE,
    UnreadableFile: ExitStatus.USAGE,
    DataProblem: ExitStatus.ERROR,
    OptionDataProblem: ExitStatus.ERROR,
    NothingToGrade: ExitStatus.UNGRADED,
}

#: Where a command gives a kind its own status: (the command as run, kind) → status.
#: "check --csv" is sce check with --csv given (see :func:`command_as_run`).
STATUS_IN_COMMAND: Mapping[tuple[str, type[SceError]], ExitStatus] = {
    # An input file that cannot be opened is bad data in sce batch, as a missing CSV input is.
    ("batch", UnreadableFile): ExitStatus.ERROR,
    # Whatever stops a file from being graded says so, apart from "graded, and wrong".
    ("check --csv", SceError): ExitStatus.UNGRADED,
}


def exit_status(error: SceError, command: str | None = None) -> ExitStatus:
    """The status ``command`` (as :func:`command_as_run` names it) ends with after ``error``.

    The most specific kind wins, a command's own row before the common one.

    Examples
    --------
    >>> from sce.errors import DataProblem
    >>> int(exit_status(DataProblem("line 2: 'x' is not a number")))
    1
    >>> int(exit_status(DataProblem("line 2: 'x' is not a number"), "check --csv"))
    2
    """
    return status_of_kind(type(error), command)


def status_of_kind(kind: type[SceError], command: str | None = None) -> ExitStatus:
    """The status of an error of ``kind`` in ``command``: see :func:`exit_status`."""
    kinds = [base for base in kind.__mro__ if issubclass(base, SceError)]
    for base in kinds:
        if command is not None and (command, base) in STATUS_IN_COMMAND:
            return STATUS_IN_COMMAND[command, base]
    for base in kinds:
        if base in STATUS_OF_KIND:
            return STATUS_OF_KIND[base]
    raise LookupError(f"{kind.__name__} has no exit status")  # pragma: no cover - guarded by a test


def command_as_run(name: str, given: Collection[str]) -> str:
    """The command's name, and its mode where STATUS_IN_COMMAND has one.

    Parameters
    ----------
    name
        The command's name, as typed (``"check"``).
    given
        The flags given on the command line (not left to their defaults).

    Returns
    -------
    str
        ``"check --csv"`` for ``sce check --csv …``, else the name alone.

    Examples
    --------
    >>> command_as_run("check", {"--csv", "--grad-cols"})
    'check --csv'
    >>> command_as_run("check", {"--arrays"})
    'check'
    """
    for command, _kind in STATUS_IN_COMMAND:
        words = command.split()
        if words[0] == name and len(words) > 1 and words[1] in given:
            return command
    return name


def status_table() -> list[tuple[int, str, str]]:
    """Every status as (number, name, meaning), in the enum's order, for the docs' table.

    Examples
    --------
    >>> status_table()[0]
    (0, 'SUCCESS', 'success (for sce check and sce test: every answer right)')
    """
    return [(int(status), name, MEANING[name]) for name, status in ExitStatus.__members__.items()]


def kind_table() -> list[tuple[str, str, int, dict[str, int]]]:
    """Every kind of error as (name, what it is, its status, {command: its own status there,
    where that differs}), for the docs' table of errors.

    Examples
    --------
    >>> rows = {name: (status, elsewhere) for name, _, status, elsewhere in kind_table()}
    >>> rows["UnreadableFile"], rows["DataProblem"]
    ((2, {'batch': 1}), (1, {'check --csv': 2}))
    """
    commands = dict.fromkeys(command for command, _ in STATUS_IN_COMMAND)
    rows = []
    for kind, status in STATUS_OF_KIND.items():
        elsewhere = {
            command: int(own) for command in commands if (own := status_of_kind(kind, command)) != status
        }
        what = " ".join((kind.__doc__ or "").split("\n\n")[0].split())
        rows.append((kind.__name__, what, int(status), elsewhere))
    return rows


#: What each status says, by its name (two names share 1, and two share 2).
MEANING: Mapping[str, str] = {
    "SUCCESS": "success (for sce check and sce test: every answer right)",
    "ERROR": "bad data in a file, or a file that cannot be read (sce batch) or written",
    "WRONG": "sce check and sce test: graded, and at least one answer wrong",
    "USAGE": "anything wrong on the command line, including a file named on it that cannot be opened",
    "UNGRADED": "sce check: the answer or the file cannot be graded at all",
    "TOO_FEW_DIGITS": "sce check: right to the digits given, but too few digits to tell it from a usual mistake",
    "INTERNAL_ERROR": "a bug in sce (sce: internal error: …)",
    "INTERRUPTED": "stopped by Ctrl-C (SIGINT); any stopping signal N ends sce with 128 + N",
    "BROKEN_PIPE": "the reader of the output went away (a closed pipe, as SIGPIPE)",
}
