"""``sce grad --steps`` on a terminal (or piped as plain text): Unicode math."""

from __future__ import annotations

import re
from functools import partial

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from sce.explain.derivation import Elided, Equation, Stage
from sce.number_text import DISPLAY_DIGITS, shown
from sce.render.grid import print_grid
from sce.render.latex_text import to_unicode
from sce.render.table import matrix_grid

_INLINE_MATH = re.compile(r"\$([^$]+)\$")


def prose(note: str) -> str:
    """A note with its inline $math$ turned into Unicode."""
    return _INLINE_MATH.sub(lambda match: to_unicode(match.group(1)), note)


def equation_line(equation: Equation, digits: int) -> str:
    parts = [to_unicode(equation.symbolic)] if equation.symbolic else []
    if equation.substituted:
        parts.append(to_unicode(equation.written(shown, digits)))
    return " = ".join(parts)


def print_steps(console: Console, stages: list[Stage], digits: int = DISPLAY_DIGITS) -> None:
    for number, stage in enumerate(stages, start=1):
        # Text objects, never markup strings: formulas are full of [brackets].
        console.print(Rule(Text(f"{number}. {stage.title}", style="bold"), align="left"))
        for note in stage.notes:
            console.print(Text(prose(note)))
        if stage.notes and stage.items:
            console.print()
        for item in stage.items:
            if isinstance(item, Equation):
                console.print(Text("    " + equation_line(item, digits)))
            elif isinstance(item, Elided):
                console.print(
                    Text(f"    ⋮  ({item.count} more {'class' if item.count == 1 else 'classes'})", style="dim")
                )
            else:
                grid = matrix_grid(item.rows, item.indices, partial(shown, digits=digits), to_unicode(item.name))
                print_grid(console, grid, indent=4)
        console.print()
