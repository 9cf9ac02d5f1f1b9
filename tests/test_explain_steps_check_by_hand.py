"""Every substituted equation of `--steps`, as displayed, checks by hand.

The derivation is rendered as Markdown with the digits asked for; each displayed
line ``… = formula with numbers = result`` is read back from the text (not from
the derivation's data), its formula evaluated at 60 digits by tests/latex_eval.py
on the numbers exactly as written, and the value rounded as the displayed result
is written must give that result: within half a unit of its last digit. A line
written with ≈ must really not check. Swept over the options, sizes, extremes
and every `--digits` from 1 to 17.
"""

from __future__ import annotations

import re
import warnings

import mpmath as mp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sce.explain.derivation import ROUTES, build_derivation
from sce.loss import softmax_cross_entropy
from sce.render.markdown_format import steps_markdown

from .latex_eval import NotArithmetic, evaluate, scientific

LABEL = {"labels": 1, "reduction": "none"}
SOFT = {"targets": [0.2, 0.3, 0.5], "reduction": "none"}
TWELVE = [k * 0.7 - 3 for k in range(12)]

#: (logits, options) for softmax_cross_entropy.
CASES: dict[str, tuple[list[float], dict]] = {
    "seed": ([2, 3, 4], LABEL),
    "seed, label 0": ([1, 2, 3], {"labels": 0, "reduction": "none"}),
    "temperature": ([2, 3, 4], {**LABEL, "temperature": 0.7}),
    "large temperature": ([2, 3, 4], {"labels": 2, "temperature": 1000.0, "reduction": "none"}),
    "softcap": ([2, 3, 4], {**LABEL, "softcap": 3.0}),
    "softcap, saturated": ([-60, 25, 40], {"labels": 0, "softcap": 5.0, "reduction": "none"}),
    "z-loss": ([10, 0, -10], {**LABEL, "z_loss": 0.01}),
    "z-loss, large logits": ([30, 31, 35], {"labels": 0, "z_loss": 0.5, "reduction": "none"}),
    "softcap, z-loss, temperature": ([2, -3, 4], {"labels": 0, "softcap": 5.0, "z_loss": 0.1, "temperature": 2.0,
                                                   "reduction": "none"}),
    "smoothing": ([1, -2, 0.5, 7], {"labels": 3, "label_smoothing": 0.2, "reduction": "sum"}),
    "smoothing, off-target": ([1, -2, 0.5, 7], {"labels": 3, "label_smoothing": 0.2, "reduction": "none",
                                                "smoothing_style": "off-target"}),
    "weights, mean": ([2, 3, 4], {**LABEL, "weight": [0.5, 2, 1], "reduction": "mean"}),
    "weights, temperature, mean": ([2, 3, 4], {**LABEL, "weight": [0.5, 2, 1], "temperature": 2.0,
                                               "reduction": "mean"}),
    "weights with a zero, smoothing": ([-float("inf"), 3, 4], {**LABEL, "label_smoothing": 0.1, "weight": [0, 1, 1]}),
    "weights, sum, softcap": ([2, 3, 4], {**LABEL, "weight": [0.5, 2, 1], "reduction": "sum", "softcap": 2.0}),
    "label's weight 0, mean, z-loss": ([2, 3, 4], {"labels": 0, "weight": [0, 1, 1], "reduction": "mean",
                                                   "z_loss": 0.1}),
    "ignore index elsewhere": ([2, 3, 4], {**LABEL, "ignore_index": 0}),
    "soft targets": ([1, 2, 3], SOFT),
    "soft targets, weights, z-loss, mean": ([1, 2, 3], {**SOFT, "weight": [1, 2, 3], "z_loss": 0.3,
                                                        "temperature": 3.0, "reduction": "mean"}),
    "soft, off-target smoothing": ([1, 2, 3], {**SOFT, "label_smoothing": 0.1, "smoothing_style": "off-target"}),
    "one class": ([5], {"labels": 0, "reduction": "none"}),
    "one class, softcap, z-loss": ([5], {"labels": 0, "softcap": 2.0, "z_loss": 0.1, "reduction": "none"}),
    "two classes": ([0.5, -0.5], {"labels": 0, "reduction": "none"}),
    "twelve classes": (TWELVE, {"labels": 7, "reduction": "none"}),
    "twelve classes, soft": ([k * 0.3 for k in range(12)], {"targets": [0.1] * 10 + [0, 0], "reduction": "none"}),
    "twelve classes, z-loss, softcap": (TWELVE, {"labels": 7, "z_loss": 0.05, "softcap": 2.5, "reduction": "none"}),
    "confident": ([0, 40], LABEL),
    "confident, against it": ([0, 40], {"labels": 0, "reduction": "none"}),
    "nearly confident": ([0, 9], LABEL),
    "confident, soft": ([0, 40, -1], {"targets": [0, 1, 0], "reduction": "none"}),
    "confident, z-loss": ([0, 40], {**LABEL, "z_loss": 1e-4}),
    "logits of ±1000": ([1000, -1000, 0], LABEL),
    "logits of ±1000, softcap": ([1000, -1000, 0], {**LABEL, "softcap": 30.0}),
    "tiny logits": ([1e-300, -2e-300, 3e-310], LABEL),
    "huge logits": ([1e300, -1e300], LABEL),
    "close logits": ([1, 1.000000000001], {"labels": 0, "reduction": "none"}),
    "small temperature, softcap, z-loss": ([2, 3, 4], {**LABEL, "temperature": 0.01, "softcap": 3.0, "z_loss": 0.01}),
    "tiny cap": ([2, 3, 4], {**LABEL, "softcap": 1e-3}),
    "float32": ([2, 3, 4], {**LABEL, "dtype": "float32"}),
}

_NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?")


def displayed_lines(markdown: str) -> list[str]:
    """The equations of the Markdown's display math, one per line (matrices left out)."""
    lines = []
    for block in re.findall(r"^\$\$\n(.*?)\n\$\$$", markdown, re.MULTILINE | re.DOTALL):
        for line in block.split("\n"):
            line = line.removesuffix(" \\\\")
            if line and not line.startswith("\\begin") and not line.startswith("\\end") and "&" not in line:
                lines.append(line)
    return lines


def half_unit(text: str) -> mp.mpf:
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.partition(".")[2])
    return mp.mpf(5) * mp.mpf(10) ** (int(exponent or 0) - decimals - 1)


def check_line(line: str) -> tuple[bool, bool | None] | None:
    """(written with ≈, checks by hand), or None where the line holds no arithmetic to check.

    A tie (the exact value half way between two roundings, as (a + b)/2 can be) checks or not
    as the reader rounds it: None then, and either way of writing the line is fair."""
    with mp.workdps(700):
        return _check_line(line)


def _check_line(line: str) -> tuple[bool, bool | None] | None:
    approximate = " \\approx " in line
    formula_and_result = line.replace(" \\approx ", " = ")
    parts = formula_and_result.split(" = ")
    if len(parts) < 2 or re.search(r"infty|NaN", line):
        return None
    result = scientific(parts[-1])
    if not _NUMBER.fullmatch(result):
        return None
    try:
        exact = evaluate(parts[-2], {}, digits=700)
    except (NotArithmetic, SyntaxError, ZeroDivisionError, ValueError):
        return None
    distance, half = abs(exact - mp.mpf(result)), half_unit(result)
    if abs(distance - half) <= half * mp.mpf("1e-100"):
        return approximate, None
    return approximate, bool(distance < half)


