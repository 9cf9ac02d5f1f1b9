"""The terminal views: results, verdicts and proofs as tables and lines.

Every table is a :class:`~.grid.Grid`, printed by :func:`~.grid.print_grid`:
rich's layout on a terminal, the same text without colour elsewhere, and
never a number cut to fit a width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from sce.explain.exact_values import EXACT_FROM_DIGITS, ExactRow, digits_capped_line, float64_digits, rounded_text
from sce.explain.proofs import HessianProof, JacobianProof, Proofs
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import DISPLAY_DIGITS, display, display_all, given
from sce.render.grid import Cell, Column, Grid, print_grid, print_styled
from sce.render.words import (
    HESSIAN_OVERFLOWS,
    eigenvalue_text,
    hessian_formula,
    hessian_statement,
    jacobian_failure,
    jacobian_words,
    options_summary,
    reduction_line,
)

if TYPE_CHECKING:  # only for annotations: rendering a result must not load polars, nor a pipe rich
    from rich.console import Console
    from rich.text import Text

    from sce.batch import BatchSummary
    from sce.explain.finite_differences import Verification
    from sce.grading import Mistake
    from sce.grading.csv_file import FileCheck

_EIGHTHS = " ▏▎▍▌▋▊▉"
BAR_WIDTH = 8


def probability_bar(probability: float, width: int = BAR_WIDTH) -> str:
    """A bar of ``width`` cells, in eighths of a cell, for a probability in [0, 1]."""
    eighths = round(max(0.0, min(1.0, probability)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(width)


#: Cells on each side of a signed bar's centre line.
SIGNED_BAR_SIDE = 5


def signed_bar(value: float, scale: float = 1.0, side: int = SIGNED_BAR_SIDE) -> str:
    """A bar left (negative) or right (positive) of a centre line │, in half cells of
    ``side`` cells for ``scale``; a NaN is the centre line alone.

    Half cells (▐, ▌), not eighths: a terminal's blocks that fill from the right stop at
    the half, and both sides are drawn at the same resolution.

    Examples
    --------
    >>> signed_bar(-0.75527), signed_bar(0.66524), signed_bar(0.09003)
    (' ████│     ', '     │███▌ ', '     │▌    ')
    """
    halves = 0 if math.isnan(value) else round(min(1.0, abs(value) / scale) * side * 2)
    full, half = divmod(halves, 2)
    if value < 0:
        return ("▐" * half + "█" * full).rjust(side) + "│" + " " * side
    return " " * side + "│" + ("█" * full + "▌" * half).ljust(side)


def grad_grid(
    result: SoftmaxCrossEntropyResult, digits: int = DISPLAY_DIGITS, row: int = 0, exact: ExactRow | None = None
) -> Grid:
    """One row's table; with ``exact`` (row 0's exact values) its target, probabilities and gradient
    are those values rounded once, not float64's."""
    dtype = result.options.dtype
    label = None if result.labels is None else int(result.labels[row])
    predicted = int(result.argmax[row])
    grid = Grid(
        [
            Column("class", "right"),
            Column("logit z", "right"),
            Column("target y", "right"),
            Column("softmax p", "right"),
            Column("", "left", gives_way=True),
            Column("∂L/∂z", "right"),
            Column("", "left", gives_way=True),
            Column("", "left"),
        ]
    )
    # Column by column: a table of a million classes is built in seconds, not minutes.
    n_classes = result.num_classes
    notes = [""] * n_classes
    if label is not None and 0 <= label < n_classes:  # not the ignore index -100
        notes[label] = "label"
    notes[predicted] = "label, predicted" if predicted == label else "predicted"
    probabilities = result.probabilities[row].tolist()
    scale = gradient_bar_scale(result.gradient[row])
    columns = [
        [str(k) for k in range(n_classes)],
        [given(value, dtype) for value in result.logits[row].tolist()],
        _texts(exact.target if exact else result.target[row].tolist(), digits),
        _texts(exact.probabilities if exact else probabilities, digits),
        [(probability_bar(p), "cyan") for p in probabilities],
        _texts(exact.gradient if exact else result.gradient[row].tolist(), digits),
        [(bar, "magenta") for bar in signed_bars(result.gradient[row], scale)],
        notes,
    ]
    grid.rows = [list(cells) for cells in zip(*columns)]
    grid.row_styles = [""] * n_classes
    grid.row_styles[predicted] = "bold"
    return grid


