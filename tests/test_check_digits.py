"""Digits that can be graded: a typed answer right to its digits, whose digits also fit a usual
mistake, is "too few digits to grade" (exit status 3), never correct.

The textbook example z = (2, 3, 4), label 1, by hand: s = (0.0900306, 0.2447285, 0.6652410),
L = −ln 0.2447285 = 1.4076060, ∂L/∂z = s − y = (0.0900306, −0.7552715, 0.6652410).
"""

from __future__ import annotations

import json
import math

import pytest

EXPS = [math.exp(v - 4) for v in (2, 3, 4)]  # e^(z − max z), not divided by their sum
S = [e / sum(EXPS) for e in EXPS]
LOSS = -math.log(S[1])


def test_the_hand_values_behind_the_cases():
    """Why 0.1,-1,1 and 1 cannot be graded: each is as near a usual mistake as the right value."""
    assert abs(LOSS - 1.4076060) < 1e-7
    assert abs(1 - LOSS) <= 0.5 and abs(1 - LOSS / math.log(10)) <= 0.5  # the log-10 loss, 0.611
    not_normalised = [EXPS[0], EXPS[1] - 1, EXPS[2]]  # (0.135, −0.632, 1)
    right = [S[0], S[1] - 1, S[2]]
    for typed, tolerance, mistaken, exact in zip((0.1, -1, 1), (0.05, 0.5, 0.5), not_normalised, right):
        assert abs(typed - mistaken) <= tolerance and abs(typed - exact) <= tolerance


@pytest.mark.parametrize(("flag", "answer"), [("--grad", "0.1,-1,1"), ("--loss", "1"), ("--grad", "0,-1,1")])
def test_too_few_digits_to_grade_is_its_own_verdict_and_exit_status(flag, answer, sce):
    result = sce("check", "2", "3", "4", "-l", "1", flag, answer)
    assert result.exit_code == 3
    assert result.stdout.splitlines()[-1] == "verdict: too few digits to grade"
    document = json.loads(sce("check", "2", "3", "4", "-l", "1", flag, answer, "-f", "json").stdout)
    assert (document["correct"], document["verdict"]) == (False, "too_few_digits")
    assert document["quantities"][0]["verdict"] == "too_few_digits"


