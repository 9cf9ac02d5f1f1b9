"""`sce grad` run in-process (the `sce` fixture): exact output, exit status, error text."""

from __future__ import annotations

import json
import re

import pytest

# The numbers are the seeds' example to five significant digits (mpmath: 0.090030573,
# 0.24472847, 0.66524096, loss 1.4076060, gradient -0.75527153 where the post misprints -0.775).
# The signed bars are the gradient in half cells of 5 a side: 0.090031 → 1 half, −0.75527 → 8
# halves to the left, 0.66524 → 7 halves to the right.
SEED_TABLE = """\
class   logit z   target y   softmax p                 ∂L/∂z                          
──────────────────────────────────────────────────────────────────────────────────────
    0         2     0.0000    0.090031   ▊          0.090031        │▌                
    1         3     1.0000     0.24473   ██         -0.75527    ████│        label    
    2         4     0.0000     0.66524   █████▍      0.66524        │███▌    predicted

loss L = 1.4076
reduction: none
"""


def test_seed_example_table_exactly(sce):
    result = sce("grad", "2", "3", "4", "--label", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == SEED_TABLE
    assert result.stderr == ""


def test_output_carries_no_ansi_codes_when_not_a_terminal(sce):
    assert "\x1b[" not in sce("grad", "2", "3", "4", "-l", "1").stdout


def test_no_color_is_honoured_on_a_terminal(sce):
    forced = sce("grad", "2", "3", "4", "-l", "1", env={"FORCE_COLOR": "1", "TERM": "xterm-256color"})
    plain = sce("grad", "2", "3", "4", "-l", "1", env={"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": "1"})
    assert "\x1b[36m" in forced.stdout  # the cyan bars
    assert "\x1b[36m" not in plain.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["2", "3", "4", "--label", "1"],
        ["2,3,4", "-l", "1"],
        ["2, 3, 4", "-l", "1"],
        ["--label", "1", "2", "3", "4"],
        ["2", "3", "4", "-l1"],
    ],
)
def test_logits_can_be_typed_in_several_ways(args, sce):
    result = sce("grad", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["logits"] == [2.0, 3.0, 4.0]


def test_negative_logits_typed_naturally(sce):
    result = sce("grad", "-1", "2.5", "-3e-2", "--label", "0", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["logits"] == [-1.0, 2.5, -0.03]


@pytest.mark.parametrize(
    "args,logits",
    [
        (["-1,-2,-3", "-l", "0"], [-1.0, -2.0, -3.0]),
        (["-.5", "-inf", "1", "-l", "0"], [-0.5, "-inf", 1.0]),
        (["1", "\u22122", "-l", "0"], [1.0, -2.0]),  # a pasted Unicode minus
        (["-l", "0", "--", "-1", "-2"], [-1.0, -2.0]),
    ],
)
def test_more_negative_number_spellings(args, logits, sce):
    result = sce("grad", "-f", "json", *args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["logits"] == logits


def test_json_is_full_precision_with_the_documented_keys(sce):
    result = sce("grad", "0", "40", "--label", "1", "--format", "json")
    document = json.loads(result.stdout)
    assert set(document) >= {"logits", "label", "target", "probabilities", "loss", "gradient"}
    assert document["loss"] == 4.248354255291589e-18  # log1p(e^-40) = 4.2483542552915889e-18 (mpmath)
    assert document["label"] == 1
    assert document["target"] == [0.0, 1.0]
    assert document["gradient"][0] == -document["gradient"][1]
    assert document["options"]["dtype"] == "float64"


def test_json_target_is_the_smoothed_distribution(sce):
    document = json.loads(sce("grad", "2", "3", "4", "-l", "1", "--smoothing", "0.3", "-f", "json").stdout)
    assert document["target"] == pytest.approx([0.1, 0.8, 0.1], rel=1e-15)


def test_json_float32_uses_float32_shortest_digits(sce):
    document = json.loads(sce("grad", "2", "3", "4", "-l", "1", "--dtype", "float32", "-f", "json").stdout)
    # float32's shortest repr of e^2/(e^2+e^3+e^4) = 0.0900305731...
    assert document["probabilities"][0] == 0.09003057


def test_csv_has_a_header_and_one_row_per_class(sce):
    lines = sce("grad", "2", "3", "4", "-l", "1", "-f", "csv").stdout.splitlines()
    assert lines[0] == "class,logit,target,probability,gradient,loss,reduction"
    assert len(lines) == 4
    row = lines[2].split(",")
    assert row[:3] == ["1", "3.0", "1.0"]
    assert float(row[4]) == pytest.approx(-0.755272, abs=5e-7)


def test_digits_rounds_only_the_display(sce):
    result = sce("grad", "2", "3", "4", "-l", "1", "--digits", "6")
    assert "-0.755272" in result.stdout
    assert "loss L = 1.40761" in result.stdout
    assert "loss L = 1.407606" in sce("grad", "2", "3", "4", "-l", "1", "--digits", "7").stdout


def test_tiny_values_are_shown_in_scientific_notation_not_as_zero(sce):
    result = sce("grad", "0", "40", "-l", "1")
    assert "loss L = 4.2484e-18" in result.stdout  # mpmath: log(1 + e^-40) = 4.248354255e-18
    assert "-4.2484e-18" in result.stdout


def test_options_are_named_under_the_table(sce):
    result = sce("grad", "2", "3", "4", "-l", "1", "--smoothing", "0.1", "-w", "1,2,3", "-T", "2")
    assert "with label smoothing 0.1; class weights 1, 2, 3; temperature 2" in result.stdout


def test_version_and_help(sce):
    from sce import __version__

    assert sce("--version").stdout == f"sce {__version__}\n"
    help_text = sce("grad", "--help").stdout
    assert "--label" in help_text and "--target" in help_text


# --- bad input: one line on stderr, exit 2, no traceback -----------------------------

BAD_INPUT = [
    (["--label", "1"], "no logits given"),
    (["2", "x", "4", "-l", "1"], "LOGITS (entry 1): 'x' is not a number"),
    (["2", "nan", "4", "-l", "1"], "LOGITS (class 1): logit nan is not allowed"),
    (["2", "inf", "4", "-l", "1"], "LOGITS (class 1): logit inf is not allowed"),
    (["-inf", "-inf", "-l", "0"], "every logit in the row is -inf"),
    (["2", "3", "4"], "say which class is correct with --label"),
    (["2", "3", "4", "-l", "1", "-t", "0,1,0"], "give either --label or --target, not both"),
    (["2", "3", "4", "-l", "-1"], "--label: label -1 is negative"),
    (["2", "3", "4", "-l", "3"], "--label: label 3 is out of range for 3 classes"),
    (["2", "3", "4", "-l", "1.5"], "--label: '1.5' is not a class index"),
    (["2", "3", "4", "-l", "one"], "--label: 'one' is not a class index"),
    (["2", "3", "4", "-t", "0.5,0.5"], "--target: 2 numbers for 3 logits"),
    (["2", "3", "4", "-t", "-0.5,1,0.5"], "--target (class 0): target -0.5 is not a probability"),
    (["2", "3", "4", "-t", "0.2,0.3,0.6"], "--target: targets sum to 1.1, not 1"),
    (["2", "3", "4", "-l", "1", "--smoothing", "1.5"], "--smoothing: label smoothing 1.5 is outside [0, 1]"),
    (["2", "3", "4", "-l", "1", "--smoothing", "-0.1"], "--smoothing: label smoothing -0.1 is outside [0, 1]"),
    (["2", "3", "4", "-l", "1", "-w", "1,2"], "--weight: 2 numbers for 3 logits"),
    (["2", "3", "4", "-l", "1", "-w", "1,-2,3"], "--weight (class 1): weight -2 is not a non-negative"),
    (["2", "3", "4", "-l", "1", "-T", "0"], "--temperature: temperature 0.0 is not a positive"),
    (["2", "3", "4", "-l", "1", "-T", "-1"], "--temperature: temperature -1.0 is not a positive"),
    (["2", "3", "4", "-l", "1", "--dtype", "float16"], "'float16' is not one of 'float64', 'float32'"),
    (["2", "3", "4", "-l", "1", "-f", "xml"], "'xml' is not one of 'table', 'json', 'csv'"),
    (["2", "3", "4", "-l", "1", "--digits", "0"], "--digits: 0 is out of range"),
    (["2", "3", "4", "--lable", "1"], "No such option: --lable"),
    (["2", "3", "4", "-l"], "Option '-l' requires an argument"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[" ".join(a) or "(none)" for a, _ in BAD_INPUT])
def test_bad_input_gets_one_clear_line_and_exit_2(args, message, sce):
    result = sce("grad", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_regression_an_overflowing_weight_is_named_as_a_cause_of_an_infinite_loss(sce):
    """The loss 5.0067… times a weight of 1e308 exceeds float64's 1.8e308: the warning blamed
    a target class of probability 0 alone."""
    result = sce("grad", "0", "0", "-5", "-l", "2", "--weight", "1e308,1e308,1e308")
    assert result.exit_code == 0
    assert result.stderr == (
        "sce: warning: the loss is infinite: a class with target mass has probability 0 in float64 "
        "(its logit is -inf, or so far below the others that the loss exceeds 1.8e308), "
        "or its class weight times the loss exceeds 1.8e308 (scale the weights down)\n"
    )


def test_regression_an_infinite_float32_loss_names_float32s_range(sce):
    result = sce("grad", "0", "-inf", "-l", "1", "--dtype", "float32")
    assert result.stderr == (
        "sce: warning: the loss is infinite: a class with target mass has probability 0 in float32 "
        "(its logit is -inf, or so far below the others that the loss exceeds 3.4e38)\n"
    )


@pytest.mark.parametrize("command", [(), ("grad",), ("batch",), ("check",), ("test",), ("samples",), ("completion",)])
def test_a_bare_command_shows_its_help_and_says_why_it_failed(sce, command):
    result = sce(*command)
    name = " ".join(("sce", *command))
    assert f"Usage: {name}" in result.stdout
    assert result.stderr == f"{name}: error: no arguments given; the help above shows what {name} takes\n"
    assert result.exit_code == 2


def test_masked_label_warns_and_still_answers(sce):
    result = sce("grad", "1", "-inf", "3", "-l", "1")
    assert result.exit_code == 0
    assert result.stderr.startswith("sce: warning: the loss is infinite")
    assert "loss L = inf" in result.stdout


def test_ignored_row_with_mean_warns_about_nan(sce):
    result = sce("grad", "2", "3", "4", "-l", "-100", "--reduction", "mean")
    assert result.exit_code == 0
    assert "divides by 0" in result.stderr
    assert "loss L = nan" in result.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["2,3,,4", "-l", "1"], "LOGITS: entry 2 is empty"),
        ([",2,3", "-l", "1"], "LOGITS: entry 0 is empty"),
        (["2;3;;4", "-l", "1"], "LOGITS: entry 2 is empty"),
        (["2", "3", "4", "-l", "1", "-w", "1,,2"], "--weight: entry 1 is empty"),
        (["2", "3", "4", "-t", "0.5,,0.5"], "--target: entry 1 is empty"),
    ],
)
def test_regression_an_empty_field_is_refused_not_skipped(args, said, sce):
    """`2,3,,4` was read as three logits: the 4 of class 3 became class 2's, and --label 2
    pointed at it. A doubled comma or semicolon is a number left out."""
    result = sce("grad", *args)
    assert result.exit_code == 2
    assert result.stderr == (
        f"sce: error: {said} (two commas or semicolons in a row); write its number, or remove the extra one\n"
    )


def test_a_trailing_comma_and_runs_of_spaces_are_separators(sce):
    result = sce("grad", "2, 3 ,  4,", "-l", "1", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["logits"] == [2.0, 3.0, 4.0]


def test_regression_an_empty_field_in_a_logits_file_names_its_line(tmp_path, sce):
    (tmp_path / "z.txt").write_text("1\n2,3,,4\n")
    result = sce("grad", "--logits-file", str(tmp_path / "z.txt"), "-l", "2")
    assert result.exit_code == 1
    assert result.stderr == (
        "sce: error: --logits-file: line 2: entry 2 is empty (two commas or semicolons in a row); "
        "write its number, or remove the extra one\n"
    )


def test_regression_an_endless_logits_file_stops_at_a_bound(tmp_path, monkeypatch, sce):
    """`--logits-file /dev/zero` (or a producer that never closes its pipe) grew until the
    kernel killed it, 24 GB later; the read is now in pieces, up to 256 MB (here 100 bytes)."""
    import sce.cli.typed_inputs as inputs

    monkeypatch.setattr(inputs, "LOGITS_FILE_BYTES", 100)
    said = (
        "holds more than 0 MB; the file is read as one vector, one number per class (a million classes is about "
        "20 MB): for many rows use sce batch\n"
    )
    result = sce("grad", "--logits-file", "-", "-l", "0", input="1 " * 60)
    assert (result.exit_code, result.stderr) == (1, f"sce: error: --logits-file: stdin {said}")
    (tmp_path / "z.txt").write_text("1 " * 60)
    result = sce("grad", "--logits-file", str(tmp_path / "z.txt"), "-l", "0")
    assert (result.exit_code, result.stderr) == (1, f"sce: error: --logits-file: {tmp_path / 'z.txt'} {said}")
    result = sce("grad", "--logits-file", "-", "-l", "0", "--format", "json", input="1 " * 50)
    assert result.exit_code == 0 and json.loads(result.stdout)["logits"] == [1.0] * 50


def test_regression_a_long_bad_token_in_a_logits_file_is_quoted_by_its_start(tmp_path, sce):
    (tmp_path / "z.txt").write_text("1 2 " + "1" * 100 + "x 2\n")
    result = sce("grad", "--logits-file", str(tmp_path / "z.txt"), "-l", "0")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: --logits-file: line 1: '" + "1" * 40 + "'… (101 characters) is not a number; "
        "the file holds numbers only\n",
    )


def test_digits_means_significant_digits_in_every_command(sce, tmp_path):
    # mpmath: p = (0.0900305732, 0.244728471, 0.665240956), L = 1.40760596: three significant digits each.
    grad = sce("grad", "2", "3", "4", "-l", "1", "--digits", "3").stdout
    assert all(text in grad for text in ("0.0900", "0.245", "0.665", "-0.755", "loss L = 1.41\n"))
    check = sce("check", "2", "3", "4", "-l", "1", "--grad", "0.09,-0.755,0.665", "--digits", "3").stdout
    assert "0.0900" in check and "-0.755" in check
    table = tmp_path / "seed.csv"
    table.write_text("z0,z1,z2,label\n2,3,4,1\n")
    batch = sce("batch", str(table), "--digits", "3", "--quiet").stdout
    assert batch.splitlines()[1] == "2,3,4,1,0.09,0.245,0.665,1.41,0.09,-0.755,0.665"


def test_a_probability_far_below_one_keeps_its_significant_digits(sce):
    # Four decimals once showed p = 0.0067 with two significant digits; mpmath: e^-5/(1 + e^-5) = 0.00669285092.
    assert "0.0066929" in sce("grad", "0", "-5", "-l", "0").stdout


# --- every digit shown is the exact value's ----------------------------------------------------------------------


#: What the table's bars are drawn with: words made of these alone are bars, not numbers.
BAR_CHARACTERS = set("█▏▎▍▌▋▊▉▐│")


def table_rows(text: str) -> list[list[str]]:
    """The table's rows as words, without the bars of p and of the gradient."""
    return [
        [word for word in line.split() if not set(word) <= BAR_CHARACTERS]
        for line in text.splitlines()
        if line.split()[:1] and line.split()[0].isdigit()
    ]


def test_every_digit_grad_shows_is_a_digit_of_the_exact_value(sce):
    # float64's nearest values print as 0.6652409557748218 (16 digits) and 0.66524095577482178 (17);
    # the exact value is 0.665240955774821888…: from 12 digits on sce shows the exact value's digits.
    import mpmath as mp

    from .reference import log_softmax

    with mp.workdps(50):
        log_p = log_softmax([2, 3, 4])
        exact = [mp.exp(v) for v in log_p]
        gradient = [exact[0], exact[1] - 1, exact[2]]
        for digits in range(1, 18):
            result = sce("grad", "2", "3", "4", "-l", "1", "--digits", digits)
            assert result.exit_code == 0
            for cells in table_rows(result.stdout):
                k = int(cells[0])
                assert cells[3] == mp.nstr(exact[k], digits, strip_zeros=False).removesuffix("."), (digits, cells)
                assert float(cells[-2] if cells[-1] in ("label", "predicted") else cells[-1]) == pytest.approx(
                    float(gradient[k]), rel=10.0 ** (1 - digits)
                )
            loss = next(line for line in result.stdout.splitlines() if line.startswith("loss L = "))
            assert loss == "loss L = " + mp.nstr(-log_p[1], digits, strip_zeros=False).removesuffix("."), (digits, loss)
    markdown = sce("grad", "2", "3", "4", "-l", "1", "--digits", "17", "-f", "markdown").stdout
    assert "| 2 | 4 | 0.0000000000000000 | 0.66524095577482189 | 0.66524095577482189 | predicted |" in markdown
    assert "Loss $L = 1.4076059644443803$." in markdown


#: One row, options as softmax_cross_entropy takes them (labels as the second argument).
EXACT_CASES = {
    "seed": ([2.0, 3.0, 4.0], 1, {}),
    "temperature, weights, mean": ([2.0, 3.0, 4.0], 1, {"temperature": 0.7, "weight": [0.5, 2.0, 1.0], "reduction": "mean"}),
    "softcap, z-loss, temperature": ([2.0, -3.0, 4.0], 0, {"softcap": 5.0, "z_loss": 0.1, "temperature": 2.0}),
    "z-loss, negative lse, mean": ([-10.0, -12.0, -11.0], 2, {"z_loss": 0.5, "reduction": "mean"}),
    "uniform smoothing, weights, sum": ([1.0, -2.0, 0.5, 7.0], 3, {"label_smoothing": 0.2, "weight": [1, 2, 3, 4],
                                                                   "reduction": "sum"}),
    "off-target smoothing": ([1.0, -2.0, 0.5, 7.0], 3, {"label_smoothing": 0.2, "smoothing_style": "off-target"}),
    "soft targets, smoothing, mean": ([1.0, 2.0, 3.0], None, {"targets": [0.2, 0.3, 0.5], "label_smoothing": 0.1,
                                                              "reduction": "mean"}),
    "confident": ([0.0, 40.0, -1.0], 1, {}),
    "against a confident prediction": ([0.0, 800.0], 0, {}),
    "masked class": ([-float("inf"), 3.0, 4.0], 1, {}),
    "masked class under a cap": ([-float("inf"), 3.0, 4.0], 1, {"softcap": 2.0}),
    "logits far apart": ([700.0, -700.0, 0.0], 1, {"temperature": 0.01}),
    "tiny differences": ([1.0, 1.000000000001, 1.0], 0, {"temperature": 1e-3}),
    "inherent case": ([0.0, 1e-300], None, {"targets": [0.5, 0.5]}),
    "one class": ([5.0], 0, {"z_loss": 0.1}),
    "soft targets, weights, z-loss, mean": ([1.0, 2.0, 3.0], None, {"targets": [0.2, 0.3, 0.5], "weight": [1, 2, 3],
                                                                    "z_loss": 0.3, "temperature": 3.0,
                                                                    "reduction": "mean"}),
    "soft, off-target smoothing, cap": ([1.0, 2.0, 30.0], None, {"targets": [0.2, 0.3, 0.5], "label_smoothing": 0.1,
                                                                 "smoothing_style": "off-target", "softcap": 10.0}),
}


@pytest.mark.parametrize("name", list(EXACT_CASES))
def test_the_exact_values_grad_shows_agree_with_the_oracle_to_25_digits(name):
    import mpmath as mp

    from sce.explain.exact_values import exact_row
    from sce.loss import softmax_cross_entropy

    from . import reference

    logits, label, options = EXACT_CASES[name]
    options = {"reduction": "none", **options}
    targets = options.pop("targets", None)
    result = softmax_cross_entropy(
        [logits], None if label is None else [label], **({"targets": [targets]} if targets else {}), **options
    )
    exact = exact_row(result, 17)
    assert exact is not None
    with mp.workdps(60):
        oracle = reference.analytic(
            [logits], None if label is None else [label], **({"targets": [targets]} if targets else {}), **options
        )
        loss = oracle.loss[0] if isinstance(oracle.loss, list) else oracle.loss

        def agrees(value, expected) -> bool:
            expected = mp.mpf(expected)
            return abs(mp.mpf(str(value)) - expected) <= mp.mpf("1e-25") * abs(expected)

        assert agrees(exact.loss, loss), (exact.loss, loss)
        for k in range(len(logits)):
            assert agrees(exact.probabilities[k], oracle.probabilities[0][k]), k
            assert agrees(exact.target[k], oracle.target[0][k]), k
            assert agrees(exact.gradient[k], oracle.gradient[0][k]), (k, exact.gradient[k], oracle.gradient[0][k])


def test_a_gradient_float64_rounds_to_0_is_shown_exactly_at_any_digits(sce):
    # [0, 800], label 1: ∂L/∂z₁ = -S/(1 + S) with S = e^-800 = 3.6678745841776872e-348 (mpmath),
    # below float64's smallest subnormal: a small row is shown exactly at 5 digits as at 12.
    import mpmath as mp

    with mp.workdps(60):
        s = mp.exp(-800)
        expected = mp.nstr(-s / (1 + s), 12, strip_zeros=False, min_fixed=0, max_fixed=0)
    rows = table_rows(sce("grad", "0", "800", "-l", "1", "--digits", "12").stdout)
    assert rows[1][-3] == expected, rows
    with mp.workdps(60):
        expected = mp.nstr(-s / (1 + s), 5, strip_zeros=False, min_fixed=0, max_fixed=0)
    assert table_rows(sce("grad", "0", "800", "-l", "1").stdout)[1][-3] == expected


def test_beyond_the_exact_limit_digits_are_capped_and_said_so(sce, tmp_path):
    from sce.explain.exact_values import EXACT_FROM_DIGITS, EXACT_LIMIT

    logits = tmp_path / "logits.txt"
    logits.write_text(" ".join(str(k % 7 * 0.25) for k in range(EXACT_LIMIT + 1)))
    result = sce("grad", "--logits-file", logits, "-l", "3", "--digits", "17")
    assert result.exit_code == 0, result.stderr
    assert f"digits: {EXACT_FROM_DIGITS - 1} shown; beyond {EXACT_LIMIT:,} classes" in " ".join(result.stdout.split())
    loss = next(line for line in result.stdout.splitlines() if line.startswith("loss L = "))
    assert len(loss.split("= ")[1].replace(".", "")) == EXACT_FROM_DIGITS - 1


def test_a_value_beyond_any_decimal_is_not_shown_with_digits_it_does_not_have(sce):
    # [1e308, -1e308, 0]: the probabilities of classes 1 and 2 are e^-1e308 and e^-2e308, beyond 10^-100,000,000;
    # float64's 0 is shown, with 11 digits, and the line says why.
    result = sce("grad", "1e308", "-1e308", "0", "-l", "0", "--digits", "17")
    assert result.exit_code == 0, result.stderr
    assert "digits: 11 shown; where the loss or the gradient is not finite, or a value lies beyond" in " ".join(
        result.stdout.split()
    )
    assert table_rows(result.stdout)[0][3] == "1.0000000000"


def test_the_proofs_show_no_more_digits_than_float64_gives_them(sce):
    # ∂s/∂z's entries are float64 products, a few ulps from the exact ones: at --digits 17 their last digits would
    # not be the exact value's (s₀(1 - s₀) = 0.081925069064993243… where float64 holds 0.08192506906499324).
    result = sce("grad", "2", "3", "4", "-l", "1", "--jacobian", "--hessian", "--digits", "17")
    assert result.exit_code == 0, result.stderr
    assert "0.081925069065 " in result.stdout and "0.0819250690649932" not in result.stdout
    assert "digits: 11 shown for --jacobian, --hessian and --verify" in " ".join(result.stdout.split())
    assert "digits: 11 shown" not in sce("grad", "2", "3", "4", "-l", "1", "--jacobian", "--digits", "11").stdout


def random_case(rng) -> tuple[list[float], list[int] | None, dict]:
    """Logits of 1 to 5 classes and magnitudes from 1e-12 to 1e3, with any options at once."""
    size = rng.choice([1, 2, 3, 5])
    logits = [rng.choice([rng.uniform(-20, 20), rng.uniform(-1, 1) * 10 ** rng.randint(-12, 3)]) for _ in range(size)]
    options: dict = {"reduction": rng.choice(["none", "sum", "mean"])}
    drawn = {
        "temperature": [0.01, 0.5, 3.0, 100.0],
        "softcap": [0.5, 5.0, 30.0],
        "z_loss": [1e-4, 0.1, 2.0],
        "label_smoothing": [0.1, 0.5, 1.0],
    }
    for name, values in drawn.items():
        if rng.random() < 0.35:
            options[name] = rng.choice(values)
    options["smoothing_style"] = rng.choice(["uniform", "off-target"])
    if rng.random() < 0.3:
        options["weight"] = [rng.choice([0.0, 0.5, 1.0, 3.0]) for _ in range(size)]
    if rng.random() < 0.3:
        weights = [rng.random() for _ in range(size)]
        options["targets"] = [[v / sum(weights) for v in weights]]
        return logits, None, options
    return logits, [rng.randrange(size)], options


def test_exact_values_agree_with_the_oracle_over_a_sweep_of_option_combinations():
    # A seeded sweep of sizes, magnitudes and every option at once; each must agree with the 60-digit oracle
    # to 22 digits (or both be NaN: a mean over no weight).
    import random
    import warnings

    import mpmath as mp

    from sce.explain.exact_values import exact_row
    from sce.loss import softmax_cross_entropy

    from . import reference

    def agrees(value, expected) -> bool:
        expected, value = mp.mpf(expected), mp.mpf(str(value))
        if mp.isnan(expected):
            return bool(mp.isnan(value))
        return abs(value - expected) <= mp.mpf("1e-22") * max(abs(expected), mp.mpf("1e-300"))

    rng = random.Random(3)
    compared = 0
    for _ in range(120):
        logits, labels, options = random_case(rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exact = exact_row(softmax_cross_entropy([logits], labels, **options), 17)
        if exact is None:
            continue
        compared += 1
        with mp.workdps(60):
            oracle = reference.analytic([logits], labels, **options)
            loss = oracle.loss[0] if isinstance(oracle.loss, list) else oracle.loss
            assert agrees(exact.loss, loss), (logits, labels, options)
            for k in range(len(logits)):
                assert agrees(exact.gradient[k], oracle.gradient[0][k]), (logits, labels, options, k)
                assert agrees(exact.probabilities[k], oracle.probabilities[0][k]), (logits, labels, options, k)
    assert compared >= 100


@pytest.mark.parametrize("output_format", ["json", "csv", "markdown", "table", "html"])
@pytest.mark.parametrize("extra", [(), ("--softcap", "5"), ("--smoothing", "0.1"), ("--dtype", "float32")])
def test_no_probability_is_negative_zero(sce, output_format, extra):
    # The exact s₀ = 1/(1 + e^(1e300)) is positive: it rounds to +0, never to -0.0.
    import json
    import math

    result = sce("grad", "1", "2", "-l", "0", "-T", "1e-300", *extra, "--format", output_format)
    assert result.exit_code == 0, result.output
    if output_format == "json":
        probabilities = json.loads(result.stdout)["probabilities"]
        assert all(math.copysign(1.0, p) > 0 for p in probabilities), probabilities
    assert not re.search(r"(?<![\w.])-0(\.0*)?(?![\d.e])", result.stdout), result.stdout


def test_a_gradient_entry_float64_cancels_is_shown_with_the_exact_digits(sce):
    # z = (0, 2.1972245773362196), target (0.1, 0.9): p₀ = 1/(1 + e^z₁) equals 0.1 to 17 digits, so float64's
    # (t₀ + t₁)·p₀ − t₀ is -2.78e-17 in float64 where the exact value is -1.9104e-17 (mpmath; the float64 targets
    # sum to 1 + 2.8e-17, and PyTorch's gradient of -Σ t log p is p·Σt − t); every format shows the exact digits.
    import mpmath as mp

    with mp.workdps(60):
        z1, t0, t1 = mp.mpf(2.1972245773362196), mp.mpf(0.1), mp.mpf(0.9)
        exact = (t0 + t1) / (1 + mp.exp(z1)) - t0
        expected = mp.nstr(exact, 5, strip_zeros=False, min_fixed=0, max_fixed=0)
    assert expected == "-1.9104e-17"
    command = ("grad", "0", "2.1972245773362196", "-t", "0.1,0.9")
    assert table_rows(sce(*command).stdout)[0][4] == expected
    assert expected in sce(*command, "--format", "markdown").stdout
    assert expected in sce(*command, "--format", "html").stdout


def test_a_wide_row_whose_entry_cancels_is_shown_with_the_exact_digits(sce, tmp_path):
    # The same two classes beside 1,998 of logit -inf: beyond the always-exact size, the cancellation decides.
    import mpmath as mp

    logits = tmp_path / "z.txt"
    logits.write_text(" ".join(["0", "2.1972245773362196"] + ["-inf"] * 1998), encoding="utf-8")
    with mp.workdps(60):
        z1, t0, t1 = mp.mpf(2.1972245773362196), mp.mpf(0.1), mp.mpf(0.9)
        exact = (t0 + t1) / (1 + mp.exp(z1)) - t0
    expected = mp.nstr(exact, 5, strip_zeros=False, min_fixed=0, max_fixed=0)
    result = sce("grad", "--logits-file", logits, "-t", ",".join(["0.1", "0.9"] + ["0"] * 1998))
    assert result.exit_code == 0, result.output
    assert table_rows(result.stdout)[0][4] == expected
