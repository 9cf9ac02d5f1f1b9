"""``sce completion SHELL``: the script that lets bash, zsh or fish complete sce's commands and options.

The script calls ``sce`` again at each <TAB> with ``_SCE_COMPLETE`` set; :func:`ready_shells`
readies typer's shell classes for that call only (called by the app's
``main`` when the variable is set), so that no other command pays for them.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from sce.cli.stdout import write_stdout

#: The variable the scripts set when they ask sce for completions.
COMPLETE_VARIABLE = "_SCE_COMPLETE"


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion(
    shell: Annotated[Shell, typer.Argument(metavar="SHELL", help="bash, zsh or fish.", show_default=False)],
) -> None:
    """Print the shell-completion script for SHELL.

    Example, for bash (in ~/.bashrc): eval "$(sce completion bash)"
    zsh (in ~/.zshrc, after compinit): eval "$(sce completion zsh)"
    fish: sce completion fish > ~/.config/fish/completions/sce.fish
    """
    from typer._completion_shared import get_completion_script

    script = get_completion_script(prog_name="sce", complete_var=COMPLETE_VARIABLE, shell=shell.value)
    write_stdout(script + "\n")


def ready_shells() -> None:
    """Ready typer's shell classes for a completion script's call (``_SCE_COMPLETE`` set)."""
    from typer._completion_classes import completion_init

    completion_init()