@pytest.mark.parametrize(
    "answer", [["--grad", "0.09,-0.755,0.665", "--loss", "1.41"], ["--loss", "1.4"], ["--grad", "0.09,-0.8,0.7"]]
)
def test_an_answer_with_enough_digits_is_correct(answer, sce):
    result = sce("check", "2", "3", "4", "-l", "1", *answer, "-f", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["verdict"] == "correct"


@pytest.mark.parametrize("digits", range(2, 18))
def test_the_exact_answer_rounded_to_any_digits_from_two_is_correct(digits, sce):
    grad = ",".join(f"{v:.{digits}g}" for v in (S[0], S[1] - 1, S[2]))
    result = sce("check", "2", "3", "4", "-l", "1", "--grad", grad, "--loss", f"{LOSS:.{digits}g}")
    assert result.exit_code == 0, result.stdout


def test_a_wrong_entry_beside_too_few_digits_is_not_correct(sce):
    result = sce("check", "2", "3", "4", "-l", "1", "--grad", "0.1,-1,1", "--loss", "1.5")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "? gradient: too few digits to grade" in lines and lines[-1] == "verdict: not correct"


def test_a_tolerance_wide_enough_for_a_mistake_asks_for_a_smaller_one(sce):
    """--tol 1 around 1.4: the log-10 loss 0.611 is within it too."""
    result = sce("check", "2", "3", "4", "-l", "1", "--loss", "1.4", "--tol", "1")
    assert result.exit_code == 3
    assert "give a smaller --tol to tell them apart" in " ".join(result.stdout.split())
    assert sce("check", "2", "3", "4", "-l", "1", "--loss", "1.4", "--tol", "0.1").exit_code == 0


# --- check --csv: each row graded by its own digits, as a typed row ---------------------------------------------

# [1.5, -0.5, 0.25], label 0, by hand: ∂L/∂z = (−0.2967, 0.0952, 0.2015). A row of zeros is right to its
# 0 decimals, and so is what a sign-flipped gradient gives (0.2967, −0.0952, −0.2015).
OTHER = ([1.5, -0.5, 0.25], 0)
GRADIENT_COLUMNS = "z0,z1,z2,label,grad_z0,grad_z1,grad_z2"


def other_gradient() -> list[float]:
    exps = [math.exp(v - 1.5) for v in OTHER[0]]
    return [e / sum(exps) - (k == OTHER[1]) for k, e in enumerate(exps)]


def test_check_csv_does_not_pass_answers_with_too_few_digits_that_typed_check_cannot_grade(tmp_path, sce):
    assert all(abs(g) <= 0.5 and abs(-g) <= 0.5 for g in other_gradient())  # 0 fits p − y and y − p alike
    path = tmp_path / "integers.csv"
    path.write_text(f"{GRADIENT_COLUMNS}\n2,3,4,1,0,-1,1\n1.5,-0.5,0.25,0,0,0,0\n")
    assert sce("check", "1.5", "-0.5", "0.25", "-l", "0", "--grad=0,0,0").exit_code == 3
    result = sce("check", "--csv", path, "--grad-cols", "grad_*")
    assert result.exit_code == 3, result.stdout
    lines = result.stdout.splitlines()
    assert lines[-1] == "verdict: too few digits to grade"
    assert "rows wrong: 0" in lines
    assert lines[-2].startswith("too few digits: 2 rows right to the digits given, but also fitting a usual mistake ")
    assert lines[-2].endswith("; give more digits to tell them apart")
    document = json.loads(sce("check", "--csv", path, "--grad-cols", "grad_*", "-f", "json").stdout)
    assert (document["verdict"], document["correct"], document["too_few_digits_rows"]) == ("too_few_digits", False, 2)
    assert document["too_few_digits"]["line"] == 2


def test_one_row_with_too_few_digits_makes_the_file_ungradable_and_a_wrong_row_still_fails(tmp_path, sce):
    precise = ",".join(f"{g:.6f}" for g in other_gradient())
    path = tmp_path / "mixed.csv"
    path.write_text(f"{GRADIENT_COLUMNS}\n1.5,-0.5,0.25,0,{precise}\n2,3,4,1,0.1,-1,1\n")
    result = sce("check", "--csv", path, "--grad-cols", "grad_*")
    assert result.exit_code == 3
    assert "too few digits: 1 row right to the digits given, but also fitting a usual mistake (first at line 3: " in (
        " ".join(result.stdout.split())
    )
    path.write_text(f"{GRADIENT_COLUMNS}\n1.5,-0.5,0.25,0,{precise}\n2,3,4,1,0.1,-1,1\n1.5,-0.5,0.25,0,0.3,0,0\n")
    wrong = sce("check", "--csv", path, "--grad-cols", "grad_*")
    assert wrong.exit_code == 1 and wrong.stdout.splitlines()[-1] == "verdict: not correct"
    right = tmp_path / "right.csv"
    right.write_text(f"{GRADIENT_COLUMNS}\n1.5,-0.5,0.25,0,{precise}\n")
    assert sce("check", "--csv", right, "--grad-cols", "grad_*").exit_code == 0


def test_check_csv_asks_for_a_smaller_tol_where_the_tol_given_fits_a_mistake(tmp_path, sce):
    precise = ",".join(f"{g:.6f}" for g in other_gradient())
    path = tmp_path / "right.csv"
    path.write_text(f"{GRADIENT_COLUMNS}\n1.5,-0.5,0.25,0,{precise}\n")
    wide = sce("check", "--csv", path, "--grad-cols", "grad_*", "--tol", "1")
    assert wide.exit_code == 3
    assert "right to --tol" in wide.stdout and "give a smaller --tol to tell them apart" in wide.stdout
    assert sce("check", "--csv", path, "--grad-cols", "grad_*", "--tol", "1e-5").exit_code == 0


@pytest.mark.parametrize("decimals", [0, 1, 2, 3, 6])
@pytest.mark.parametrize(("logits", "label"), [([2.0, 3.0, 4.0], 1), OTHER, ([0.0, 0.0], 1), ([5.0, -5.0, 0.0, 1.0], 3)])
def test_a_row_of_check_csv_gets_the_verdict_typed_check_gives_it(logits, label, decimals, tmp_path, sce):
    exps = [math.exp(v - max(logits)) for v in logits]
    written = [f"{e / sum(exps) - (k == label):.{decimals}f}" for k, e in enumerate(exps)]
    loss = f"{math.log(sum(exps)) - (logits[label] - max(logits)):.{decimals}f}"
    typed = sce("check", *map(repr, logits), "-l", label, f"--grad={','.join(written)}", "--loss", loss)
    names = [f"z{k}" for k in range(len(logits))]
    path = tmp_path / "row.csv"
    header = ",".join([*names, "label", "loss", *(f"grad_{name}" for name in names)])
    path.write_text(f"{header}\n{','.join([*map(repr, logits), str(label), loss, *written])}\n")
    graded = sce("check", "--csv", path, "--grad-cols", "grad_*", "--loss-col", "loss")
    assert graded.exit_code == typed.exit_code, (typed.stdout, graded.stdout)
    assert graded.stdout.splitlines()[-1] == typed.stdout.splitlines()[-1]


def test_the_summary_json_counts_the_rows_with_too_few_digits(tmp_path, sce):
    path = tmp_path / "integers.csv"
    path.write_text(f"{GRADIENT_COLUMNS}\n2,3,4,1,0,-1,1\n1.5,-0.5,0.25,0,0,0,0\n")
    summary = tmp_path / "summary.json"
    result = sce("check", "--csv", path, "--grad-cols", "grad_*", "--summary-json", summary)
    assert result.exit_code == 3
    document = json.loads(summary.read_text())
    assert (document["wrong_rows"], document["too_few_digits_rows"], document["all_correct"]) == (0, 2, False)


# z = (−2, −0.1), label 0, softcap 2, z-loss 0.01, by mpmath at 50 digits: L = 1.6392627 (1.6391282 without
# the z-loss), ∂L/∂z = (−0.33824758, 0.80570345) ((−0.33843665, 0.80383951) without it).
CAPPED = ("-2", "-0.1", "-l", "0", "--softcap", "2", "--z-loss", "0.01")


@pytest.mark.parametrize(
    ("gradient", "status"),
    [
        ("-0.3382,0.8057", 0),  # 4 decimals: 0.8057 is 1.9e-3 from the gradient without the z-loss
        ("-0.338,0.806", 0),  # 3 decimals: 0.806 is still 2.2e-3 from it
        ("-0.34,0.8", 3),  # 2 decimals fit both: nothing given tells the z-loss left out from the truth
    ],
)
def test_one_typed_answer_whose_gradient_rules_the_mistake_out_is_graded(sce, gradient, status):
    # The loss 1.639 fits the z-loss left out as well (1.6391 vs 1.6393); the answer is one computation,
    # so a gradient that carries the z-loss's 2λ·lse·p rules that mistake out for the loss beside it.
    result = sce("check", *CAPPED, f"--grad={gradient}", "--loss", "1.639")
    assert result.exit_code == status, result.stdout[-400:]
    assert sce("check", *CAPPED, "--loss", "1.639").exit_code == 3  # the loss alone cannot tell


@pytest.mark.parametrize(("gradient", "status"), [("-0.3382,0.8057", 0), ("-0.34,0.8", 3)])
def test_a_csv_row_whose_gradient_rules_the_mistake_out_is_graded(tmp_path, sce, gradient, status):
    answers = tmp_path / "answers.csv"
    answers.write_text(f"z0,z1,label,grad_z0,grad_z1,loss\n-2,-0.1,0,{gradient},1.639\n", encoding="utf-8")
    result = sce("check", "--csv", answers, "--softcap", "2", "--z-loss", "0.01", "--grad-cols", "grad_z0,grad_z1",
                 "--loss-col", "loss")  # fmt: skip
    assert result.exit_code == status, result.stdout


def test_a_worksheets_answers_to_the_digits_it_asks_for_are_graded_correct(sce, tmp_path):
    # The sheet asks for "at least 4 significant digits"; a class answering every language-model exercise of
    # `--count 200 --seed 11 --classes 2` right to 4 digits got "too few digits to grade" on 9 of them,
    # e.g. z = (-2, -0.1), c = 0: the loss 1.639 fits the z-loss left out, which the gradient given rules out.
    import csv

    sheet, key = tmp_path / "sheet.md", tmp_path / "key.csv"
    made = sce("exercise", "--count", "200", "--seed", "11", "--classes", "2", "--level", "language-model",
               "-o", sheet, "--answers", key)  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "to at least 4 significant digits" in sheet.read_text(encoding="utf-8")
    rows = list(csv.DictReader(key.open(encoding="utf-8")))
    for row in rows:
        for column in ("grad_z0", "grad_z1", "loss"):
            value = float(row[column])
            row[column] = "0.0000" if value == 0 else f"{value:#.4g}"
    answers = tmp_path / "answers.csv"
    with answers.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    command = next(line for line in made.stdout.splitlines() if line.startswith("check the key:"))
    options = command.split("--loss-col loss", 1)[1].split()
    graded = sce("check", "--csv", answers, "--id-col", "exercise", "--logit-cols", "z0,z1",
                 "--grad-cols", "grad_*", "--loss-col", "loss", *options)  # fmt: skip
    assert graded.exit_code == 0, graded.stdout[-600:]
