"""HTML: ``sce grad``'s result and its derivation as fragments, and as a printable page.

The fragments (:func:`result_table_html`, :func:`derivation_html`) are what a notebook
shows; :func:`grad_page` puts them on a page of their own (:mod:`sce.render.html_page`).
The mathematics is the LaTeX the Markdown format writes, as MathML.

Examples
--------
>>> from sce.loss import softmax_cross_entropy
>>> from sce.explain.derivation import build_derivation
>>> result = softmax_cross_entropy([[2.0, 3.0, 4.0]], [1], reduction="none")
>>> "<math" in derivation_html(build_derivation(result)) and "<html" not in derivation_html(build_derivation(result))
True
>>> result_table_html(result).count("<tr")  # a heading and a row per class
4
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import numpy as np

from sce.explain.derivation import Elided, Matrix, Stage
from sce.explain.exact_values import digits_capped_line, exact_row, float64_digits, rounded_text
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import DISPLAY_DIGITS, count_of, display, given, latex, latex_text
from sce.render.html_page import figure_html, math_html, page, prose_html, text
from sce.render.markdown_format import equation_latex, matrix_latex
from sce.render.words import options_summary, reduction_line

#: Up to this many classes the page lists every one; beyond, the label's and the most probable.
LISTED_CLASSES = 200
#: The most probable classes listed beyond :data:`LISTED_CLASSES`.
MOST_PROBABLE = 20


def listed_classes(result: SoftmaxCrossEntropyResult, row: int = 0) -> list[int]:
    """The classes the page lists, in class order: all of them up to :data:`LISTED_CLASSES`, else
    the :data:`MOST_PROBABLE` most probable and the label's."""
    classes = result.num_classes
    if classes <= LISTED_CLASSES:
        return list(range(classes))
    probabilities = np.nan_to_num(result.probabilities[row].astype(np.float64), nan=-1.0)
    top = np.argsort(-probabilities, kind="stable")[:MOST_PROBABLE]  # of equal ones, the first classes
    chosen = {int(k) for k in top}
    if result.labels is not None and 0 <= int(result.labels[row]) < classes:
        chosen.add(int(result.labels[row]))
    return sorted(chosen)


#: The bars carry their own styles, so that a fragment shows them without the page's stylesheet (in a notebook).
_TRACK = "display: inline-block; position: relative; width: {width}; height: 0.75em; vertical-align: baseline"
_FILL = "position: absolute; top: 0; height: 100%; {side}: {start}; width: {share:.2f}%; background: {colour}"
_PRINTED = "print-color-adjust: exact; -webkit-print-color-adjust: exact"
BAR_COLOUR, PULLED_COLOUR = "#3a7bd5", "#b42318"


def _probability_bar(probability: float) -> str:
    """The probability as a bar of 5em at most."""
    share = 0.0 if not math.isfinite(probability) else max(0.0, min(1.0, probability)) * 100
    fill = _FILL.format(side="left", start="0", share=share, colour=BAR_COLOUR)
    return f'<span class="bar" style="{_TRACK.format(width="5em")}"><span style="{fill}; {_PRINTED}"></span></span>'


def _signed_bar(value: float, scale: float) -> str:
    """The gradient's entry as a bar from a middle axis: left for negative (the label pulled up),
    right for positive (the others pushed down); ``scale`` is the largest magnitude, a full half."""
    share = 0.0 if not math.isfinite(value) or scale == 0 else min(1.0, abs(value) / scale) * 50
    side, colour = ("right", PULLED_COLOUR) if value < 0 else ("left", BAR_COLOUR)
    fill = _FILL.format(side=side, start="50%", share=share, colour=colour)
    axis = "position: absolute; left: 50%; top: -0.15em; height: 1.05em; border-left: 1px solid currentColor"
    return (
        f'<span class="signed" style="{_TRACK.format(width="6em")}"><span class="{"neg" if value < 0 else "pos"}" '
        f'style="{fill}; {_PRINTED}"></span><span style="{axis}"></span></span>'
    )


