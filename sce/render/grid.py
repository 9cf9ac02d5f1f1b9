"""Tables as data, printed the same way everywhere.

A :class:`Grid` is laid out exactly as rich lays out the tables sce uses
(box SIMPLE_HEAD or SIMPLE without edges, one space of padding each side of
a cell, columns one space apart), so a pipe gets the text a terminal shows
minus the colour. Unlike rich's, the plain layout is always as wide as its
content: a table written to a file never cuts a number to fit 80 columns.

On a terminal rich draws the grid (colour, styles), unless the grid is too
large for rich to draw quickly or too wide for the terminal: then the plain
layout is printed, which the terminal wraps but never truncates.

Where rich would colour nothing (stdout a pipe or a file), :func:`console_for`
gives a :class:`PlainConsole`, which prints plain lines without importing
rich at all, and hands anything else to a rich Console made on first need.
"""

from __future__ import annotations

import builtins
import os
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: Beyond this many rows rich takes seconds to lay a table out; the plain layout takes milliseconds.
RICH_ROW_LIMIT = 2000

Cell = str | tuple[str, str]
"""A cell's text, or (text, style) where the terminal may colour it."""


@dataclass(frozen=True)
class Column:
    header: str = ""
    justify: Literal["left", "right"] = "left"
    style: str = ""
    gives_way: bool = False
    """Dropped first when the terminal is too narrow (the bars), the rightmost first."""


@dataclass
class Grid:
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    row_styles: list[str] = field(default_factory=list)
    title: str | None = None
    boxed: bool = True
    """rich's SIMPLE_HEAD box (SIMPLE with ``pad_edge``): columns one space apart
    between their padding and a rule under the header; else no box at all."""
    show_header: bool = True
    pad_edge: bool = False

    def add_row(self, *cells: Cell, style: str = "") -> None:
        self.rows.append(list(cells))
        self.row_styles.append(style)

    def without(self, dropped: set[int]) -> Grid:
        keep = [k for k in range(len(self.columns)) if k not in dropped]
        return Grid(
            [self.columns[k] for k in keep],
            [[row[k] for k in keep] for row in self.rows],
            list(self.row_styles),
            self.title,
            self.boxed,
            self.show_header,
            self.pad_edge,
        )


