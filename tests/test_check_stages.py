"""Stage checks: `sce check LOGITS -l C --stage NAME=VALUES` grades each intermediate of the derivation
with the digits-to-tolerance rule, the verdicts and the named mistakes of a typed answer.

Expected values come from mpmath at 50 digits; the mistaken stages are computed here by hand.
"""

from __future__ import annotations

import json

import mpmath
import pytest

from sce.grading import catalogue

mpmath.mp.dps = 50
Z, LABEL = (2, 3, 4), 1


def exact_stages() -> dict[str, list[mpmath.mpf]]:
    z = [mpmath.mpf(v) for v in Z]
    m = max(z)
    e = [mpmath.exp(v - m) for v in z]
    total = mpmath.fsum(e)
    s = [v / total for v in e]
    return {
        "shifted": [v - m for v in z],
        "exp": e,
        "sum_exp": [total],
        "probs": s,
        "loss": [-mpmath.log(s[LABEL])],
        "dL_ds": [-1 / s[k] if k == LABEL else mpmath.mpf(0) for k in range(len(z))],
        "ds_dz": [s[j] * ((1 if j == k else 0) - s[k]) for j in range(len(z)) for k in range(len(z))],
        "grad": [s[k] - (1 if k == LABEL else 0) for k in range(len(z))],
    }


def written(values: list, digits: int = 8) -> str:
    """Each value to ``digits`` significant digits; an exact 0 with as many decimals (not "0.0", ±0.05)."""
    return ",".join(mpmath.nstr(v, digits, strip_zeros=False) if v else "0." + "0" * digits for v in values)


def check(sce, *args: str):
    return sce("check", *map(str, Z), "-l", str(LABEL), *args)


