"""`sce grad --steps`: the derivation, checked stage by stage against values worked by hand."""

from __future__ import annotations

import json
import math
import re

import pytest
from latex2mathml.converter import convert

from sce.explain.derivation import Elided, Equation, Matrix, build_derivation
from sce.loss import softmax_cross_entropy
from sce.render.latex_text import to_unicode

# The seeds' example, by hand: e^2, e^3, e^4 and their sum (the post shows e^2 = 7.389).
E2, E3, E4 = math.exp(2), math.exp(3), math.exp(4)
TOTAL = E2 + E3 + E4
S = (E2 / TOTAL, E3 / TOTAL, E4 / TOTAL)


def steps(sce, *args: str) -> str:
    result = sce("grad", *args, "--steps", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    return result.stdout


def equations(stage) -> list[Equation]:
    return [item for item in stage.items if isinstance(item, Equation)]


def value_of(stage, symbolic_prefix: str, name: str) -> float:
    for equation in equations(stage):
        if equation.symbolic.startswith(symbolic_prefix):
            return equation.values[name]
    raise AssertionError(f"no equation {symbolic_prefix!r} in {stage.title}")


# --- the textbook example at every stage ----------------------------------------------------


@pytest.fixture(scope="module")
def seed_stages():
    return build_derivation(softmax_cross_entropy([2, 3, 4], 1))


def test_seed_stages_in_order(seed_stages):
    assert [stage.title for stage in seed_stages] == [
        "Setup", "Softmax, stabilised", "Loss", "Chain rule",
        "Case i = c", "Case i ≠ c", "Result", "The Jacobian route", "Sanity checks", "How sce computes it",
    ]


def test_seed_setup(seed_stages):
    z, y = equations(seed_stages[0])
    assert list(z.values.values()) == [2, 3, 4]
    assert list(y.values.values()) == [0, 1, 0]
    assert "c = 1" in seed_stages[0].notes[1]


def test_seed_softmax(seed_stages):
    stage = seed_stages[1]
    assert value_of(stage, "M =", "M") == 4
    assert [value_of(stage, f"z_{{{k}}} - M", "d") for k in range(3)] == [-2, -1, 0]
    for k, expected in enumerate((math.exp(-2), math.exp(-1), 1.0)):
        assert value_of(stage, f"e^{{z_{{{k}}} - M}}", "e") == pytest.approx(expected, rel=1e-15)
    assert value_of(stage, "\\sum_j e^{z_j - M}", "sum") == pytest.approx(1 + math.exp(-1) + math.exp(-2), rel=1e-15)
    assert value_of(stage, "e^{z_{0}}", "e") == pytest.approx(7.389, abs=5e-4)  # the post's e^2
    assert value_of(stage, "\\sum_j e^{z_j}", "sum") == pytest.approx(TOTAL, rel=1e-15)
    for k in range(3):
        assert value_of(stage, f"s_{{{k}}} =", "s") == pytest.approx(S[k], rel=1e-15)
    assert any("cancels in the ratio" in note for note in stage.notes)
    assert any("overflow" in note for note in stage.notes)


def test_seed_loss_and_rounding_note(seed_stages):
    stage = seed_stages[2]
    assert value_of(stage, "L = -\\log s_{1}", "L") == pytest.approx(math.log(TOTAL) - 3, rel=1e-15)
    # At three significant digits -1/0.245 = -4.08, but the exact s_c gives -1/0.2447285 = -4.09: said so.
    assert f"{-1 / 0.245:.3g}, {-1 / S[1]:.3g}" == "-4.08, -4.09"
    chain = build_derivation(softmax_cross_entropy([2, 3, 4], 1), 3)[3]
    assert any("-\\frac{1}{0.245} = -4.08" in note and "-4.09" in note for note in chain.notes)


def test_seed_chain_rule_and_cases(seed_stages):
    chain, at_label, off_label, result = seed_stages[3:7]
    assert value_of(chain, "\\frac{\\partial L}{\\partial s_{1}}", "v") == pytest.approx(-1 / S[1], rel=1e-15)
    assert value_of(at_label, "\\frac{\\partial s_{1}}{\\partial z_{1}}", "v") == pytest.approx(S[1] * (1 - S[1]), rel=1e-14)
    assert value_of(at_label, "\\frac{\\partial L}{\\partial z_{1}} = s_{1} - 1", "g") == pytest.approx(S[1] - 1, rel=1e-15)
    assert value_of(off_label, "\\frac{\\partial L}{\\partial z_{0}}", "g") == pytest.approx(S[0], rel=1e-15)
    assert value_of(off_label, "\\frac{\\partial L}{\\partial z_{2}}", "g") == pytest.approx(S[2], rel=1e-15)
    gradient = equations(result)[0].values
    assert list(gradient.values()) == pytest.approx([S[0], S[1] - 1, S[2]], rel=1e-15)
    sanity = next(stage for stage in seed_stages if stage.title == "Sanity checks")
    assert abs(value_of(sanity, "\\sum_i \\frac{\\partial L}{\\partial z_i}", "sum")) < 1e-15


def test_the_sanity_checks_give_log_k_for_uniform_logits_and_a_zero_sum(sce):
    text = sce("grad", "2", "3", "4", "-l", "1", "--steps").stdout
    sanity = text[text.index("Sanity checks"):text.index("How sce computes it")]
    assert "log(3) = 1.0986" in sanity  # ln 3 = 1.098612…
    assert "L = 1.4076 is above it" in sanity
    assert "Σᵢ ∂L/∂zᵢ = -1.1102e-16" in sanity
    confident = sce("grad", "0", "40", "-l", "1", "--steps").stdout
    assert "log(2) = 0.69315" in confident and "is below it" in confident


def test_how_sce_computes_it_comes_last_and_says_whether_it_applies(sce):
    seed = sce("grad", "2", "3", "4", "-l", "1", "--steps").stdout
    last = seed[seed.index("How sce computes it"):]
    assert "sce computes" not in seed[:seed.index("How sce computes it")]
    assert "s_c = 0.24473 is not above 1/2" in last
    confident = sce("grad", "0", "40", "-l", "1", "--steps").stdout
    assert "is above 1/2, so this is the form used" in confident


def test_seed_jacobian_route(seed_stages):
    stage = seed_stages[7]
    matrix = next(item for item in stage.items if isinstance(item, Matrix))
    for i in range(3):
        for j in range(3):
            expected = S[i] * ((i == j) - S[j])
            assert matrix.rows[i][j] == pytest.approx(expected, rel=1e-14, abs=1e-17)
    product = [eq for eq in equations(stage) if eq.symbolic.endswith("\\partial \\mathbf{z}}")][-1]
    assert list(product.values.values()) == pytest.approx([S[0], S[1] - 1, S[2]], rel=1e-14)


def test_seed_terminal_text_has_the_posts_numbers_and_not_the_typo(sce):
    text = steps(sce, "2", "3", "4", "--label", "1")
    assert "e^(z₀) = 7.3891" in text
    assert "s₁ = e^(z₁ - M)/(Σⱼ e^(zⱼ - M)) = 0.36788/1.5032 = 0.24473" in text
    assert "L = -log s₁ = -log(0.24473) = 1.4076" in text
    assert "∂L/∂z₁ = s₁ - 1 = 0.24473 - 1 = -0.75527" in text
    assert "∂L/∂z = (0.090031, -0.75527, 0.66524)" in text
    assert "-0.775" not in text.replace("-0.75527", "")
    for number, title in enumerate(["Setup", "Softmax, stabilised", "Loss", "Chain rule"], start=1):
        assert re.search(rf"^{number}\. {re.escape(title)} ─", text, re.MULTILINE)
    assert "\x1b[" not in text


# --- the general forms ------------------------------------------------------------------------


def test_soft_targets_use_the_general_form():
    stages = build_derivation(softmax_cross_entropy([2, 3, 4], targets=[0.2, 0.5, 0.3]))
    titles = [stage.title for stage in stages]
    assert "Combining the cases" in titles and "Case i = c" not in titles
    result = stages[titles.index("Result")]
    assert "\\mathbf{w} \\odot \\mathbf{y}" in result.notes[0]
    gradient = list(equations(result)[0].values.values())
    assert gradient == pytest.approx([S[0] - 0.2, S[1] - 0.5, S[2] - 0.3], rel=1e-14)
    loss = stages[2]
    expected = -(0.2 * math.log(S[0]) + 0.5 * math.log(S[1]) + 0.3 * math.log(S[2]))
    assert value_of(loss, "L = -\\sum_i", "L") == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize(
    "extra",
    [[], ["-w", "1,2,3"], ["--smoothing", "0.1"], ["--route", "lse"], ["--route", "jacobian"], ["-T", "2"]],
)
def test_a_one_hot_target_given_as_probabilities_is_not_called_soft(sce, extra):
    # -t 0,1,0 is one-hot: the general form is fine, but the words must not call it soft or not one-hot.
    result = sce("grad", "2", "3", "4", "-t", "0,1,0", "--steps", *extra, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.stderr
    assert "not one-hot" not in result.stdout
    assert "soft targets" not in result.stdout
    assert "The target is given as probabilities, and it is one-hot: y₁ = 1" in result.stdout
    markdown = sce("grad", "2", "3", "4", "-t", "0,1,0", "--steps", *extra, "-f", "markdown").stdout
    assert "not one-hot" not in markdown and "soft targets" not in markdown


def test_a_soft_target_is_still_called_soft(sce):
    result = sce("grad", "2", "3", "4", "-t", "0,0.999,0.001", "--steps", env={"COLUMNS": "400"})
    assert "soft targets" in result.stdout
    assert "With a target that is not one-hot, no term drops out" in result.stdout


def test_smoothing_and_weight_say_what_they_changed():
    stages = build_derivation(
        softmax_cross_entropy([2, 3, 4], 1, label_smoothing=0.1, weight=[1, 2, 3])
    )
    notes = " ".join(stages[0].notes)
    assert "Label smoothing $\\varepsilon = 0.1$" in notes
    assert "Class weights" in notes
    # By hand: y = (0.1/3, 0.9 + 0.1/3, 0.1/3), Σ w y = 0.9·2 + (0.1/3)(1 + 2 + 3) = 2.
    y = list(equations(stages[0])[1].values.values())
    assert y == pytest.approx([0.1 / 3, 0.9 + 0.1 / 3, 0.1 / 3], rel=1e-14)
    combine = stages[[s.title for s in stages].index("Combining the cases")]
    assert value_of(combine, "\\sum_j w_j y_j", "sum") == pytest.approx(2.0, rel=1e-14)


def test_temperature_divides_the_logits_and_the_gradient():
    stages = build_derivation(softmax_cross_entropy([2, 3, 4], 1, temperature=2.0))
    assert any("Temperature $T = 2$" in note for note in stages[0].notes)
    softmax = stages[1]
    # The shift comes before the division: M = max z = 4, then (z_i - M) / T.
    assert value_of(softmax, "M =", "M") == 4.0
    assert [value_of(softmax, f"(z_{{{k}}} - M) / T", "d") for k in range(3)] == [-1, -0.5, 0]
    e1, e15, e2 = math.exp(1), math.exp(1.5), math.exp(2)
    p = [e1 / (e1 + e15 + e2), e15 / (e1 + e15 + e2), e2 / (e1 + e15 + e2)]
    result = stages[[s.title for s in stages].index("Result")]
    gradient = list(equations(result)[0].values.values())
    assert gradient == pytest.approx([p[0] / 2, (p[1] - 1) / 2, p[2] / 2], rel=1e-14)


def test_float32_is_named_and_takes_the_one_hot_route(sce):
    text = steps(sce, "2", "3", "4", "-l", "1", "--dtype", "float32")
    assert "computed in float32" in text
    assert "Case i = c" in text and "Combining the cases" not in text


# --- sizes and extremes --------------------------------------------------------------------------


def test_two_classes():
    stages = build_derivation(softmax_cross_entropy([0.5, -0.5], 0))
    s0 = 1 / (1 + math.exp(-1))
    jacobian = next(stage for stage in stages if stage.title == "The Jacobian route")
    matrix = next(item for item in jacobian.items if isinstance(item, Matrix))
    v = s0 * (1 - s0)
    assert [list(row) for row in matrix.rows] == [pytest.approx([v, -v]), pytest.approx([-v, v])]


def test_fifty_classes_are_elided_and_summarised(sce):
    text = steps(sce, *[str(k) for k in range(50)], "--label", "7")
    assert "⋮  (4 more classes)" in text
    assert "z₇ - M = -42" in text  # the label stays visible
    assert "z₄₉ - M = 0" in text  # so does the argmax
    assert "too large to show" in text and "only row 7 matters" in text
    assert len(text.splitlines()) < 150
    stages = build_derivation(softmax_cross_entropy(list(range(50)), 7))
    assert not any(isinstance(item, Matrix) for stage in stages for item in stage.items)
    assert any(isinstance(item, Elided) for stage in stages for item in stage.items)


def test_logits_of_a_thousand_stay_readable(sce):
    text = steps(sce, "1000", "-1000", "0", "--label", "1")
    assert "overflows float64" in text
    assert "e^(z₀) =" not in text  # no unshifted exponentials
    assert "L = -(z₁ - M - log Σⱼ e^(zⱼ - M)) = -(-2000 - log 1) = 2000" in text
    assert "∂L/∂z = (1, -1, 0)" in text
    assert "this route fails in floating point" in text


def test_ignored_label_is_refused(sce):
    result = sce("grad", "2", "3", "-l", "-100", "--steps")
    assert result.exit_code == 2
    assert "nothing to derive" in result.stderr


def test_route_without_steps_is_refused_in_one_line(sce):
    result = sce("grad", "2", "3", "4", "-l", "1", "--route", "lse")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "sce: error: --route lse chooses the route of the --steps derivation; add --steps\n"


@pytest.mark.parametrize(
    "args,named",
    [
        (["-l", "1", "-T", "2"], "--temperature"),
        (["-t", "0.2,0.3,0.5", "-w", "1,2,1"], "--weight"),
        (["-l", "1", "--smoothing", "0.1", "-w", "1,2,1", "-T", "3"], "--weight and --temperature"),
    ],
)
def test_the_log_sum_exp_route_refuses_weights_and_temperature(args, named, sce):
    result = sce("grad", "2", "3", "4", *args, "--steps", "--route", "lse")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr == (
        f"sce: error: --route lse cannot carry {named}; use --route chain (the default), which carries every option\n"
    )
    assert sce("grad", "2", "3", "4", *args, "--steps", "--route", "jacobian").exit_code == 0


@pytest.mark.parametrize(
    "args,named",
    [
        (["-l", "1", "--softcap", "3", "--z-loss", "0.1"], "--softcap and --z-loss"),
        (["-t", "0.2,0.3,0.5", "--softcap", "3"], "--softcap"),
        (["-l", "1", "--z-loss", "0.1", "--smoothing", "0.2"], "--z-loss"),
    ],
)
@pytest.mark.parametrize("route", ["lse", "jacobian"])
def test_routes_other_than_the_chain_rule_refuse_the_cap_and_the_z_loss(args, named, route, sce):
    result = sce("grad", "2", "3", "4", *args, "--steps", "--route", route)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert f"--route {route} cannot carry {named}; use --route chain" in result.stderr
    assert sce("grad", "2", "3", "4", *args, "--steps", "--route", "chain").exit_code == 0


def test_the_log_sum_exp_route_is_three_lines_and_s_minus_y(sce):
    text = sce("grad", "2", "3", "4", "-l", "1", "--steps", "--route", "lse").stdout
    titles = re.findall(r"^\d+\. (.+?) ─", text, re.MULTILINE)
    assert titles == ["Setup", "Softmax, stabilised", "Loss", "The log-sum-exp route", "Result", "Sanity checks",
                      "How sce computes it"]
    assert "L = -log s_c = log Σⱼ e^(zⱼ) - z_c" in text
    # log(e^2 + e^3 + e^4) - 3 = 4 + log(1 + e^-1 + e^-2) - 3 = 1.40760596…
    assert "L = M + log Σⱼ e^(zⱼ - M) - z₁ = 4 + log(1.5032) - 3 = 1.4076" in text
    assert "∂L/∂z₁ = s₁ - y₁ = 0.24473 - 1 = -0.75527" in text
    assert "Case i = c" not in text and "quotient rule" in text  # named only to say it is not needed


def test_the_jacobian_route_is_the_derivation_itself(sce):
    text = sce("grad", "2", "3", "4", "-l", "1", "--steps", "--route", "jacobian").stdout
    titles = re.findall(r"^\d+\. (.+?) ─", text, re.MULTILINE)
    assert titles == ["Setup", "Softmax, stabilised", "Loss", "The Jacobian route", "Result", "Sanity checks",
                      "How sce computes it"]
    assert "By the chain rule through every sⱼ" in text
    assert "-(1/s_c) · s_c(δ_(ci) - sᵢ) = sᵢ - yᵢ" in " ".join(text.split())  # wrapped prose
    assert "The other route" not in text
    # s_1 (1 - s_1) with s_1 = e^3 / (e^2 + e^3 + e^4) = 0.244728…: 0.184836…
    assert re.search(r"^\s+1\s+-0.022033\s+0.18484\s+-0.16280\s*$", text, re.MULTILINE)


@pytest.mark.parametrize("route", ["lse", "jacobian"])
@pytest.mark.parametrize("target", [["-t", "0.2,0.3,0.5"], ["-l", "1", "--smoothing", "0.1"]])
def test_soft_and_smoothed_targets_take_every_route(route, target, sce):
    text = sce("grad", "2", "3", "4", *target, "--steps", "--route", route).stdout
    assert "the target summing to 1" in text
    if target[0] == "-t" and route == "lse":
        # Σ y z = 0.2·2 + 0.3·3 + 0.5·4 = 3.3; L = log(e^2 + e^3 + e^4) - 3.3 = 1.10760596…
        assert "Σᵢ yᵢ zᵢ = 0.2 × 2 + 0.3 × 3 + 0.5 × 4 = 3.3000" in text
        assert "= 4 + log(1.5032) - 3.3 = 1.1076" in text
        assert "∂L/∂z₀ = s₀ - y₀ = 0.090031 - 0.2 = -0.10997" in text


@pytest.mark.parametrize(
    "args,simplified",
    [
        (["-l", "1", "-w", "0.5,2,1"], "w_c (s - y)"),
        (["-l", "1", "-T", "2"], "s - y"),
        (["-t", "0.2,0.3,0.5", "-w", "1,2,3", "-T", "2"], "s Σⱼ wⱼ yⱼ - w ⊙ y"),
    ],
)
def test_the_jacobian_route_takes_weights_and_temperature(args, simplified, sce):
    text = " ".join(sce("grad", "2", "3", "4", *args, "--steps", "--route", "jacobian").stdout.split())
    assert f"simplifies to {simplified}, which is what sce computes" in text
    difference = re.search(r"maxᵢ \|productᵢ - ∂L/∂zᵢ\| = (\S+)", text)
    assert difference and float(difference.group(1)) < 1e-15


def test_json_names_the_route_taken(sce):
    for args, route in (((), "chain"), (("--route", "lse"), "lse"), (("--route", "jacobian"), "jacobian")):
        document = json.loads(sce("grad", "2", "3", "4", "-l", "1", "--steps", "-f", "json", *args).stdout)
        assert document["route"] == route
        titles = [stage["title"] for stage in document["steps"]]
        assert titles[-2:] == ["Sanity checks", "How sce computes it"]
        assert ("The log-sum-exp route" in titles) == (route == "lse")


def test_the_chain_route_is_the_default(sce):
    default = sce("grad", "2", "3", "4", "-l", "1", "--steps").stdout
    assert sce("grad", "2", "3", "4", "-l", "1", "--steps", "--route", "chain").stdout == default
    assert "The Jacobian route" in default and "Case i = c" in default


def test_steps_as_csv_is_refused(sce):
    result = sce("grad", "2", "3", "-l", "0", "--steps", "-f", "csv")
    assert result.exit_code == 2
    assert "--steps cannot be written as csv" in result.stderr


# --- formats ------------------------------------------------------------------------------------------

MARKDOWN_CASES = [
    ["2", "3", "4", "-l", "1"],
    ["2", "3", "4", "-t", "0.2,0.5,0.3"],
    ["2", "3", "4", "-l", "1", "--smoothing", "0.1", "-w", "1,2,3", "-T", "2"],
    ["2", "3", "4", "-l", "1", "--reduction", "mean", "-w", "1,2,3"],
    ["0", "40", "-l", "1"],
    ["1000", "-1000", "0", "-l", "1"],
    [*[str(k) for k in range(50)], "-l", "7"],
    # The language-model options: the cap's and the z-loss's stages, off-target smoothing, D and D_z.
    ["2", "-3", "4", "-l", "1", "--softcap", "3", "--z-loss", "0.01", "-T", "2", "-w", "1,2,1", "--reduction", "mean"],
    ["1", "2", "3", "-t", "0.2,0.3,0.5", "--smoothing", "0.1", "--smoothing-style", "off-target", "--z-loss", "0.1"],
    # Lines written with \approx, negative operands in parentheses, a weight on the one-hot route.
    ["2", "3", "4", "-l", "1", "--digits", "17", "--softcap", "3", "--z-loss", "0.1", "-w", "1,2,1"],
    # The other routes, with a confident label (the 1 + S forms) and with elided classes.
    ["0", "40", "-l", "1", "--route", "lse"],
    [*[str(k) for k in range(12)], "-l", "7", "--route", "jacobian"],
]


def math_pieces(markdown: str) -> list[str]:
    blocks = re.findall(r"^\$\$\n(.*?)\n\$\$$", markdown, re.MULTILINE | re.DOTALL)
    without_blocks = re.sub(r"^\$\$\n.*?\n\$\$$", "", markdown, flags=re.MULTILINE | re.DOTALL)
    inline = re.findall(r"\$([^$\n]+)\$", without_blocks)
    return blocks + inline


@pytest.mark.parametrize("args", MARKDOWN_CASES, ids=[" ".join(a)[:30] for a in MARKDOWN_CASES])
def test_markdown_math_is_valid_latex(args, sce):
    result = sce("grad", *args, "--steps", "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    pieces = math_pieces(result.stdout)
    assert len(pieces) > 20
    for piece in pieces:
        depth = 0
        for char in re.sub(r"\\[{}]", "", piece):
            depth += {"{": 1, "}": -1}.get(char, 0)
            assert depth >= 0, piece
        assert depth == 0, piece
        mathml = convert(piece)  # raises on unbalanced \left/\right, missing arguments
        # latex2mathml passes unknown commands through as text: none may remain.
        assert "\\" not in mathml, (piece, mathml)


def test_markdown_follows_the_posts_layout(sce):
    markdown = sce("grad", "2", "3", "4", "-l", "1", "--steps", "-f", "markdown").stdout
    assert markdown.startswith("## 1. Setup\n")
    assert "$$\nL = -\\log s_{1} = -\\log(0.24473) = 1.4076\n$$" in markdown
    assert "4.2484 \\times 10^{-18}" in sce("grad", "0", "40", "-l", "1", "--steps", "-f", "markdown").stdout


def test_json_steps_are_data_with_full_precision(sce):
    result = sce("grad", "2", "3", "4", "-l", "1", "--steps", "-f", "json")
    document = json.loads(result.stdout)
    assert document["gradient"][1] == pytest.approx(S[1] - 1, rel=1e-15)
    loss_stage = document["steps"][2]
    assert loss_stage["title"] == "Loss"
    equation = loss_stage["items"][0]
    assert equation["type"] == "equation"
    assert equation["formula"] == "L = -\\log s_{1}"
    assert equation["values"]["L"] == pytest.approx(math.log(TOTAL) - 3, rel=1e-15)
    assert "1.4076059644443" in equation["substituted"]
    kinds = {item["type"] for stage in document["steps"] for item in stage["items"]}
    assert kinds == {"equation", "matrix"}


# --- the LaTeX to Unicode converter ---------------------------------------------------------------


@pytest.mark.parametrize(
    "latex,text",
    [
        (r"\frac{\partial L}{\partial z_i}", "∂L/∂zᵢ"),
        (r"s_{12} = \frac{e^{z_{1} - M}}{\sum_j e^{z_j - M}}", "s₁₂ = e^(z₁ - M)/(Σⱼ e^(zⱼ - M))"),
        (r"\operatorname{diag}(\mathbf{s}) - \mathbf{s}\mathbf{s}^\top", "diag(s) - ssᵀ"),
        (r"-\sum_i y_i \log s_i", "-Σᵢ yᵢ log sᵢ"),
        (r"\sum_{j \neq c} s_j", "Σ_(j≠c) sⱼ"),
        (r"e^{-2} = 0.1353", "e⁻² = 0.1353"),
        (r"\frac{5.243e-22}{1.5820}", "5.243e-22/1.5820"),
        (r"a \times [b]", "a × [b]"),
        # A fraction that is a factor of a product is grouped: never one long fraction.
        (r"-\frac{1}{s_c} \cdot s_c(1 - s_c) = s_c - 1", "-(1/s_c) · s_c(1 - s_c) = s_c - 1"),
        (r"\frac{\partial L}{\partial z_i} = \frac{\partial L}{\partial s_c} \cdot \frac{\partial s_c}{\partial z_i}",
         "∂L/∂zᵢ = (∂L/∂s_c) · (∂s_c/∂zᵢ)"),
        (r"\frac{1}{T} \left(a\right)", "(1/T) (a)"),
        (r"0.3 \times \frac{4}{1.5} = 0.8", "0.3 × (4/1.5) = 0.8"),
        # Beside an operator, an equals sign or a bracket a fraction needs no parentheses.
        (r"\sum_i \frac{\partial L}{\partial z_i} = -\frac{1}{0.2} + \left(\frac{a}{b}\right)",
         "Σᵢ ∂L/∂zᵢ = -1/0.2 + (a/b)"),
    ],
)
def test_latex_to_unicode(latex, text):
    assert to_unicode(latex) == text


def test_the_case_i_equals_c_reads_as_a_product_of_a_fraction_and_a_derivative(sce):
    text = sce("grad", "2", "3", "4", "-l", "1", "--steps").stdout
    assert "∂L/∂z_c = -(1/s_c) · s_c(1 - s_c) = s_c - 1" in text
    assert "∂L/∂z₀ = -(1/s₁) · (-s₀ · s₁) = s₀ = 0.090031" in text
    assert "-1/s_c s_c" not in text


def test_brackets_in_formulas_are_not_taken_for_rich_markup():
    from rich.console import Console

    from sce.explain.derivation import Stage
    from sce.render.steps_terminal import print_steps

    console = Console(record=True, width=100, color_system=None)
    stage = Stage("Setup", ("an interval $[0, 1]$ and [bold]not markup[/bold]",), (Equation("x", "[⟨v⟩]", {"v": 0.5}),))
    print_steps(console, [stage])
    text = console.export_text()
    assert "[0, 1]" in text and "[bold]not markup[/bold]" in text and "[0.50000]" in text


def test_every_latex_command_the_derivation_writes_has_a_unicode_form():
    """Regression: `Near $\\pm 1$` showed as "Near pm 1" in the terminal, the
    converter's fallback for a command it does not know being its name."""
    import pathlib
    import re

    from sce.render import latex_text

    known = set(latex_text.SYMBOLS) | latex_text.STYLES | {"frac"}
    package = pathlib.Path(latex_text.__file__).parents[1]
    sources = [*package.joinpath("explain", "derivation").glob("*.py"), package / "explain" / "proofs.py"]
    written = {name for path in sources for name in re.findall(r"\\\\([A-Za-z]+)", path.read_text(encoding="utf-8"))}
    assert written - {"n"} <= known  # "\\n" is a newline in a Python string
    assert to_unicode(r"\pm 1") == "± 1"


# --- every combination of outputs ------------------------------------------------------------------

EXTRAS = {"--verify": ("--verify:", "verify"), "--jacobian": ("--jacobian:", "jacobian"),
          "--hessian": ("--hessian:", "hessian")}
OUTPUT_FLAGS = [
    [flag for flag, on in zip(["--steps", *EXTRAS], mask) if on]
    for mask in ((a, b, c, d) for a in (0, 1) for b in (0, 1) for c in (0, 1) for d in (0, 1))
]


@pytest.mark.parametrize("output_format", ["table", "json", "markdown", "csv"])
@pytest.mark.parametrize("flags", OUTPUT_FLAGS, ids=[" ".join(f) or "none" for f in OUTPUT_FLAGS])
@pytest.mark.parametrize("options", [[], ["--softcap", "3", "--z-loss", "0.01", "-T", "2"]], ids=["plain", "lm"])
def test_no_requested_output_is_silently_dropped(flags, output_format, options, sce):
    result = sce("grad", "2", "3", "4", "-l", "1", *options, *flags, "-f", output_format, env={"COLUMNS": "200"})
    if result.exit_code != 0:
        # Refused: one line that names a flag asked for, and the usage status.
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert any(flag in result.stderr for flag in flags), result.stderr
        assert output_format in ("markdown", "csv")
        return
    out = result.stdout
    if output_format == "json":
        document = json.loads(out)
        assert ("steps" in document) == ("--steps" in flags)
        for flag, (_, key) in EXTRAS.items():
            assert (key in document) == (flag in flags), (flag, list(document))
        return
    if "--steps" in flags:
        assert re.search(r"^(## )?1\. Setup", out, re.MULTILINE)
    for flag, (heading, _) in EXTRAS.items():
        assert (heading in out) == (flag in flags), flag
    assert output_format in ("table", "json") or len(flags) <= 1


def test_steps_with_hessian_as_json_has_the_hessian(sce):
    """Regression: `--steps --hessian -f json` once wrote the derivation and dropped the Hessian."""
    document = json.loads(sce("grad", "2", "3", "4", "-l", "1", "--steps", "--hessian", "-f", "json").stdout)
    s = S
    # By hand: the Hessian of -log s_1 is diag(s) - s sᵀ; its (0, 0) entry is s_0 (1 - s_0).
    assert document["hessian"]["matrix"][0][0] == pytest.approx(s[0] * (1 - s[0]), rel=1e-14)
    assert document["steps"][0]["title"] == "Setup"


# --- the words follow the route taken ----------------------------------------------------------------


@pytest.mark.parametrize(
    "option", [["-T", "2"], ["--softcap", "3"], ["--z-loss", "0.01"], ["--dtype", "float32"], ["-w", "1,2,3"]]
)
def test_a_plain_label_with_one_option_takes_the_one_hot_route(option, sce):
    """Regression: with only a temperature, a cap or a z-loss, `--steps` said the target was not one-hot."""
    text = steps(sce, "2", "3", "4", "-l", "1", *option)
    assert "not one-hot" not in text
    assert "Every yᵢ but y_c is 0" in text and "Case i = c" in text and "Combining the cases" not in text


def test_with_a_temperature_the_route_names_b_and_the_factor():
    """Regression: diag(s) − ssᵀ was labelled ∂s/∂z with a temperature, and the softmax opened with e^(zᵢ)."""
    stages = build_derivation(softmax_cross_entropy([2, 3, 4], 1, temperature=2.0))
    titles = [stage.title for stage in stages]
    softmax = stages[titles.index("Softmax, stabilised")]
    assert "s_i = \\frac{e^{z_i / T}}{\\sum_j e^{z_j / T}}" in softmax.notes[0]
    route = stages[titles.index("The Jacobian route")]
    matrix = next(item for item in route.items if isinstance(item, Matrix))
    assert matrix.name == "\\frac{\\partial \\mathbf{s}}{\\partial \\mathbf{b}}"
    assert "divided by $T$" in route.notes[0]
    # By hand: b = (1, 1.5, 2), ∂L/∂z_k = (s_k - y_k) / 2.
    e = [math.exp(1), math.exp(1.5), math.exp(2)]
    p = [v / sum(e) for v in e]
    back = stages[titles.index("Back to the logits")]
    assert [eq.values["g"] for eq in equations(back)] == pytest.approx([p[0] / 2, (p[1] - 1) / 2, p[2] / 2], rel=1e-14)
    assert [eq.values["gb"] for eq in equations(back)] == pytest.approx([p[0], p[1] - 1, p[2]], rel=1e-14)


def test_softcap_and_z_loss_are_chain_rule_factors_on_the_one_hot_route():
    cap, lam = 3.0, 0.01
    stages = build_derivation(softmax_cross_entropy([2, 3, 4], 1, softcap=cap, z_loss=lam))
    back = stages[[stage.title for stage in stages].index("Back to the logits")]
    a = [cap * math.tanh(z / cap) for z in (2, 3, 4)]
    lse = math.log(sum(math.exp(v) for v in a))
    s = [math.exp(v - lse) for v in a]
    y = [0, 1, 0]
    expected = [(1 - math.tanh(z / cap) ** 2) * (s[k] - y[k] + 2 * lam * lse * s[k]) for k, z in enumerate((2, 3, 4))]
    assert [eq.values["g"] for eq in equations(back)] == pytest.approx(expected, rel=1e-13)


def test_a_class_weight_is_one_more_factor_on_the_one_hot_route():
    stages = build_derivation(softmax_cross_entropy([2, 3, 4], 1, weight=[0.5, 2, 1], reduction="sum"))
    titles = [stage.title for stage in stages]
    assert "Case i = c" in titles and "Combining the cases" not in titles
    loss = stages[titles.index("Loss")]
    # By hand: L = w_1 · (-log s_1) = 2 · 1.40760596444438.
    assert value_of(loss, "L = w_{1}", "L") == pytest.approx(2 * (math.log(TOTAL) - 3), rel=1e-15)
    back = stages[titles.index("Back to the logits")]
    assert [eq.values["g"] for eq in equations(back)] == pytest.approx([2 * S[0], 2 * (S[1] - 1), 2 * S[2]], rel=1e-14)


def test_the_general_route_with_a_temperature_differentiates_with_respect_to_b():
    stages = build_derivation(softmax_cross_entropy([2, 3, 4], targets=[0.2, 0.3, 0.5], temperature=2.0))
    titles = [stage.title for stage in stages]
    derivative = stages[titles.index("Softmax derivative")]
    assert "\\frac{\\partial s_j}{\\partial b_i}" in derivative.notes[0]
    assert "\\partial z_i" not in derivative.notes[0]
    assert "b} = \\mathbf{z} / T$ the softmax's input" in stages[titles.index("Chain rule")].notes[0]


def _every_derivation_markdown() -> dict[str, str]:
    from sce.render.markdown_format import steps_markdown

    from .test_explain_steps_check_by_hand import CASES, derivation_markdown

    return {name: derivation_markdown(logits, options, 5) for name, (logits, options) in CASES.items()} | {
        "rendered": steps_markdown(build_derivation(softmax_cross_entropy([2, 3, 4], 1)), 5)
    }


def test_no_sum_runs_over_the_labels_letter():
    for name, markdown in _every_derivation_markdown().items():
        assert not re.search(r"\\sum_\{?c\b", markdown), name


def test_implementation_notes_wait_for_the_last_stage():
    for name, markdown in _every_derivation_markdown().items():
        last = markdown.rindex("## ")
        assert markdown[last:].startswith(f"## {markdown.count('## ')}. How sce computes it"), name
        assert "computes $s_c - 1$ as" not in markdown[:last], name
        assert "log1p" not in markdown[:last], name


@pytest.mark.parametrize(
    "options,checks",
    [
        ({}, ["\\log", "\\sum_i"]),
        ({"weight": [1, 2, 3]}, ["\\sum_i"]),  # a weighted loss at uniform logits is w_c log K
        ({"z_loss": 0.1}, []),  # the z-loss adds to the loss and moves every logit the same way
        ({"softcap": 3.0}, ["\\log"]),  # the cap's factor differs by class: the sum is not 0
        ({"temperature": 2.0, "label_smoothing": 0.2}, ["\\log", "\\sum_i"]),
    ],
)
def test_sanity_checks_appear_only_where_they_hold(options, checks):
    stages = build_derivation(softmax_cross_entropy([2, 3, 4], 1, **options))
    sanity = [stage for stage in stages if stage.title == "Sanity checks"]
    shown = [item.symbolic.split(" ")[0] for stage in sanity for item in equations(stage)]
    assert shown == checks


def test_api_route_refusal_names_the_python_keyword_not_a_flag():
    result = softmax_cross_entropy([1.0, 2.0, 3.0], labels=0, temperature=2.0)
    with pytest.raises(ValueError) as refused:
        build_derivation(result, route="lse")
    assert str(refused.value) == (
        "route 'lse' cannot carry temperature; route='chain' (the default) carries every option"
    )
    with pytest.raises(ValueError, match=r"unknown route 'x'; the routes are 'chain', 'lse', 'jacobian'"):
        build_derivation(result, route="x")
