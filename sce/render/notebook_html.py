"""HTML for notebooks: a result as a small table with bars, and a derivation's Markdown kept as text.

No script and no stylesheet: every style is inline, so that the table looks the same in Jupyter,
in a notebook exported to HTML and on a page that strips ``<style>`` elements. Every text shown is
escaped (an option's summary, a class's note), whatever it holds.
"""

from __future__ import annotations

import html

import numpy as np

from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import DISPLAY_DIGITS, count_of, display, given
from sce.render.words import options_summary, reduction_line

#: The most rows and classes a table shows: a notebook's output stays readable and light (a million
#: classes would be a page of megabytes). Beyond them, the most probable classes and the label are shown.
ROWS_SHOWN = 5
CLASSES_SHOWN = 40

_TABLE = "border-collapse:collapse;font-variant-numeric:tabular-nums;margin:0.25em 0"
_CELL = "padding:0.1em 0.6em;text-align:right;border-bottom:1px solid #ddd"
_BAR_CELL = "padding:0.1em 0.6em;width:8em;border-bottom:1px solid #ddd"
_TRACK = "position:relative;height:0.9em;width:8em;background:#f2f2f2"
_PROBABILITY_COLOUR = "#1f77b4"
# The label's class is pulled up (a negative gradient), the others pushed down: two colours, as on a plot.
_PULLED_UP_COLOUR = "#2ca02c"
_PUSHED_DOWN_COLOUR = "#d62728"


def result_html(result: SoftmaxCrossEntropyResult, digits: int = DISPLAY_DIGITS) -> str:
    """A result as HTML: per row, its classes with the logit, target, probability p (a bar on [0, 1]) and the
    signed gradient ∂L/∂z (a bar from the middle, scaled to the row's largest magnitude); then the loss.
    float64's values are shown with at most 11 digits (the 16th and 17th are not the exact value's), and a
    line says so where more were asked."""
    from sce.explain.exact_values import float64_digits

    rows = result.as_rows
    asked, digits = digits, float64_digits(rows, digits)
    parts = [_row_table(rows, row, digits) for row in range(min(rows.num_rows, ROWS_SHOWN))]
    if rows.num_rows == 0:
        parts.append(_paragraph("No rows."))
    if rows.num_rows > ROWS_SHOWN:
        parts.append(_paragraph(f"… {count_of(rows.num_rows - ROWS_SHOWN, 'more row')} not shown"))
    loss = rows.reported_loss() if rows.num_rows == 1 else rows.loss
    if not isinstance(loss, np.ndarray):  # 'none' over several rows: each row's loss is above its table
        parts.append(_paragraph(f"Loss L = {display(float(loss), digits)}."))
    parts.append(_paragraph(reduction_line(rows.options.reduction)))
    if digits < asked:
        parts.append(_paragraph(f"digits: {digits} shown; float64's values, within 1e-14 of the exact ones"))
    summary = _short_summary(rows)
    if summary:
        parts.append(_paragraph("With " + "; ".join(summary) + "."))
    return '<div class="sce-result">\n' + "\n".join(parts) + "\n</div>"


def _short_summary(result: SoftmaxCrossEntropyResult) -> list[str]:
    """The options in words, a vocabulary's weights summed up rather than listed."""
    weights = result.options.weight
    if weights is None or len(weights) <= CLASSES_SHOWN:
        return options_summary(result)
    listed = [words for words in options_summary(result) if not words.startswith("class weights ")]
    low, high = display(min(weights)), display(max(weights))
    return [*listed, f"{count_of(len(weights), 'class weight')} from {low} to {high}"]


def classes_shown(probabilities: np.ndarray, label: int | None) -> list[int]:
    """Every class up to :data:`CLASSES_SHOWN`; beyond, the most probable ones and the label, in class order."""
    count = len(probabilities)
    if count <= CLASSES_SHOWN:
        return list(range(count))
    top = np.argsort(-probabilities, kind="stable")[: CLASSES_SHOWN - 1]
    chosen = {int(k) for k in top}
    if label is not None and 0 <= label < count:
        chosen.add(label)
    return sorted(chosen)


