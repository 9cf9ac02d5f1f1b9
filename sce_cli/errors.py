"""Errors the command line reports as one line on stderr, with an exit status."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the core imports numpy, which `sce --help` need not wait for
    from .core import InvalidInput

#: Exit status for a command line that is wrong (as click uses for usage errors).
USAGE = 2
#: Exit status for data that cannot be used, or an answer that does not match.
DATA = 1
#: Exit status of a grading command whose file cannot be graded at all: not 1,
#: which says "graded, and wrong" (diff and cmp use 2 for trouble too).
UNGRADED = 2


class Interrupted(BaseException):
    """The run was stopped by a signal; exit with 128 + its number. A
    BaseException, as KeyboardInterrupt is, so that no ``except Exception``
    swallows it; not a KeyboardInterrupt, which typer turns into a silent exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        import signal

        return signal.Signals(self.signum).name


class SceError(Exception):
    """A problem to report as ``sce: error: <message>`` and exit with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageProblem(SceError):
    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE)


class DataProblem(SceError):
    def __init__(self, message: str) -> None:
        super().__init__(message, DATA)


class OptionProblem(SceError):
    """A problem with the value of one option, named by its field (``label_col``,
    ``output_path``, ``encoding``…) rather than by a flag: the library does not
    know the command line; the command line words the field as its flag.
    ``column`` is the class the problem is in, where it is in one (a weight)."""

    def __init__(self, option: str, problem: str, exit_code: int = USAGE, *, column: int | None = None) -> None:
        self.option = option
        self.problem = problem
        self.column = column
        super().__init__(self.worded(option), exit_code)

    def worded(self, name: str) -> str:
        """The message, with the option called ``name`` (its flag, on the command line)."""
        where = name if self.column is None else f"{name} (class {self.column})"
        return f"{where}: {self.problem}"


def option_problem(error: InvalidInput) -> OptionProblem:
    """The core's error about one of its inputs or options, naming that field."""
    hint = f"; {error.hint}" if error.hint else ""
    return OptionProblem(error.field, f"{error.problem}{hint}", USAGE, column=error.column)
