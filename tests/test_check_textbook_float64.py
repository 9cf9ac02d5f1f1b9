"""A textbook float64 answer (shift, exp, divide, p[y] -= 1) written at full precision is right:
on a confident row its label entry p − 1 is formed from numbers near 1, so its rounding is in ulps
of 1, not of the tiny difference. Typed check and check --csv allow that, and no more."""

from __future__ import annotations

import numpy as np
import pytest

ROWS = [([0.0, 0.0, 8.0], 2), ([1.0, -2.0, 9.5], 2), ([3.0, 0.5, -1.0], 0), ([0.0, 7.0, 0.1], 1), ([0.0, 30.0], 1)]


def textbook(logits: list[float], label: int, shift_label: int = 0) -> tuple[np.ndarray, float]:
    z = np.array(logits)
    e = np.exp(z - z.max())
    p = e / e.sum()
    loss = -np.log(p[label])
    p[(label + shift_label) % len(z)] -= 1
    return p, float(loss)


def csv_of(rows, shift_label: int = 0) -> str:
    lines = ["z0,z1,z2,label,loss,grad_z0,grad_z1,grad_z2"]
    for logits, label in rows:
        gradient, loss = textbook(logits, label, shift_label)
        lines.append(",".join([*map(repr, logits), str(label), repr(loss), *map(repr, gradient.tolist())]))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("logits", "label"), ROWS)
def test_a_textbook_float64_gradient_typed_in_is_correct(sce, logits, label):
    gradient, loss = textbook(logits, label)
    result = sce(
        "check", *map(repr, logits), "-l", str(label), f"--grad={','.join(map(repr, gradient.tolist()))}",
        f"--loss={loss!r}",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout


def test_a_textbook_float64_file_is_correct_and_its_off_by_one_is_not(tmp_path, sce):
    three = [row for row in ROWS if len(row[0]) == 3]
    right = tmp_path / "right.csv"
    right.write_text(csv_of(three))
    graded = sce("check", "--csv", right, "--grad-cols", "grad_*", "--loss-col", "loss")
    assert graded.exit_code == 0, graded.stdout
    assert "float32" not in graded.stdout
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(csv_of(three, shift_label=1))
    graded = sce("check", "--csv", wrong, "--grad-cols", "grad_*", "--loss-col", "loss")
    assert graded.exit_code == 1
    assert "off by one" in graded.stdout


def test_the_allowance_is_ulps_of_the_operands_not_a_licence(sce):
    # The label's entry of [0, 0, 8] (p − 1 = −0.00067047541691441…) off by 1e-14: a hundred times
    # what a textbook loop's rounding of numbers near 1 can cost, so it is wrong.
    gradient, _ = textbook([0.0, 0.0, 8.0], 2)
    gradient[2] += 1e-14
    result = sce("check", "0", "0", "8", "-l", "2", f"--grad={','.join(map(repr, gradient.tolist()))}")
    assert result.exit_code == 1, result.stdout


def test_rounding_never_excuses_a_sign_no_computation_gives(tmp_path, sce):
    # [0, 40], label 1: ∂L/∂z₁ = s₁ − 1 = −4.2484e-18 (mpmath), never positive however s₁ is rounded;
    # a loss is never negative. Both are within float64's rounding of numbers near 1, and still wrong.
    flipped = sce("check", "0", "40", "-l", "1", "--grad=4.2484e-18,1.0e-16")
    assert flipped.exit_code == 1, flipped.stdout
    assert sce("check", "0", "40", "-l", "1", "--grad=4.2484e-18,-1.1102230246251565e-16").exit_code == 0
    negative = sce("check", "0", "100", "50", "-l", "1", "--loss=-3.0000000000000000e-16")
    assert negative.exit_code == 1, negative.stdout
    gradient = tmp_path / "sign.csv"
    gradient.write_text("z0,z1,label,g0,g1\n0,40,1,4.2484e-18,1.0e-16\n")
    assert sce("check", "--csv", gradient, "--logit-cols", "z0,z1", "--grad-cols", "g0,g1").exit_code == 1
    loss = tmp_path / "loss.csv"
    loss.write_text("z0,z1,z2,label,loss\n0,100,50,1,-3.0000000000000000e-16\n")
    assert sce("check", "--csv", loss, "--loss-col", "loss").exit_code == 1


# Logits (0, 100, 50), label 1: the exact loss is 1.93e-22 (mpmath) and −log s ≥ 0 for any rounded s ≤ 1.
CONFIDENT = ("0", "100", "50", "-l", "1")


@pytest.mark.parametrize("loss", ["-3.0000000000000000e-16", "-3e-16", "-1.4210854715202004e-14", "-1.42e-14", "-0.5"])
def test_a_negative_typed_loss_is_not_correct_however_small_and_is_named_as_one(sce, loss):
    # −1.42e-14 is −ulp(100), what an unshifted log Σ e^z − z_c can give; float32's loss here is 0, of the
    # right sign, so "computed in float32" explains none of these, nor −L = −1.9e-22 a loss of −3e-16.
    result = sce("check", *CONFIDENT, f"--loss={loss}")
    assert result.exit_code == 1, result.stdout
    assert "  mistake: a negative loss: −log s ≥ 0 for every probability s ≤ 1" in result.stdout
    # Wrong by its sign alone where the difference is within the tolerance (float64's rounding of 100's ulps).
    assert ("✗ wrong sign" in result.stdout) == (abs(float(loss)) < 8.9e-16)


def test_a_loss_of_the_opposite_sign_to_its_digits_is_named_sign_flipped(sce):
    # z = (2, 3, 4), label 1: L = 1.40760596… (mpmath); −1.4076 is −L to its digits, a negative loss besides.
    result = sce("check", "2", "3", "4", "-l", "1", "--loss=-1.4076")
    assert result.exit_code == 1
    assert "  mistake: sign flipped: y − p instead of p − y" in result.stdout


def test_a_negative_loss_in_a_csv_is_not_correct_and_is_named_as_one(sce, tmp_path):
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "id,z0,z1,z2,label,loss\n"
        "a,0,100,50,1,-1.4210854715202004e-14\n"
        "c,0,100,50,1,-3e-16\n"
        "e,2,3,4,1,-1.4076\n",
        encoding="utf-8",
    )
    result = sce("check", "--csv", answers, "--id-col", "id", "--logit-cols", "z0,z1,z2", "--label-col", "label",
                 "--loss-col", "loss")  # fmt: skip
    assert result.exit_code == 1, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line[:2] in ("a ", "c ", "e ")}
    negative = "not correct     0/1   a negative loss: −log s ≥ 0 for every probability s ≤ 1"
    assert negative in rows["a"] and negative in rows["c"], rows
    assert "sign flipped: y − p instead of p − y" in rows["e"], rows


