"""`sce check --csv FILE --id-col COL`: a class graded at once, one gradebook row per learner.

The answers are written here from the softmax computed by hand (math.exp), each mistake made as a
learner makes it, independently of the catalogue's what-ifs."""

from __future__ import annotations

import csv
import io
import json
import math
from importlib import resources

import pytest

from sce.grading import catalogue

COLUMNS = "student,z0,z1,z2,label,grad_z0,grad_z1,grad_z2,loss"
GRADE = ("--grad-cols", "grad_*", "--loss-col", "loss", "--id-col", "student")


def softmax(z: list[float]) -> list[float]:
    top = max(z)
    exps = [math.exp(v - top) for v in z]
    return [e / sum(exps) for e in exps]


def row(student: str, z: list[float], label: int, grad: list[float], loss: float) -> str:
    numbers = [*(f"{v:g}" for v in z), str(label), *(f"{g:.6f}" for g in grad), f"{loss:.6f}"]
    return ",".join([student, *numbers])


def right(z: list[float], label: int) -> tuple[list[float], float]:
    p = softmax(z)
    return [p[k] - (k == label) for k in range(len(z))], -math.log(p[label])


A, B = ([2.0, 3.0, 4.0], 1), ([1.0, 0.5, -1.0], 0)


def class_file(tmp_path, lines: list[str]):
    path = tmp_path / "class.csv"
    path.write_text("\n".join([COLUMNS, *lines]) + "\n")
    return path


def learners(sce, path, *extra: str) -> dict[str, dict]:
    result = sce("check", "--csv", path, *GRADE, "--format", "json", *extra)
    return {learner["id"]: learner for learner in json.loads(result.stdout)["learners"]}


def test_each_learner_spanning_rows_in_any_order_gets_one_verdict_score_and_mistake(sce, tmp_path):
    (ga, la), (gb, lb) = right(*A), right(*B)
    p_a = softmax(A[0])
    lines = [
        row("ann", *A, ga, la),
        row("ben", *A, [-g for g in ga], la),  # y − p
        row("ann", *B, gb, lb),  # ann's second row, after ben's first
        row("ben", *B, [-g for g in gb], lb),
        row("cai", *A, p_a, la),  # the probabilities, no −1
        row("cai", *B, [gb[0] + 1, *gb[1:]], lb),
    ]
    graded = learners(sce, class_file(tmp_path, lines))
    assert list(graded) == ["ann", "ben", "cai"]
    assert [(g["verdict"], g["right"], g["graded"], g["rows"]) for g in graded.values()] == [
        ("correct", 8, 8, 2),
        ("not_correct", 2, 8, 2),
        ("not_correct", 6, 8, 2),
    ]
    assert graded["ben"]["mistake"] == catalogue.SIGN_FLIPPED.name
    assert graded["ben"]["explains_all"] is True
    assert graded["cai"]["mistakes"] == [catalogue.PROBABILITIES.name]
    assert graded["ann"]["mistake"] is None


def test_two_mistakes_in_one_learners_rows_are_named_as_more_than_one(sce, tmp_path):
    (ga, la), lb = right(*A), right(*B)[1]
    lines = [row("eve", *A, [-g for g in ga], la), row("eve", *B, softmax(B[0]), lb)]
    eve = learners(sce, class_file(tmp_path, lines))["eve"]
    assert eve["explains_all"] is False
    assert eve["mistakes"] == [catalogue.SIGN_FLIPPED.name, catalogue.PROBABILITIES.name]
    assert eve["mistake"].startswith("more than one mistake: ")


def test_the_sample_class_as_a_table_counts_each_mistake_over_the_class(sce, tmp_path):
    path = resources.files("sce") / "samples" / "class_answers.csv"
    result = sce("check", "--csv", str(path), *GRADE)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:8]] == ["alice", "bob", "carol", "dan", "erin", "frank"]
    assert "learners: 6 (correct 1, too few digits to grade 1, not correct 4)" in lines
    assert f"  2 learners: {catalogue.SIGN_FLIPPED.name}" in lines
    assert f"    fix: {catalogue.SIGN_FLIPPED.fix}" in lines


