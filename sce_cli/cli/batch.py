"""``sce batch``: every row of a file through the core, streaming."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..numbers import count_of
from .commandline import say_warning
from .declarations import (
    BatchFormat,
    DelimiterOption,
    DType,
    DTypeOption,
    EncodingOption,
    IgnoreIndexOption,
    LabelColOption,
    LogitColsOption,
    NoHeaderOption,
    ReductionChoice,
    ReductionOption,
    SmoothingOption,
    SmoothingStyleChoice,
    SmoothingStyleOption,
    SoftcapOption,
    TargetColsOption,
    TemperatureOption,
    WeightOption,
    ZLossOption,
)
from .files import file_request, output_format_for
from .inputs import check_digits, command_loss_options

if TYPE_CHECKING:
    from rich.console import Console

    from ..batch import BatchRequest, BatchSummary


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
    softcap: SoftcapOption = None,
    z_loss: ZLossOption = 0.0,
    smoothing_style: SmoothingStyleOption = SmoothingStyleChoice.uniform,
    reduction: ReductionOption = ReductionChoice.none,
    ignore_index: IgnoreIndexOption = -100,
    dtype: DTypeOption = DType.float64,
    digits: Annotated[
        Optional[int],
        typer.Option("--digits", "-d", help="Round output floats to N significant digits (default: full precision)."),
    ] = None,
    output_format: Annotated[
        Optional[BatchFormat],
        typer.Option("--format", "-f", help="csv, tsv or jsonl (default: from -o's name, else like the input)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
) -> None:
    """Probabilities, loss and gradient for every row of a CSV file, streaming.

    Example: sce batch samples/batch.csv -o scored.csv
    """
    if digits is not None:
        check_digits(digits)
    options = command_loss_options()  # the loss options declared above
    request = file_request(
        input_path,
        output,
        options,
        label_col=label_col,
        logit_cols=logit_cols,
        target_cols=target_cols,
        no_header=no_header,
        delimiter=delimiter,
        encoding=encoding,
        digits=digits,
    )
    request.output_format = output_format_for(
        None if output_format is None else output_format.value, output, request.delimiter
    )
    from ..batch import run_batch

    if quiet:  # nothing to draw: rich is not even imported (20 ms of a run)
        _warn_about(run_batch(request))
        return
    from rich.console import Console

    from ..render.grid import print_grid
    from ..render.table import batch_summary_grid

    stderr = Console(stderr=True, highlight=False)
    summary = _run_with_progress(request, stderr) if stderr.is_terminal else run_batch(request)
    _warn_about(summary)
    print_grid(stderr, batch_summary_grid(summary))


def _warn_about(summary: BatchSummary) -> None:
    if summary.reduction == "mean" and summary.denominator == 0:
        say_warning("every row is ignored or has weight 0, so the mean divides by 0: the loss is NaN")
    if summary.infinite_losses:
        have = "has" if summary.infinite_losses == 1 else "have"
        say_warning(
            f"{count_of(summary.infinite_losses, 'row')} {have} an infinite loss (a target class with probability 0)"
        )


def _run_with_progress(request: BatchRequest, stderr: Console) -> BatchSummary:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..batch import run_batch

    path = request.input_path
    size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else None
    # Progress redirects stdout by default, which would put the bar into the output stream.
    with Progress(
        TextColumn("sce batch"),
        BarColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        console=stderr,
        redirect_stdout=False,
        redirect_stderr=False,
        transient=True,
    ) as progress:
        task = progress.add_task("rows", total=size, rows=0)
        return run_batch(request, on_progress=lambda done, rows: progress.update(task, completed=done, rows=rows))
