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
