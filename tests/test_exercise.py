"""sce exercise: worksheets and answer keys that are the same for the same seed, that sce check
passes, whose choices are named mistakes, and whose bad input is refused with nothing written.

Expected values come from mpmath at 50 digits (the softmax and its gradient by their definitions),
never from sce's own loss."""

from __future__ import annotations

import csv
import os
import re
import shlex
import stat
from pathlib import Path

import mpmath
import pytest

from sce.teaching import LEVELS

mpmath.mp.dps = 50


def make(sce, folder: Path, *args: object, sheet: str = "sheet.md", key: str = "key.csv"):
    return sce("exercise", *args, "-o", folder / sheet, "--answers", folder / key)


def key_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def check_line(stdout: str, which: str) -> list[str]:
    line = next(line for line in stdout.splitlines() if line.startswith(which))
    return shlex.split(line.split(":", 1)[1])[1:]  # without the leading "sce"


def exact_softmax(logits: list[float], temperature: float = 1.0) -> list[mpmath.mpf]:
    scaled = [mpmath.mpf(z) / temperature for z in logits]
    total = mpmath.fsum(mpmath.exp(z) for z in scaled)
    return [mpmath.exp(z) / total for z in scaled]


def logits_of(row: dict[str, str]) -> list[float]:
    return [float(row[name]) for name in sorted(row) if re.fullmatch(r"z\d+", name)]


