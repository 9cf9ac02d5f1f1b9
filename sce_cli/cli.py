"""The ``sce`` command line: parse, call the core, render, report."""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from . import __version__
from .commandline import NumbersCommand, SceGroup, say_warning
from .errors import UsageProblem, command_line_problem
from .parsing import parse_label, parse_numbers, split_numbers

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


@dataclass
class CoreCall:
    """The core's inputs as parsed from the command line."""

    logits: list[float]
    labels: int | None
    targets: list[float] | None
    options: dict = field(default_factory=dict)

    def run(self, **changes: object) -> SoftmaxCrossEntropyResult:
        """Run the core silently, with some options changed: `sce check`'s
        what-ifs, whose warnings are not the user's business."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._call(changes)

    def run_reporting_warnings(self) -> SoftmaxCrossEntropyResult:
        """Run the core as asked; each of its warnings becomes a line on stderr."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = self._call({})
        for warning in caught:
            say_warning(str(warning.message))
        return result

    def _call(self, changes: dict) -> SoftmaxCrossEntropyResult:
        """Every problem becomes a :class:`UsageProblem` naming the argument."""
        from .core import InvalidInput, softmax_cross_entropy

        options = {**self.options, **changes}
        labels = options.pop("labels", self.labels)
        try:
            return softmax_cross_entropy(self.logits, labels, targets=self.targets, **options)
        except InvalidInput as error:
            raise command_line_problem(error) from None


def parse_core_call(
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
) -> CoreCall:
    if not logit_texts:
        raise UsageProblem("no logits given; type them after the command, e.g. sce grad 2 3 4 --label 1")
    logits = parse_numbers(logit_texts, "LOGITS")
    if label is not None and target is not None:
        raise UsageProblem("give either --label or --target, not both")
    if label is None and target is None:
        raise UsageProblem(
            "say which class is correct with --label C (0-based), or give probabilities with --target P1,P2,..."
        )
    targets = None if target is None else parse_numbers(target, "--target")
    weights = None if weight is None else parse_numbers(weight, "--weight")
    for name, values in (("--target", targets), ("--weight", weights)):
        if values is not None and len(values) != len(logits):
            raise UsageProblem(
                f"{name}: {len(values)} numbers for {len(logits)} logits; give one per class"
            )
    return CoreCall(
        logits,
        None if label is None else parse_label(label),
        targets,
        dict(
            weight=weights,
            label_smoothing=smoothing,
            ignore_index=ignore_index,
            reduction=reduction.value,
            temperature=temperature,
            dtype=dtype.value,
        ),
    )


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
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the gradient against central finite differences of the loss.")
    ] = False,
    jacobian: Annotated[
        bool, typer.Option("--jacobian", help="Show ∂s/∂z = diag(s) - s sᵀ, ∂L/∂s and their product.")
    ] = False,
    hessian: Annotated[
        bool, typer.Option("--hessian", help="Show ∇²L with respect to the logits and its eigenvalues.")
    ] = False,
) -> None:
    """Probabilities, loss and gradient ∂L/∂z for one vector of logits.

    Example: sce grad 2 3 4 --label 1
    """
    check_digits(digits)
    if steps and output_format is GradFormat.csv:
        raise UsageProblem("--steps cannot be written as csv; use --format table, markdown or json")
    extras = [name for name, on in (("--verify", verify), ("--jacobian", jacobian), ("--hessian", hessian)) if on]
    if extras and output_format in (GradFormat.csv, GradFormat.markdown):
        raise UsageProblem(f"{extras[0]} is shown as a table or in JSON; use --format table or json")
    result = parse_core_call(
        logits,
        label,
        target,
        smoothing=smoothing,
        weight=weight,
        temperature=temperature,
        reduction=reduction,
        ignore_index=ignore_index,
        dtype=dtype,
    ).run_reporting_warnings()
    if steps:
        print_derivation(result, digits, output_format)
    elif output_format is GradFormat.json:
        from .render.json_format import dumps, grad_document

        document = grad_document(result)
        document.update(proofs_document(result, verify, jacobian, hessian))
        sys.stdout.write(dumps(document) + "\n")
    elif output_format is GradFormat.markdown:
        from .render.markdown_format import grad_markdown

        sys.stdout.write(grad_markdown(result, digits))
    elif output_format is GradFormat.csv:
        from .render.csv_format import grad_csv

        sys.stdout.write(grad_csv(result))
    else:
        from .render.table import print_grad

        console = stdout_console()
        print_grad(console, result, digits)
        if extras:
            console.print()
            print_proofs(console, result, digits, verify, jacobian, hessian)


