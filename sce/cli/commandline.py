"""What sce adds to typer: negative numbers as arguments, and one-line errors.

Everything that goes wrong on the command line ends here, in
:meth:`SceGroup.main`, as one line on stderr and an exit status.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from typer import _click as click
from typer._click.core import ParameterSource
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.exceptions import Abort

from sce.cli.exit_status import ExitStatus, command_as_run, exit_status, signal_status
from sce.errors import Interrupted, SceError

# "-1", "-.5", "-3e-2", "-1,2,3", "-inf": a minus sign before a number, which
# click would otherwise take for an option.
_NEGATIVE_NUMBER = re.compile(r"-(\d|\.\d|inf\b|infinity\b)", re.IGNORECASE)

class SceCommand(TyperCommand):
    """A command whose errors carry its name (and mode) to the reporter, which
    finds their status in the one table of :mod:`.exit_status`, and which refuses
    an option given twice with two values (click would keep the last silently)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            _refuse_conflicting_repeats(ctx, self.params, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SceError as error:
            # Only on the way to an error: sce --version and --help load no declarations.
            from sce.cli.declarations import flags_of_command

            given = {
                flag
                for param in self.params
                if param.name is not None and ctx.get_parameter_source(param.name) is not ParameterSource.DEFAULT
                for flag in param.opts
            }
            raise _Escaped(error, command_as_run(ctx.info_name or "", given), flags_of_command(self.params)) from None


def _refuse_conflicting_repeats(ctx: click.Context, params: Sequence[click.Parameter], args: list[str]) -> None:
    """``-l 0 ... --label 1``: one line naming both values, rather than the last one silently."""
    valued = {
        name: param
        for param in params
        if isinstance(param, TyperOption) and not param.is_flag and not param.count and not param.multiple
        for name in param.opts
    }
    seen: dict[str, tuple[str, str]] = {}
    position = 0
    while position < len(args) and args[position] != "--":
        token = args[position]
        name, _, attached = token.partition("=") if token.startswith("--") else (token[:2], "", token[2:])
        param = valued.get(name)
        if param is None or param.name is None:
            position += 1
            continue
        value = attached if attached or "=" in token else (args[position + 1] if position + 1 < len(args) else "")
        position += 1 if attached or "=" in token else 2
        earlier = seen.setdefault(param.name, (name, value))
        if earlier[1] != value:
            raise click.exceptions.UsageError(
                f"{earlier[0]} {earlier[1]} and {name} {value}: one option given two values; give it once",
                ctx,
            )


class NumbersCommand(SceCommand):
    """A command whose positional arguments are numbers, negative ones included.

    click reads any token that starts with "-" as an option, so ``sce grad -1 2``
    fails with "No such option: -1". Before click parses, a negative number in
    an argument position gets a leading space, which click does not take for an
    option and float() ignores. Values of options (``--temperature -1``) and
    everything after ``--`` are left alone, and so is a mistyped flag such as
    ``--lable``, which click still reports.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._protect_negative_numbers(list(args)))

    def _protect_negative_numbers(self, args: list[str]) -> list[str]:
        takes_value = {
            name
            for param in self.params
            if isinstance(param, TyperOption) and not param.is_flag and not param.count
            for name in param.opts
        }
        protected: list[str] = []
        position = 0
        while position < len(args):
            token = args[position]
            if token == "--":
                protected.extend(args[position:])
                break
            if token in takes_value:
                protected.extend(args[position : position + 2])
                position += 2
                continue
            protected.append(" " + token if _NEGATIVE_NUMBER.match(token) else token)
            position += 1
        return protected


class _Escaped(BaseException):
    """An error carried past typer, which would turn a KeyboardInterrupt into a
    silent exit 130 and a closed pipe into a silent exit 1."""

    def __init__(
        self, error: BaseException, command: str | None = None, flag_of: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.error = error
        self.command = command
        self.flag_of = flag_of


class SceGroup(TyperGroup):
    """The ``sce`` command group: every error is one line and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, OSError) as error:
            raise _Escaped(error) from None

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = run_reporting_errors(
            lambda: super(SceGroup, self).main(args, prog_name or "sce", complete_var, standalone_mode=False, **extra)
        )
        if standalone_mode:
            sys.exit(code)
        return code


