"""`sce check --csv --dtype float32`: a file of answers computed in float32 is graded as float32
computes, so every right float32 answer passes and a wrong one still fails.

The right answers come from mpmath at 50 digits (tests/reference.py) rounded to float32, from
float32 computations written here in numpy (the textbook's e/Σe, and exp(log-softmax) as PyTorch's
backward forms it), and from PyTorch's own float32 output, typed in."""

from __future__ import annotations

import json
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference import log_softmax

ROWS = [([2.0, 3.0, 4.0], 1), ([0.0, 40.0, -1.0], 1), ([1.5, -0.5, 0.25], 0), ([-1.0, 2.0, 0.5], 2)]
# Rows where the float32 logits are not the written ones, and a confident row whose label entry p − 1
# is tiny but computed from numbers near 1.
HARD_ROWS = [([0.1, 0.2, 0.3], 2), ([1234.567, 1230.1, 1233.9], 0), ([20.0, 0.0, -3.0], 0), ([-7.3, 8.9, 8.7], 1)]


def exact(logits: list[float], label: int) -> tuple[list[float], float]:
    """∂L/∂z and L at 50 digits, rounded to float64."""
    log_p = log_softmax(logits)
    gradient = [float(mp.exp(log_p[k]) - (1 if k == label else 0)) for k in range(len(logits))]
    return gradient, float(-log_p[label])


def textbook_float32(logits: list[float], label: int, via_log: bool = False) -> tuple[list[float], float]:
    """The computation in float32 from the float32 logits: shift, exp, sum; p = e/Σe, or p = exp(log p)."""
    z = np.asarray(logits, dtype=np.float32)
    shifted = z - z.max()
    total = np.exp(shifted).sum(dtype=np.float32)
    log_p = shifted - np.log(total)
    p = np.exp(log_p) if via_log else np.exp(shifted) / total
    p[label] -= np.float32(1)
    return [float(v) for v in p], float(-log_p[label])


def write(path: Path, rows, answer) -> Path:
    classes = len(rows[0][0])
    names = [f"z{k}" for k in range(classes)]
    lines = [",".join([*names, "label", "loss", *(f"grad_{n}" for n in names)])]
    for logits, label in rows:
        gradient, loss = answer(logits, label)
        lines.append(",".join([*map(repr, logits), str(label), repr(loss), *map(repr, gradient)]))
    path.write_text("\n".join(lines) + "\n")
    return path


GRADE = ("--grad-cols", "grad_*", "--loss-col", "loss")


def nearest_float32(logits: list[float], label: int) -> tuple[list[float], float]:
    gradient, loss = exact(logits, label)
    return [float(np.float32(g)) for g in gradient], float(np.float32(loss))


def test_correctly_rounded_float32_answers_pass_check_csv_with_the_dtype_it_advises(tmp_path, sce):
    path = write(tmp_path / "f32.csv", ROWS, nearest_float32)
    advised = sce("check", "--csv", path, *GRADE)
    assert advised.exit_code == 1
    assert "fix: grade it as float32 with --dtype float32" in advised.stdout
    result = sce("check", "--csv", path, *GRADE, "--dtype", "float32")
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "verdict: correct"


# PyTorch 2.x, CPU, float32: F.cross_entropy(z, y, reduction="none") and z.grad of its sum,
# printed with repr(float(...)).
PYTORCH_FLOAT32 = """z0,z1,z2,label,loss,grad_z0,grad_z1,grad_z2
2,3,4,1,1.4076058864593506,0.09003058075904846,-0.7552714943885803,0.665241003036499
1.5,-0.5,0.25,0,0.3519519567489624,-0.296686053276062,0.09518317878246307,0.20150281488895416
"""


def test_pytorch_float32_output_passes_check_csv_dtype_float32(tmp_path, sce):
    path = tmp_path / "torch32.csv"
    path.write_text(PYTORCH_FLOAT32)
    result = sce("check", "--csv", path, *GRADE, "--dtype", "float32")
    assert result.exit_code == 0, result.stdout
    # Graded as float64, it is float32's answer, and the output says how to grade it so.
    plain = sce("check", "--csv", path, *GRADE)
    assert plain.exit_code == 1 and "--dtype float32" in plain.stdout