def test_every_stage_written_to_eight_digits_is_correct(sce):
    stages = [f"--stage={name}={written(values)}" for name, values in exact_stages().items()]
    result = check(sce, *stages, "-f", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["verdict"] == "correct"
    names = ["shifted", "exp", "sum_exp", "probabilities", "loss", "dL_ds", "ds_dz", "gradient"]
    assert [q["name"] for q in document["quantities"]] == names
    for quantity, values in zip(document["quantities"], exact_stages().values()):
        assert [e["expected"] for e in quantity["entries"]] == pytest.approx([float(v) for v in values], rel=1e-15)


@pytest.mark.parametrize(
    ("stage", "wrong", "mistake"),
    [
        ("shifted", lambda s: [max(Z) - v for v in Z], catalogue.SHIFT_REVERSED),
        ("exp", lambda s: [mpmath.exp(v) for v in Z], catalogue.EXP_NOT_SHIFTED),
        ("sum_exp", lambda s: [mpmath.fsum(mpmath.exp(v) for v in Z)], catalogue.EXP_NOT_SHIFTED),
        (
            "dL_ds",
            lambda s: [1 / s["probs"][LABEL] if k == LABEL else 0 for k in range(3)],
            catalogue.DL_DS_SIGN_DROPPED,
        ),
        ("dL_ds", lambda s: s["grad"], catalogue.DL_DZ_FOR_DL_DS),
        (
            "ds_dz",
            lambda s: [v if j == k else 0 for j in range(3) for k in range(3) for v in [s["ds_dz"][3 * j + k]]],
            catalogue.JACOBIAN_DIAGONAL,
        ),
    ],
)
def test_a_stage_made_the_usual_wrong_way_is_named(sce, stage, wrong, mistake):
    result = check(sce, "--stage", f"{stage}={written(wrong(exact_stages()), 6)}")
    assert result.exit_code == 1, result.output
    assert f"mistake: {mistake.name}" in result.stdout
    assert f"fix: {mistake.fix}" in result.stdout
    assert result.stdout.splitlines()[-1] == "verdict: not correct"


def test_the_same_mistake_in_two_stages_is_one_diagnosis(sce):
    unshifted = [mpmath.exp(v) for v in Z]
    result = check(sce, "--stage", f"exp={written(unshifted, 6)}", "--stage", f"sum_exp={written([sum(unshifted)], 6)}")
    assert result.exit_code == 1
    assert result.stdout.count(f"mistake: {catalogue.EXP_NOT_SHIFTED.name}") == 2
    assert "more than one mistake" not in result.stdout


def test_a_stage_with_too_few_digits_is_not_graded_as_correct(sce):
    # L = −ln 0.2447 = 1.408 is within 0.5 of "1", and so is the log-base-10 slip, −log10 0.2447 = 0.611.
    loss, log10 = exact_stages()["loss"][0], -mpmath.log10(exact_stages()["probs"][LABEL])
    assert abs(loss - 1) <= 0.5 and abs(log10 - 1) <= 0.5
    result = check(sce, "--stage", "loss=1", "-f", "json")
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    assert document["verdict"] == "too_few_digits"
    assert document["quantities"][0]["ambiguous_with"] == catalogue.LOG10.name


def test_stage_probs_loss_and_grad_grade_as_the_typed_options_do(sce):
    given = written(exact_stages()["grad"], 4)
    as_stage = check(sce, "--stage", f"grad={given}", "-f", "json")
    as_option = check(sce, "--grad", given, "-f", "json")
    assert as_stage.exit_code == as_option.exit_code == 0
    assert json.loads(as_stage.stdout) == json.loads(as_option.stdout)


def test_a_single_number_stage_has_no_class_column(sce):
    result = check(sce, "--stage", "sum_exp=1.5032")
    assert result.exit_code == 0
    assert [line.rstrip() for line in result.stdout.splitlines()[:4]] == [
        "sum_exp",
        "expected    given   difference   tolerance",
        "─" * 46,
        "  1.5032   1.5032     -1.5e-05       5e-05   ✓",
    ]


def test_the_stages_follow_the_temperature_as_steps_does(sce):
    # With T = 2 the softmax's input is z/2: shifted (z − max z)/2 = (−1, −0.5, 0).
    result = check(sce, "--temperature", "2", "--stage", "shifted=-1,-0.5,0", "--stage", "exp=0.367879,0.606531,1")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--stage", "expo=1,2,3"],
            "--stage 'expo': no such stage; the stages are shifted, exp, sum_exp, probs, loss, dL_ds, ds_dz, grad",
        ),
        (
            ["--stage", "dl_ds=0,-4,0"],
            "--stage 'dl_ds': no such stage; did you mean dL_ds? the stages are shifted, exp, sum_exp, probs, loss, "
            "dL_ds, ds_dz, grad",
        ),
        (["--stage", "exp=1,2"], "--stage exp: 2 numbers; exp has one number per class: give 3"),
        (["--stage", "sum_exp=1,2"], "--stage sum_exp: 2 numbers; sum_exp is one number"),
        (["--stage", "ds_dz=1,0,0"], "--stage ds_dz: 3 numbers; ds_dz is a 3×3 matrix: give 9 numbers, row by row"),
        (["--stage", "ds_dz=@"], "--stage ds_dz: no file named after @; write @FILE, e.g. ds_dz=@jacobian.txt"),
        (
            ["--stage", "ds_dz=@no such file.txt"],
            "--stage ds_dz: cannot read 'no such file.txt': No such file or directory",
        ),
        (
            ["--z-loss", "1e-4", "--stage", "dL_ds=0,-4,0"],
            "--stage dL_ds: not a stage here: with --z-loss the loss depends on the logits through log Σ e^z as "
            "well, not through s alone",
        ),
        (["--stage", "exp=1,1,1", "--stage", "exp=1,1,1"], "--stage exp: given twice; give each stage once"),
        (
            ["--stage", "grad=0,0,0", "--grad", "0,0,0"],
            "--stage grad: the gradient is given by --grad too; give it once",
        ),
        (["--stage", "exp=1,x,1"], None),
        (["--stage", "exp"], None),
        (["--stage", "=1,2,3"], None),
        (["--stage", "ds_dz=@/"], "--stage ds_dz: cannot read '/': Is a directory"),
    ],
)
def test_a_bad_stage_is_one_line_with_status_2(sce, args, message):
    result = check(sce, *args)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sce: error: --stage")
    assert message is None or lines[0] == f"sce: error: {message}"
    assert result.stdout == ""


def test_stages_go_with_typed_logits_only(sce, tmp_path):
    (tmp_path / "a.csv").write_text("label,z0,z1\n0,1,2\n")
    result = sce("check", "--csv", tmp_path / "a.csv", "--grad-cols", "z*", "--stage", "exp=1,1")
    assert result.exit_code == 2
    assert result.stderr == "sce: error: --stage goes with typed LOGITS and --label or --target, not with files\n"


