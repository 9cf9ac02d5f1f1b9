"""``--format html``: a page written to stdout, or with ``-o FILE`` whole or not at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sce.cli.commandline import say_if_signalled_after_commit
from sce.cli.declarations import OUTPUT
from sce.cli.stdout import write_stdout
from sce.errors import UsageProblem

if TYPE_CHECKING:
    from rich.console import Console


def write_page(page: str, output: str | None, input_path: str | None = None) -> None:
    """``page`` to ``output`` (stdout where None or -): a file is written beside its place and renamed
    into it, so that a failure or a signal leaves an existing file as it was."""
    if output in (None, "-"):
        write_stdout(page)
        return
    from sce.batch.loop import write_whole_file
    from sce.io.signals import stopping_signals_handled
    from sce.io.writers.atomic import OutputTarget

    with stopping_signals_handled():
        write_whole_file(lambda: OutputTarget(output, input_path, noun="page"), page)
    say_if_signalled_after_commit("the page")


def page_format(output: str | None, chosen: str | None) -> str | None:
    """``chosen`` (``--format``), else html where ``-o`` names an .html file: the name chooses the
    page, and a ``--format`` the name contradicts is refused."""
    from sce.cli.output_names import format_of_output

    written = format_of_output(output, chosen)
    return chosen if chosen is not None or written != "html" else written


def refuse_output_without_page(output: str | None, html: bool, chosen: str | None = None) -> None:
    """``-o FILE`` writes a page: without ``--format html`` there is none (the terminal's
    formats go to stdout, ``> FILE`` keeps them)."""
    from sce.cli.output_names import named_format

    if output is None or html:
        return
    named = named_format(output)
    if named is not None and named in (chosen, "markdown", "json", "csv"):
        raise UsageProblem(
            f"{OUTPUT.name} {output}: {OUTPUT.name} writes the page of --format html, named .html; for {named}, "
            f"redirect stdout (> {output})"
        )
    raise UsageProblem(f"{OUTPUT.name} {output} writes the page of --format html; add it, or redirect stdout")


def write_report_page(
    title: str, subtitle: Sequence[str], report: Callable[[Console], None], output: str | None
) -> None:
    """A page holding the terminal's report as it prints it (``report`` prints it to the console it is
    given), for the reports that have no page of their own."""
    import io
    from typing import cast

    from sce.render.grid import PlainConsole
    from sce.render.html_page import page, terminal_html

    buffer = io.StringIO()
    report(cast("Console", PlainConsole(buffer)))
    write_page(page(title, [terminal_html(buffer.getvalue())], subtitle=subtitle), output)
