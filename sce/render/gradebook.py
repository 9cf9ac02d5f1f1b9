"""A class's gradebook (``sce check --csv FILE --id-col COL``) as a table, as CSV and as JSON.

A learner's id is the learner's own text: escaped wherever it is shown. In the terminal every
control character (an escape sequence, a carriage return, a new line) is written out as
``\\xNN``, in CSV too, where a cell that a spreadsheet would run as a formula (=, +, -, @ first,
and not a number) also starts with an apostrophe; JSON writes them as ``\\uNNNN``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sce.grading import verdicts
from sce.grading.gradebook import LearnerGrade, mistake_counts
from sce.grading.implementations.captured import escaped
from sce.number_text import count_of, is_number
from sce.render.grid import Column, Grid, print_grid, print_styled
from sce.render.words import reduction_line

if TYPE_CHECKING:
    from rich.console import Console

#: The columns of the CSV gradebook after the id column's own name.
CSV_COLUMNS = ("verdict", "score", "right", "graded", "rows", "mistake", "fix")

#: What a learner's mistake cell says where no mistake of the catalogue fits.
NOT_NAMED = "not named"


def mistake_words(grade: LearnerGrade, flag_of: Mapping[str, str] | None = None) -> str:
    """The mistake as the gradebook names it: one that explains every wrong entry, or the two that
    explain the most ("more than one mistake: …"); for too few digits, the mistake they fit as well;
    empty for a right answer."""
    names = [mistake.worded_name(flag_of) for mistake in grade.mistakes]
    if grade.note:  # the learner's own words (an exception's message): escaped as an id is
        return shown(grade.note)
    if grade.also_fits is not None:
        return "digits also fit: " + grade.also_fits.worded_name(flag_of)
    if grade.whole:
        return names[0]
    if len(names) > 1:
        return "more than one mistake: " + "; ".join(names)
    if names:
        return "in part: " + names[0]
    return "" if grade.passed else NOT_NAMED


def _fix(grade: LearnerGrade, flag_of: Mapping[str, str] | None) -> str:
    return grade.mistakes[0].worded_fix(flag_of) if grade.whole else ""


def _score(grade: LearnerGrade) -> str:
    return f"{grade.right}/{grade.graded}"


def shown(learner: str) -> str:
    """A learner's id, safe in a terminal: control characters (new lines and tabs included) written out."""
    return escaped(learner).replace("\n", "\\n").replace("\t", "\\t")


def gradebook_grid(grades: list[LearnerGrade], column: str, flag_of: Mapping[str, str] | None) -> Grid:
    """One row per learner: the id, the verdict, entries right of those graded, the mistake."""
    grid = Grid([Column(shown(column)), Column("verdict"), Column("score", "right"), Column("mistake")])
    for grade in grades:
        style = {verdicts.CORRECT: "green", verdicts.NOT_CORRECT: "red"}.get(grade.verdict, "yellow")
        verdict = (verdicts.WORDS[grade.verdict], style)
        grid.add_row(shown(grade.learner), verdict, _score(grade), mistake_words(grade, flag_of))
    return grid


def class_lines(grades: list[LearnerGrade], flag_of: Mapping[str, str] | None, *, reduction: str) -> list[str]:
    """Under the table: the reduction, the learners by verdict, and each mistake over the class with its fix."""
    tally = {verdict: sum(grade.verdict == verdict for grade in grades) for verdict in verdicts.ORDER}
    parts = [f"{verdicts.WORDS[verdict]} {count}" for verdict, count in tally.items() if count]
    lines = [reduction_line(reduction), f"learners: {len(grades):,} ({', '.join(parts)})"]
    counted = mistake_counts(grades)
    if counted:
        lines.append("mistakes over the class:")
    for mistake, count in counted:
        lines.append(f"  {count_of(count, 'learner')}: {mistake.worded_name(flag_of)}")
        lines.append(f"    fix: {mistake.worded_fix(flag_of)}")
    return lines


def print_gradebook(
    console: Console, grades: list[LearnerGrade], column: str, flag_of: Mapping[str, str] | None, *, reduction: str
) -> None:
    """One row per learner (verdict, entries right of those graded, the mistake), then the class."""
    print_grid(console, gradebook_grid(grades, column, flag_of))
    console.print()
    reduction_text, learners, *mistakes = class_lines(grades, flag_of, reduction=reduction)
    print_styled(console, reduction_text)
    console.print(learners)
    if mistakes:
        console.print(mistakes[0])
    for line in mistakes[1:]:
        print_styled(console, line)


def gradebook_csv(grades: list[LearnerGrade], column: str, flag_of: Mapping[str, str] | None = None) -> str:
    """The gradebook as CSV: the id column under its own name, then :data:`CSV_COLUMNS`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([_cell(column), *CSV_COLUMNS])
    for grade in grades:
        writer.writerow(
            [
                _cell(grade.learner),
                grade.verdict,
                repr(round(grade.score, 6)),
                grade.right,
                grade.graded,
                grade.rows,
                mistake_words(grade, flag_of),
                _fix(grade, flag_of),
            ]
        )
    return out.getvalue()


def _cell(text: str) -> str:
    """A learner's text as a cell: control characters written out (as in the terminal), and never
    run as a formula by a spreadsheet."""
    text = shown(text)
    if text[:1] in ("=", "+", "-", "@") and not is_number(text):
        return "'" + text
    return text



def gradebook_document(
    grades: list[LearnerGrade], column: str, flag_of: Mapping[str, str] | None = None, *, reduction: str
) -> dict[str, Any]:
    """The gradebook as JSON: the class's verdict, each learner's grade, and the mistakes counted."""
    return {
        "id_column": column,
        "reduction": reduction,
        "verdict": verdicts.worst(grade.verdict for grade in grades),
        "learners": [
            {
                "id": grade.learner,
                "verdict": grade.verdict,
                "passed": grade.passed,
                "score": grade.score,
                "right": grade.right,
                "graded": grade.graded,
                "rows": grade.rows,
                "mistake": mistake_words(grade, flag_of) or None,
                "mistakes": [mistake.worded_name(flag_of) for mistake in grade.mistakes],
                "explains_all": grade.whole,
                "fix": _fix(grade, flag_of) or None,
                "also_fits": None if grade.also_fits is None else grade.also_fits.worded_name(flag_of),
            }
            for grade in grades
        ],
        "mistake_counts": [
            {"mistake": mistake.worded_name(flag_of), "fix": mistake.worded_fix(flag_of), "learners": count}
            for mistake, count in mistake_counts(grades)
        ],
    }


def gradescope_document(grades: list[LearnerGrade], flag_of: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The gradebook as Gradescope's autograder results (results.json): one test per submission,
    scored by the cases passed out of the battery's, its output the verdict, the mistake and its fix."""
    tests = []
    for grade in grades:
        lines = [f"verdict: {verdicts.WORDS[grade.verdict]}"]
        mistake, fix = mistake_words(grade, flag_of), _fix(grade, flag_of)
        lines += [f"mistake: {mistake}"] if mistake else []
        lines += [f"fix: {fix}"] if fix else []
        output = "\n".join(lines)
        tests.append({"name": grade.learner, "score": grade.right, "max_score": grade.graded, "output": output})
    return {"tests": tests}
