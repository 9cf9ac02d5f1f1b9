"""``sce check --csv FILE --id-col COL``: a class graded at once, one gradebook row per learner."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from sce.cli.commandline import say_if_signalled_after_commit
from sce.cli.declarations import FLAG_OF_FIELD
from sce.cli.exit_status import ExitStatus
from sce.cli.stdout import stdout_console, write_stdout

#: The gradebook's id column for many submissions: each row is a file.
SUBMISSION_COLUMN = "file"

if TYPE_CHECKING:
    from sce.batch import BatchRequest
    from sce.grading.gradebook import LearnerGrade


def grade_class(request: BatchRequest, tol: float | None, book_format: str, output: str | None) -> None:
    """Grade every learner of the file; the gradebook to ``output`` (written whole, the table
    shown as well) or to stdout in ``book_format``; exit with the class's worst verdict."""
    from sce.batch.loop import write_whole_file
    from sce.grading import verdicts
    from sce.grading.csv_file import check_file
    from sce.io.signals import stopping_signals_handled
    from sce.io.writers.atomic import OutputTarget, refuse_same_file

    path = None if output in (None, "-") else output
    if path is not None:  # refused before the file is read, not once it is graded
        source = 0 if request.input_path == "-" else request.input_path
        refuse_same_file(path, source, "output_path", f"{path} is the input file; write the gradebook to another file")
    if path is not None and request.summary_path is not None:
        problem = f"{request.summary_path} is the gradebook's file (-o {path}); write the summary to another file"
        refuse_same_file(request.summary_path, path, "summary_json", problem)
    with stopping_signals_handled():
        found = check_file(request, tol)  # what stops the grading ends with UNGRADED (exit_status.py)
        assert found.gradebook is not None
        column, grades = found.gradebook.column, found.gradebook.grades()
        if path is not None:
            text = _gradebook_text(grades, column, book_format, request.options.reduction)
            example = _example(book_format)
            write_whole_file(lambda: OutputTarget(path, request.input_path, noun="gradebook", example=example), text)
    if path is not None or book_format == "table":
        from sce.render.gradebook import print_gradebook

        print_gradebook(stdout_console(), grades, column, FLAG_OF_FIELD, reduction=request.options.reduction)
    else:
        write_stdout(_gradebook_text(grades, column, book_format, request.options.reduction))
    if path is not None or request.summary_path is not None:
        say_if_signalled_after_commit("the gradebook" if path is not None else "the summary")
    verdict = verdicts.worst(grade.verdict for grade in grades)
    if verdict == verdicts.TOO_FEW_DIGITS:
        raise typer.Exit(ExitStatus.TOO_FEW_DIGITS)
    if not verdicts.Verdict(verdict).passed:
        raise typer.Exit(ExitStatus.WRONG)


def submissions_book(
    grade: Callable[[], list[LearnerGrade]], book_format: str, output: str | None, reduction: str, strict: bool
) -> None:
    """Grade many submissions (``sce test a.py:f b.py:f …``) into one gradebook, as
    :func:`grade_class` does a class's file; ``strict``: correct, not robust exits 1 too."""
    from sce.batch.loop import write_whole_file
    from sce.grading import verdicts
    from sce.io.signals import stopping_signals_handled
    from sce.io.writers.atomic import OutputTarget

    path = None if output in (None, "-") else output
    with stopping_signals_handled():
        grades = grade()
        if path is not None:
            text = _gradebook_text(grades, SUBMISSION_COLUMN, book_format, reduction)
            write_whole_file(lambda: OutputTarget(path, None, noun="gradebook", example=_example(book_format)), text)
    if path is not None or book_format == "table":
        from sce.render.gradebook import print_gradebook

        print_gradebook(stdout_console(), grades, SUBMISSION_COLUMN, FLAG_OF_FIELD, reduction=reduction)
    else:
        write_stdout(_gradebook_text(grades, SUBMISSION_COLUMN, book_format, reduction))
    if path is not None:
        say_if_signalled_after_commit("the gradebook")
    verdict = verdicts.worst(grade.verdict for grade in grades)
    if not verdicts.Verdict(verdict).passed or (strict and verdict != verdicts.CORRECT):
        raise typer.Exit(ExitStatus.WRONG)


def _gradebook_text(grades: list[LearnerGrade], column: str, book_format: str, reduction: str) -> str:
    from sce.render.gradebook import gradebook_csv, gradebook_document, gradescope_document
    from sce.render.json_format import dumps_escaped

    if book_format == "html":
        from sce.render.html_reports import gradebook_page

        return gradebook_page(grades, column, FLAG_OF_FIELD, reduction=reduction)
    if book_format == "csv":
        return gradebook_csv(grades, column, FLAG_OF_FIELD)
    if book_format == "gradescope":
        return dumps_escaped(gradescope_document(grades, FLAG_OF_FIELD)) + "\n"
    return dumps_escaped(gradebook_document(grades, column, FLAG_OF_FIELD, reduction=reduction)) + "\n"


def _example(book_format: str) -> str:
    """The name to suggest for the gradebook where -o names a folder."""
    from sce.cli.output_names import example_name

    return "results.json" if book_format == "gradescope" else example_name("gradebook", book_format)