def test_exit_status_is_the_class_worst_verdict(sce, tmp_path):
    ga, la = right(*A)
    assert sce("check", "--csv", class_file(tmp_path, [row("ann", *A, ga, la)]), *GRADE).exit_code == 0
    coarse = tmp_path / "coarse.csv"
    coarse.write_text(f"{COLUMNS}\nann,2,3,4,1,0.1,-1,1,1\n")  # right to one digit, as −1 missing is too
    result = sce("check", "--csv", coarse, *GRADE, "--format", "json")
    assert result.exit_code == 3
    ann = json.loads(result.stdout)["learners"][0]
    assert ann["verdict"] == "too_few_digits" and ann["mistakes"] == []
    # e^(z − max z) − y = 0.135, −0.632, 1 and log10(1/0.2447) = 0.611 both round to these digits
    assert ann["also_fits"] in (catalogue.NOT_NORMALISED.name, catalogue.LOG10.name)


def test_csv_gradebook_keeps_the_id_columns_name_and_is_written_whole(sce, tmp_path):
    ga, la = right(*A)
    path = class_file(tmp_path, [row("ann", *A, ga, la), row("ben", *A, [-g for g in ga], la)])
    stdout = sce("check", "--csv", path, *GRADE, "--format", "csv").stdout
    book = list(csv.reader(io.StringIO(stdout)))
    assert book[0] == ["student", "verdict", "score", "right", "graded", "rows", "mistake", "fix"]
    assert book[1][:6] == ["ann", "correct", "1.0", "4", "4", "1"]
    assert book[2][:2] == ["ben", "not_correct"] and book[2][6] == catalogue.SIGN_FLIPPED.name
    grades = tmp_path / "grades.csv"
    result = sce("check", "--csv", path, *GRADE, "-o", grades)
    assert result.exit_code == 1 and result.stdout.startswith("student")  # the table still shows
    assert grades.read_text() == stdout
    assert sce("check", "--csv", path, *GRADE, "-o", tmp_path / "g.json").exit_code == 1
    assert json.loads((tmp_path / "g.json").read_text())["id_column"] == "student"
    broken = class_file(tmp_path, [row("ann", *A, ga, la), row(" ", *A, ga, la)])
    assert sce("check", "--csv", broken, *GRADE, "-o", grades).exit_code == 2
    assert grades.read_text() == stdout  # the old gradebook kept
    result = sce("check", "--csv", path, *GRADE, "-o", path)
    assert (result.exit_code, result.stderr) == (
        2,
        f"sce: error: -o: {path} is the input file; write the gradebook to another file\n",
    )
    result = sce("check", "--csv", path, *GRADE, "-o", grades, "--summary-json", grades)
    assert result.exit_code == 2 and "is the gradebook's file" in result.stderr
    assert grades.read_text() == stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--grad-cols", "grad_*", "--id-col", "name"), "--id-col: there is no column 'name'; the columns are "),
        (
            ("--grad-cols", "grad_*", "--id-col", "student", "--logit-cols", "student,z0,z1,z2"),
            "--logit-cols: column 'student' is the id column; leave it out of --logit-cols",
        ),
        (
            ("--grad-cols", "student,grad_z0", "--id-col", "student"),
            "--grad-cols: column 'student' is already the id column; a column is one thing only",
        ),
        (("--grad-cols", "grad_*", "--id-col", "student", "-o", "g.txt"), "-o g.txt: say the gradebook's format"),
        (("--grad-cols", "grad_*", "--id-col", "student", "-f", "table", "-o", "g.csv"), "-o g.csv: the gradebook's"),
        (("--grad-cols", "grad_*", "-o", "g.csv"), "-o goes with --csv INPUT --id-col COL: it writes the gradebook"),
        (("--grad-cols", "grad_*", "-f", "csv"), "--format csv goes with --csv INPUT --id-col COL (a gradebook)"),
    ],
)
def test_bad_gradebook_options_are_refused_in_one_line(sce, tmp_path, args, message):
    ga, la = right(*A)
    result = sce("check", "--csv", class_file(tmp_path, [row("ann", *A, ga, la)]), *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"sce: error: {message}") and result.stderr.count("\n") == 1