def derivation_markdown(logits: list[float], options: dict, digits: int, route: str = "chain") -> str:
    options = dict(options)
    labels = options.pop("labels", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an overflow or a mean over no weight: the core warns, the lines say so
        result = softmax_cross_entropy([logits], None if labels is None else [labels], **{
            **options, **({"targets": [options["targets"]]} if "targets" in options else {})})
    return steps_markdown(build_derivation(result, digits, route), digits)


@pytest.mark.parametrize("name", list(CASES))
def test_every_displayed_substitution_checks_by_hand(name):
    logits, options = CASES[name]
    failures, checked = [], 0
    for digits in range(1, 18):
        for line in displayed_lines(derivation_markdown(logits, options, digits)):
            verdict = check_line(line)
            if verdict is None:
                continue
            checked += 1
            approximate, checks = verdict
            if checks == approximate:
                failures.append(f"--digits {digits}: {line} ({'≈ but checks' if approximate else 'does not check'})")
    assert checked >= 17 * 3
    assert not failures, "\n".join(failures[:20])


#: The cases every route derives: a label or a target, smoothed or not, and no other option.
PLAIN = [name for name, (_, options) in CASES.items()
         if set(options) <= {"labels", "targets", "reduction", "dtype", "label_smoothing", "smoothing_style"}]


#: The cases the Jacobian route derives as well: weights and temperatures too.
WEIGHTED = [name for name, (_, options) in CASES.items()
            if name not in PLAIN and not {"softcap", "z_loss"} & set(options)]


@pytest.mark.parametrize(
    "name,route", [(name, "lse") for name in PLAIN] + [(name, "jacobian") for name in PLAIN + WEIGHTED]
)
def test_every_route_checks_by_hand(name, route):
    logits, options = CASES[name]
    failures, checked = [], 0
    for digits in (1, 3, 5, 8, 12, 17):
        for line in displayed_lines(derivation_markdown(logits, options, digits, route)):
            verdict = check_line(line)
            if verdict is None:
                continue
            checked += 1
            if verdict[1] == verdict[0]:
                failures.append(f"--digits {digits}: {line}")
    assert checked >= 6 * 2
    assert not failures, "\n".join(failures[:20])


def markdown_steps(sce, *args: str) -> str:
    result = sce("grad", *args, "--steps", "-f", "markdown")
    assert result.exit_code == 0, result.stderr
    return result.stdout


def unchecked_lines(markdown: str) -> list[str]:
    return [line for line in displayed_lines(markdown) if (verdict := check_line(line)) and verdict != (False, True)]


def test_steps_reciprocal_of_rounded_probability_checks_by_hand(sce):
    """Regression: `-1/0.0900 = -11.1073`, where -1/0.0900 is -11.1111."""
    markdown = markdown_steps(sce, "1", "2", "3", "-l", "0")
    line = next(line for line in displayed_lines(markdown) if line.startswith("\\frac{\\partial L}{\\partial s_{0}}"))
    assert check_line(line) == (False, True), line
    assert not unchecked_lines(markdown)


def test_steps_cross_entropy_plus_z_loss_checks_by_hand(sce):
    """Regression: `10.0000 + 1.0000 = 11.0001`."""
    markdown = markdown_steps(sce, "10", "0", "-10", "-l", "1", "--z-loss", "0.01")
    line = next(line for line in displayed_lines(markdown) if line.startswith("L = \\ell + \\lambda"))
    assert check_line(line) == (False, True), line
    assert not unchecked_lines(markdown)


def test_a_line_that_cannot_check_is_marked_and_explained(sce):
    # At 17 digits s_1 - 1 is computed as -(s_0 + s_2): no 17-digit s_1 reproduces it.
    markdown = markdown_steps(sce, "2", "3", "4", "-l", "1", "--digits", "17")
    approximate = [line for line in displayed_lines(markdown) if "\\approx" in line]
    assert approximate
    assert all(check_line(line)[1] is not True for line in approximate if check_line(line))
    assert "does not check by hand to 17 digits" in markdown
    text = sce("grad", "2", "3", "4", "-l", "1", "--steps", "--digits", "17", env={"COLUMNS": "300"}).stdout
    assert " ≈ " in text


def test_digits_asked_for_are_kept_where_they_suffice():
    # e^{-1} = 0.3679 needs nothing more than the 4 digits asked for: the operand -1 is exact.
    markdown = derivation_markdown([2, 3, 4], LABEL, 4)
    assert "e^{z_{1} - M} = e^{-1} = 0.3679" in markdown


LESSON_LOGITS = [[2, 3, 4], [1, 2, 3], [0.3, -1.2, 2.2, 0.1], [5, 1], [0, 2.5, 1.7], [3, -1, 0.25]]
_LESSON = re.compile(r"Rounding first would mislead: with \$s_c\$ as rounded above, \$-\\log\((?P<x>[^)]*)\) = "
                     r"(?P<y>[^$]*)\$, not \$(?P<z>[^$]*)\$")


def test_the_rounding_first_lesson_speaks_of_the_numbers_on_screen():
    found = 0
    for logits, digits in ((logits, digits) for logits in LESSON_LOGITS for digits in range(1, 9)):
        markdown = derivation_markdown(logits, {"labels": 0, "reduction": "none"}, digits)
        for lesson in _LESSON.finditer(markdown):
            found += 1
            rounded, wrong, right = (scientific(lesson.group(name)) for name in ("x", "y", "z"))
            # The rounded probability is the one the softmax stage shows for s_0 ...
            shown_s = re.search(r"^s_\{0\} = .* = (?P<v>[^=]*?)( \\\\)?$", markdown, re.MULTILINE)
            assert mp.mpf(scientific(shown_s.group("v"))) == mp.mpf(rounded)
            # ... the wrong value is what it gives, and differs from the loss shown.
            assert abs(-mp.log(mp.mpf(rounded)) - mp.mpf(wrong)) <= half_unit(wrong)
            shown_loss = re.search(r"^L = -\\log s_\{0\} = -\\log\([^)]*\) = (?P<v>.*)$", markdown, re.MULTILINE)
            assert mp.mpf(scientific(shown_loss.group("v"))) == mp.mpf(right) != mp.mpf(wrong)
    assert found >= 3  # at some digits, for some of these logits, rounding first misleads


@st.composite
def derivations(draw):
    classes = draw(st.sampled_from([1, 2, 3, 5, 12]))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 1e5, 1e300]))
    logits = [scale * v for v in draw(st.lists(st.floats(-3, 3), min_size=classes, max_size=classes))]
    options: dict = {"reduction": draw(st.sampled_from(["none", "sum", "mean"]))}
    if draw(st.booleans()):
        options["labels"] = draw(st.integers(0, classes - 1))
    else:
        mass = draw(st.lists(st.floats(0.01, 1), min_size=classes, max_size=classes))
        options["targets"] = [v / sum(mass) for v in mass]
    for name, values in (("temperature", [0.01, 0.7, 2.0, 1000.0]), ("softcap", [1e-3, 1.0, 5.0, 30.0]),
                         ("z_loss", [1e-4, 0.01, 0.5]), ("label_smoothing", [0.1, 0.3])):
        if draw(st.booleans()) and not (name == "label_smoothing" and classes == 1):
            options[name] = draw(st.sampled_from(values))
    if "label_smoothing" in options:
        options["smoothing_style"] = draw(st.sampled_from(["uniform", "off-target"]))
    if draw(st.booleans()):
        options["weight"] = draw(st.lists(st.sampled_from([0, 0.5, 1, 2.5]), min_size=classes, max_size=classes))
    plain = set(options) <= {"labels", "targets", "reduction", "label_smoothing", "smoothing_style"}
    routes = ROUTES if plain else ("chain", "jacobian") if not {"softcap", "z_loss"} & set(options) else ("chain",)
    return logits, options, draw(st.integers(1, 17)), draw(st.sampled_from(routes))


