"""The library's errors: what went wrong and where, in words; never an exit status.

Each kind of problem is a class (:class:`UsageProblem`, :class:`DataProblem`,
:class:`OptionProblem`, :class:`OptionDataProblem`, :class:`UnreadableFile`);
the command line gives each kind its exit status in one table
(:mod:`sce.cli.exit_status`), as httpie's ``status.py`` does.

The library does not know the command line's flags, so a message that names an
option names it by its field (``encoding``, ``label_col``, ``has_header``…)
through :func:`option`, a marker in the text. :meth:`SceError.worded` (and
:func:`worded`, for text that is not an error's) expands the marker: the
command line with the field's flag (``--encoding latin-1``), everywhere else
(``str(error)``, the Python API, assertion messages) with the field's Python
name: the bare name (``encoding``), or, with a value, the keyword argument
that sets it (``encoding='latin-1'``, ``has_header=False``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the core imports numpy, which `sce --help` need not wait for
    from sce.loss import InvalidInput


class Interrupted(BaseException):
    """The run was stopped by the signal ``signum``. A
    BaseException, as KeyboardInterrupt is, so that no ``except Exception``
    swallows it; not a KeyboardInterrupt, which typer turns into a silent exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        import signal

        return signal.Signals(self.signum).name


# Control characters (shift out, shift in) that no message of ours holds, so
# that the marker is not mistaken for text; a file name or value holding both
# around an identifier would be worded too.
_OPEN, _CLOSE = "\x0e", "\x0f"
_MARKER = re.compile(f"{_OPEN}([A-Za-z_][A-Za-z0-9_]*)(?:=([^{_CLOSE}]*))?{_CLOSE}")


def option(field: str, value: str | bool | None = None) -> str:
    """A reference to the option ``field`` (set to ``value``, if given) inside a message.

    Worded as ``field`` or ``field=value`` (Python's keyword argument) by
    :func:`worded` without flags, and as the field's flag (``--field value``,
    or a switch's own flag, ``--no-header`` for ``has_header=False``) by the
    command line."""
    return f"{_OPEN}{field}{'' if value is None else '=' + repr(value)}{_CLOSE}"


def worded(text: str, flag_of: Mapping[str, str] | None = None) -> str:
    """``text`` with every :func:`option` in it worded: as a field's Python name,
    or, given ``flag_of`` (the command line's flag of each field; of a switch,
    or a value the command line spells its own way, keyed ``"field=repr(value)"``:
    ``"has_header=False"``, ``"delimiter='\\t'"``), as its flag."""
    if flag_of is None:
        return _MARKER.sub(lambda match: match.group(0)[1:-1], text)
    return _MARKER.sub(lambda match: _flag_wording(match, flag_of), text)


def _flag_wording(match: re.Match[str], flag_of: Mapping[str, str]) -> str:
    field, value = match.group(1), match.group(2)
    if value is None:
        return flag_of.get(field, field)
    switch = flag_of.get(f"{field}={value}")
    if switch is not None:
        return switch
    import ast  # only to word an option with a value, on the way to an error

    try:
        typed = ast.literal_eval(value)
    except (ValueError, SyntaxError):  # not one of option()'s: leave it as it is
        return match.group(0)
    return f"{flag_of.get(field, field)} {typed}"


class SceError(Exception):
    """A problem sce reports as one line: ``sce: error: <message>``.

    ``message`` may name options with :func:`option`; ``str(error)`` words them
    by their fields, :meth:`worded` by the command line's flags. The kind of
    problem is the class; the command line maps it to an exit status."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.worded()

    def worded(self, flag_of: Mapping[str, str] | None = None) -> str:
        """The message, with its options named by ``flag_of`` (see :func:`worded`)."""
        return worded(self.message, flag_of)


class UsageProblem(SceError):
    """A request that cannot be carried out as asked: options that do not go together,
    an input missing, a value out of range."""


class DataProblem(SceError):
    """Data that cannot be used: a cell that is no number, a damaged array, an empty file."""


class NothingToGrade(DataProblem):
    """An answer with nothing in it to grade (no rows, and no reduced loss): neither right nor wrong."""


class OptionProblem(SceError):
    """A problem with the value of one option, named by its field (``label_col``,
    ``output_path``, ``encoding``…) rather than by a flag: the library does not
    know the command line; the command line words the field as its flag.
    ``column`` is the class the problem is in, where it is in one (a weight)."""

    def __init__(self, field: str, problem: str, *, column: int | None = None) -> None:
        self.option = field
        self.problem = problem
        self.column = column
        where = option(field) if column is None else f"{option(field)} (class {column})"
        super().__init__(f"{where}: {problem}")


class OptionDataProblem(OptionProblem, DataProblem):
    """A data problem reached through an option: the file it names cannot be read or
    holds bad data, the column it names is not in the file, the output it names
    cannot be written. The option is right as typed; what it leads to is not."""


class UnreadableFile(SceError):
    """An input file that cannot be opened, or not read the way its format needs
    (missing, a folder, no permission; a pipe where arrays are read out of order)."""


def option_problem(error: InvalidInput) -> OptionProblem:
    """The core's error about one of its inputs or options, naming that field."""
    hint = f"; {error.marked_hint}" if error.marked_hint else ""
    return OptionProblem(error.field, f"{error.problem}{hint}", column=error.column)