def signed_bars(values: np.ndarray, scale: float = 1.0, side: int = SIGNED_BAR_SIDE) -> list[str]:
    """:func:`signed_bar` of every value, looked up among the 4·side + 1 bars there are
    (a million classes' bars in a tenth of the time).

    Examples
    --------
    >>> values = [-0.75527, 0.66524, 0.0]
    >>> signed_bars(np.array(values)) == [signed_bar(value) for value in values]
    True
    """
    with np.errstate(invalid="ignore"):
        halves = np.rint(np.minimum(1.0, np.abs(values) / scale) * side * 2)
    halves = np.where(np.isnan(halves), 0, halves).astype(np.int64)
    index = np.where(values < 0, -halves, halves) + 2 * side
    drawn = [signed_bar(k / (2 * side), 1.0, side) for k in range(-2 * side, 2 * side + 1)]
    return [drawn[k] for k in index.tolist()]


def gradient_bar_scale(gradient: np.ndarray) -> float:
    """The value a full signed bar stands for: 1, where p − y keeps every entry of the
    gradient in [−1, 1], so that its bars and the probabilities' share one scale; else the
    largest finite magnitude (class weights, a z-loss), so that no bar is cut."""
    finite = np.abs(gradient[np.isfinite(gradient)])
    return max(1.0, float(finite.max())) if finite.size else 1.0


def _texts(values: Sequence[float] | Sequence[Decimal], digits: int) -> list[str]:
    if values and isinstance(values[0], Decimal):
        return [rounded_text(value, digits) for value in values]  # type: ignore[arg-type]
    return display_all(values, digits)  # type: ignore[arg-type]


def print_grad(
    console: Console, result: SoftmaxCrossEntropyResult, digits: int = DISPLAY_DIGITS, exact: ExactRow | None = None
) -> None:
    """The table and the loss; with ``exact``, its values rounded once (see :mod:`sce.explain.exact_values`)."""
    shown_digits = digits if exact else float64_digits(result, digits)
    print_grid(console, grad_grid(result, shown_digits, exact=exact))
    console.print()
    loss = result.reported_loss()
    loss_text = rounded_text(exact.loss, digits) if exact else display(loss, shown_digits)
    line: list[Cell] = [("loss L = ", "bold"), (loss_text, "bold")]
    if result.labels is not None and not result.counted[0]:
        line.append(f"  (label {int(result.labels[0])} is the ignore index: the row counts for nothing)")
    print_styled(console, *line)
    print_styled(console, reduction_line(result.options.reduction))
    summary = options_summary(result)
    if summary:
        console.print("with " + "; ".join(summary), highlight=False)
    if shown_digits < digits:
        console.print(digits_capped_line(result.num_classes, shown_digits), highlight=False)


def batch_summary_grid(summary: BatchSummary) -> Grid:
    """The summary `sce batch` prints on stderr."""
    grid = Grid([Column("", style="bold"), Column("", "right")], title="sce batch", boxed=False, show_header=False)
    loss_name = {"mean": "loss (mean)", "sum": "loss (sum)"}.get(summary.reduction, "mean row loss")
    rows = [
        ("reduction", summary.reduction),
        ("rows", f"{summary.rows:,}"),
        ("ignored rows", f"{summary.ignored_rows:,}"),
        ("classes", str(summary.classes)),
        (loss_name, display(summary.reduced_loss, 6)),
        ("accuracy", "nan" if summary.counted == 0 else f"{summary.accuracy:.2%}"),
        ("rows per second", f"{summary.rows / summary.seconds:,.0f}" if summary.seconds else "-"),
    ]
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def print_mistake(
    console: Console, mistake: Mistake, flag_of: Mapping[str, str] | None = None, indent: str = "  ", of: str = ""
) -> None:
    """A named mistake as ``sce check`` and ``sce check --csv`` show it: its name (``of`` the
    quantity it explains, if not every one), then its fix."""
    for line in mistake_lines(mistake, flag_of, indent, of):
        console.print(line, soft_wrap=True)


def mistake_lines(
    mistake: Mistake, flag_of: Mapping[str, str] | None = None, indent: str = "  ", of: str = ""
) -> list[Text]:
    """The lines of :func:`print_mistake`: the mistake's name, then its fix."""
    from rich.text import Text

    where = f"{of}: " if of else ""
    return [
        Text(f"{indent}mistake: {where}{mistake.worded_name(flag_of)}"),
        Text(f"{indent}fix: {mistake.worded_fix(flag_of)}"),
    ]