@pytest.mark.parametrize("output_format", ["table", "json", "html"])
def test_an_entry_wrong_by_its_sign_alone_says_so_in_every_format(sce, output_format):
    # (0, 40), label 1: ∂L/∂z₁ = −4.2484e-18 (mpmath); +1e-16 is within the allowance of float64's p − 1, but
    # p − 1 is never positive. The row says why it is wrong: its difference is below the tolerance shown.
    result = sce("check", "0", "40", "-l", "1", "--grad=4.2484e-18,1.0e-16", "--format", output_format)
    assert result.exit_code == 1, result.stdout
    if output_format == "json":
        import json

        entries = json.loads(result.stdout)["quantities"][0]["entries"]
        assert [(entry["correct"], entry["wrong_sign"]) for entry in entries] == [(True, False), (False, True)]
    else:
        assert result.stdout.count("✗ wrong sign") == 1
    wrong = sce("check", "0", "40", "-l", "1", "--grad=4.2484e-18,-1.0e-10", "--format", output_format)
    assert wrong.exit_code == 1 and "wrong sign" not in wrong.stdout.replace('"wrong_sign": false', "")


def test_a_sign_is_graded_where_the_exact_value_rounds_to_0(tmp_path, sce):
    # (0, 800), label 1: p₀ = e^-800 = 3.7e-348 (mpmath), which float64 rounds to 0, and so ∂L/∂z₁ = −p₀ too.
    # Every computation gives 0 (or −0.0) there, never +1e-300 at the label nor −1e-300 elsewhere, nor a
    # negative loss.
    assert sce("check", "0", "800", "-l", "1", "--grad=0,-0", "--loss", "0").exit_code == 0
    for flag in ("--grad=0,1e-300", "--grad=-1e-300,0", "--loss=-1e-300"):
        result = sce("check", "0", "800", "-l", "1", flag)
        assert result.exit_code == 1, (flag, result.stdout)
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "z0,z1,label,grad_z0,grad_z1\n0,800,1,0,1e-300\n0,800,1,0,0\n0,800,1,-1e-300,0\n", encoding="utf-8"
    )
    result = sce("check", "--csv", answers, "--grad-cols", "grad_z0,grad_z1")
    assert result.exit_code == 1 and "rows wrong: 2" in result.stdout, result.stdout