def _text(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def _width(text: str) -> int:
    """Terminal cells: wide (East Asian) characters take two, as rich counts them."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _justify(text: str, width: int, justify: str) -> str:
    pad = " " * (width - _width(text))
    return pad + text if justify == "right" else text + pad


def _column_texts(grid: Grid) -> list[list[str]]:
    return [[_text(row[k]) for row in grid.rows] for k in range(len(grid.columns))]


def _layout(grid: Grid, texts: list[list[str]]) -> tuple[list[int], str, str, int]:
    """Column widths, the gap between columns, the edge padding, and the total width."""
    widths = []
    for column, column_texts in zip(grid.columns, texts):
        candidates = [*column_texts, column.header] if grid.show_header else column_texts
        # The common case, all ASCII, at C speed for a million rows.
        measure = len if "".join(candidates).isascii() else _width
        widths.append(max(map(measure, candidates), default=0))
    gap = "   " if grid.boxed else "  "
    edge = " " if grid.pad_edge else ""
    return widths, gap, edge, sum(widths) + len(gap) * (len(widths) - 1) + 2 * len(edge)


def plain_lines(grid: Grid) -> list[str]:
    """The grid as rich would draw it without colour, as wide as its content."""
    texts = _column_texts(grid)
    widths, gap, edge, total = _layout(grid, texts)
    columns = []
    for column, column_texts, width in zip(grid.columns, texts, widths):
        if "".join(column_texts).isascii():
            pad = str.rjust if column.justify == "right" else str.ljust
            columns.append([pad(text, width) for text in column_texts])
        else:
            columns.append([_justify(text, width, column.justify) for text in column_texts])
    lines = [] if grid.title is None else [_justify(grid.title, total, "left")]
    if grid.show_header:
        headers = [_justify(c.header, width, c.justify) for c, width in zip(grid.columns, widths)]
        lines.append(edge + gap.join(headers) + edge)
        if grid.boxed:
            lines.append("─" * total)
    lines += [edge + gap.join(cells) + edge for cells in zip(*columns)] if columns else []
    return lines


def rich_table(grid: Grid) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        box=(box.SIMPLE if grid.pad_edge else box.SIMPLE_HEAD) if grid.boxed else None,
        show_edge=False,
        pad_edge=grid.pad_edge,
        show_header=grid.show_header,
        title=grid.title,
        title_justify="left",
        title_style="bold",
    )
    for column in grid.columns:
        table.add_column(column.header, justify=column.justify, style=column.style or None, no_wrap=True)
    for row, style in zip(grid.rows, grid.row_styles):
        # Text objects, never markup strings: cells may hold [brackets].
        cells = [Text(cell) if isinstance(cell, str) else Text(cell[0], style=cell[1]) for cell in row]
        table.add_row(*cells, style=style or None)
    return table


def print_grid(console: Console, grid: Grid, indent: int = 0) -> None:
    """rich on a terminal where it fits; else the plain layout, never cut."""
    if console.is_terminal and len(grid.rows) <= RICH_ROW_LIMIT:
        fitting = _fit(grid, console.width - indent)
        if fitting is not None:
            from rich.padding import Padding

            console.print(Padding(rich_table(fitting), (0, 0, 0, indent)))
            return
    write_lines(console, [" " * indent + line for line in plain_lines(grid)])


def _fit(grid: Grid, available: int) -> Grid | None:
    """The grid, less the columns that give way, if that fits the terminal; else None."""
    if _layout(grid, _column_texts(grid))[3] <= available:
        return grid
    giving_way = [k for k, column in enumerate(grid.columns) if column.gives_way]
    for count in range(1, len(giving_way) + 1):  # the rightmost first
        narrower = grid.without(set(giving_way[-count:]))
        if _layout(narrower, _column_texts(narrower))[3] <= available:
            return narrower
    return None


def write_lines(console: Console, lines: list[str]) -> None:
    """Plain lines straight to the console's file: no wrapping, no markup, no cutting."""
    console.file.write("".join(line + "\n" for line in lines))


def print_styled(console: Console, *parts: Cell) -> None:
    """One line of text, in parts that a terminal may style (as ``Text.assemble``), never read as markup."""
    if isinstance(console, PlainConsole):
        console.print_text("".join(_text(part) for part in parts))
        return
    from rich.text import Text

    console.print(Text.assemble(*parts))


def console_for(file: IO[str]) -> Console:
    """A console for ``file``: rich's, or where rich would colour nothing, a :class:`PlainConsole`.

    The same text either way: a PlainConsole prints only what rich would
    print unchanged, and hands everything else to rich.
    """
    if _rich_decides(file):
        return rich_console(file)
    # A stand-in with the part of Console's interface sce uses, the rest delegated.
    return cast("Console", PlainConsole(file))


def rich_console(file: IO[str]) -> Console:
    """rich's Console, except that a closed pipe raises BrokenPipeError.

    rich's own handling exits with status 1 and no message; sce's command
    line gives a closed pipe its own status, 141, whatever the format.
    """
    from rich.console import Console

    class PipeAwareConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return PipeAwareConsole(file=file, highlight=False)


def _rich_decides(file: IO[str]) -> bool:
    """Whether rich could see a terminal in ``file`` (rich's Console.is_terminal, in the cases sce meets)."""
    if sys.platform == "win32" or hasattr(builtins, "get_ipython") or hasattr(file, "rich_proxied_file"):
        return True  # legacy consoles, notebooks, rich's own redirections: rich knows best
    if getattr(sys.stdin, "__module__", "").startswith("idlelib"):
        return True
    tty_compatible = os.environ.get("TTY_COMPATIBLE", "")
    if tty_compatible in ("0", "1"):
        return tty_compatible == "1"
    if os.environ.get("FORCE_COLOR") is not None:
        return True
    try:
        return file.isatty()
    except ValueError:  # a closed file: rich says no terminal
        return False


class PlainConsole:
    """rich's Console where it is not a terminal, for plain text, without importing rich.

    ``print()`` of a string without markup (or emoji codes) and
    :meth:`print_text` write the text and a newline, as rich does when the
    line fits its width; a longer line, markup, any other object or option,
    and any other attribute go to a rich Console made on first need with the
    settings :func:`console_for` gives it, so the output is rich's.
    """

    is_terminal = False

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self._width: int | None = None
        self._rich: Console | None = None

    @property
    def rich(self) -> Console:
        if self._rich is None:
            self._rich = rich_console(self.file)
        return self._rich

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich, name)

    def print(self, *objects: Any, **options: Any) -> None:
        if not objects and not options and self._fits(""):
            self.file.write("\n")
        elif (
            len(objects) == 1
            and isinstance(objects[0], str)
            and options.keys() <= {"highlight"}  # highlighting only styles: invisible here
            and "[" not in objects[0]
            and ":" not in objects[0]
            and self._fits(objects[0])
        ):
            self.file.write(objects[0] + "\n")
        else:
            self.rich.print(*objects, **options)

    def print_text(self, text: str) -> None:
        """``print(Text(text))``: the text as it is, markup and all."""
        if self._fits(text):
            self.file.write(text + "\n")
        else:
            from rich.text import Text

            self.rich.print(Text(text))

    def _fits(self, text: str) -> bool:
        """Whether rich would print ``text`` on one line as it is (printable, no wider than rich's width)."""
        cells = len(text) if text.isascii() else 2 * len(text)  # at most two cells a character
        return text.isprintable() and cells <= self.width and self.width > 0

    @property
    def width(self) -> int:
        """rich's width away from a terminal: $COLUMNS, else the size of a terminal on fd 0, 1 or 2, else 80."""
        if self._width is None:
            columns = os.environ.get("COLUMNS")
            if columns is not None and columns.isdigit():
                self._width = int(columns)
            else:
                self._width = 80
                for fd in (0, 1, 2):
                    try:
                        self._width = os.get_terminal_size(fd).columns or 80
                        break
                    except (AttributeError, ValueError, OSError):
                        pass
        return self._width
