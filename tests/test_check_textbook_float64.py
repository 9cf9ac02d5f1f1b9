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
