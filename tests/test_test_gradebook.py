"""`sce test a.py:f b.py:f …`: many submissions graded at once, each in its own child process,
into one gradebook row per file (the columns and words of `sce check --csv --id-col`)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sce.grading import catalogue
from sce.grading.implementations.submissions import submissions

HERE = Path(__file__).parent / "implementations"


def spec(name: str) -> str:
    return f"{HERE / name}.py:softmax_loss"


def test_each_submission_is_a_row_and_one_that_cannot_be_graded_does_not_end_the_run(sce, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import a_module_nobody_has\n")
    missing = tmp_path / "missing.py"
    named = [spec("correct_vectorized"), spec("predicted_class"), spec("no_max_shift"), f"{missing}:f", f"{broken}:f"]
    result = sce("test", *named, "--format", "json")
    assert result.exit_code == 1, result.output
    book = json.loads(result.stdout)
    assert book["id_column"] == "file" and book["verdict"] == "not_correct"
    rows = book["learners"]
    assert [row["id"] for row in rows] == [text.rpartition(":")[0] for text in named]
    assert [row["verdict"] for row in rows] == ["correct", "not_correct", "not_robust", "not_correct", "not_correct"]
    assert rows[0]["right"] == rows[0]["graded"] == 17 and rows[0]["mistake"] is None
    assert rows[1]["mistakes"] == [catalogue.PREDICTED_CLASS.name] and rows[1]["explains_all"]
    assert rows[2]["mistakes"] == [catalogue.NO_MAX_SHIFT.name] and 0 < rows[2]["right"] < 17
    assert rows[3]["mistake"] == f"not graded: {missing}: no such file" and rows[3]["right"] == 0
    assert rows[4]["mistake"].startswith("not graded: importing broken.py raised ModuleNotFoundError")
    counted = {entry["mistake"]: entry["learners"] for entry in book["mistake_counts"]}
    assert counted == {catalogue.PREDICTED_CLASS.name: 1, catalogue.NO_MAX_SHIFT.name: 1}


def test_a_glob_or_a_folder_names_its_files_sorted(tmp_path):
    for name in ("b.py", "a.py", "notes.txt"):
        (tmp_path / name).write_text("")
    expected = [(str(tmp_path / f), f"{tmp_path / f}:f") for f in ("a.py", "b.py")]
    assert submissions([f"{tmp_path}/*.py:f"]) == expected
    assert submissions([f"{tmp_path}:f"]) == expected
    shared = submissions([f"{tmp_path / 'a.py'}:f", f"{tmp_path / 'a.py'}:g"])
    assert [learner for learner, _ in shared] == [f"{tmp_path / 'a.py'}:f", f"{tmp_path / 'a.py'}:g"]


@pytest.mark.parametrize(
    ("named", "words"),
    [
        (["{tmp}/*.py:f"], "/*.py: no file matches; check the pattern and the folder"),
        (["{tmp}:f"], " is a folder without .py files; name the submissions' folder"),
        (["{tmp}/a.py:f", "{tmp}/a.py:f"], "/a.py:f is named twice; name each submission once"),
    ],
)
def test_an_empty_glob_or_a_submission_named_twice_is_one_line(sce, tmp_path, named, words):
    result = sce("test", *(text.format(tmp=tmp_path) for text in named))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and words in result.stderr


def test_the_gradebook_file_is_csv_from_its_name_with_the_file_column(sce, tmp_path):
    book = tmp_path / "book.csv"
    result = sce("test", spec("correct_vectorized"), spec("label_off_by_one"), "-o", book)
    assert result.exit_code == 1 and "learners: 2 (correct 1, not correct 1)" in result.stdout
    rows = list(csv.DictReader(io.StringIO(book.read_text())))
    assert list(rows[0]) == ["file", "verdict", "score", "right", "graded", "rows", "mistake", "fix"]
    assert [(row["verdict"], row["right"]) for row in rows][0] == ("correct", "17")
    assert rows[1]["verdict"] == "not_correct" and catalogue.LABEL_PLUS_ONE.name in rows[1]["mistake"]


def test_a_gradebook_file_of_unknown_kind_is_refused_before_grading(sce, tmp_path):
    result = sce("test", spec("correct_vectorized"), "-o", tmp_path / "book.txt")
    assert result.exit_code == 2 and "--format csv, json, html or gradescope" in result.stderr
    assert not (tmp_path / "book.txt").exists()


def test_gradescope_results_score_each_submission_by_its_cases_passed(sce):
    result = sce("test", spec("correct_vectorized"), spec("predicted_class"), "--format", "gradescope")
    tests = json.loads(result.stdout)["tests"]
    assert [set(test) for test in tests] == [{"name", "score", "max_score", "output"}] * 2
    assert (tests[0]["score"], tests[0]["max_score"], tests[0]["output"]) == (17, 17, "verdict: correct")
    assert tests[1]["score"] < 17 and f"mistake: {catalogue.PREDICTED_CLASS.name}" in tests[1]["output"]


def test_a_submission_over_the_memory_limit_is_not_correct_and_the_others_are_graded(sce, tmp_path):
    greedy = tmp_path / "greedy.py"
    greedy.write_text("import numpy as np\n\ndef softmax_loss(logits, labels):\n    return np.ones(1 << 30).sum()\n")
    result = sce("test", f"{greedy}:softmax_loss", spec("correct_vectorized"), "-f", "json")
    rows = json.loads(result.stdout)["learners"]
    assert [row["verdict"] for row in rows] == ["not_correct", "correct"]
    assert "MemoryError" in rows[0]["mistake"]


def test_correct_not_robust_passes_unless_strict(sce):
    named = (spec("correct_vectorized"), spec("no_max_shift"))
    assert sce("test", *named).exit_code == 0
    assert sce("test", *named, "--strict").exit_code == 1


def test_show_output_goes_with_one_submission(sce):
    result = sce("test", spec("correct_vectorized"), spec("prints"), "--show-output")
    assert result.exit_code == 2 and "--show-output goes with one submission" in result.stderr


def test_a_learners_message_is_escaped_in_the_gradebook(sce, tmp_path):
    shouting = tmp_path / "shouting.py"
    shouting.write_text('def softmax_loss(logits, labels):\n    raise ValueError("\\x1b[31mred\\r\\n=1+1")\n')
    for book_format in ("table", "csv"):
        result = sce("test", f"{shouting}:softmax_loss", spec("correct_vectorized"), "-f", book_format)
        assert "\x1b" not in result.stdout and "\r" not in result.stdout
        assert "ValueError: \\x1b[31mred" in result.stdout