# --- the same seed, the same bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_the_same_seed_and_options_give_byte_identical_sheets_and_keys(sce, tmp_path, level):
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder, seed in ((first, 11), (second, 11), (other, 12)):
        folder.mkdir()
        result = make(sce, folder, "--count", 5, "--seed", seed, "--level", level, "--choices", "--blanks")
        assert result.exit_code == 0, result.output
    for name in ("sheet.md", "key.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
        assert (first / name).read_bytes() != (other / name).read_bytes()


def test_the_number_of_classes_is_the_sheets_and_every_row_has_it(sce, tmp_path):
    assert make(sce, tmp_path, "--count", 6, "--seed", 4, "--classes", 4).exit_code == 0
    rows = key_rows(tmp_path / "key.csv")
    assert [row["exercise"] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    assert all(len(logits_of(row)) == 4 for row in rows)
    for row in rows:  # small whole numbers: pleasant to work by hand
        assert all(z.is_integer() and -3 <= z <= 4 for z in logits_of(row))


# --- the key is right ---------------------------------------------------------------------------------------------


def test_the_keys_answers_are_the_exact_ones(sce, tmp_path):
    assert make(sce, tmp_path, "--count", 8, "--seed", 5).exit_code == 0
    for row in key_rows(tmp_path / "key.csv"):
        s = exact_softmax(logits_of(row))
        label = int(row["label"])
        assert float(row["loss"]) == pytest.approx(float(-mpmath.log(s[label])), rel=1e-15)
        for k, p in enumerate(s):
            expected = p - (1 if k == label else 0)
            assert float(row[f"grad_z{k}"]) == pytest.approx(float(expected), rel=1e-14, abs=1e-300)


def test_a_temperature_keys_answers_are_the_exact_ones(sce, tmp_path):
    assert make(sce, tmp_path, "--count", 5, "--seed", 2, "--level", "temperature").exit_code == 0
    sheet = (tmp_path / "sheet.md").read_text(encoding="utf-8")
    temperature = float(re.search(r"Temperature \$T = ([\d.]+)\$", sheet).group(1))
    for row in key_rows(tmp_path / "key.csv"):
        s = exact_softmax(logits_of(row), temperature)
        label = int(row["label"])
        for k, p in enumerate(s):
            expected = (p - (1 if k == label else 0)) / temperature
            assert float(row[f"grad_z{k}"]) == pytest.approx(float(expected), rel=1e-14)


def test_smoothed_and_weighted_keys_answers_are_the_exact_ones(sce, tmp_path):
    for level in ("smoothing", "weights"):
        folder = tmp_path / level
        folder.mkdir()
        result = make(sce, folder, "--count", 5, "--seed", 13, "--level", level)
        words = check_line(result.stdout, "check the key")
        given = words[words.index("--loss-col") + 2 :]  # the sheet's options, after the columns
        options = dict(zip(given[::2], given[1::2]))
        for row in key_rows(folder / "key.csv"):
            s = exact_softmax(logits_of(row))
            label, classes = int(row["label"]), len(s)
            y = [mpmath.mpf(1 if k == label else 0) for k in range(classes)]
            if level == "smoothing":
                epsilon = mpmath.mpf(options["--smoothing"])
                target = [(1 - epsilon) * y_k + epsilon / classes for y_k in y]
                gradient = [p - t for p, t in zip(s, target)]
                loss = -mpmath.fsum(t * mpmath.log(p) for p, t in zip(s, target))
            else:
                weight = mpmath.mpf(options["--weight"].split(",")[label])
                gradient = [weight * (p - y_k) for p, y_k in zip(s, y)]
                loss = -weight * mpmath.log(s[label])
            assert float(row["loss"]) == pytest.approx(float(loss), rel=1e-14)
            for k in range(classes):
                assert float(row[f"grad_z{k}"]) == pytest.approx(float(gradient[k]), rel=1e-13, abs=1e-17)


@pytest.mark.parametrize("level", LEVELS)
def test_the_key_passes_the_check_line_sce_exercise_prints(sce, tmp_path, level):
    result = make(sce, tmp_path, "--count", 6, "--seed", 9, "--level", level, "--choices", "--blanks")
    assert result.exit_code == 0, result.output
    checked = sce(*check_line(result.stdout, "check the key"))
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.endswith("reduction: none\nlearners: 6 (correct 6)\n")
    assert all(re.match(r"\d\s+correct\s+(\d+)/\1\s*$", line) for line in checked.stdout.splitlines()[2:8])


def test_a_key_with_one_planted_sign_flip_fails_naming_it(sce, tmp_path):
    """Graded exercise by exercise (--id-col exercise), the one wrong exercise gets the mistake's name."""
    result = make(sce, tmp_path, "--count", 4, "--seed", 3, "--classes", 3)
    rows = key_rows(tmp_path / "key.csv")
    planted = rows[2]
    s = exact_softmax(logits_of(planted))
    for k, p in enumerate(s):  # y − p, worked out from the logits, not from the key
        planted[f"grad_z{k}"] = mpmath.nstr((1 if k == int(planted["label"]) else 0) - p, 10)
    with (tmp_path / "key.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    checked = sce(*check_line(result.stdout, "check the key"))
    assert checked.exit_code == 1
    verdicts = [line.split(None, 1) for line in checked.stdout.splitlines()[2:6]]
    assert [(number, re.sub(r"\s+", " ", rest).strip()) for number, rest in verdicts] == [
        ("1", "correct 4/4"),
        ("2", "correct 4/4"),
        ("3", "not correct 1/4 sign flipped: y − p instead of p − y"),
        ("4", "correct 4/4"),
    ]


def test_the_class_line_grades_each_student_against_the_sheet(sce, tmp_path):
    result = make(sce, tmp_path, "--count", 3, "--seed", 8, "--classes", 3)
    rows = key_rows(tmp_path / "key.csv")
    answers = tmp_path / "answers.csv"
    with answers.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["student", *rows[0]])
        writer.writeheader()
        for row in rows:
            writer.writerow({"student": "ada", **row})
            s = exact_softmax(logits_of(row))  # the probabilities, without the −1: a usual mistake
            wrong = {f"grad_z{k}": mpmath.nstr(p, 6) for k, p in enumerate(s)}
            writer.writerow({"student": "bo", **row, **wrong})
    words = check_line(result.stdout, "grade a class")
    words[words.index("answers.csv")] = str(answers)
    graded = sce(*words)
    assert graded.exit_code == 1, graded.output
    lines = {line.split()[0]: line for line in graded.stdout.splitlines() if line.startswith(("ada", "bo"))}
    assert re.match(r"ada\s+correct\s+12/12", lines["ada"])
    # bo's label entries are wrong (p_c for p_c − 1), the other entries and the losses right
    assert re.match(r"bo\s+not correct\s+9/12\s+−1 missing: these are the probabilities", lines["bo"])


# --- multiple choice ----------------------------------------------------------------------------------------------


def choices_of(sheet: str) -> list[dict[str, tuple[str, ...]]]:
    found = []
    for part in sheet.split("## Exercise ")[1:]:
        options = re.findall(r"^- \*\*([A-H])\*\* \$\\left\((.*)\\right\)\$$", part, re.MULTILINE)
        found.append({letter: tuple(text.split(", ")) for letter, text in options})
    return found


@pytest.mark.parametrize("level", ["labels", "targets", "weights", "temperature"])
def test_the_choices_are_distinct_one_is_right_and_each_wrong_one_is_named(sce, tmp_path, level):
    assert make(sce, tmp_path, "--count", 12, "--seed", 21, "--level", level, "--choices").exit_code == 0
    sheet = (tmp_path / "sheet.md").read_text(encoding="utf-8")
    for row, offered in zip(key_rows(tmp_path / "key.csv"), choices_of(sheet), strict=True):
        assert 2 <= len(offered) <= 4
        assert len(set(offered.values())) == len(offered)  # distinct at the digits shown
        right = tuple(float(row[f"grad_z{k}"]) for k in range(len(logits_of(row))))
        chosen = offered[row["choice"]]
        assert [float(text) for text in chosen] == pytest.approx(right, rel=5e-4, abs=5e-5)
        named = dict(part.split(": ", 1) for part in row["wrong_choices"].split("; "))
        assert sorted(named) == sorted(set(offered) - {row["choice"]})
        assert all(name and name != "right" for name in named.values())


def test_the_usual_mistakes_offered_are_what_they_say(sce, tmp_path):
    """Where "sign flipped" or "−1 missing" is offered, its numbers are y − p or p, worked out here."""
    assert make(sce, tmp_path, "--count", 40, "--seed", 1, "--classes", 3, "--choices").exit_code == 0
    sheet = (tmp_path / "sheet.md").read_text(encoding="utf-8")
    seen = set()
    for row, offered in zip(key_rows(tmp_path / "key.csv"), choices_of(sheet), strict=True):
        s = exact_softmax(logits_of(row))
        y = [1 if k == int(row["label"]) else 0 for k in range(3)]
        expected = {
            "sign flipped: y − p instead of p − y": [y_k - p for p, y_k in zip(s, y)],
            "−1 missing: these are the probabilities": s,
        }
        for part in row["wrong_choices"].split("; "):
            letter, name = part.split(": ", 1)
            if name in expected:
                seen.add(name)
                written = [float(text) for text in offered[letter]]
                assert written == pytest.approx([float(v) for v in expected[name]], rel=5e-4, abs=5e-5)
    assert seen == set(expected)  # forty exercises offer both


# --- blanks -------------------------------------------------------------------------------------------------------


def test_the_blanks_are_boxed_and_their_values_are_in_the_key_and_nowhere_on_the_sheet(sce, tmp_path):
    assert make(sce, tmp_path, "--count", 3, "--seed", 6, "--classes", 3, "--blanks").exit_code == 0
    sheet = (tmp_path / "sheet.md").read_text(encoding="utf-8")
    parts = sheet.split("## Exercise ")[1:]
    for row, part in zip(key_rows(tmp_path / "key.csv"), parts, strict=True):
        blanks = dict(re.findall(r"\((\w)\) (\S+?)(?:;|$)", row["blanks"]))
        assert len(blanks) == 4
        for name, value in blanks.items():
            assert f"\\boxed{{\\;\\text{{({name})}}\\;}}" in part
            assert value not in part
        s = exact_softmax(logits_of(row))
        label = int(row["label"])
        loss = mpmath.nstr(-mpmath.log(s[label]), 5)
        if loss in blanks.values():  # the loss is left blank: its number is nowhere, not in the prose either
            assert f"L = {loss}" not in part


# --- bad input ----------------------------------------------------------------------------------------------------


BAD = [
    (["--count", 0], 2, "sce: error: --count: 0 exercises; give a count from 1 to 1,000\n"),
    (["--count", 10_000_000], 2, "sce: error: --count: 10,000,000 exercises; give a count from 1 to 1,000\n"),
    (["--count", -3], 2, "sce: error: --count: -3 exercises; give a count from 1 to 1,000\n"),
    (
        ["--classes", 1],
        2,
        "sce: error: --classes: 1 class; a worksheet has 2 to 10 classes (one class has probability 1 and nothing "
        "to derive; more do not fit a page worked by hand)\n",
    ),
    (
        ["--classes", 1_000_000],
        2,
        "sce: error: --classes: 1,000,000 classes; a worksheet has 2 to 10 classes (one class has probability 1 "
        "and nothing to derive; more do not fit a page worked by hand)\n",
    ),
    (["--seed", -1], 2, "sce: error: --seed: -1 is negative; give a seed of 0 or more\n"),
]


@pytest.mark.parametrize(("extra", "status", "message"), BAD)
def test_bad_values_are_refused_in_one_line_and_nothing_is_written(sce, tmp_path, extra, status, message):
    args = {"--count": 3, "--seed": 1}
    args.update(dict(zip(extra[::2], extra[1::2])))
    result = make(sce, tmp_path, *[str(word) for pair in args.items() for word in pair])
    assert (result.exit_code, result.stderr) == (status, message)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_level_is_refused_with_the_levels(sce, tmp_path):
    result = make(sce, tmp_path, "--count", 3, "--seed", 1, "--level", "hard")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert "'hard' is not one of 'labels', 'targets', 'smoothing', 'weights', 'temperature', 'language-model'" in (
        result.stderr
    )
    assert list(tmp_path.iterdir()) == []


def test_missing_options_are_named_together(sce, tmp_path):
    result = sce("exercise", "--count", 3, "-o", tmp_path / "s.md")
    assert (result.exit_code, result.stderr) == (
        2,
        "sce: error: --seed, --answers missing: a worksheet needs them all, e.g. --seed 7 --answers key.csv\n",
    )


def test_the_same_file_for_the_sheet_and_the_key_is_refused(sce, tmp_path):
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "sheet.md", tmp_path / "sub" / "link.md")
    for key in ("sheet.md", "./sheet.md", "sub/../sheet.md", "sub/link.md"):
        result = make(sce, tmp_path, "--count", 3, "--seed", 1, key=key)
        assert result.exit_code == 2, key
        assert result.stderr.startswith(f"sce: error: --answers: {tmp_path / key} is the worksheet's file too"), key
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sub"]


@pytest.mark.parametrize("which", ["sheet", "key"])
def test_an_unwritable_path_writes_neither_file_and_keeps_the_old_ones(sce, tmp_path, which):
    if os.geteuid() == 0:
        bad = tmp_path / "missing" / "file"  # root writes anywhere: a folder that does not exist
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        bad = locked / "file"
    (tmp_path / "sheet.md").write_text("old sheet\n")
    (tmp_path / "key.csv").write_text("old key\n")
    names = {"sheet": "sheet.md", "key": "key.csv"}
    names[which] = str(bad.relative_to(tmp_path))
    result = make(sce, tmp_path, "--count", 3, "--seed", 1, sheet=names["sheet"], key=names["key"])
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("sce: error: -o:" if which == "sheet" else "sce: error: --answers:")
    assert (tmp_path / "sheet.md").read_text() == "old sheet\n"
    assert (tmp_path / "key.csv").read_text() == "old key\n"
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == []


def test_stdout_is_not_a_sheet_file(sce, tmp_path):
    result = sce("exercise", "--count", 3, "--seed", 1, "-o", "-", "--answers", tmp_path / "key.csv")
    assert (result.exit_code, result.stderr) == (
        2,
        "sce: error: -o: name the worksheet's file (the worksheet and its key are written as files)\n",
    )


def test_an_interruption_while_writing_the_key_leaves_both_old_files(sce, tmp_path, monkeypatch):
    import sce.batch.loop as loop

    written = []
    real_write_text = loop.write_text

    def interrupted_on_the_second(target, text):
        written.append(target)
        if len(written) == 2:
            raise KeyboardInterrupt
        real_write_text(target, text)

    monkeypatch.setattr(loop, "write_text", interrupted_on_the_second)
    (tmp_path / "sheet.md").write_text("old sheet\n")
    (tmp_path / "key.csv").write_text("old key\n")
    result = make(sce, tmp_path, "--count", 3, "--seed", 1)
    assert result.exit_code != 0
    assert (tmp_path / "sheet.md").read_text() == "old sheet\n"
    assert (tmp_path / "key.csv").read_text() == "old key\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["key.csv", "sheet.md"]


def test_with_choices_the_derivation_does_not_give_the_right_choice_away(sce, tmp_path):
    assert make(sce, tmp_path, "--count", 5, "--seed", 6, "--classes", 4, "--choices", "--blanks").exit_code == 0
    sheet = (tmp_path / "sheet.md").read_text(encoding="utf-8")
    for row, part in zip(key_rows(tmp_path / "key.csv"), sheet.split("## Exercise ")[1:], strict=True):
        derivation = part.split("### Fill in the blanks")[1]
        s = exact_softmax(logits_of(row))
        label = int(row["label"])
        for k, p in enumerate(s):
            entry = p - (1 if k == label else 0)
            for digits in (4, 5, 6):
                assert mpmath.nstr(entry, digits, strip_zeros=False) not in derivation, (row["exercise"], k)


def test_the_note_on_rounding_left_out_of_sheets_is_the_derivations_own(sce, tmp_path):
    from sce.render.exercise_sheet import ROUNDING_NOTE

    steps = sce("grad", "2", "3", "4", "--label", "1", "--steps", "--format", "markdown").stdout
    assert f"\n{ROUNDING_NOTE}: " in steps  # what the sheet leaves out is there to leave out
    assert make(sce, tmp_path, "--count", 10, "--seed", 2, "--blanks").exit_code == 0
    assert ROUNDING_NOTE not in (tmp_path / "sheet.md").read_text(encoding="utf-8")


def installed_environment() -> dict[str, str]:
    """The environment to run the installed sce in, by name, as a user does."""
    import shutil
    import sys

    found = shutil.which("sce", path=str(Path(sys.executable).parent)) or shutil.which("sce")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("sce is not installed: CI runs it (pip install '.[test]')")
        pytest.skip("sce is not installed (pip install .)")
    folder = Path(found).parent
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}