def result_table_html(result: SoftmaxCrossEntropyResult, digits: int = DISPLAY_DIGITS, row: int = 0) -> str:
    """One row's result as an HTML table (no page around it): class, logit, target, softmax with a
    bar, the gradient with a signed bar, and which class is the label and the predicted one; then
    the loss, the reduction and the options. A large row lists the classes :func:`listed_classes` says.
    From 12 digits on, row 0's values are the exact ones rounded once, as the terminal shows them
    (:mod:`sce.explain.exact_values`); float64's own are shown with at most 11, and a line says so."""
    dtype = result.options.dtype
    exact = exact_row(result, digits) if row == 0 else None
    shown_digits = digits if exact else float64_digits(result, digits)

    def write(values: np.ndarray, exact_values: tuple[Decimal, ...] | None, k: int) -> str:
        return rounded_text(exact_values[k], digits) if exact_values else display(values[k], shown_digits)

    label = None if result.labels is None else int(result.labels[row])
    predicted = int(result.argmax[row])
    gradient = result.gradient[row].astype(np.float64)
    finite = np.abs(gradient[np.isfinite(gradient)])
    scale = float(finite.max()) if finite.size else 0.0
    headings = ("class", "logit <i>z</i>", "target <i>y</i>", "softmax <i>p</i>", "", "∂<i>L</i>/∂<i>z</i>", "", "")
    header = "".join(f'<th class="right">{h}</th>' if h else "<th></th>" for h in headings)
    lines = ['<table class="result">', f"<tr>{header}</tr>"]
    exact_target, exact_probabilities, exact_gradient = (
        (None, None, None) if exact is None else (exact.target, exact.probabilities, exact.gradient)
    )
    for k in listed_classes(result, row):
        notes = [word for word, on in (("label", k == label), ("predicted", k == predicted)) if on]
        probability, entry = float(result.probabilities[row, k]), float(gradient[k])
        cells = (
            f'<td class="right">{k}</td>',
            f'<td class="right">{text(given(result.logits[row, k], dtype))}</td>',
            f'<td class="right">{write(result.target[row], exact_target, k)}</td>',
            f'<td class="right">{write(result.probabilities[row], exact_probabilities, k)}</td>',
            f"<td>{_probability_bar(probability)}</td>",
            f'<td class="right">{write(gradient, exact_gradient, k)}</td>',
            f"<td>{_signed_bar(entry, scale)}</td>",
            f"<td>{', '.join(notes)}</td>",
        )
        lines.append(("<tr class=\"predicted\">" if k == predicted else "<tr>") + "".join(cells) + "</tr>")
    lines.append("</table>")
    shown = len(listed_classes(result, row))
    if shown < result.num_classes:
        lines.append(
            f"<p>Shown: {shown} of {result.num_classes:,} classes (the {MOST_PROBABLE} most probable and the label's); "
            "every class with <code>--format csv</code>.</p>"
        )
    loss = latex_text(rounded_text(exact.loss, digits)) if exact else latex(result.reported_loss(), shown_digits)
    if shown_digits < digits:
        lines.append(f"<p>{text(digits_capped_line(result.num_classes, shown_digits))}.</p>")
    return "\n".join(lines) + "\n" + _loss_lines(result, loss)


def _loss_lines(result: SoftmaxCrossEntropyResult, loss: str) -> str:
    lines = [f"<p>Loss {math_html(f'L = {loss}')}.</p>"]
    if result.labels is not None and not result.counted[0]:
        lines.append(f"<p>Label {int(result.labels[0])} is the ignore index: the row counts for nothing.</p>")
    lines.append(f"<p>{text(reduction_line(result.options.reduction))}</p>")
    summary = options_summary(result)
    if summary:
        lines.append(f"<p>{text('With ' + '; '.join(summary) + '.')}</p>")
    return "\n".join(lines) + "\n"


def derivation_html(stages: Sequence[Stage], digits: int = DISPLAY_DIGITS, heading_level: int = 2) -> str:
    """The ``--steps`` derivation as HTML (no page around it): a section per stage, its
    heading (``<h2>`` by default), its notes as paragraphs and its equations as MathML."""
    parts = []
    for number, stage in enumerate(stages, start=1):
        lines = ['<section class="stage">', f"<h{heading_level}>{number}. {text(stage.title)}</h{heading_level}>"]
        lines += [f"<p>{prose_html(note)}</p>" for note in stage.notes]
        block: list[str] = []
        for item in stage.items:
            if isinstance(item, Elided):
                lines += _equations(block)
                block = []
                lines.append(f"<p><em>… {count_of(item.count, 'more class', 'more classes')} …</em></p>")
            elif isinstance(item, Matrix):
                block.append(matrix_latex(item, digits))
            else:
                block.append(equation_latex(item, digits))
        lines += _equations(block)
        lines.append("</section>")
        parts.append("\n".join(lines))
    return "\n".join(parts) + "\n"


def _equations(block: list[str]) -> list[str]:
    if not block:
        return []
    return ['<div class="equations">', *(math_html(equation, block=True) for equation in block), "</div>"]


def logits_words(result: SoftmaxCrossEntropyResult, row: int = 0) -> str:
    """The row in a title: its logits up to six classes, else how many, and its label."""
    dtype = result.options.dtype
    if result.num_classes <= 6:
        what = "z = (" + ", ".join(given(value, dtype) for value in result.logits[row].tolist()) + ")"
    else:
        what = f"{result.num_classes:,} logits"
    if result.labels is not None:
        what += f", label {int(result.labels[row])}"
    return what


def grad_page(
    result: SoftmaxCrossEntropyResult,
    digits: int = DISPLAY_DIGITS,
    stages: Sequence[Stage] | None = None,
    figures: Sequence[str] = (),
) -> str:
    """``sce grad``'s page: the result, then the derivation where ``stages`` are given, then
    ``figures`` (SVG documents, e.g. plots of the result), embedded as they are."""
    sections = ['<section class="result">\n<h2>Result</h2>\n' + result_table_html(result, digits) + "</section>"]
    sections += [figure_html(svg) for svg in figures]  # beside the result they picture
    if stages is not None:
        derivation = derivation_html(stages, digits, heading_level=3)
        sections.append(f'<section class="derivation">\n<h2>Derivation</h2>\n{derivation}</section>')
    return page(f"Softmax cross-entropy for {logits_words(result)}", sections)
