"""Write docs/reference/cli.md from the commands themselves: every command, argument and option.

    python docs/generate_cli_reference.py           # rewrite the page
    python docs/generate_cli_reference.py --check   # exit 1 if the page is stale

Run it after changing a command, an option or a help text; tests/test_cli_reference.py fails
while the page differs from what this writes.
"""

from __future__ import annotations

import enum
import re
import sys
from pathlib import Path

import typer
from typer import _click as click
from typer.core import TyperArgument as Argument
from typer.core import TyperGroup as Group
from typer.core import TyperOption as Option

PAGE = Path(__file__).resolve().parent / "reference" / "cli.md"

HEADER = """# Command-line reference

Every command, argument and option of `sce`, generated from the commands themselves
(`python docs/generate_cli_reference.py`); `sce COMMAND --help` prints the same on a terminal.
The pages under *Commands* explain them with examples.
"""


def sce_group() -> Group:
    from sce.cli import app

    group = typer.main.get_command(app)
    assert isinstance(group, Group)
    return group


def reference() -> str:
    """The whole page, as Markdown."""
    group = sce_group()
    context = click.Context(group, info_name="sce")
    parts = [HEADER, _global_options(group, context)]
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        parts.append(_command(name, command, click.Context(command, info_name=name, parent=context)))
    return "\n".join(parts)


def _global_options(group: Group, context: click.Context) -> str:
    rows = [_option_row(param, context) for param in group.get_params(context) if isinstance(param, Option)]
    return "## sce\n\n```text\nsce [OPTIONS] COMMAND [ARGS]...\n```\n\n" + _table(rows) + "\n"


def _command(name: str, command: click.Command, context: click.Context) -> str:
    usage = " ".join(command.collect_usage_pieces(context))
    text = [f"## sce {name}\n", f"```text\nsce {name} {usage}\n```\n", _help_text(command.help or "") + "\n"]
    arguments = [param for param in command.params if isinstance(param, Argument)]
    if arguments:
        text.append("| argument | description |\n| --- | --- |")
        text += [f"| `{_metavar(argument)}` | {_cell(getattr(argument, 'help', '') or '')} |" for argument in arguments]
        text.append("")
    panels: dict[str, list[str]] = {"Options": []}  # as --help: the unnamed panel first, then the others in order
    for param in command.get_params(context):
        if isinstance(param, Option) and not param.hidden:
            panel = getattr(param, "rich_help_panel", None) or "Options"
            panels.setdefault(panel, []).append(_option_row(param, context))
    for panel, rows in panels.items():
        if rows:
            text.append(f"**{panel}**\n\n" + _table(rows) + "\n")
    return "\n".join(text)


def _help_text(help_text: str) -> str:
    """The docstring's paragraphs; its Example lines as code."""
    lines = []
    for line in help_text.strip().splitlines():
        stripped = line.strip()
        if stripped.startswith("Example"):
            label, _, example = stripped.partition(": ")
            lines.append(f"{label}: `{example}`" if example else stripped)
        else:
            lines.append(_escaped(stripped))
    return "\n".join(lines).replace("\n\n", "\n\n").replace("\n", "  \n").replace("  \n  \n", "\n\n")


def _table(rows: list[str]) -> str:
    return "| option | value | description |\n| --- | --- | --- |\n" + "\n".join(rows)


def _option_row(option: Option, context: click.Context) -> str:
    flags = ", ".join(f"`{flag}`" for flag in [*option.opts, *option.secondary_opts])
    value = "" if option.is_flag else _cell(_value(option))
    description = option.help or ""
    # A loss option's default is None ("not given"), so its help text names the real one.
    named = re.search(r" \\\[default: (.*)\]$", description)
    if named:
        description = description[: named.start()]
    default = f"`{named.group(1)}`" if named else _default(option)
    if default:
        description += f" (default: {default})"
    return f"| {flags} | {value} | {_cell(description)} |"


def _value(option: Option) -> str:
    if hasattr(option.type, "choices"):
        return "|".join(str(choice) for choice in option.type.choices)
    return option.metavar or option.type.name.upper()


def _default(option: Option) -> str:
    if option.is_flag or not option.show_default or option.default is None or callable(option.default):
        return ""
    default = option.default.value if isinstance(option.default, enum.Enum) else option.default
    return f"`{default}`"


def _metavar(argument: Argument) -> str:
    return argument.metavar or argument.name.upper() if argument.name else ""


def _escaped(text: str) -> str:
    for character in "\\*_<>[]":
        text = text.replace(character, "\\" + character)
    return text


def _cell(text: str) -> str:
    """Text for one table cell: one line, Markdown's special characters escaped (code spans kept)."""
    pieces = " ".join(text.split()).split("`")
    return "`".join(piece if index % 2 else _escaped(piece) for index, piece in enumerate(pieces)).replace(
        "|", "\\|"
    )


def main(argv: list[str]) -> int:
    page = reference()
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page:
            print(f"{PAGE} is stale: run python docs/generate_cli_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
