"""``--format html``: a page written to stdout, or with ``-o FILE`` whole or not at all."""

from __future__ import annotations

from sce.cli.commandline import say_if_signalled_after_commit
from sce.cli.declarations import OUTPUT
from sce.cli.stdout import write_stdout
from sce.errors import UsageProblem


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
