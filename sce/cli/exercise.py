"""``sce exercise``: a worksheet and its answer key, from a seed, and the line that grades a class."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Annotated, Optional

from sce.cli.choices import ExerciseLevel, SheetFormat
from sce.cli.commandline import say_if_signalled_after_commit
from sce.cli.declarations import FLAG_OF_FIELD, OUTPUT
from sce.cli.declarations_exercise import (
    ANSWERS,
    AnswersOption,
    BlanksOption,
    ChoicesOption,
    ClassesOption,
    CountOption,
    LevelOption,
    SheetFormatOption,
    SheetSeedOption,
)
from sce.cli.stdout import write_stdout
from sce.errors import OptionProblem, UsageProblem

if TYPE_CHECKING:
    from sce.teaching import Sheet

SheetOutputOption = Annotated[
    Optional[str],
    OUTPUT.option(
        help="The worksheet's file: Markdown (.md), or HTML (.html, or --format html). Written with the answer key, "
        "both or neither.",
        metavar="SHEET",
    ),
]
#: The id column of the class's file of answers, in the line that grades a class.
STUDENT_COLUMN = "student"
#: The key's id column: the key is graded exercise by exercise, each with its verdict and mistake.
EXERCISE_COLUMN = "exercise"


def exercise(
    count: CountOption = None,
    sheet_seed: SheetSeedOption = None,
    classes: ClassesOption = None,
    level: LevelOption = ExerciseLevel.labels,
    sheet_format: SheetFormatOption = None,
    output: SheetOutputOption = None,
    answers: AnswersOption = None,
    choices: ChoicesOption = False,
    blanks: BlanksOption = False,
) -> None:
    """A worksheet of exercises and its answer key, the same for the same seed.

    Example: sce exercise --count 10 --seed 7 -o sheet.md --answers key.csv
    """
    _check_given(count, sheet_seed, output, answers)
    assert count is not None and sheet_seed is not None and output is not None and answers is not None
    from sce.teaching import SheetRequest, make_sheet

    request = SheetRequest(count, sheet_seed, classes, level.value, choices, blanks)
    written = _sheet_format(output, sheet_format)
    _check_paths(output, answers)
    sheet = make_sheet(request)
    _write(sheet, output, answers, written)
    write_stdout(_report(sheet, output, answers))


def _check_given(count: int | None, seed: int | None, output: str | None, answers: str | None) -> None:
    missing = [
        (flag, example)
        for flag, value, example in (
            ("--count", count, "--count 10"),
            ("--seed", seed, "--seed 7"),
            ("-o", output, "-o sheet.md"),
            ("--answers", answers, "--answers key.csv"),
        )
        if value is None
    ]
    if missing:
        flags = ", ".join(flag for flag, _ in missing)
        examples = " ".join(example for _, example in missing)
        raise UsageProblem(f"{flags} missing: a worksheet needs them all, e.g. {examples}")


def _sheet_format(output: str, chosen: SheetFormat | None) -> str:
    """markdown or html: --format, else the sheet's name (.md, .html), else markdown; a name of
    another kind (.csv, .json, .pdf …) is refused, as is a --format the name contradicts."""
    from sce.cli.output_names import format_of_output

    written = format_of_output(output, None if chosen is None else chosen.value) or SheetFormat.markdown.value
    if written not in (SheetFormat.markdown.value, SheetFormat.html.value):
        raise UsageProblem(
            f"{OUTPUT.name} {output}: its name says {written}, and a worksheet is Markdown or HTML; name it .md or "
            ".html"
        )
    return written


def _check_paths(output: str, answers: str) -> None:
    """Two files of their own: neither stdout nor empty, and not the same file."""
    from sce.cli.output_names import named_format
    from sce.io.writers.atomic import refuse_same_file

    for field, path, noun in (("output_path", output, "worksheet"), ("answers_path", answers, "answer key")):
        if path in ("", "-"):
            raise OptionProblem(field, f"name the {noun}'s file (the worksheet and its key are written as files)")
    same = f"{answers} is the worksheet's file too (-o {output}); write the key to a file of its own"
    refuse_same_file(answers, output, "answers_path", same)
    if named_format(answers) not in (None, "csv"):
        raise UsageProblem(
            f"{ANSWERS.name} {answers}: its name says {named_format(answers)}, and the answer key is CSV; name it .csv"
        )


def _write(sheet: Sheet, output: str, answers: str, written: str = "markdown") -> None:
    from sce.batch.loop import write_whole_files
    from sce.cli.output_names import example_name
    from sce.io.signals import stopping_signals_handled
    from sce.io.writers.atomic import OutputTarget
    from sce.render.exercise_sheet import answer_key_csv, sheet_markdown

    text = sheet_markdown(sheet)
    if written == SheetFormat.html.value:
        from sce.render.html_markdown import markdown_page

        text = markdown_page(text)
    with stopping_signals_handled():
        files = [
            (lambda: OutputTarget(output, None, noun="worksheet", example=example_name("worksheet", written)), text),
            (
                lambda: OutputTarget(answers, None, field="answers_path", noun="answer key", example="key.csv"),
                answer_key_csv(sheet),
            ),
        ]
        write_whole_files(files)
    say_if_signalled_after_commit("the worksheet and its key")


def check_command(sheet: Sheet, path: str, id_column: str | None = None) -> str:
    """The ``sce check --csv`` line that grades ``path`` (the key, or a class's answers in the key's
    columns with an id column) with the sheet's options."""
    from sce.render.exercise_sheet import logit_columns, target_columns

    words = ["sce", "check", "--csv", path]
    if id_column is not None:
        words += ["--id-col", id_column]
    words += ["--logit-cols", ",".join(logit_columns(sheet))]
    if sheet.has_targets:
        words += ["--target-cols", ",".join(target_columns(sheet))]
    words += ["--grad-cols", "grad_*", "--loss-col", "loss", *_option_words(sheet)]
    return " ".join(shlex.quote(word) for word in words)


def _option_words(sheet: Sheet) -> list[str]:
    from sce.number_text import given

    options, words = sheet.options, []
    for field, value in (
        ("label_smoothing", options.label_smoothing or None),
        ("weight", None if options.weight is None else ",".join(given(w) for w in options.weight)),
        ("temperature", None if options.temperature == 1.0 else given(options.temperature)),
        ("softcap", None if options.softcap is None else given(options.softcap)),
        ("z_loss", options.z_loss or None),
    ):
        if value is not None:
            words += [FLAG_OF_FIELD[field], value if isinstance(value, str) else given(value)]
    return words


def _report(sheet: Sheet, output: str, answers: str) -> str:
    request = sheet.request
    count = f"{request.count:,} {'exercise' if request.count == 1 else 'exercises'}"
    answers_file = "answers.csv"
    return "\n".join(
        [
            f"wrote {output}: {count} ({request.level}, {sheet.classes} classes, seed {request.seed})",
            f"wrote {answers}: the answer key",
            f"check the key:  {check_command(sheet, answers, EXERCISE_COLUMN)}",
            f"grade a class:  {check_command(sheet, answers_file, STUDENT_COLUMN)}",
            f"  ({answers_file}: the key's columns, a column {STUDENT_COLUMN}, and each student's grad_* and loss)",
        ]
    ) + "\n"
