"""Markdown: the result as a table, the derivation with LaTeX math."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import numpy as np

from sce.explain.derivation import Elided, Equation, Matrix, Stage
from sce.explain.exact_values import ExactRow, digits_capped_line, float64_digits, rounded_text
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import DISPLAY_DIGITS, display, given, latex, latex_text
from sce.render.words import options_summary, reduction_line


def grad_markdown(
    result: SoftmaxCrossEntropyResult, digits: int = DISPLAY_DIGITS, exact: ExactRow | None = None
) -> str:
    """One row's result as a Markdown table, ready to paste into notes; with ``exact``, its values
    rounded once (see :mod:`sce.explain.exact_values`)."""
    dtype = result.options.dtype
    shown_digits = digits if exact else float64_digits(result, digits)

    def write(values: np.ndarray | tuple[Decimal, ...], k: int) -> str:
        return rounded_text(values[k], digits) if exact else display(values[k], shown_digits)  # type: ignore[arg-type]

    label = None if result.labels is None else int(result.labels[0])
    predicted = int(result.argmax[0])
    lines = [
        "| class | logit $z$ | target $y$ | softmax $p$ | $\\partial L / \\partial z$ | |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for k in range(result.num_classes):
        notes = [word for word, on in (("label", k == label), ("predicted", k == predicted)) if on]
        lines.append(
            f"| {k} | {given(result.logits[0, k], dtype)} | {write(exact.target if exact else result.target[0], k)} "
            f"| {write(exact.probabilities if exact else result.probabilities[0], k)} "
            f"| {write(exact.gradient if exact else result.gradient[0], k)} "
            f"| {', '.join(notes)} |"
        )
    loss = result.reported_loss()
    loss_text = latex_text(rounded_text(exact.loss, digits)) if exact else latex(loss, shown_digits)
    lines += ["", f"Loss $L = {loss_text}$.", "", reduction_line(result.options.reduction)]
    summary = options_summary(result)
    if summary:
        lines.append("With " + "; ".join(summary) + ".")
    if shown_digits < digits:
        lines.append(digits_capped_line(result.num_classes, shown_digits) + ".")
    return "\n".join(lines) + "\n"


#: How a number is written in LaTeX, given its digits (:func:`sce.number_text.latex`, or a
#: worksheet's writer that leaves chosen values blank).
NumberWriter = Callable[[float, int], str]


def equation_latex(equation: Equation, digits: int, write: NumberWriter = latex) -> str:
    parts = [equation.symbolic] if equation.symbolic else []
    if equation.substituted:
        parts.append(equation.written(write, digits))
    return " = ".join(parts)


def matrix_latex(matrix: Matrix, digits: int, write: NumberWriter = latex) -> str:
    rows = " \\\\\n".join(" & ".join(write(v, digits) for v in row) for row in matrix.rows)
    return f"{matrix.name} = \\begin{{bmatrix}}\n{rows}\n\\end{{bmatrix}}"


def steps_markdown(
    stages: list[Stage], digits: int = DISPLAY_DIGITS, write: NumberWriter = latex, heading: str = "##"
) -> str:
    """The derivation in Markdown, each stage under a ``heading`` (``##``: a section of its own),
    its numbers written by ``write``."""
    lines: list[str] = []
    for number, stage in enumerate(stages, start=1):
        lines += [f"{heading} {number}. {stage.title}", ""]
        for note in stage.notes:
            lines += [note, ""]
        block: list[str] = []
        for item in stage.items:
            if isinstance(item, Elided):
                if block:
                    lines += _math_block(block)
                    block = []
                lines += [f"*… {item.count} more {'class' if item.count == 1 else 'classes'} …*", ""]
            elif isinstance(item, Matrix):
                block.append(matrix_latex(item, digits, write))
            else:
                block.append(equation_latex(item, digits, write))
        if block:
            lines += _math_block(block)
    return "\n".join(lines)


def derivation_markdown(result: SoftmaxCrossEntropyResult, stages: list[Stage], digits: int = DISPLAY_DIGITS) -> str:
    """``sce grad --steps --format markdown``: the stages, then the reduction the result used."""
    return steps_markdown(stages, digits) + "\n" + reduction_line(result.options.reduction) + "\n"


def _math_block(equations: list[str]) -> list[str]:
    if len(equations) == 1:
        return ["$$", equations[0], "$$", ""]
    body = " \\\\\n".join(equations)
    return ["$$", "\\begin{gathered}", body, "\\end{gathered}", "$$", ""]
