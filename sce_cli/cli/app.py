"""The ``sce`` app: the group, its version flag, and the commands registered on it."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from .batch import batch
from .check import check
from .commandline import NumbersCommand, SceGroup
from .grad import grad
from .test import test

app = typer.Typer(
    cls=SceGroup,
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


app.command(cls=NumbersCommand, no_args_is_help=True)(grad)
app.command(no_args_is_help=True)(batch)
app.command(cls=NumbersCommand, no_args_is_help=True)(check)
app.command(name="test", no_args_is_help=True)(test)


def main() -> None:
    app(prog_name="sce")