def _proofs(result: SoftmaxCrossEntropyResult, verify: bool, jacobian: bool, hessian: bool) -> dict:
    """The numbers behind --verify, --jacobian and --hessian."""
    import numpy as np

    from .core import gradient_via_jacobian, loss_gradient_wrt_probabilities, loss_hessian, softmax_jacobian
    from .grading import verify_gradient

    found: dict = {}
    if verify:
        found["verify"] = verify_gradient(result)
    if jacobian:
        found["jacobian"] = (
            softmax_jacobian(result.probabilities[0].astype(np.float64)),
            loss_gradient_wrt_probabilities(result).astype(np.float64),
            gradient_via_jacobian(result),
        )
    if hessian:
        matrix = loss_hessian(result).astype(np.float64)
        found["hessian"] = (matrix, np.linalg.eigvalsh(matrix))
    return found


def print_proofs(console, result, digits: int, verify: bool, jacobian: bool, hessian: bool) -> None:  # type: ignore[no-untyped-def]
    from .render.table import print_hessian, print_jacobian, print_verification

    found = _proofs(result, verify, jacobian, hessian)
    if "jacobian" in found:
        print_jacobian(console, *found["jacobian"], result.gradient[0], digits)
    if "hessian" in found:
        print_hessian(console, *found["hessian"], digits)
    if "verify" in found:
        print_verification(console, found["verify"], digits)


def proofs_document(result, verify: bool, jacobian: bool, hessian: bool) -> dict:  # type: ignore[no-untyped-def]
    from .render.json_format import matrix
    from .render.numbers import json_number

    found = _proofs(result, verify, jacobian, hessian)
    document: dict = {}
    if "verify" in found:
        check = found["verify"]
        document["verify"] = {
            "numeric": [json_number(v) for v in check.numeric],
            "steps": [json_number(v) for v in check.steps],
            "relative_difference": [json_number(v) for v in check.relative_difference],
            "max_relative_difference": json_number(check.worst),
        }
    if "jacobian" in found:
        jac, dl_ds, product = found["jacobian"]
        document["jacobian"] = {
            "ds_dz": matrix(jac),
            "dL_ds": [json_number(v) for v in dl_ds],
            "product": [json_number(v) for v in product],
        }
    if "hessian" in found:
        hess, eigenvalues = found["hessian"]
        document["hessian"] = {"matrix": matrix(hess), "eigenvalues": [json_number(v) for v in eigenvalues]}
    return document


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


# Options of the commands that read files (sce batch, sce check --csv).
LabelColOption = Annotated[
    Optional[str], typer.Option("--label-col", help="The label column (default: 'label'; the last without a header).")
]
LogitColsOption = Annotated[
    Optional[str],
    typer.Option("--logit-cols", help="Logit columns: a comma list or a glob such as 'z*' (default: all others)."),
]
TargetColsOption = Annotated[
    Optional[str], typer.Option("--target-cols", help="Soft-target columns, in place of a label column.")
]
NoHeaderOption = Annotated[bool, typer.Option("--no-header", help="The input has no header line; columns are 0..n-1.")]
DelimiterOption = Annotated[
    Optional[str], typer.Option("--delimiter", help="Field separator (default: tab for .tsv files, else comma).")
]
EncodingOption = Annotated[str, typer.Option("--encoding", help="The input's text encoding.")]