def test_an_empty_id_is_refused_with_its_line(sce, tmp_path):
    ga, la = right(*A)
    result = sce("check", "--csv", class_file(tmp_path, [row("ann", *A, ga, la), row("", *A, ga, la)]), *GRADE)
    assert (result.exit_code, result.stderr) == (
        2,
        "sce: error: line 3: the id column 'student' is empty; give every row its learner's id\n",
    )
    assert sce("check", "2", "3", "4", "-l", "1", "--grad", "1,2,3", "--id-col", "s").stderr == (
        "sce: error: --id-col goes with --csv INPUT\n"
    )


def test_a_learners_id_is_escaped_wherever_it_is_shown(sce, tmp_path):
    ga, la = right(*A)
    evil, formula = "a\x1b[2Jb\nc", '=HYPERLINK("http://x")'
    path = tmp_path / "evil.csv"
    quoted = formula.replace('"', '""')
    path.write_text(f'{COLUMNS}\n"{evil}",2,3,4,1,{",".join(map(str, ga))},{la}\n"{quoted}",2,3,4,1,0,0,0,0\n')
    table = sce("check", "--csv", path, *GRADE).stdout
    assert "\x1b" not in table and "a\\x1b[2Jb\\nc" in table
    book = list(csv.reader(io.StringIO(sce("check", "--csv", path, *GRADE, "-f", "csv").stdout)))
    assert [line[0] for line in book[1:]] == ["a\\x1b[2Jb\\nc", "'" + formula]
    document = sce("check", "--csv", path, *GRADE, "-f", "json").stdout
    assert "\x1b" not in document
    assert [learner["id"] for learner in json.loads(document)["learners"]] == [evil, formula]


@pytest.mark.parametrize(
    ("learner", "cell"),
    [("-3", "-3"), ("+1.5", "+1.5"), ("@sum", "'@sum"), ("-x", "'-x"), ("+cmd", "'+cmd"), ("a=b", "a=b")],
)
def test_a_gradebook_cell_never_runs_as_a_spreadsheet_formula(learner, cell):
    from sce.grading.gradebook import LearnerGrade
    from sce.render.gradebook import gradebook_csv

    book = gradebook_csv([LearnerGrade(learner, 1, 3, 3, "correct")], "student")
    assert list(csv.reader(io.StringIO(book)))[1][:3] == [cell, "correct", "1.0"]


def test_a_learner_is_graded_row_by_row_for_digits_as_typed_check_grades_a_row(sce, tmp_path):
    # Each of ann's rows is right to its digits and fits a usual mistake of its own (0.1,-1,1: the
    # unnormalised e^(z − max z) − y = 0.135, −0.632, 1; zeros: y − p as well as p − y), though no
    # one mistake fits both rows: a row is an answer, and neither can be told from a mistake.
    ga, la = right(*A)
    path = tmp_path / "coarse.csv"
    path.write_text(
        f"{COLUMNS}\nann,2,3,4,1,0.1,-1,1,1.408\nann,1,0.5,-1,0,0,0,0,0.6\n{row('bob', *A, ga, la)}\n"
    )
    result = sce("check", "--csv", path, *GRADE, "--format", "json")
    assert result.exit_code == 3
    grades = {learner["id"]: learner for learner in json.loads(result.stdout)["learners"]}
    assert grades["ann"]["verdict"] == "too_few_digits" and grades["ann"]["also_fits"]
    assert grades["bob"]["verdict"] == "correct"


@pytest.mark.parametrize(("chosen", "suggested"), [("csv", "gradebook.csv"), ("json", "gradebook.json"),
                                                   ("html", "gradebook.html")])
def test_a_folder_given_as_the_gradebook_suggests_a_name_of_the_format_written(sce, tmp_path, chosen, suggested):
    ga, la = right(*A)
    book = tmp_path / "books"
    book.mkdir()
    result = sce("check", "--csv", class_file(tmp_path, [row("ann", *A, ga, la)]), "--grad-cols", "grad_*",
                 "--loss-col", "loss", "--id-col", "student", "--format", chosen, "-o", book)
    assert result.exit_code == 2, result.output
    assert result.stderr.endswith(f"e.g. {book / suggested}\n"), result.stderr
