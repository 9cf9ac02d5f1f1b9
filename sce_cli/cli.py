"""The ``sce`` command line: parse, call the core, render, report."""

from __future__ import annotations

import os
import sys
import warnings
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from . import __version__
from .commandline import NumbersCommand, SceGroup, say_warning
from .errors import UsageProblem, command_line_problem
from .parsing import parse_label, parse_numbers

if TYPE_CHECKING:
    from .core import SoftmaxCrossEntropyResult


class DType(str, Enum):
    float64 = "float64"
    float32 = "float32"


class ReductionChoice(str, Enum):
    none = "none"
    mean = "mean"
    sum = "sum"


class GradFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


app = typer.Typer(
    cls=SceGroup,
    name="sce",
    help="Softmax cross-entropy: probabilities, loss and gradient ∂L/∂z, exactly.",
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        print(f"sce {__version__}")
        raise typer.Exit()


@app.callback()
def _sce(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Softmax cross-entropy: probabilities, loss and gradient ∂L/∂z, exactly."""


# Options shared by the commands that compute one vector of logits.
LabelOption = Annotated[
    Optional[str],
    typer.Option("--label", "-l", help="The correct class, 0-based (as in PyTorch).", show_default=False),
]
TargetOption = Annotated[
    Optional[str],
    typer.Option(
        "--target", "-t", help="Probability targets P1,P2,... in place of --label.", show_default=False
    ),
]
SmoothingOption = Annotated[
    float, typer.Option("--smoothing", help="Label smoothing ε in [0, 1].")
]
WeightOption = Annotated[
    Optional[str],
    typer.Option("--weight", "-w", help="Class weights W1,W2,... (one per class, >= 0).", show_default=False),
]
TemperatureOption = Annotated[
    float, typer.Option("--temperature", "-T", help="Softmax temperature T > 0: p = softmax(z / T).")
]
ReductionOption = Annotated[
    ReductionChoice,
    typer.Option("--reduction", help="As PyTorch: none, mean (divides by the label's weight) or sum."),
]
IgnoreIndexOption = Annotated[
    int, typer.Option("--ignore-index", help="A label that makes the row count for nothing.")
]
DTypeOption = Annotated[DType, typer.Option("--dtype", help="Floating-point type to compute in.")]
DigitsOption = Annotated[
    int, typer.Option("--digits", "-d", help="Decimals shown in tables (display only, 1 to 17).")
]
LogitsArgument = Annotated[
    Optional[list[str]],
    typer.Argument(
        metavar="LOGITS...",
        help="The logits z, as separate numbers (2 3 4) or one list (2,3,4). Negative numbers work as typed.",
        show_default=False,
    ),
]


def compute(
    logit_texts: list[str] | None,
    label: str | None,
    target: str | None,
    *,
    smoothing: float,
    weight: str | None,
    temperature: float,
    reduction: ReductionChoice,
    ignore_index: int,
    dtype: DType,
) -> SoftmaxCrossEntropyResult:
    """Parse the command line's numbers and run the core on them.

    Every problem becomes a :class:`UsageProblem` naming the argument, and every
    warning of the core a line on stderr.
    """
    if not logit_texts:
        raise UsageProblem("no logits given; type them after the command, e.g. sce grad 2 3 4 --label 1")
    logits = parse_numbers(logit_texts, "LOGITS")
    if label is not None and target is not None:
        raise UsageProblem("give either --label or --target, not both")
    if label is None and target is None:
        raise UsageProblem(
            "say which class is correct with --label C (0-based), or give probabilities with --target P1,P2,..."
        )
    labels = None if label is None else parse_label(label)
    targets = None if target is None else parse_numbers(target, "--target")
    weights = None if weight is None else parse_numbers(weight, "--weight")
    for name, values in (("--target", targets), ("--weight", weights)):
        if values is not None and len(values) != len(logits):
            raise UsageProblem(
                f"{name}: {len(values)} numbers for {len(logits)} logits; give one per class"
            )

    from .core import InvalidInput, softmax_cross_entropy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = softmax_cross_entropy(
                logits,
                labels,
                targets=targets,
                weight=weights,
                label_smoothing=smoothing,
                ignore_index=ignore_index,
                reduction=reduction.value,
                temperature=temperature,
                dtype=dtype.value,
            )
        except InvalidInput as error:
            raise command_line_problem(error) from None
    for warning in caught:
        say_warning(str(warning.message))
    return result


def check_digits(digits: int) -> None:
    if not 1 <= digits <= 17:
        raise UsageProblem(f"--digits: {digits} is out of range; use 1 to 17")


def stdout_console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False)


@app.command(cls=NumbersCommand, no_args_is_help=True)
def grad(
    logits: LogitsArgument = None,
    label: LabelOption = None,
    target: TargetOption = None,
    smoothing: SmoothingOption = 0.0,
    weight: WeightOption = None,
    temperature: TemperatureOption = 1.0,
    reduction: ReductionOption = ReductionChoice.none,
    ignore_index: IgnoreIndexOption = -100,
    dtype: DTypeOption = DType.float64,
    digits: DigitsOption = 4,
    output_format: Annotated[
        GradFormat,
        typer.Option(
            "--format", "-f", help="table (for people), markdown, json or csv (full precision)."
        ),
    ] = GradFormat.table,
    steps: Annotated[
        bool, typer.Option("--steps", help="Derive the result stage by stage with these numbers.")
    ] = False,
) -> None:
    """Probabilities, loss and gradient ∂L/∂z for one vector of logits.

    Example: sce grad 2 3 4 --label 1
    """
    check_digits(digits)
    if steps and output_format is GradFormat.csv:
        raise UsageProblem("--steps cannot be written as csv; use --format table, markdown or json")
    result = compute(
        logits,
        label,
        target,
        smoothing=smoothing,
        weight=weight,
        temperature=temperature,
        reduction=reduction,
        ignore_index=ignore_index,
        dtype=dtype,
    )
    if steps:
        print_derivation(result, digits, output_format)
    elif output_format is GradFormat.json:
        from .render.json_format import dumps, grad_document

        sys.stdout.write(dumps(grad_document(result)) + "\n")
    elif output_format is GradFormat.markdown:
        from .render.markdown_format import grad_markdown

        sys.stdout.write(grad_markdown(result, digits))
    elif output_format is GradFormat.csv:
        from .render.csv_format import grad_csv

        sys.stdout.write(grad_csv(result))
    else:
        from .render.table import print_grad

        print_grad(stdout_console(), result, digits)


def print_derivation(result: SoftmaxCrossEntropyResult, digits: int, output_format: GradFormat) -> None:
    from .derivation import build_derivation

    if result.labels is not None and not result.counted[0]:
        raise UsageProblem(
            f"--steps: label {int(result.labels[0])} is the ignore index, so the loss is 0 "
            "and there is nothing to derive; give a class index"
        )
    stages = build_derivation(result, digits)
    if output_format is GradFormat.json:
        from .render.json_format import dumps, grad_document, steps_document

        document = grad_document(result)
        document["steps"] = steps_document(stages, result.options.dtype)
        sys.stdout.write(dumps(document) + "\n")
    elif output_format is GradFormat.markdown:
        from .render.markdown_format import steps_markdown

        sys.stdout.write(steps_markdown(stages, digits))
    else:
        from .render.steps_terminal import print_steps

        print_steps(stdout_console(), stages, digits)


class BatchFormat(str, Enum):
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


def _delimiter(value: str | None, input_path: str) -> str:
    if value is None:
        return "\t" if input_path.lower().endswith((".tsv", ".tab")) else ","
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
    delimiter = named.get(value.lower(), value)
    if len(delimiter) != 1:
        raise UsageProblem(f"--delimiter: {value!r} is not one character; use for example ',' ';' or tab")
    return delimiter


def _output_format(value: BatchFormat | None, output: str | None, delimiter: str) -> str:
    if value is not None:
        return value.value
    suffix = os.path.splitext(output or "")[1].lower()
    if suffix in (".tsv", ".jsonl", ".csv"):
        return suffix[1:]
    return "tsv" if delimiter == "\t" else "csv"


@app.command(no_args_is_help=True)
def batch(
    input_path: Annotated[
        str, typer.Argument(metavar="INPUT", help="A CSV or TSV file, or - for stdin.", show_default=False)
    ],
    output: Annotated[
        Optional[str],
        typer.Option("--output", "-o", help="Output file (default: stdout). Written whole or not at all."),
    ] = None,
    label_col: Annotated[
        Optional[str], typer.Option("--label-col", help="The label column (default: 'label'; the last without a header).")
    ] = None,
    logit_cols: Annotated[
        Optional[str], typer.Option("--logit-cols", help="Logit columns: a comma list or a glob such as 'z*' (default: all others).")
    ] = None,
    target_cols: Annotated[
        Optional[str], typer.Option("--target-cols", help="Soft-target columns, in place of a label column.")
    ] = None,
    no_header: Annotated[bool, typer.Option("--no-header", help="The input has no header line; columns are 0..n-1.")] = False,
    delimiter: Annotated[
        Optional[str], typer.Option("--delimiter", help="Field separator (default: tab for .tsv files, else comma).")
    ] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="The input's text encoding.")] = "utf-8",
    smoothing: SmoothingOption = 0.0,
    weight: WeightOption = None,
    temperature: TemperatureOption = 1.0,
    reduction: ReductionOption = ReductionChoice.none,
    ignore_index: IgnoreIndexOption = -100,
    dtype: DTypeOption = DType.float64,
    digits: Annotated[
        Optional[int], typer.Option("--digits", "-d", help="Round output floats to N significant digits (default: full precision).")
    ] = None,
    output_format: Annotated[
        Optional[BatchFormat], typer.Option("--format", "-f", help="csv, tsv or jsonl (default: from -o's name, else like the input).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
) -> None:
    """Probabilities, loss and gradient for every row of a CSV file, streaming.

    Example: sce batch samples/batch.csv -o scored.csv
    """
    if digits is not None:
        check_digits(digits)
    from .batch_io import BatchRequest, CoreOptions, run_batch

    separator = _delimiter(delimiter, input_path)
    request = BatchRequest(
        input_path=input_path,
        output_path=output,
        label_col=label_col,
        logit_cols=logit_cols,
        target_cols=target_cols,
        has_header=not no_header,
        delimiter=separator,
        encoding=encoding,
        output_format=_output_format(output_format, output, separator),
        digits=digits,
        options=CoreOptions(
            weight=None if weight is None else parse_numbers(weight, "--weight"),
            label_smoothing=smoothing,
            ignore_index=ignore_index,
            reduction=reduction.value,
            temperature=temperature,
            dtype=dtype.value,
        ),
    )
    from rich.console import Console

    stderr = Console(stderr=True, highlight=False)
    if quiet or not stderr.is_terminal:
        summary = run_batch(request)
    else:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        size = os.path.getsize(input_path) if input_path != "-" and os.path.isfile(input_path) else None
        # Progress redirects stdout by default, which would put the bar into the output stream.
        with Progress(
            TextColumn("sce batch"), BarColumn(), TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(),
            console=stderr, redirect_stdout=False, redirect_stderr=False, transient=True,
        ) as progress:
            task = progress.add_task("rows", total=size, rows=0)
            summary = run_batch(
                request, on_progress=lambda done, rows: progress.update(task, completed=done, rows=rows)
            )
    if summary.reduction == "mean" and summary.denominator == 0:
        say_warning("every row is ignored or has weight 0, so the mean divides by 0: the loss is NaN")
    if summary.infinite_losses:
        say_warning(f"{summary.infinite_losses:,} rows have an infinite loss (a target class with probability 0)")
    if not quiet:
        from .render.table import batch_summary_table

        stderr.print(batch_summary_table(summary))


def main() -> None:
    app(prog_name="sce")