def _row_table(result: SoftmaxCrossEntropyResult, row: int, digits: int) -> str:
    dtype = result.options.dtype
    label = None if result.labels is None else int(result.labels[row])
    predicted = int(result.argmax[row])
    probabilities = result.probabilities[row]
    gradient = result.gradient[row]
    finite = np.abs(gradient[np.isfinite(gradient)])
    scale = float(finite.max()) if finite.size else 0.0
    shown = classes_shown(probabilities, label)
    head = ["class", "logit z", "target y", "softmax p", "", "∂L/∂z", "", ""]
    header = "".join(f'<th style="{_CELL}">{_text(h)}</th>' for h in head)
    lines = [f'<table style="{_TABLE}">', f"<tr>{header}</tr>"]
    for k in shown:
        notes = [word for word, on in (("label", k == label), ("predicted", k == predicted)) if on]
        cells = [
            _cell(str(k)),
            _cell(given(result.logits[row, k], dtype)),
            _cell(display(result.target[row, k], digits)),
            _cell(display(probabilities[k], digits)),
            f'<td style="{_BAR_CELL}">{probability_bar(float(probabilities[k]))}</td>',
            _cell(display(gradient[k], digits)),
            f'<td style="{_BAR_CELL}">{signed_bar(float(gradient[k]), scale)}</td>',
            f'<td style="{_CELL};text-align:left">{_text(", ".join(notes))}</td>',
        ]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    caption = f"Row {row}" if result.num_rows > 1 else ""
    if result.num_rows > 1:
        caption += f": loss {display(float(result.losses[row]), digits)}"
    if len(shown) < result.num_classes:
        hidden = result.num_classes - len(shown)
        caption += f"{'; ' if caption else ''}{count_of(hidden, 'more class', 'more classes')} not shown "
        caption += f"(the {len(shown)} shown: the most probable and the label)"
    scale_words = f"∂L/∂z bars are scaled to the largest |∂L/∂z|, {display(scale, digits)}"
    return (_paragraph(caption) if caption else "") + "\n".join(lines) + "\n" + _paragraph(scale_words)


def probability_bar(probability: float) -> str:
    """A bar for p in [0, 1], as wide as its share of the track (NaN: an empty track)."""
    share = 0.0 if not np.isfinite(probability) else max(0.0, min(1.0, probability))
    fill = f"position:absolute;left:0;top:0;bottom:0;width:{100 * share:.2f}%;background:{_PROBABILITY_COLOUR}"
    return f'<div style="{_TRACK}"><div style="{fill}"></div></div>'


def signed_bar(value: float, scale: float) -> str:
    """A bar from the middle of the track: to the left for a negative ∂L/∂z (that class is pulled up by a step
    of gradient descent), to the right for a positive one, as long as its share of ``scale`` (half the track
    for the largest). ±inf fills its half; NaN and a scale of 0 draw none."""
    share = min(1.0, abs(value) / scale) if np.isfinite(value) and scale > 0 else float(np.isinf(value))
    side = "right:50%" if value < 0 else "left:50%"
    colour = _PULLED_UP_COLOUR if value < 0 else _PUSHED_DOWN_COLOUR
    fill = f"position:absolute;{side};top:0;bottom:0;width:{50 * share:.2f}%;background:{colour}"
    middle = "position:absolute;left:50%;top:0;bottom:0;width:1px;background:gray"
    return f'<div style="{_TRACK}"><div style="{fill}"></div><div style="{middle}"></div></div>'


def markdown_as_html(markdown: str) -> str:
    """A derivation's Markdown as an HTML fragment: the text escaped, its lines kept. A notebook that
    typesets the math of HTML outputs (JupyterLab does) shows its ``$$`` blocks as formulas."""
    return f'<div class="sce-derivation" style="white-space:pre-wrap">{html.escape(markdown)}</div>'


def _cell(text: str) -> str:
    return f'<td style="{_CELL}">{_text(text)}</td>'


def _paragraph(text: str) -> str:
    return f'<p style="margin:0.25em 0">{_text(text)}</p>'


def _text(text: str) -> str:
    return html.escape(text, quote=True)