def file_request(input_path: str, output: str | None, *, label_col, logit_cols, target_cols, no_header,  # type: ignore[no-untyped-def]
                 delimiter, encoding, smoothing, weight, temperature, reduction, ignore_index, dtype, **extra):
    """The BatchRequest that both file-reading commands build from their options."""
    from .batch_io import BatchRequest, CoreOptions

    return BatchRequest(
        input_path=input_path,
        output_path=output,
        label_col=label_col,
        logit_cols=logit_cols,
        target_cols=target_cols,
        has_header=not no_header,
        delimiter=_delimiter(delimiter, input_path),
        encoding=encoding,
        options=CoreOptions(
            weight=None if weight is None else parse_numbers(weight, "--weight"),
            label_smoothing=smoothing,
            ignore_index=ignore_index,
            reduction=reduction.value,
            temperature=temperature,
            dtype=dtype.value,
        ),
        **extra,
    )


@app.command(no_args_is_help=True)
def batch(
    input_path: Annotated[
        str, typer.Argument(metavar="INPUT", help="A CSV or TSV file, or - for stdin.", show_default=False)
    ],
    output: Annotated[
        Optional[str],
        typer.Option("--output", "-o", help="Output file (default: stdout). Written whole or not at all."),
    ] = None,
    label_col: LabelColOption = None,
    logit_cols: LogitColsOption = None,
    target_cols: TargetColsOption = None,
    no_header: NoHeaderOption = False,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
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
    from .batch_io import run_batch

    request = file_request(
        input_path, output, label_col=label_col, logit_cols=logit_cols, target_cols=target_cols,
        no_header=no_header, delimiter=delimiter, encoding=encoding, smoothing=smoothing, weight=weight,
        temperature=temperature, reduction=reduction, ignore_index=ignore_index, dtype=dtype, digits=digits,
    )
    request.output_format = _output_format(output_format, output, request.delimiter)
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


class CheckFormat(str, Enum):
    table = "table"
    json = "json"


@app.command(cls=NumbersCommand, no_args_is_help=True)
def check(
    logits: LogitsArgument = None,
    label: LabelOption = None,
    target: TargetOption = None,
    grad: Annotated[
        Optional[str], typer.Option("--grad", "-g", help="Your gradient G1,G2,... to grade.", show_default=False)
    ] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="Your loss to grade.", show_default=False)] = None,
    probs: Annotated[
        Optional[str], typer.Option("--probs", "-p", help="Your probabilities P1,P2,... to grade.", show_default=False)
    ] = None,
    tol: Annotated[
        Optional[float],
        typer.Option("--tol", help="Absolute tolerance (default: half a unit in the last digit you wrote).", show_default=False),
    ] = None,
    csv_input: Annotated[
        Optional[str], typer.Option("--csv", help="Grade a file row by row instead (INPUT, or - for stdin).", show_default=False)
    ] = None,
    grad_cols: Annotated[
        Optional[str], typer.Option("--grad-cols", help="With --csv: the gradient columns (a list or a glob such as 'grad_*').")
    ] = None,
    loss_col: Annotated[Optional[str], typer.Option("--loss-col", help="With --csv: the loss column.")] = None,
    label_col: LabelColOption = None,
    logit_cols: LogitColsOption = None,
    target_cols: TargetColsOption = None,
    no_header: NoHeaderOption = False,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    smoothing: SmoothingOption = 0.0,
    weight: WeightOption = None,
    temperature: TemperatureOption = 1.0,
    reduction: ReductionOption = ReductionChoice.none,
    ignore_index: IgnoreIndexOption = -100,
    dtype: DTypeOption = DType.float64,
    digits: DigitsOption = 4,
    output_format: Annotated[CheckFormat, typer.Option("--format", "-f", help="table or json.")] = CheckFormat.table,
) -> None:
    """Grade a hand-computed gradient, loss or probabilities; name the mistake.

    Example: sce check 2 3 4 --label 1 --grad 0.090,-0.755,0.665
    Exit status 0 when everything matches, 1 when something does not.
    """
    check_digits(digits)
    if tol is not None and not tol > 0:
        raise UsageProblem(f"--tol: {tol:g} is not a positive number; give the largest difference to accept, e.g. --tol 1e-4")
    options = dict(
        smoothing=smoothing, weight=weight, temperature=temperature,
        reduction=reduction, ignore_index=ignore_index, dtype=dtype,
    )
    if csv_input is not None:
        if logits:
            raise UsageProblem("give LOGITS or --csv INPUT, not both")
        if grad_cols is None and loss_col is None:
            raise UsageProblem("--csv: say which columns to grade with --grad-cols (e.g. 'grad_*') or --loss-col")
        check_file(
            csv_input, grad_cols=grad_cols, loss_col=loss_col, label_col=label_col, logit_cols=logit_cols,
            target_cols=target_cols, no_header=no_header, delimiter=delimiter, encoding=encoding,
            tol=tol, digits=digits, output_format=output_format, **options,
        )
        return
    for name, value in (("--grad-cols", grad_cols), ("--loss-col", loss_col), ("--label-col", label_col),
                        ("--logit-cols", logit_cols), ("--target-cols", target_cols)):
        if value is not None:
            raise UsageProblem(f"{name} goes with --csv INPUT")
    given: dict[str, list[str]] = {}
    call = parse_core_call(logits, label, target, **options)
    for name, option, text in (("gradient", "--grad", grad), ("probabilities", "--probs", probs), ("loss", "--loss", loss)):
        if text is None:
            continue
        tokens = split_numbers(text)
        parse_numbers(tokens, option)  # every entry must be a number
        expected = 1 if name == "loss" else len(call.logits)
        if len(tokens) != expected:
            raise UsageProblem(
                f"{option}: {len(tokens)} {'number' if len(tokens) == 1 else 'numbers'} for "
                f"{'one loss' if name == 'loss' else f'{expected} classes'}; give "
                + ("one number" if name == "loss" else "one per class")
            )
        given[name] = tokens
    if not given:
        raise UsageProblem("nothing to check: give your answer with --grad G1,G2,..., --loss X or --probs P1,P2,...")
    result = call.run_reporting_warnings()
    from .grading import check_answer

    checks = check_answer(result, call.run, given, tol)
    if output_format is CheckFormat.json:
        from .render.json_format import check_document, dumps

        sys.stdout.write(dumps(check_document(checks)) + "\n")
    else:
        from .render.table import print_check

        print_check(stdout_console(), checks, digits)
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


def check_file(path: str, *, grad_cols, loss_col, label_col, logit_cols, target_cols, no_header, delimiter,  # type: ignore[no-untyped-def]
               encoding, tol, digits, output_format, smoothing, weight, temperature, reduction, ignore_index, dtype) -> None:
    from .batch_io import check_file as grade_file

    request = file_request(
        path, None, label_col=label_col, logit_cols=logit_cols, target_cols=target_cols, no_header=no_header,
        delimiter=delimiter, encoding=encoding, smoothing=smoothing, weight=weight, temperature=temperature,
        reduction=reduction, ignore_index=ignore_index, dtype=dtype, grad_cols=grad_cols, loss_col=loss_col,
    )
    found = grade_file(request, tol)
    if output_format is CheckFormat.json:
        from .render.json_format import dumps, file_check_document

        sys.stdout.write(dumps(file_check_document(found)) + "\n")
    else:
        from .render.table import print_file_check

        print_file_check(stdout_console(), found, digits)
    if not found.correct:
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="sce")


from . import test_command; app.command(name="test", no_args_is_help=True)(test_command.test)  # noqa: E402, E702