def run_reporting_errors(run: Callable[[], Any]) -> int:
    """Run a command; turn any failure into one line on stderr and an exit status."""
    command: str | None = None
    flag_of: Mapping[str, str] | None = None
    stdout_before = _stdout_file()
    try:
        try:
            result = run()
            sys.stdout.flush()
            return result if isinstance(result, int) else 0
        except _Escaped as escaped:
            command, flag_of = escaped.command, escaped.flag_of
            raise escaped.error from None
        except SystemExit as done:
            # rich, writing the help into a closed pipe, points stdout at /dev/null and exits 1:
            # a closed pipe all the same, whose status is 141.
            if done.code == 1 and stdout_before != _DEVNULL and _stdout_file() == _DEVNULL:
                return ExitStatus.BROKEN_PIPE
            raise
    except Interrupted as interrupted:
        if interrupted.name == "SIGPIPE":
            return _report_os_error(BrokenPipeError())
        _say(f"sce: interrupted ({interrupted.name})")
        return signal_status(interrupted.signum)
    except Exception as error:
        if os.environ.get("SCE_DEBUG") and not isinstance(
            error, SceError | click.exceptions.ClickException | Abort | OSError
        ):
            raise
        return _report(error, command, flag_of)
    except KeyboardInterrupt:
        _say("sce: interrupted (SIGINT)")
        return ExitStatus.INTERRUPTED


def _file_identity(descriptor: int | str) -> tuple[int, int] | None:
    try:
        status = os.stat(descriptor)
    except (OSError, ValueError):
        return None
    return status.st_dev, status.st_ino


_DEVNULL = _file_identity(os.devnull)


def _stdout_file() -> tuple[int, int] | None:
    """The file descriptor 1 is open on, by device and inode (None where it is closed)."""
    return _file_identity(1)


def _report(error: Exception, command: str | None = None, flag_of: Mapping[str, str] | None = None) -> int:
    """One line on stderr for ``error``, its fields worded by ``flag_of`` (the command's, else
    every command's :data:`~sce.cli.declarations.FLAG_OF_FIELD`); its exit status in ``command``
    (as :func:`command_as_run` names it)."""
    if isinstance(error, SceError):
        if flag_of is None:
            from sce.cli.declarations import FLAG_OF_FIELD

            flag_of = FLAG_OF_FIELD
        _say(f"sce: error: {error.worded(flag_of)}")
        return exit_status(error, command)
    if isinstance(error, click.exceptions.ClickException | Abort):
        return _report_click(error)
    if isinstance(error, OSError):
        return _report_os_error(error)
    _say(
        f"sce: internal error: {type(error).__name__}: {error} "
        "(a bug in sce: please report it; SCE_DEBUG=1 shows the traceback)"
    )
    return ExitStatus.INTERNAL_ERROR


def _report_click(error: click.exceptions.ClickException | Abort) -> int:
    if isinstance(error, Abort):
        _say("sce: interrupted (SIGINT)")
        return ExitStatus.INTERRUPTED
    if isinstance(error, click.exceptions.NoArgsIsHelpError):
        # typer has printed the help on stdout; stderr still says why the status is not 0.
        command = error.ctx.command_path if error.ctx is not None else "sce"
        _say(f"{command}: error: no arguments given; the help above shows what {command} takes")
        return error.exit_code
    if isinstance(error, click.exceptions.NoSuchOption) and error.option_name == "--version":
        _say("sce: error: --version belongs to sce itself: sce --version")
        return error.exit_code
    if isinstance(error, click.exceptions.UsageError):
        command = error.ctx.command_path if error.ctx is not None else "sce"
        message = " ".join(error.format_message().split())
        _say(f"{command}: error: {message} (see '{command} --help')")
        return error.exit_code
    _say(f"sce: error: {' '.join(error.format_message().split())}")
    return error.exit_code


def _report_os_error(error: OSError) -> int:
    if _is_broken_pipe(error):
        # The reader (say, `head -1`) has what it wanted. Point stdout at
        # /dev/null so that the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, sys.stdout.fileno())
        return ExitStatus.BROKEN_PIPE
    if getattr(error, "filename", None):
        _say(f"sce: error: {error.filename} {error.strerror or error}")
    elif error.errno in _WRITE_ERRORS:  # writing stdout: the one file without a name
        _say(f"sce: error: writing the output to stdout failed: {(error.strerror or str(error)).lower()}")
    else:
        _say(f"sce: error: {error.strerror or error}")
    return ExitStatus.ERROR


_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


def _is_broken_pipe(error: OSError) -> bool:
    # polars reports a closed pipe as a plain OSError("Broken pipe (os error 32)").
    return isinstance(error, BrokenPipeError) or error.errno == errno.EPIPE or "os error 32" in str(error)


def say_warning(message: str) -> None:
    _say(f"sce: warning: {message}")


def say_if_signalled_after_commit(what: str) -> None:
    """One line where a stopping signal came once the run's files were in place: the run
    succeeded all the same, and ends with its own status."""
    from sce.io.signals import signal_after_commit

    signum = signal_after_commit()
    if signum is not None:
        import signal

        _say(f"sce: {what} is complete; {signal.Signals(signum).name} arrived after it was in place")


def _say(line: str) -> None:
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(line, file=sys.stderr, flush=True)
