"""The terminal view of one row's result: a rich table and the loss."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..core import SoftmaxCrossEntropyResult
from .numbers import display, given

_EIGHTHS = " ▏▎▍▌▋▊▉"
BAR_WIDTH = 8


def probability_bar(probability: float, width: int = BAR_WIDTH) -> str:
    """A bar of ``width`` cells, in eighths of a cell, for a probability in [0, 1]."""
    eighths = round(max(0.0, min(1.0, probability)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(width)


def options_summary(result: SoftmaxCrossEntropyResult) -> list[str]:
    """The options that differ from the defaults, in words."""
    options = result.options
    dtype = options.dtype
    words = []
    if options.label_smoothing:
        words.append(f"label smoothing {given(options.label_smoothing)}")
    if options.weight is not None:
        words.append("class weights " + ", ".join(given(w, dtype) for w in options.weight))
    if options.temperature != 1.0:
        words.append(f"temperature {given(options.temperature)}")
    if options.reduction != "none":
        words.append(f"reduction {options.reduction}")
    if dtype != "float64":
        words.append(f"computed in {dtype}")
    return words


def grad_table(result: SoftmaxCrossEntropyResult, digits: int = 4, row: int = 0) -> Table:
    dtype = result.options.dtype
    label = None if result.labels is None else int(result.labels[row])
    predicted = int(result.argmax[row])
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("class", justify="right")
    table.add_column("logit z", justify="right")
    table.add_column("target y", justify="right")
    table.add_column("softmax p", justify="right")
    table.add_column("", justify="left", no_wrap=True)
    table.add_column("∂L/∂z", justify="right")
    table.add_column("", justify="left")
    for k in range(result.num_classes):
        notes = []
        if k == label:
            notes.append("label")
        if k == predicted:
            notes.append("predicted")
        style = "bold" if k == predicted else ""
        table.add_row(
            str(k),
            given(result.logits[row, k], dtype),
            display(result.target[row, k], digits),
            display(result.probabilities[row, k], digits),
            Text(probability_bar(float(result.probabilities[row, k])), style="cyan"),
            display(result.gradient[row, k], digits),
            ", ".join(notes),
            style=style,
        )
    return table


def print_grad(console: Console, result: SoftmaxCrossEntropyResult, digits: int = 4) -> None:
    console.print(grad_table(result, digits))
    console.print()
    loss = float(result.loss if result.options.reduction != "none" else result.losses[0])
    line = Text.assemble(("loss L = ", "bold"), (display(loss, digits), "bold"))
    if result.labels is not None and not result.counted[0]:
        line.append(f"  (label {int(result.labels[0])} is the ignore index: the row counts for nothing)")
    console.print(line)
    summary = options_summary(result)
    if summary:
        console.print("with " + "; ".join(summary), highlight=False)


def batch_summary_table(summary) -> Table:  # type: ignore[no-untyped-def]
    """The summary `sce batch` prints on stderr (a BatchSummary)."""
    table = Table(
        box=None, show_header=False, pad_edge=False, title="sce batch", title_justify="left", title_style="bold"
    )
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    loss_name = {"mean": "loss (mean)", "sum": "loss (sum)"}.get(summary.reduction, "mean row loss")
    rows = [
        ("rows", f"{summary.rows:,}"),
        ("ignored rows", f"{summary.ignored_rows:,}"),
        ("classes", str(summary.classes)),
        (loss_name, display(summary.reduced_loss, 6)),
        ("accuracy", "nan" if summary.counted == 0 else f"{summary.accuracy:.2%}"),
        ("rows per second", f"{summary.rows / summary.seconds:,.0f}" if summary.seconds else "-"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