def print_verification(console: Console, verification: Verification, digits: int = DISPLAY_DIGITS) -> None:
    headings = ("class", "analytic ∂L/∂z", "numeric", "step h", "relative difference")
    grid = Grid([Column(heading, "right") for heading in headings], title="--verify: central differences of the loss")
    for k, class_index in enumerate(verification.classes):
        grid.add_row(
            str(class_index),
            display(verification.analytic[k], max(digits, 8)),
            display(verification.numeric[k], max(digits, 8)),
            display(verification.steps[k], 1),
            display(verification.relative_difference[k], 1),
        )
    print_grid(console, grid)
    console.print()
    worst = display(verification.worst, 1)
    if len(verification.classes) < verification.num_classes:
        console.print(
            f"{len(verification.classes)} of {verification.num_classes:,} classes checked: the label, "
            "the prediction, the largest entries and an even spread (each check is a pass over every class)."
        )
    if verification.verdict == "cannot verify":
        console.print(
            f"max relative difference {worst}: cannot verify at this scale: finite differences of this loss "
            "cannot resolve the gradient here (rounding noise or curvature over the step exceeds the difference)."
        )
        return
    verdict = "agree" if verification.verdict == "agree" else "DISAGREE"
    console.print(
        f"max relative difference {worst}: the analytic gradient and the finite differences {verdict} "
        "(differences are relative to the largest gradient entry)."
    )


def matrix_grid(
    rows: Iterable[Iterable[float]],
    indices: Sequence[int],
    write: Callable[[float], str],
    title: str | None = None,
) -> Grid:
    """A matrix with rows and columns labelled by class index, each entry written by ``write``."""
    grid = Grid([Column("", "right", "dim"), *(Column(str(k), "right") for k in indices)], title=title, pad_edge=True)
    for k, row in zip(indices, rows):
        grid.add_row(str(k), *(write(v) for v in row))
    return grid


#: Beyond this many classes a K×K matrix is described rather than printed.
MAX_PRINTED_MATRIX = 12


def print_proofs(console: Console, proofs: Proofs, digits: int = DISPLAY_DIGITS, *, float64: bool = True) -> None:
    """--jacobian, --hessian and --verify, in that order, after the result table. Their float64 values
    are not evaluated again exactly: shown with at most 11 digits (one line says so where more were asked)."""
    shown = min(digits, EXACT_FROM_DIGITS - 1) if float64 else digits
    if proofs.jacobian is not None:
        print_jacobian(console, proofs.jacobian, shown)
    if proofs.hessian is not None:
        print_hessian(console, proofs.hessian, shown)
    if proofs.verification is not None:
        print_verification(console, proofs.verification, shown)
    if shown < digits:
        console.print(
            f"digits: {shown} shown for --jacobian, --hessian and --verify: float64's values, within a few ulps "
            "of the exact ones, are not evaluated again exactly",
            highlight=False,
        )


def print_jacobian(console: Console, proof: JacobianProof, digits: int = DISPLAY_DIGITS) -> None:
    from rich.text import Text

    jacobian, size = proof.jacobian, len(proof.dl_ds)
    matrix_words, product_words = jacobian_words(proof)
    console.print(
        Text(
            "--jacobian: ∂L/∂z = ∂L/∂s · ∂s/∂z"
            + (" + the z-loss's share" if proof.language_model and "z-loss" in product_words else ""),
            style="bold",
        )
    )
    if jacobian is not None and size <= MAX_PRINTED_MATRIX:
        console.print(matrix_words)
        print_grid(console, matrix_grid(jacobian, range(size), partial(display, digits=digits)))
    else:
        console.print(f"{matrix_words} is {size}×{size}: too large to print.")
    console.print(Text("∂L/∂s = " + _vector_text(proof.dl_ds, digits)))
    console.print(Text(f"product = {product_words}"))
    console.print(Text("product = " + _vector_text(proof.product, digits)))
    if proof.fails_in_floating_point:
        console.print(Text(jacobian_failure(proof.dl_ds_overflows)))
    else:
        difference = float(np.max(np.abs(proof.product - proof.gradient)))
        console.print(f"max |product - gradient| = {display(difference, 1)}")
    console.print()


def _vector_text(values: np.ndarray, digits: int) -> str:
    """(v0, v1, …) with the middle elided beyond a dozen classes (JSON has every entry)."""
    if len(values) <= MAX_PRINTED_MATRIX:
        return "(" + ", ".join(display(v, digits) for v in values) + ")"
    largest = int(np.argmax(np.abs(values)))
    shown = sorted({0, 1, 2, largest, len(values) - 2, len(values) - 1})
    parts, previous = [], -1
    for k in shown:
        if k > previous + 1:
            parts.append("…")
        parts.append(f"[{k}] {display(values[k], digits)}")
        previous = k
    return "(" + ", ".join(parts) + ")"


