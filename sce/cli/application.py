"""The ``sce`` app: the group, its version flag, and the commands registered on it.

Each command is built when it is needed, from its own module: ``sce grad``
imports and builds ``grad`` alone (not ``batch``'s polars plumbing, nor the
other commands' option declarations), while ``sce --help`` builds them all
to list them with their one-line help.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, NoReturn

import typer
from typer import _click as click
from typer.main import get_command_from_info
from typer.models import CommandInfo

from sce.cli.commandline import NumbersCommand, SceCommand, SceGroup
from sce.cli.exit_status import signal_status
from sce.version import __version__

#: name → (module in this package, command class), in the order --help lists them.
#: The module's function of the same name is the command.
COMMANDS: dict[str, tuple[str, type[SceCommand]]] = {
    "grad": (".grad", NumbersCommand),
    "batch": (".batch", SceCommand),
    "check": (".check", NumbersCommand),
    "test": (".test", SceCommand),
    "exercise": (".exercise", SceCommand),
    "samples": (".samples", SceCommand),
    "completion": (".completion", SceCommand),
}


class _LazyCommands(Mapping[str, click.Command]):
    """The group's commands, each imported and built on first use."""

    def __init__(self, markup_mode: Any) -> None:
        self._built: dict[str, click.Command] = {}
        self._markup_mode = markup_mode

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            module, cls = COMMANDS[name]
            callback = getattr(importlib.import_module(module, __package__), name)
            info = CommandInfo(name=name, cls=cls, callback=callback, no_args_is_help=True)
            self._built[name] = get_command_from_info(
                info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=self._markup_mode
            )
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class _LazySceGroup(SceGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands(self.rich_markup_mode)  # type: ignore[assignment]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # the names, without building the commands


app = typer.Typer(
    cls=_LazySceGroup,
    name="sce",
    help="Softmax cross-entropy: probabilities, loss and gradient ∂L/∂z, exactly.",
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        print(f"sce {__version__}")
        raise typer.Exit()


@app.callback()
def _sce(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Softmax cross-entropy: probabilities, loss and gradient ∂L/∂z, exactly."""


#: The thread counts of the BLAS libraries numpy may be built on. Set before
#: numpy loads, one thread saves OpenBLAS starting a worker per core, each
#: allocating its buffers (about 50 ms of CPU on 2 cores), for arrays far too
#: small to gain from them.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> None:
    """One BLAS thread, unless the user chose a number (any of the variables: they choose for all)."""
    if not any(name in os.environ for name in BLAS_THREAD_VARIABLES):
        os.environ.update(dict.fromkeys(BLAS_THREAD_VARIABLES, "1"))


def main() -> None:
    """Run the app as the ``sce`` command (called by :func:`sce.cli.main`).

    Only here, not on import: a program that imports sce keeps its own
    threads. Nothing imported so far has loaded numpy, which reads the
    variables when it loads (tests/test_startup.py checks both).
    """
    one_blas_thread()
    if "_SCE_COMPLETE" in os.environ:  # a script from `sce completion` asking at <TAB>
        from sce.cli.completion import ready_shells

        ready_shells()
    try:
        app(prog_name="sce")
    except SystemExit as done:
        _exit(done)


def _exit(done: SystemExit) -> NoReturn:
    """Leave with ``done``'s status; without the interpreter's teardown when nothing waits for it.

    Tearing down numpy's and typer's modules takes about 14 ms, a tenth of
    ``sce grad``. When no atexit callback is registered (coverage, logging,
    a temporary file's finalizer, a test's report) and no other thread
    runs, there is nothing left to do but flush: then sce leaves at once.
    Anything else takes the interpreter's usual way out.
    """
    ncallbacks = getattr(atexit, "_ncallbacks", None)  # CPython's count of atexit callbacks
    code = done.code
    if ncallbacks is not None and ncallbacks() == 0 and threading.active_count() == 1 and isinstance(code, int | None):
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            raise done from None
        os._exit(code or 0)
    _stopping_signals_end_teardown()
    raise done


def _stopping_signals_end_teardown() -> None:
    """The work is done; in the interpreter's teardown (joining threads, atexit) a stopping
    signal ends the process at once with 128 + its number: raised there, it would be printed
    as "Exception ignored in threading._shutdown" with a traceback."""
    import signal

    from sce.cli.startup import handled_stopping_signals

    for signum in handled_stopping_signals():
        signal.signal(signum, lambda number, frame: os._exit(signal_status(number)))