def test_the_printed_lines_run_as_typed_in_a_shell_with_awkward_file_names(tmp_path):
    """The installed sce, through bash: the lines sce exercise prints are quoted for a shell."""
    import subprocess

    env = installed_environment()
    made = subprocess.run(
        ["sce", "exercise", "--count", "3", "--seed", "4", "--level", "weights", "-o", "it's a sheet.md",
         "--answers", "key $HOME.csv"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(line for line in made.stdout.splitlines() if line.startswith("check the key:"))
    checked = subprocess.run(
        ["bash", "-c", line.split(":", 1)[1]], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.endswith("learners: 3 (correct 3)\n")


def test_sigterm_leaves_both_files_or_neither(tmp_path):
    import signal
    import subprocess
    import time

    env = installed_environment()
    run = subprocess.Popen(
        ["sce", "exercise", "--count", "300", "--seed", "1", "--classes", "10", "--blanks", "-o", "s.md",
         "--answers", "k.csv"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    left = sorted(path.name for path in tmp_path.iterdir())
    if run.returncode == 0:  # finished before the signal
        assert left == ["k.csv", "s.md"]
    elif run.returncode == -signal.SIGTERM:  # a loaded machine: the signal came before Python's start-up ended
        assert left == []
    else:
        assert (run.returncode, stderr) == (128 + signal.SIGTERM, "sce: interrupted (SIGTERM)\n")
        assert left == []


@pytest.mark.parametrize(("sheet", "chosen"), [("sheet.html", ()), ("SHEET.HTM", ()), ("sheet", ("-f", "html"))])
def test_a_worksheet_named_html_is_a_page(sce, tmp_path, sheet, chosen):
    result = make(sce, tmp_path, "--count", 3, "--seed", 1, *chosen, sheet=sheet)
    assert result.exit_code == 0, result.output
    page = (tmp_path / sheet).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<math" in page and "$" not in page


@pytest.mark.parametrize(("sheet", "chosen"), [("sheet.md", ()), ("sheet.markdown", ()), ("sheet.txt", ()), ("sheet", ())])
def test_a_worksheet_named_otherwise_is_markdown(sce, tmp_path, sheet, chosen):
    result = make(sce, tmp_path, "--count", 3, "--seed", 1, *chosen, sheet=sheet)
    assert result.exit_code == 0, result.output
    assert (tmp_path / sheet).read_text(encoding="utf-8").startswith("# Softmax cross-entropy: worksheet")


@pytest.mark.parametrize(
    ("sheet", "key", "chosen", "message"),
    [
        ("sheet.md", "key.csv", ("-f", "html"), "-o {sheet}: its name says markdown, --format says html"),
        ("sheet.html", "key.csv", ("-f", "markdown"), "-o {sheet}: its name says html, --format says markdown"),
        ("sheet.json", "key.csv", (), "-o {sheet}: its name says json, and a worksheet is Markdown or HTML"),
        ("sheet.pdf", "key.csv", (), "-o {sheet}: its name says pdf, and a worksheet is Markdown or HTML"),
        ("sheet.md", "key.json", (), "--answers {key}: its name says json, and the answer key is CSV; name it .csv"),
        ("sheet.md", "key.html", (), "--answers {key}: its name says html, and the answer key is CSV"),
    ],
)
def test_a_worksheet_or_key_whose_name_says_another_format_is_refused(sce, tmp_path, sheet, key, chosen, message):
    result = make(sce, tmp_path, "--count", 3, "--seed", 1, *chosen, sheet=sheet, key=key)
    assert result.exit_code == 2, result.output
    expected = message.format(sheet=tmp_path / sheet, key=tmp_path / key)
    assert result.stderr.startswith(f"sce: error: {expected}") and result.stderr.count("\n") == 1, result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("option", "chosen", "suggested"),
    [("-o", (), "worksheet.md"), ("-o", ("-f", "html"), "worksheet.html"), ("--answers", (), "key.csv")],
)
@pytest.mark.parametrize("missing", [False, True])
def test_a_folder_given_as_a_worksheet_file_suggests_a_name_of_the_kind_written(
    sce, tmp_path, option, chosen, suggested, missing
):
    folder = tmp_path / "missing" if missing else tmp_path
    files = {"-o": str(tmp_path / "sheet.md"), "--answers": str(tmp_path / "key.csv")}
    if chosen:
        files["-o"] = str(tmp_path / "sheet.html")
    files[option] = f"{folder}{os.sep}"
    result = sce("exercise", "--count", "3", "--seed", "1", *chosen, "-o", files["-o"], "--answers", files["--answers"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().endswith(os.path.join(folder, suggested)), result.stderr
    assert " " not in suggested and not (tmp_path / "sheet.md").exists() and not (tmp_path / "key.csv").exists()