def test_the_jacobian_comes_from_a_file_row_by_row_with_its_digits(sce, tmp_path):
    values = exact_stages()["ds_dz"]
    rows = [", ".join(mpmath.nstr(v, 5, strip_zeros=False) for v in values[3 * j : 3 * j + 3]) for j in range(3)]
    (tmp_path / "jacobian.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = check(sce, "--stage", f"ds_dz=@{tmp_path / 'jacobian.txt'}", "-f", "json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)["quantities"][0]["entries"]
    assert [(e["row"], e["column"]) for e in entries] == [(j, k) for j in range(3) for k in range(3)]
    assert entries[1]["tolerance"] == pytest.approx(5e-7)  # -0.022033 written with 5 significant digits
    # One swapped pair of digits in one entry is pointed out by its row and column.
    rows[2] = rows[2].replace(mpmath.nstr(values[7], 5, strip_zeros=False), "-0.16820")
    (tmp_path / "jacobian.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = check(sce, "--stage", f"ds_dz=@{tmp_path / 'jacobian.txt'}")
    assert result.exit_code == 1
    assert "  Entry 2,1: -0.16820 looks like a slip for -0.16280 (two digits swapped)." in result.stdout


def test_the_jacobian_follows_the_softcap_and_the_temperature(sce):
    # ∂s_j/∂z_k by mpmath's own differentiation of s(z) = softmax(c·tanh(z/c)/T), c = 5, T = 2.
    def softmax_of(j):
        def s(*z):
            b = [5 * mpmath.tanh(v / 5) / 2 for v in z]
            return mpmath.exp(b[j]) / mpmath.fsum(mpmath.exp(v) for v in b)

        return s

    point = [mpmath.mpf(v) for v in Z]
    jacobian = [
        mpmath.diff(softmax_of(j), point, tuple(1 if i == k else 0 for i in range(3)))
        for j in range(3)
        for k in range(3)
    ]
    result = check(sce, "--softcap", "5", "--temperature", "2", "--stage", f"ds_dz={written(jacobian)}")
    assert result.exit_code == 0, result.output


def test_dl_ds_with_soft_targets_is_minus_y_over_s(sce):
    z, y = [mpmath.mpf(v) for v in (1, 2, 3)], [mpmath.mpf(v) for v in ("0.2", "0.3", "0.5")]
    total = mpmath.fsum(mpmath.exp(v) for v in z)
    dl_ds = [-t / (mpmath.exp(v) / total) for v, t in zip(z, y)]
    right = sce("check", "1", "2", "3", "--target", "0.2,0.3,0.5", "--stage", f"dL_ds={written(dl_ds, 6)}")
    assert right.exit_code == 0, right.output
    flipped = sce(
        "check", "1", "2", "3", "--target", "0.2,0.3,0.5", "--stage", f"dL_ds={written([-v for v in dl_ds], 6)}"
    )
    assert f"mistake: {catalogue.DL_DS_SIGN_DROPPED.name}" in flipped.stdout


def test_a_float32_stage_allows_float32_rounding_only(sce):
    # e^(z − max z) in float64 to 17 digits: float32's own result differs in its 8th digit, within 4 float32 ulps.
    exact = written(exact_stages()["exp"], 17)
    assert check(sce, "--dtype", "float32", "--stage", f"exp={exact}").exit_code == 0
    assert check(sce, "--stage", "exp=0.1353352814912796,0.3678794205188751,1.0").exit_code == 1


def test_two_stages_wrong_in_two_ways_are_more_than_one_mistake(sce):
    unshifted = [mpmath.exp(v) for v in Z]
    flipped = [-v for v in exact_stages()["dL_ds"]]
    result = check(
        sce, "--stage", f"exp={written(unshifted, 6)}", "--stage", f"dL_ds={written(flipped, 6)}", "-f", "json"
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["more_than_one_mistake"] == [
        {"quantity": "exp", "name": catalogue.EXP_NOT_SHIFTED.name},
        {"quantity": "dL_ds", "name": catalogue.DL_DS_SIGN_DROPPED.name},
    ]
