"""The record of one option of the command line (:class:`Declared`), and the panels ``--help``
groups options in: what :mod:`.declarations` and each command's own declarations
(:mod:`.declarations_exercise`) are built from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import typer

#: The panels ``--help`` groups options in, by who reaches for them.
LOSS_PANEL = "The loss"
VECTOR_PANEL = "The logits and their target"
TYPED_PANEL = "A student's typed answers"
ARRAYS_PANEL = "An engineer's arrays"
FILES_PANEL = "Files"
FUNCTION_PANEL = "Your function"
#: typer's own panel for the positional arguments: given to an option panel's name instead,
#: they would stand in a second box of that name, apart from its options.
ARGUMENTS_PANEL = "Arguments"


class Declared(NamedTuple):
    """One option (or argument) of the command line, and the field it sets.

    ``field`` is the name the library gives the value (a :class:`~sce.options.LossOptions`
    field, a batch request's, sce test's keyword), by which its messages name the
    option (:func:`sce.errors.option`); ``spoken`` is how the command line names it
    back, where that is not the first flag (``-o``, ``LOGITS``); ``spellings`` are
    values the command line writes its own way (``has_header=False`` is ``--no-header``).
    A named tuple rather than a dataclass: made when any command starts, it costs a
    third of the time to define.
    """

    field: str
    flags: tuple[str, ...]
    help: str
    panel: str
    spoken: str | None = None
    spellings: Mapping[str, str] = {}  # never changed: shared by the records without spellings
    show_default: bool | str = True
    parameter: str | None = None
    """The command function's parameter, where it is not ``field``."""
    kind: Any = None
    """The parameter's type, for a bundle (:func:`bundled`) to declare it."""

    @property
    def name(self) -> str:
        """How a message names the option on the command line."""
        return self.spoken or self.flags[0]

    @property
    def parameter_name(self) -> str:
        return self.parameter or self.field

    def option(self, **changes: Any) -> Any:
        """The typer option (``changes`` overrides help or show_default for one command)."""
        settings = {"help": self.help, "show_default": self.show_default, "rich_help_panel": self.panel, **changes}
        if isinstance(settings["show_default"], str):
            # click shows a default given as text in parentheses, "[default: (0.0)]": the
            # parameter's own default is None ("not given"), so the help says the real one
            # (escaped: "[default: …]" would otherwise be read as a rich tag and vanish).
            settings["help"] = f"{settings['help']} \\[default: {settings['show_default']}]"
            settings["show_default"] = False
        return typer.Option(*self.flags, **settings)

    def argument(self, **changes: Any) -> Any:
        settings = {
            "metavar": self.spoken,
            "help": self.help,
            "show_default": False,
            "rich_help_panel": self.panel,
            **changes,
        }
        return typer.Argument(**settings)