def print_hessian(console: Console, proof: HessianProof, digits: int = DISPLAY_DIGITS) -> None:
    from rich.text import Text

    hessian, size = proof.hessian, proof.num_classes
    console.print(Text("--hessian: ∇²L with respect to the logits", style="bold"))
    if proof.language_model:
        console.print(hessian_formula(proof))
        if hessian is not None and size <= MAX_PRINTED_MATRIX:
            print_grid(console, matrix_grid(hessian, range(size), partial(display, digits=digits)))
    elif hessian is not None and size <= MAX_PRINTED_MATRIX:
        console.print("∇²L = (Σⱼ wⱼ yⱼ) (diag(s) - s sᵀ) / T²")
        print_grid(console, matrix_grid(hessian, range(size), partial(display, digits=digits)))
    else:
        console.print(f"∇²L = (Σⱼ wⱼ yⱼ) (diag(s) - s sᵀ) / T² is {size}×{size}: too large to print.")
    if not proof.finite:
        console.print(Text(HESSIAN_OVERFLOWS))
        console.print()
        return
    if proof.all_eigenvalues and size <= MAX_PRINTED_MATRIX:
        error = proof.eigenvalue_error
        console.print("eigenvalues: " + ", ".join(eigenvalue_text(v, error, digits) for v in proof.eigenvalues))
        if error:
            console.print(
                f"(digits below about {display(error, 2)}, the matrix's rounding and the eigensolver's, are not shown)"
            )
    else:
        largest = np.sort(proof.eigenvalues)[::-1][:5]
        console.print(
            f"eigenvalues: the largest {', '.join(display(v, digits) for v in largest)}; "
            f"the smallest {display(float(np.min(proof.eigenvalues)), digits)}"
        )
    console.print(hessian_statement(proof))
    console.print()


def print_file_check(
    console: Console,
    found: FileCheck,
    digits: int = DISPLAY_DIGITS,
    flag_of: Mapping[str, str] | None = None,
    *,
    reduction: str,
) -> None:
    """`sce check --csv`: the worst rows, then the reduction graded, the summary and the mistakes named."""
    from rich.text import Text

    from sce.grading import verdicts  # here: sce grad, which renders through this module, loads no grading code

    if found.worst:
        headings = ("line", "column", "expected", "given", "difference")
        grid = Grid([Column(heading, "right") for heading in headings], title="worst entries")
        for cell in found.worst:
            grid.add_row(
                str(cell.line),
                cell.column,
                display(cell.expected, digits),
                cell.written,
                display(cell.given - cell.expected, 2),
            )
        print_grid(console, grid)
        console.print()
    print_styled(console, reduction_line(reduction))
    console.print(f"rows checked: {found.rows:,}")
    if found.graded_gradients and found.graded_gradients < found.classes:
        console.print(
            f"graded {found.graded_gradients:,} of {found.classes:,} gradient columns; "
            f"all {found.classes:,} logit columns join the softmax"
        )
    console.print(f"rows wrong: {found.wrong_rows:,}")
    if found.non_finite:
        entries = "entry" if found.non_finite == 1 else "entries"
        console.print(f"not finite: {found.non_finite:,} {entries} (NaN or ±inf where a finite value is expected)")
    console.print(f"max absolute error: {display(found.max_abs_error, 2)}")
    console.print(f"max relative error: {display(found.max_rel_error, 2)}")
    for quantity, mistake in found.mistakes:
        print_mistake(console, mistake, flag_of, indent="", of=quantity)
    if found.look_alike is not None:
        line, mistake = found.look_alike
        rows = "row" if found.too_few_digits_rows == 1 else "rows"
        fix = "give a smaller --tol" if found.tolerance_given else "give more digits"
        console.print(
            Text(
                f"too few digits: {found.too_few_digits_rows:,} {rows} right to "
                f"{'--tol' if found.tolerance_given else 'the digits given'}, but also fitting a usual mistake "
                f"(first at line {line}: {mistake.worded_name(flag_of)}); {fix} to tell them apart"
            ),
            soft_wrap=True,
        )
    style = {verdicts.CORRECT: "bold green", verdicts.TOO_FEW_DIGITS: "bold yellow"}.get(found.verdict, "bold red")
    console.print(Text(f"verdict: {verdicts.WORDS[found.verdict]}", style=style))