@pytest.mark.parametrize("via_log", [False, True], ids=["softmax", "exp-log-softmax"])
def test_float32_programs_pass_on_logits_float32_cannot_hold_and_on_confident_rows(tmp_path, sce, via_log):
    path = write(tmp_path / "hard.csv", HARD_ROWS, lambda z, y: textbook_float32(z, y, via_log))
    result = sce("check", "--csv", path, *GRADE, "--dtype", "float32")
    assert result.exit_code == 0, result.stdout


def test_float32_answers_with_a_mistake_still_fail_with_dtype_float32(tmp_path, sce):
    def off_by_one(logits, label):
        return textbook_float32(logits, (label + 1) % len(logits))

    def slightly_off(logits, label):
        gradient, loss = textbook_float32(logits, label)
        return [g * (1 + 1e-5) for g in gradient], loss * (1 + 1e-5)

    for answer in (off_by_one, slightly_off):
        path = write(tmp_path / f"{answer.__name__}.csv", ROWS + HARD_ROWS, answer)
        result = sce("check", "--csv", path, *GRADE, "--dtype", "float32", "-f", "json")
        assert result.exit_code == 1, answer.__name__
        assert json.loads(result.stdout)["verdict"] == "not_correct"
    named = sce("check", "--csv", tmp_path / "off_by_one.csv", *GRADE, "--dtype", "float32")
    assert "mistake: −1 at the wrong class: the label's index plus one (off by one)" in named.stdout


def test_a_float32_mean_over_rows_passes_with_dtype_float32(tmp_path, sce):
    rows = ROWS + HARD_ROWS

    def mean_float32(logits, label):
        gradient, loss = textbook_float32(logits, label)
        return [float(np.float32(g) / np.float32(len(rows))) for g in gradient], loss

    path = write(tmp_path / "mean.csv", rows, mean_float32)
    result = sce("check", "--csv", path, "--grad-cols", "grad_*", "--reduction", "mean", "--dtype", "float32")
    assert result.exit_code == 0, result.stdout


def test_a_logit_beyond_float32s_range_is_refused_as_sce_batch_refuses_it(tmp_path, sce):
    path = tmp_path / "huge.csv"
    path.write_text("z0,z1,label,grad_z0,grad_z1\n1e39,0,0,0,0\n")
    result = sce("check", "--csv", path, "--grad-cols", "grad_*", "--dtype", "float32")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "sce: error: line 2, column z0: logit 1e+39 is beyond float32's range (±3.4e+38); compute in float64 "
        "(--dtype float64)\n"
    )


def test_exact_zeros_and_extreme_rows_in_float32_raise_no_raw_warning(tmp_path, sce):
    # A one-hot row's exact 0 entries, huge and masked logits: graded, with nothing on stderr.
    path = tmp_path / "extremes.csv"
    path.write_text(
        "z0,z1,label,loss,grad_z0,grad_z1\n1e30,-1e30,0,0,0,0\n100,100,1,0.6931471805599453,0.5,-0.5\n"
        "-inf,0,1,0,0,0\n"
    )
    result = sce("check", "--csv", path, *GRADE, "--dtype", "float32")
    assert (result.exit_code, result.stderr) == (0, ""), result.stdout


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    classes=st.integers(2, 40),
    rows=st.integers(1, 6),
    scale=st.sampled_from([0.1, 3.0, 30.0, 300.0]),
    seed=st.integers(0, 2**32 - 1),
    via_log=st.booleans(),
)
def test_any_float32_programs_right_answer_passes_and_its_off_by_one_fails(
    tmp_path, sce, classes, rows, scale, seed, via_log
):
    rng = np.random.default_rng(seed)
    drawn = [((rng.normal(size=classes) * scale).tolist(), int(rng.integers(classes))) for _ in range(rows)]
    path = write(tmp_path / "right.csv", drawn, lambda z, y: textbook_float32(z, y, via_log))
    result = sce("check", "--csv", path, *GRADE, "--dtype", "float32")
    assert result.exit_code == 0, result.stdout
    # Graded as float64, it is named for what it is, with the flag that passes it; or, where float32 wrote
    # 0.0 for a gradient of 1e-60 (one decimal, as y − p is to one decimal), too few digits to grade.
    plain = sce("check", "--csv", path, *GRADE)
    named = "fix: grade it as float32 with --dtype float32" in plain.stdout
    assert plain.exit_code in (0, 3) or named, plain.stdout
    wrong = write(tmp_path / "wrong.csv", drawn, lambda z, y: textbook_float32(z, (y + 1) % classes, via_log))
    # Unless the shifted label's gradient is the same in float32 (two equal logits): then it is right.
    same = all(
        np.allclose(textbook_float32(z, (y + 1) % classes)[0], textbook_float32(z, y)[0], rtol=0, atol=1e-6)
        for z, y in drawn
    )
    if not same:
        assert sce("check", "--csv", wrong, *GRADE, "--dtype", "float32").exit_code == 1


