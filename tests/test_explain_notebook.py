"""`sce.explain` and the notebook displays: the same derivation as `sce grad --steps`, the numbers against mpmath,
tables whose bars are as long as their numbers, every text escaped, and one-line refusals."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import warnings
from html.parser import HTMLParser

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sce
from sce.notebook import Derivation, result_table
from sce.render.notebook_html import CLASSES_SHOWN, ROWS_SHOWN, markdown_as_html, signed_bar

mpmath.mp.dps = 50


def exact_softmax(logits: list[float], label: int) -> tuple[list[float], float, list[float]]:
    """p, L = -log p_label and ∂L/∂z = p - y, at 50 digits."""
    exps = [mpmath.e ** mpmath.mpf(z) for z in logits]
    total = sum(exps)
    p = [e / total for e in exps]
    return [float(v) for v in p], float(-mpmath.log(p[label])), [float(v - (k == label)) for k, v in enumerate(p)]


# --- the function and its package ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first_import",
    ["import sce", "import sce.explain.derivation", "from sce.explain import proofs", "import sce.explain"],
)
def test_sce_explain_is_callable_whichever_import_came_first(first_import):
    code = f"{first_import}\nimport sce\nimport sce.explain.derivation\nprint(sce.explain([2, 3, 4], 1).route)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "chain\n", "")


def test_import_sce_loads_no_numpy_for_explain():
    code = "import sys, sce\nprint(callable(sce.explain), 'numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout == "True False\n", done.stderr


def test_the_package_keeps_its_modules_and_signature():
    import inspect

    from sce.explain.derivation import build_derivation

    assert sce.explain.derivation.build_derivation is build_derivation
    from sce import explain

    assert explain is sce.explain and explain([2.0, 3.0], 0).result.num_classes == 2
    assert list(inspect.signature(sce.explain).parameters)[:2] == ["logits", "label"]
    assert "Examples" in sce.explain.__call__.__doc__


# --- the same derivation as the command line ------------------------------------------------------------------

CASES = [
    ([2.0, 3.0, 4.0], ["--label", "1"], {"label": 1}),
    ([2.0, 3.0, 4.0], ["--label", "0", "--smoothing", "0.1"], {"label": 0, "label_smoothing": 0.1}),
    ([1.5, -0.25, 0.5], ["--target", "0.2,0.3,0.5"], {"target": [0.2, 0.3, 0.5]}),
    ([2.0, 3.0, 4.0], ["--label", "2", "--temperature", "2", "--weight", "1,2,3"],
     {"label": 2, "temperature": 2.0, "weight": [1, 2, 3]}),
    ([2.0, 30.0, -4.0], ["--label", "1", "--softcap", "10", "--z-loss", "0.001"],
     {"label": 1, "softcap": 10.0, "z_loss": 0.001}),
    ([2.0, 3.0, 4.0], ["--label", "1", "--route", "lse", "--digits", "8"], {"label": 1, "route": "lse", "digits": 8}),
    ([2.0, 3.0, 4.0], ["--label", "1", "--reduction", "mean", "--dtype", "float32", "--route", "jacobian"],
     {"label": 1, "reduction": "mean", "dtype": "float32", "route": "jacobian"}),
]


@pytest.mark.parametrize(("logits", "flags", "keywords"), CASES)
def test_json_and_markdown_are_those_of_grad_steps(sce_run, logits, flags, keywords):
    derivation = sce.explain(logits, **keywords)
    numbers = [str(z) for z in logits]
    for output_format, text in (("json", derivation.json()), ("markdown", derivation.markdown())):
        result = sce_run("grad", *numbers, *flags, "--steps", "--format", output_format)
        assert result.exit_code == 0, result.stderr
        assert text == result.stdout


@pytest.fixture
def sce_run(sce):
    return sce


def test_the_numbers_are_exact():
    logits = [1.5, -0.3, 0.8, 2.2]
    p, loss, gradient = exact_softmax(logits, 2)
    document = json.loads(sce.explain(logits, label=2).json())
    assert document["probabilities"] == pytest.approx(p, rel=4e-16, abs=0)
    assert document["loss"] == pytest.approx(loss, rel=4e-16)
    assert document["gradient"] == pytest.approx(gradient, rel=4e-16, abs=1e-300)
    assert document["reduction"] == "none"  # the row's own loss, as sce grad


def test_a_derivation_displays_as_markdown_and_html():
    derivation = sce.explain([2.0, 3.0, 4.0], label=1)
    assert isinstance(derivation, Derivation)
    assert derivation._repr_markdown_() == derivation.markdown()
    assert derivation._repr_html_() == derivation.html()
    # 0.24473 is p_1 = e^3 / (e^2 + e^3 + e^4) to 5 digits; L = 1.4076 by hand.
    assert "0.24473" in derivation.markdown() and "1.4076" in derivation.markdown()
    assert repr(derivation) == "<sce derivation: 10 stages, route 'chain', 3 classes>"


def test_the_html_of_a_derivation_is_its_markdown_escaped():
    markdown = "## 1. <script>alert('x')</script> & $a < b$\n\nline two"
    fragment = markdown_as_html(markdown)
    assert "<script" not in fragment
    inner = re.fullmatch(r'<div class="sce-derivation" style="white-space:pre-wrap">(.*)</div>', fragment, re.S)
    assert inner and html.unescape(inner.group(1)) == markdown



def test_the_html_of_a_derivation_is_the_pages_mathml_fragment():
    from sce.render.html_format import derivation_html

    derivation = sce.explain([2.0, 3.0, 4.0], label=1)
    fragment = derivation.html()
    assert fragment.startswith('<div class="sce-derivation">') and derivation_html(derivation.stages) in fragment
    assert "<math" in fragment and "$$" not in fragment and "<script" not in fragment and "<html" not in fragment


# --- results as tables with bars ------------------------------------------------------------------------------


class Elements(HTMLParser):
    """Every element's tag and attributes, and whether each element closed where it should."""

    VOID = {"br", "img", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag, f"</{tag}> closes {self.open}"

    def handle_data(self, data):
        self.text.append(data)


def parsed(fragment: str) -> Elements:
    elements = Elements()
    elements.feed(fragment)
    elements.close()
    assert elements.open == []
    return elements


def widths(elements: Elements, colour: str) -> list[tuple[str, float]]:
    """The bars of one colour: their side ("left" grows right from there, "right" grows left) and width in %."""
    bars = []
    for _, attributes in elements.found:
        style = attributes.get("style") or ""
        if f"background:{colour}" in style:
            side = "right" if "right:50%" in style else "left"
            bars.append((side, float(re.search(r"width:([\d.]+)%", style).group(1))))
    return bars


def test_a_result_is_a_table_whose_bars_are_its_numbers():
    p, loss, gradient = exact_softmax([2.0, 3.0, 4.0], 1)
    table = result_table(sce.softmax_cross_entropy([2.0, 3.0, 4.0], 1))
    elements = parsed(table)
    assert "<script" not in table and "<style" not in table
    assert [width for _, width in widths(elements, "#1f77b4")] == pytest.approx([100 * v for v in p], abs=0.006)
    # The label's class is pulled up (to the left, the largest: half the track); the others pushed down.
    signed = widths(elements, "#2ca02c") + widths(elements, "#d62728")
    largest = max(abs(g) for g in gradient)
    expected = sorted(("right" if g < 0 else "left", 50 * abs(g) / largest) for g in gradient)
    assert [side for side, _ in sorted(signed)] == [side for side, _ in expected]
    assert [width for _, width in sorted(signed)] == pytest.approx([width for _, width in expected], abs=0.006)
    text = "".join(elements.text)
    for value in ("0.090031", "0.24473", "0.66524", "-0.75527", f"{loss:.4f}", "label", "predicted"):
        assert value in text


def test_a_result_displays_in_jupyter_as_its_table():
    result = sce.softmax_cross_entropy([[2.0, 3.0, 4.0]], [1])
    assert result._repr_html_() == result_table(result)
    code = "import sce.loss\nprint(sce.loss.softmax_cross_entropy([2.0, 1.0], 0)._repr_html_()[:24])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout == '<div class="sce-result">\n', done.stderr


def test_a_large_vocabulary_shows_the_most_probable_classes_and_the_label():
    logits = np.linspace(-5.0, 5.0, 1000)
    table = result_table(sce.softmax_cross_entropy(logits, 3))
    elements = parsed(table)
    assert sum(tag == "tr" for tag, _ in elements.found) == CLASSES_SHOWN + 1
    text = "".join(elements.text)
    assert f"{1000 - CLASSES_SHOWN} more classes not shown" in text
    assert "label" in text and "predicted" in text


def test_a_large_vocabularys_weights_are_summed_up_not_listed():
    weights = np.linspace(0.5, 2.0, 1000)
    text = "".join(parsed(result_table(sce.softmax_cross_entropy(np.zeros(1000), 3, weight=weights))).text)
    assert "With 1,000 class weights from 0.50000 to 2.0000." in text and "0.50150" not in text


def test_many_rows_show_the_first_ones():
    result = sce.softmax_cross_entropy(np.zeros((ROWS_SHOWN + 2, 3)), [0] * (ROWS_SHOWN + 2), reduction="none")
    text = "".join(parsed(result_table(result)).text)
    assert text.count("Row ") == ROWS_SHOWN and "2 more rows not shown" in text
    assert f"Row 0: loss {float(mpmath.log(3)):.5}" in text  # log 3 = 1.0986…


@pytest.mark.parametrize(
    ("value", "scale", "side", "width"),
    [(float("inf"), 1.0, "left", 50.0), (float("-inf"), 1.0, "right", 50.0), (float("nan"), 1.0, "left", 0.0),
     (0.0, 0.0, "left", 0.0), (-0.0, 1.0, "left", 0.0), (5e-324, 1.0, "left", 0.0), (-2.0, 4.0, "right", 25.0)],
)
def test_a_signed_bar_of_any_value_stays_in_its_half(value, scale, side, width):
    assert widths(parsed(signed_bar(value, scale)), "#2ca02c" if value < 0 else "#d62728") == [(side, width)]


def test_an_infinite_gradient_fills_its_half_of_the_track():
    with pytest.warns(sce.LossWarning):
        result = sce.softmax_cross_entropy([1.0, 0.0], 1, temperature=1e-310, reduction="none")
    elements = parsed(result_table(result))
    assert widths(elements, "#2ca02c") + widths(elements, "#d62728") == [("right", 50.0), ("left", 50.0)]
    assert "Loss L = inf" in "".join(elements.text)


@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=12),
    st.data(),
)
def test_any_row_draws_a_well_formed_table_with_bars_inside_their_tracks(logits, data):
    label = data.draw(st.integers(0, len(logits) - 1))
    temperature = data.draw(st.sampled_from([1.0, 1e-300, 1e300, 0.5]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sce.LossWarning)
        result = sce.softmax_cross_entropy(logits, label, temperature=temperature, reduction="none")
    elements = parsed(result_table(result))
    probability_bars = widths(elements, "#1f77b4")
    signed = widths(elements, "#2ca02c") + widths(elements, "#d62728")
    assert len(probability_bars) == len(signed) == len(logits)
    assert all(0 <= width <= 100 for _, width in probability_bars)
    assert all(0 <= width <= 50 for _, width in signed)


# --- bad input: one line each ---------------------------------------------------------------------------------

REFUSALS = [
    ({"smoothing": 0.1}, TypeError, "unexpected keyword argument 'smoothing' (did you mean label_smoothing?)"),
    ({"labels": [1]}, TypeError, "(did you mean label?)"),
    ({"bogus": 1}, TypeError, "the options are weight, label_smoothing"),
    ({"mean_denominator": 2.0}, TypeError, "unexpected keyword argument 'mean_denominator'"),
    ({"digits": 0}, ValueError, "digits=0 is out of range; use an integer from 1 to 17"),
    ({"digits": 18}, ValueError, "digits=18 is out of range"),
    ({"digits": 2.5}, ValueError, "digits=2.5 is not a whole number; use an integer from 1 to 17"),
    ({"digits": True}, ValueError, "digits=True is not a whole number"),
    ({"digits": "5"}, ValueError, "digits='5' is not a whole number"),
    ({"route": "backprop"}, ValueError, "unknown route 'backprop'; the routes are 'chain', 'lse', 'jacobian'"),
    ({"route": "lse", "temperature": 2.0}, ValueError, "route='chain' (the default) carries every option"),
    ({"ignore_index": 1}, ValueError, "label 1 is the ignore index, so the loss is 0"),
    ({"temperature": -1.0}, sce.InvalidInput, "temperature -1.0 is not a positive finite number (temperature)"),
    ({"reduction": "avg"}, sce.InvalidInput, "unknown reduction 'avg' (reduction)"),
    ({"options": sce.LossOptions(), "temperature": 2.0}, TypeError, "either as options= or as keywords"),
]


@pytest.mark.parametrize(("keywords", "kind", "words"), REFUSALS)
def test_bad_options_are_refused_in_one_line(keywords, kind, words):
    with pytest.raises(kind) as raised:
        sce.explain([2.0, 3.0, 4.0], 1, **keywords)
    assert words in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("logits", "given", "words"),
    [
        ([2.0, 3.0, 4.0], {"label": 3}, "label 3 is out of range for 3 classes"),
        ([2.0, float("nan")], {"label": 0}, "logit nan is not allowed"),
        ([], {"label": 0}, "no logits"),
        ([[1.0, 2.0], [3.0, 4.0]], {"label": [0, 1]}, "these are 2 rows: pass one, logits[i]"),
        ([2.0, 3.0], {"label": 0, "target": [0.5, 0.5]}, "give either label= (a class index) or target="),
        ([2.0, 3.0], {}, "say which class is correct with label="),
        ([2.0, 3.0], {"target": [0.5, 0.6]}, "sum"),
    ],
)
def test_bad_input_is_refused_in_one_line(logits, given, words):
    with pytest.raises(ValueError) as raised:
        sce.explain(logits, **given)
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_numpy_numbers_are_taken_as_python_ones():
    derivation = sce.explain(np.array([2.0, 3.0, 4.0]), np.int64(1), digits=np.int64(3))
    assert derivation.digits == 3 and "0.245" in derivation.markdown()


def test_an_empty_batch_says_it_has_no_rows():
    with pytest.warns(sce.LossWarning, match="no rows"):
        result = sce.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int))
    text = "".join(parsed(result_table(result)).text)
    assert "No rows." in text and "Loss L = nan" in text


def test_one_row_of_a_batch_and_options_as_one_value_are_explained():
    one_row = sce.explain([[2.0, 3.0, 4.0]], [1], options=sce.LossOptions(reduction="none", label_smoothing=0.1))
    assert json.loads(one_row.json()) == json.loads(sce.explain([2.0, 3.0, 4.0], 1, label_smoothing=0.1).json())