@settings(max_examples=40, deadline=None)
@given(derivations())
def test_any_derivation_checks_by_hand(case):
    logits, options, digits, route = case
    markdown = derivation_markdown(logits, options, digits, route)
    for line in displayed_lines(markdown):
        verdict = check_line(line)
        assert verdict is None or verdict[0] != verdict[1], f"--digits {digits}: {line}"


def json_steps(logits: list[float], options: dict) -> list[dict]:
    from sce.render.json_format import steps_document

    options = dict(options)
    labels = options.pop("labels", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = softmax_cross_entropy([logits], None if labels is None else [labels], **{
            **options, **({"targets": [options["targets"]]} if "targets" in options else {})})
    return steps_document(build_derivation(result, 5), result.dtype)


@pytest.mark.parametrize("name", list(CASES))
def test_json_marks_approximate_exactly_the_substitutions_that_do_not_check_as_written(name):
    # JSON writes float64's shortest digits: e^{-1.0} = 0.36787944117144233 is not e⁻¹'s 17-digit
    # rounding (…442322), so it is approximate there whatever --digits the terminal shows.
    failures, checked = [], 0
    for stage in json_steps(*CASES[name]):
        for item in stage["items"]:
            if item["type"] != "equation" or not isinstance(item["substituted"], str):
                continue
            verdict = check_line(item["substituted"])
            if verdict is None or verdict[1] is None:
                continue
            checked += 1
            if item["approximate"] == verdict[1]:
                failures.append(f"{item['substituted']} (approximate: {item['approximate']})")
    assert checked >= 2
    assert not failures, "\n".join(failures[:20])


def test_json_approximate_flags_do_not_depend_on_the_digits_displayed(sce):
    import json

    def flags(*args: str) -> list[bool]:
        document = json.loads(sce("grad", "2", "3", "4", "-l", "1", "--steps", "-f", "json", *args).stdout)
        return [item["approximate"] for stage in document["steps"] for item in stage["items"] if item["type"] == "equation"]

    assert flags() == flags("--digits", "17") == flags("--digits", "2")
    exponentials = [
        item for stage in json.loads(sce("grad", "2", "3", "4", "-l", "1", "--steps", "-f", "json").stdout)["steps"]
        for item in stage["items"] if item.get("substituted", "").startswith("e^{")
    ]
    by_text = {item["substituted"]: item["approximate"] for item in exponentials}
    assert by_text["e^{-1.0} = 0.36787944117144233"] is True  # e⁻¹ = 0.367879441171442321…
    assert by_text["e^{-2.0} = 0.1353352832366127"] is False  # e⁻² = 0.135335283236612691…


def test_a_cancelling_line_says_that_it_cancels():
    # s_1 = 0.99987660542401…: s_1 - 1 from 17 digits of s_1 keeps 13, short of the 13 asked for at the
    # last place; sce computes it as -(s_0) instead, and says so.
    markdown = derivation_markdown([0, 9], LABEL, 13)
    approximate = [line for line in displayed_lines(markdown) if "\\approx" in line]
    assert any(line.startswith("\\frac{\\partial L}{\\partial z_{1}} = s_{1} - 1") for line in approximate)
    assert "subtracts nearly equal numbers" in markdown


def test_the_derivations_own_evaluator_keeps_tiny_differences():
    from decimal import Decimal

    from sce.explain.derivation.by_hand import NotArithmetic as NotFormula
    from sce.explain.derivation.by_hand import checks, formula_of

    # log(1 + 1e-300) is 1e-300, c·tanh(z/c) with c = 1e300 is z: no digit lost to the sum or to e^{-2x}.
    assert formula_of("\\log(1 + ⟨S⟩)")({"S": Decimal("1e-300")}) == pytest.approx(Decimal("1e-300"), rel=Decimal("1e-30"))
    capped = formula_of("⟨c⟩ \\times \\tanh\\left(\\frac{⟨z⟩}{⟨c⟩}\\right)")({"c": Decimal("1e300"), "z": Decimal(40)})
    assert abs(capped - 40) < Decimal("1e-20")
    # A tie is not a check: 0.25 written to one digit could be read as 0.2 or 0.3.
    assert not checks(formula_of("⟨a⟩ \\times ⟨b⟩"), {"a": "0.5", "b": "0.5"}, "0.2")
    assert checks(formula_of("⟨a⟩ \\times ⟨b⟩"), {"a": "0.5", "b": "0.52"}, "0.3")
    with pytest.raises(NotFormula):
        formula_of("\\text{(case } i = c \\text{ above)}")