def test_the_float32_advice_is_given_only_where_dtype_float32_then_passes(tmp_path, sce):
    # Right in float32 but for one entry a hundred ulps off: not float32's answer, so no advice.
    def one_entry_off(logits, label):
        gradient, loss = textbook_float32(logits, label)
        gradient[0] += 100 * float(np.spacing(np.float32(abs(gradient[0]) or 1.0)))
        return gradient, loss

    path = write(tmp_path / "off.csv", ROWS + HARD_ROWS, one_entry_off)
    plain = sce("check", "--csv", path, *GRADE)
    assert plain.exit_code == 1
    # The loss column is float32's and is named so; the gradient is not, and is not called float32's.
    assert "mistake: loss: computed in float32 (PyTorch's default type), not in float64" in plain.stdout
    assert "mistake: computed in float32" not in plain.stdout and "gradient: computed" not in plain.stdout
    assert sce("check", "--csv", path, *GRADE, "--dtype", "float32").exit_code == 1
    right = write(tmp_path / "right.csv", ROWS + HARD_ROWS, textbook_float32)
    advised = sce("check", "--csv", right, "--grad-cols", "grad_*")  # no loss column: the gradient alone tells
    assert advised.stdout.splitlines()[-3:] == [
        "mistake: computed in float32 (PyTorch's default type), not in float64",
        "fix: grade it as float32 with --dtype float32",
        "verdict: not correct",
    ]


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--reduction", "mean"],
        ["--reduction", "sum"],
        ["--smoothing", "0.1"],
        ["--weight", "1,2,3,0.5,1,1", "--reduction", "mean"],
        ["--z-loss", "0.01"],
        ["--softcap", "5"],
        ["--temperature", "2"],
        ["--z-loss", "1e-4", "--softcap", "3", "--reduction", "mean", "--smoothing", "0.2", "--smoothing-style",
         "off-target"],
    ],
)  # fmt: skip
def test_sce_batchs_float32_output_passes_under_every_option_and_is_named_float32s(tmp_path, sce, options):
    # A round trip: sce batch computes in float32, check --csv grades it as float32 (and names it so in float64).
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(40, 6)) * 4, rng.integers(0, 6, 40)
    y[3] = -100  # an ignored row
    lines = ["z0,z1,z2,z3,z4,z5,label", *(",".join([*map(repr, row.tolist()), str(lab)]) for row, lab in zip(z, y))]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out32.csv"
    assert sce("batch", tmp_path / "in.csv", "-q", "--dtype", "float32", *options, "-o", out).exit_code == 0
    graded = ("check", "--csv", out, *GRADE, "--logit-cols", "z*", *options)
    result = sce(*graded, "--dtype", "float32")
    assert result.exit_code == 0, result.stdout
    assert "fix: grade it as float32 with --dtype float32" in sce(*graded).stdout


def test_logits_beyond_float32s_range_are_graded_in_float64_without_the_float32_candidate(tmp_path, sce):
    # z = (1e308, −1e308), label 0: the loss is exactly 0 (e^(−2e308) underflows). Naming the mistake of a
    # wrong row tried float32's computation of these logits, which it cannot hold: typed check crashed and
    # check --csv said "compute in float64", which it was doing.
    assert sce("check", "1e308", "-1e308", "-l", "0", "--loss", "0").exit_code == 0
    wrong = sce("check", "1e308", "-1e308", "-l", "0", "--loss", "1")
    assert wrong.exit_code == 1 and wrong.stderr == "", wrong.output
    answers = tmp_path / "big.csv"
    answers.write_text("z0,z1,label,loss\n1e308,-1e308,0,0\n1e308,-1e308,0,1\n", encoding="utf-8")
    result = sce("check", "--csv", answers, "--loss-col", "loss")
    assert result.exit_code == 1 and result.stderr == "", result.output
    assert "rows wrong: 1" in result.stdout
