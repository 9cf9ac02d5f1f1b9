"""Errors the command line reports as one line on stderr, with an exit status."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the core imports numpy, which `sce --help` need not wait for
    from .core import InvalidInput

#: Exit status for a command line that is wrong (as click uses for usage errors).
USAGE = 2
#: Exit status for data that cannot be used, or an answer that does not match.
DATA = 1


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
    know the command line; the command line words the field as its flag."""

    def __init__(self, option: str, problem: str, exit_code: int = USAGE) -> None:
        super().__init__(f"{option}: {problem}", exit_code)
        self.option = option
        self.problem = problem


#: Where each core input comes from on the command line.
OPTION_OF_FIELD = {
    "logits": "LOGITS",
    "labels": "--label",
    "targets": "--target",
    "weight": "--weight",
    "label_smoothing": "--smoothing",
    "temperature": "--temperature",
    "reduction": "--reduction",
    "dtype": "--dtype",
    "ignore_index": "--ignore-index",
}


def command_line_problem(error: InvalidInput) -> UsageProblem:
    """Phrase a core error about values typed on the command line."""
    where = OPTION_OF_FIELD.get(error.field, error.field)
    if error.column is not None:
        where += f" (class {error.column})"
    text = f"{where}: {error.problem}"
    if error.hint:
        text += f"; {error.hint}"
    return UsageProblem(text)
