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


def refuse_output_without_page(output: str | None, html: bool) -> None:
    """``-o FILE`` writes a page: without ``--format html`` there is none (the terminal's
    formats go to stdout, ``> FILE`` keeps them)."""
    if output is not None and not html:
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
