"""``sce batch``: every row of a file through the core, streaming."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from sce.cli.batch_parts import PartsRequest, is_arrays_file, names_parts
from sce.cli.choices import BatchFormat, Engine
from sce.cli.commandline import say_if_signalled_after_commit, say_warning
from sce.cli.declarations import (
    DELIMITER,
    ENCODING,
    KEY_LABELS,
    KEY_LOGITS,
    KEY_TARGETS,
    LABEL_COL,
    LOGIT_COLS,
    LOSS_OPTIONS,
    NO_HEADER,
    PER_ROW_REDUCTION,
    PLOT,
    TARGET_COLS,
    ArraysOption,
    DelimiterOption,
    EncodingOption,
    InputsArgument,
    KeyLabels,
    KeyLogits,
    KeyTargets,
    LabelColOption,
    LabelsPathOption,
    LogitColsOption,
    LogitsPathOption,
    NoHeaderOption,
    OutputOption,
    SummaryJsonOption,
    TargetColsOption,
    TargetsPathOption,
    bundled,
)
from sce.cli.declarations_engine import EngineOption, SchedulerOption, WorkersOption
from sce.cli.file_request import file_request, output_format_for
from sce.cli.plot_file import BatchPicture
from sce.cli.typed_inputs import check_digits, row_loss_options_from
from sce.errors import UsageProblem
from sce.number_text import count_of
from sce.options import LossOptions

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from sce.batch import BatchRequest, BatchSummary
    from sce.io.arrays import DumpRequest
    from sce.loss import SoftmaxCrossEntropyResult


@bundled(LOSS_OPTIONS, row_loss_options_from, into="options", changes=PER_ROW_REDUCTION)
def batch(
    input_path: InputsArgument = None,
    output: OutputOption = None,
    label_col: LabelColOption = None,
    logit_cols: LogitColsOption = None,
    target_cols: TargetColsOption = None,
    no_header: NoHeaderOption = False,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    digits: Annotated[
        Optional[int],
        typer.Option(
            "--digits",
            "-d",
            help="Significant digits written (1 to 17; default: the shortest digits that read back as the same float).",
        ),
    ] = None,
    output_format: Annotated[
        Optional[BatchFormat],
        typer.Option(
            "--format",
            "-f",
            help="csv, tsv, jsonl, npz, parquet or arrow (default: from -o's name, else csv or tsv like the input).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
    arrays: ArraysOption = None,
    logits_path: LogitsPathOption = None,
    labels_path: LabelsPathOption = None,
    targets_path: TargetsPathOption = None,
    key_logits: KeyLogits = None,
    key_labels: KeyLabels = None,
    key_targets: KeyTargets = None,
    summary_json: SummaryJsonOption = None,
    plot: Annotated[
        Optional[str],
        PLOT.option(
            metavar="FILE",
            help="Also draw the rows' losses and the first rows' gradient into FILE, .svg or .png (needs matplotlib: "
            "the plot extra); written whole or not at all, after the output.",
        ),
    ] = None,
    engine: EngineOption = Engine.local,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    *,
    options: LossOptions,
) -> None:
    """Probabilities, loss and gradient for every row of a CSV file or a dump of arrays, streaming.

    Example: sce batch batch.csv -o scored.csv (run sce samples first to get batch.csv)
    Arrays: sce batch dump.npz -o scored.parquet (or --logits a.npy --labels b.npy).
    Parts: sce batch parts/ -o scored/ (on a Dask cluster: --engine dask).
    """
    if digits is not None:
        check_digits(digits)
    from sce.batch.cluster import check_cluster_options

    check_cluster_options(engine.value, scheduler, workers)
    inputs = input_path or []
    if engine is Engine.dask or len(inputs) > 1 or (inputs and names_parts(inputs[0])):
        csv_choices: dict[str, Any] = {"label_col": label_col, "logit_cols": logit_cols, "target_cols": target_cols}
        csv_choices.update(no_header=no_header, delimiter=delimiter, encoding=encoding, digits=digits)
        parts = PartsRequest(inputs, output, options, summary_json, csv_choices)
        parts.keys = {"logits": key_logits, "labels": key_labels, "targets": key_targets}
        parts.refuse_alone(arrays=arrays, logits=logits_path, labels=labels_path, targets=targets_path, plot=plot)
        parts.output_format = None if output_format is None else output_format.value
        parts.engine, parts.scheduler, parts.workers = engine.value, scheduler, workers
        _run_and_report(parts.request(), quiet, None, parts.run)
        return
    given = inputs[0] if inputs else None
    picture = None if plot is None else BatchPicture(plot, given, output, summary_json)
    dump = _dump_request(
        given,
        arrays,
        {"logits": logits_path, "labels": labels_path, "targets": targets_path},
        {"logits": key_logits, "labels": key_labels, "targets": key_targets},
    )
    if dump is not None:
        _refuse_csv_options(label_col, logit_cols, target_cols, no_header, delimiter, encoding)
        given = dump.arrays or dump.paths.get("logits", "")  # for the progress bar and -o's checks
    elif given == "-":
        _refuse_arrays_on_stdin()
    elif given is None:
        raise UsageProblem(
            "give INPUT (a CSV or TSV file, or - for stdin) or arrays (INPUT as .npz etc., --arrays FILE, "
            "or --logits FILE --labels FILE)"
        )
    request = file_request(
        given,
        output,
        options,
        label_col=label_col,
        logit_cols=logit_cols,
        target_cols=target_cols,
        no_header=no_header,
        delimiter=delimiter,
        encoding=encoding,
        digits=digits,
        arrays=dump,
        summary_path=summary_json,
    )
    request.output_format = output_format_for(
        None if output_format is None else output_format.value, output, request.delimiter
    )
    _run_and_report(request, quiet, None if picture is None else picture.rows.add)
    if picture is not None:
        picture.write(request.input_path)


def _run_and_report(
    request: BatchRequest,
    quiet: bool,
    on_result: Callable[[SoftmaxCrossEntropyResult], None] | None,
    run: Callable[[], BatchSummary] | None = None,
) -> None:
    """The run (``run()``, else the request's one input, with its progress bar), and its summary
    on stderr unless ``quiet``."""
    from sce.batch import run_batch
    from sce.io.signals import stopping_signals_handled
    from sce.io.writers.replace import old_outputs_removed_last

    if quiet:  # nothing to draw: rich is not even imported (20 ms of a run)
        with stopping_signals_handled():
            summary = run_batch(request, on_result=on_result) if run is None else run()
        _warn_about(summary)
        say_if_signalled_after_commit("the output")
        return
    from rich.console import Console

    from sce.render.grid import print_grid
    from sce.render.table import batch_summary_grid

    stderr = Console(stderr=True, highlight=False)
    with old_outputs_removed_last():  # an old output's removal takes a while: the summary comes first
        with stopping_signals_handled():
            if run is not None:
                summary = run()
            elif stderr.is_terminal:
                summary = _run_with_progress(request, stderr, on_result)
            else:
                summary = run_batch(request, on_result=on_result)
        _warn_about(summary)
        print_grid(stderr, batch_summary_grid(summary))
    say_if_signalled_after_commit("the output")


def _warn_about(summary: BatchSummary) -> None:
    if summary.reduction == "mean" and summary.denominator == 0:
        say_warning("every row is ignored or has weight 0, so the mean divides by 0: the loss is NaN")
    if summary.infinite_losses:
        have = "has" if summary.infinite_losses == 1 else "have"
        say_warning(
            f"{count_of(summary.infinite_losses, 'row')} {have} an infinite loss (a target class with probability 0)"
        )


def _dump_request(
    input_path: str | None, arrays: str | None, paths: dict[str, str | None], keys: dict[str, str | None]
) -> DumpRequest | None:
    """The arrays to read, or None for a CSV input. INPUT is a dump when its name
    or its first bytes say so: a .npy file is the logits, any other the named arrays."""
    from sce.io.arrays import DumpRequest

    given = {role: path for role, path in paths.items() if path is not None}
    renamed = {role: key for role, key in keys.items() if key is not None}
    if input_path is not None and is_arrays_file(input_path):
        if input_path.lower().endswith(".npy"):
            if "logits" in given:
                raise UsageProblem(f"{input_path} is the logits: give it as INPUT or --logits, not both")
            given["logits"] = input_path
        elif arrays is not None:
            raise UsageProblem(f"give the dump once: as INPUT ({input_path}) or --arrays ({arrays})")
        else:
            arrays = input_path
    elif input_path is not None and (arrays is not None or given or renamed):
        raise UsageProblem(
            f"{input_path} is read as CSV; --arrays, --logits, --labels, --targets and --key-* go with arrays "
            "(give the dump alone, without a CSV INPUT)"
        )
    if arrays is None and not given and not renamed:
        return None
    return DumpRequest(arrays, given, renamed)


def _refuse_arrays_on_stdin() -> None:
    """Array bytes piped in would be read as CSV and fail on their first byte: say what they are."""
    import sys

    from sce.io.arrays.vector import array_suffix

    peek = getattr(sys.stdin.buffer, "peek", None)
    suffix = array_suffix(peek(8)[:8]) if peek is not None else None
    if suffix is not None:
        raise UsageProblem(
            f"stdin holds arrays ({suffix}), which sce batch reads from a file: save them and give the file's name"
        )


def _refuse_csv_options(
    label_col: str | None,
    logit_cols: str | None,
    target_cols: str | None,
    no_header: bool,
    delimiter: str | None,
    encoding: str,
) -> None:
    for name, given, instead in (
        (LABEL_COL.name, label_col is not None, f"; name the labels array with {KEY_LABELS.name}"),
        (LOGIT_COLS.name, logit_cols is not None, f"; name the logits array with {KEY_LOGITS.name}"),
        (TARGET_COLS.name, target_cols is not None, f"; name the targets array with {KEY_TARGETS.name}"),
        (NO_HEADER.name, no_header, ""),
        (DELIMITER.name, delimiter is not None, ""),
        (ENCODING.name, encoding != "utf-8", ""),
    ):
        if given:
            raise UsageProblem(f"{name} goes with a CSV input, not with arrays{instead}")


def _run_with_progress(
    request: BatchRequest, stderr: Console, on_result: Callable[[SoftmaxCrossEntropyResult], None] | None
) -> BatchSummary:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sce.batch import run_batch

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
        return run_batch(
            request,
            on_progress=lambda done, rows: progress.update(task, completed=done, rows=rows),
            on_result=on_result,
        )
