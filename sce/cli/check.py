"""``sce check``: grade a typed answer, or a file of answers, against the exact result."""

from __future__ import annotations

import math
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from sce.cli.check_arrays import ARRAY_ROLES, check_arrays, rank_dumps, refuse_array_options, refuse_typed_inputs
from sce.cli.choices import CheckFormat, Engine, SumOrder
from sce.cli.commandline import say_if_signalled_after_commit
from sce.cli.declarations import (
    FLAG_OF_FIELD,
    GRAD_COLS,
    ID_COL,
    LABEL_COL,
    LOGIT_COLS,
    LOSS_COL,
    LOSS_OPTIONS,
    OUTPUT,
    SUMMARY_JSON,
    TARGET_COLS,
    TYPED_PANEL,
    ArraysOption,
    CheckSummaryJsonOption,
    ClaimedDTypeOption,
    CsvInputOption,
    DelimiterOption,
    DigitsOption,
    EncodingOption,
    GradColsOption,
    GradOption,
    IdColOption,
    KeyGrad,
    KeyLabels,
    KeyLogits,
    KeyLoss,
    KeyTargets,
    LabelColOption,
    LabelOption,
    LabelsPathOption,
    LogitColsOption,
    LogitsArgument,
    LogitsPathOption,
    LossColOption,
    LossOption,
    NoHeaderOption,
    ProfileOption,
    QuickOption,
    QuickSeedOption,
    SumOrderOption,
    TargetColsOption,
    TargetOption,
    TargetsPathOption,
    bundled,
)
from sce.cli.declarations_engine import EngineOption, SchedulerOption, WorkersOption
from sce.cli.exit_status import ExitStatus
from sce.cli.file_request import file_request
from sce.cli.stdout import stdout_console, write_stdout
from sce.cli.typed_inputs import (
    VectorInput,
    check_class_counts,
    check_digits,
    parse_numbers,
    parse_vector_input,
    read_stage_file,
    row_loss_options_from,
    run_core,
)
from sce.errors import UsageProblem
from sce.number_text import DISPLAY_DIGITS, count_of, split_numbers
from sce.options import LossOptions

if TYPE_CHECKING:
    from rich.console import Console

    from sce.batch import BatchRequest

#: Each quantity a typed answer can give: (name, option).
QUANTITIES = (("gradient", "--grad"), ("probabilities", "--probs"), ("loss", "--loss"))

#: The stage of the derivation (``--stage NAME=``) that each quantity is.
STAGE_OF_QUANTITY = {"gradient": "grad", "probabilities": "probs", "loss": "loss"}


class CheckOutputFormat(str, Enum):
    """sce check's formats: those of the grading commands, and csv for a class's gradebook."""

    table = "table"
    json = "json"
    csv = "csv"
    html = "html"


@bundled(
    LOSS_OPTIONS,
    row_loss_options_from,
    into="options",
    given_into="options_given",
    changes={"reduction": {"show_default": "none; with --arrays mean, or none for a loss per row"}},
)
def check(
    logits: LogitsArgument = None,
    label: LabelOption = None,
    target: TargetOption = None,
    grad: GradOption = None,
    loss: LossOption = None,
    probs: Annotated[
        Optional[str],
        typer.Option(
            "--probs",
            "-p",
            help="Your probabilities P1,P2,... to grade.",
            show_default=False,
            rich_help_panel=TYPED_PANEL,
        ),
    ] = None,
    stage: Annotated[
        Optional[list[str]],
        typer.Option(
            "--stage",
            help="A stage of the derivation to grade, NAME=VALUES or NAME=@FILE, as --steps names them: shifted, "
            "exp, sum_exp, probs, loss, dL_ds, ds_dz (K×K, row by row), grad (repeatable).",
            show_default=False,
            rich_help_panel=TYPED_PANEL,
        ),
    ] = None,
    tol: Annotated[
        Optional[float],
        typer.Option(
            "--tol",
            help="Absolute tolerance (default: half a unit in the last digit you wrote).",
            show_default=False,
            rich_help_panel=TYPED_PANEL,
        ),
    ] = None,
    csv_input: CsvInputOption = None,
    grad_cols: GradColsOption = None,
    loss_col: LossColOption = None,
    label_col: LabelColOption = None,
    logit_cols: LogitColsOption = None,
    target_cols: TargetColsOption = None,
    no_header: NoHeaderOption = False,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    digits: DigitsOption = DISPLAY_DIGITS,
    output_format: Annotated[
        Optional[CheckOutputFormat],
        typer.Option(
            "--format",
            "-f",
            help="table (default), json or html (a printable page); with --id-col also csv (with -o: from its "
            "name).",
            show_default=False,
        ),
    ] = None,
    id_col: IdColOption = None,
    output: Annotated[
        Optional[str],
        OUTPUT.option(
            help="With --id-col: write the gradebook to FILE (as --format says, else .csv, .json or .html), "
            "whole or not at all; the table still shows. With --format html: write the page to FILE.",
            show_default=False,
        ),
    ] = None,
    arrays: ArraysOption = None,
    logits_path: LogitsPathOption = None,
    labels_path: LabelsPathOption = None,
    targets_path: TargetsPathOption = None,
    key_logits: KeyLogits = None,
    key_labels: KeyLabels = None,
    key_targets: KeyTargets = None,
    key_grad: KeyGrad = None,
    key_loss: KeyLoss = None,
    claimed_dtype: ClaimedDTypeOption = None,
    sum_order: SumOrderOption = SumOrder.parallel,
    profile: ProfileOption = None,
    quick: QuickOption = False,
    quick_seed: QuickSeedOption = None,
    summary_json: CheckSummaryJsonOption = None,
    engine: EngineOption = Engine.local,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    *,
    options: LossOptions,
    options_given: frozenset[str],
) -> None:
    """Grade a hand-computed gradient, loss or probabilities; name the mistake.

    Example: sce check 2 3 4 --label 1 --grad 0.090,-0.755,0.665
    Dumped tensors: sce check --arrays dump.npz --reduction mean (--grad and --loss are then files).
    Exit status 0 when everything matches, 1 when something does not, 2 when
    the answer or the file cannot be graded, 3 when a typed answer (or a row of
    --csv's file) has too few digits to tell it from a usual mistake.
    """
    _check_digits_and_tolerance(digits, tol)
    output_format = _format_from_name(output_format, output)
    _refuse_summary_without_csv(summary_json, csv_input)
    files = arrays is not None or logits_path is not None or csv_input is not None
    _refuse_stages_with_files(stage, files)
    html = _page_of_typed_answers(output_format, files)
    book_format = None if html else _gradebook_format(output_format, output, id_col, csv_input)
    shown_format = _shown_format(output_format)
    if arrays is not None or logits_path is not None:
        ranks = rank_dumps(arrays, logits)
        refuse_typed_inputs(None if ranks else logits, csv_input, label, target, tol)
        check_arrays(
            arrays=arrays, ranks=ranks,
            paths={"logits": logits_path, "labels": labels_path, "targets": targets_path, "grad": grad, "loss": loss},
            keys=dict(zip(ARRAY_ROLES, (key_logits, key_labels, key_targets, key_grad, key_loss))),
            claimed=claimed_dtype, sum_order=sum_order.value, profile=profile, quick=(quick, quick_seed),
            options=options, reduction_given="reduction" in options_given, digits=digits, output_format=shown_format,
            page_output=output, cluster=(engine, scheduler, workers),
        )  # fmt: skip
        return
    refuse_array_options(
        labels_path, targets_path, claimed_dtype, sum_order, profile, (engine, scheduler, workers), (quick, quick_seed)
    )
    if csv_input is not None:
        if logits:
            raise UsageProblem("give LOGITS or --csv INPUT, not both")
        from sce.batch.csv_source import check_openable

        check_openable(csv_input)  # a missing file is the first thing to hear of
        if grad_cols is None and loss_col is None:
            raise UsageProblem("--csv: say which columns to grade with --grad-cols (e.g. 'grad_*') or --loss-col")
        request = file_request(
            csv_input,
            None,
            options,
            label_col=label_col,
            logit_cols=logit_cols,
            target_cols=target_cols,
            no_header=no_header,
            delimiter=delimiter,
            encoding=encoding,
            grad_cols=grad_cols,
            loss_col=loss_col,
            summary_path=summary_json,
            id_col=id_col,
        )
        if book_format is None:
            _grade_file(request, tol, digits, shown_format, output)
        else:
            from sce.cli.gradebook import grade_class

            grade_class(request, tol, book_format, output)
        return
    _refuse_file_options(grad_cols, loss_col, label_col, logit_cols, target_cols)
    vector = parse_vector_input(logits, label, target)
    check_class_counts(vector, options)
    stages = _stages_and_answers(vector, options, stage or [], {"gradient": grad, "probabilities": probs, "loss": loss})
    _grade_answers(vector, options, stages, tol, digits, shown_format, (html, output))


def _format_from_name(chosen: CheckOutputFormat | None, output: str | None) -> CheckOutputFormat | None:
    """--format, else html where -o names an .html file (the page, or the gradebook as one); a
    --format the name contradicts is refused (table writes no file: refused as such later)."""
    from sce.cli.page_output import page_format

    if chosen is CheckOutputFormat.table:
        return chosen
    written = page_format(output, None if chosen is None else chosen.value)
    return None if written is None else CheckOutputFormat(written)


def _refuse_summary_without_csv(summary_json: str | None, csv_input: str | None) -> None:
    if summary_json is not None and csv_input is None:
        raise UsageProblem(f"{SUMMARY_JSON.name} goes with --csv INPUT (and with sce batch)")


def _check_digits_and_tolerance(digits: int, tol: float | None) -> None:
    check_digits(digits)
    if tol is not None and not 0 < tol < math.inf:  # inf would pass every answer
        raise UsageProblem(
            f"--tol: {tol:g} is not a positive finite number; give the largest difference to accept, e.g. --tol 1e-4"
        )


def _shown_format(chosen: CheckOutputFormat | None) -> CheckFormat:
    """The format of a report that is no gradebook: table (the default, and for csv, refused later), json or html."""
    if chosen in (CheckOutputFormat.json, CheckOutputFormat.html):
        return CheckFormat(chosen.value)
    return CheckFormat.table


def _page_of_typed_answers(output_format: CheckOutputFormat | None, files: bool) -> bool:
    """Whether a page of typed answers is asked for (``--format html`` without files); the files'
    reports (``--csv``, ``--id-col``'s gradebook, ``--arrays``) have pages of their own."""
    return output_format is CheckOutputFormat.html and not files


def _refuse_file_options(*values: str | None) -> None:
    """The options of --csv (grad_cols, loss_col, label_col, logit_cols, target_cols), refused without it."""
    for record, value in zip((GRAD_COLS, LOSS_COL, LABEL_COL, LOGIT_COLS, TARGET_COLS), values):
        if value is not None:
            raise UsageProblem(f"{record.name} goes with --csv INPUT")


def _gradebook_format(
    chosen: CheckOutputFormat | None, output: str | None, id_col: str | None, csv_input: str | None
) -> str | None:
    """The gradebook's format (table, csv or json) with --id-col: --format, else from -o's name;
    None without --id-col, where -o and --format csv have nothing to write."""
    if id_col is None or csv_input is None:
        if id_col is not None:
            raise UsageProblem(f"{ID_COL.name} goes with --csv INPUT")
        if output is not None and chosen is not CheckOutputFormat.html:
            raise UsageProblem(
                f"{OUTPUT.name} goes with --csv INPUT {ID_COL.name} COL: it writes the gradebook "
                "(or the page: --format html, or a file named .html)"
            )
        if chosen is CheckOutputFormat.csv:
            raise UsageProblem(f"--format csv goes with --csv INPUT {ID_COL.name} COL (a gradebook); use table or json")
        return None
    if chosen is CheckOutputFormat.table and output not in (None, "-"):
        raise UsageProblem(
            f"{OUTPUT.name} {output}: the gradebook's file is csv, json or html; say --format csv, json or html"
        )
    if chosen is not None:
        return chosen.value
    if output in (None, "-"):
        return "table"
    suffix = output.rsplit(".", 1)[-1].lower() if "." in output else ""
    suffix = "html" if suffix == "htm" else suffix
    if suffix not in ("csv", "json", "html"):
        raise UsageProblem(
            f"{OUTPUT.name} {output}: say the gradebook's format with --format csv, json or html, "
            "or name the file .csv, .json or .html"
        )
    return suffix


def _refuse_stages_with_files(stage: list[str] | None, files: bool) -> None:
    if stage and files:
        raise UsageProblem("--stage goes with typed LOGITS and --label or --target, not with files")


def _stages_and_answers(
    vector: VectorInput, options: LossOptions, stage_texts: list[str], texts: dict[str, str | None]
) -> dict[str, list[str]]:
    """Every stage to grade, by its name: those of --stage and the quantities of --grad, --probs and --loss."""
    stages = typed_stages(stage_texts, len(vector.logits), options)
    for name, tokens in _typed_answers(vector, texts, bool(stages)).items():
        as_stage = STAGE_OF_QUANTITY[name]
        if as_stage in stages:
            raise UsageProblem(f"--stage {as_stage}: the {name} is given by {dict(QUANTITIES)[name]} too; give it once")
        stages[as_stage] = tokens
    return stages


def typed_stages(texts: list[str], classes: int, options: LossOptions) -> dict[str, list[str]]:
    """Each ``--stage NAME=VALUES`` as its name and the number texts typed, checked against the stages there are."""
    from sce.grading.stages import STAGES, stage_length, undefined_stage

    known = ", ".join(STAGES)
    stages: dict[str, list[str]] = {}
    for text in texts:
        name, equals, values = text.partition("=")
        name = name.strip()
        if not equals or not name:
            raise UsageProblem(
                f"--stage {text!r}: write NAME=VALUES, e.g. --stage exp=0.1353,0.3679,1; the stages: {known}"
            )
        if name not in STAGES:
            like = [known_name for known_name in STAGES if known_name.casefold() == name.casefold()]
            hint = f"did you mean {like[0]}? " if like else ""
            raise UsageProblem(f"--stage {name!r}: no such stage; {hint}the stages are {known}")
        if name in stages:
            raise UsageProblem(f"--stage {name}: given twice; give each stage once")
        why = undefined_stage(name, options)
        if why is not None:
            raise UsageProblem(f"--stage {name}: not a stage here: {why}")
        if values.startswith("@"):
            values = read_stage_file(values[1:], f"--stage {name}")
        parse_numbers(values, f"--stage {name}")  # every entry a number, none left empty
        tokens = split_numbers(values)
        if len(tokens) != stage_length(name, classes):
            raise UsageProblem(f"--stage {name}: {count_of(len(tokens), 'number')}; {_stage_shape(name, classes)}")
        stages[name] = tokens
    return stages


def _stage_shape(name: str, classes: int) -> str:
    """What a stage of the wrong length should have been, for its error line."""
    from sce.grading.stages import MATRIX_STAGES, SCALAR_STAGES

    if name in SCALAR_STAGES:
        return f"{name} is one number"
    if name in MATRIX_STAGES:
        return f"{name} is a {classes}×{classes} matrix: give {classes * classes} numbers, row by row"
    return f"{name} has one number per class: give {classes}"


def _typed_answers(vector: VectorInput, texts: dict[str, str | None], staged: bool = False) -> dict[str, list[str]]:
    """Each quantity given, as the number texts typed (their digits set the tolerance)."""
    given: dict[str, list[str]] = {}
    for name, option in QUANTITIES:
        text = texts[name]
        if text is None:
            continue
        parse_numbers(text, option)  # every entry a number, none left empty
        tokens = split_numbers(text)
        expected = 1 if name == "loss" else len(vector.logits)
        if len(tokens) != expected:
            raise UsageProblem(
                f"{option}: {count_of(len(tokens), 'number')} for "
                f"{'one loss' if name == 'loss' else count_of(expected, 'class', 'classes')}; give "
                + ("one number" if name == "loss" else "one per class")
            )
        given[name] = tokens
    if not given and not staged:
        raise UsageProblem("nothing to check: give your answer with --grad G1,G2,..., --loss X or --probs P1,P2,...")
    return given


def _grade_answers(
    vector: VectorInput,
    options: LossOptions,
    given: dict[str, list[str]],
    tol: float | None,
    digits: int,
    output_format: CheckFormat,
    page: tuple[bool, str | None] = (False, None),
) -> None:
    """Grade the answers; shown as ``output_format`` says, or as a page where ``page`` is
    (True, its file or None for stdout)."""
    from sce.grading import answer_verdict, verdicts
    from sce.grading.stages import check_stages

    result = run_core(vector, options)
    checks = check_stages(result, given, tol, targets=vector.targets)
    if page[0]:
        from sce.cli.page_output import write_page
        from sce.render.html_reports import check_page

        write_page(check_page(result, checks, digits, FLAG_OF_FIELD, reduction=options.reduction), page[1])
    elif output_format is CheckFormat.json:
        from sce.render.json_format import check_document, dumps

        write_stdout(dumps(check_document(checks, FLAG_OF_FIELD, reduction=options.reduction)) + "\n")
    else:
        from sce.render.typed_check import print_check

        print_check(stdout_console(), checks, digits, FLAG_OF_FIELD, reduction=options.reduction)
    verdict = answer_verdict(checks)
    if verdict == verdicts.TOO_FEW_DIGITS:
        raise typer.Exit(ExitStatus.TOO_FEW_DIGITS)
    if verdict != verdicts.CORRECT:
        raise typer.Exit(ExitStatus.WRONG)


def _grade_file(
    request: BatchRequest, tol: float | None, digits: int, output_format: CheckFormat, output: str | None = None
) -> None:
    from sce.grading import verdicts
    from sce.grading.csv_file import check_file
    from sce.io.signals import stopping_signals_handled

    with stopping_signals_handled():
        found = check_file(request, tol)  # what stops the grading ends with UNGRADED (exit_status.py)
    if output_format is CheckFormat.json:
        from sce.render.json_format import dumps, file_check_document

        write_stdout(dumps(file_check_document(found, FLAG_OF_FIELD, reduction=request.options.reduction)) + "\n")
    elif output_format is CheckFormat.html:
        from sce.cli.page_output import write_report_page
        from sce.render.table import print_file_check

        def report(console: Console) -> None:
            print_file_check(console, found, digits, FLAG_OF_FIELD, reduction=request.options.reduction)

        write_report_page(f"Checked: {request.input_path}", [], report, output)
    else:
        from sce.render.table import print_file_check

        print_file_check(stdout_console(), found, digits, FLAG_OF_FIELD, reduction=request.options.reduction)
    if request.summary_path is not None:
        say_if_signalled_after_commit("the summary")
    if found.verdict == verdicts.TOO_FEW_DIGITS:
        raise typer.Exit(ExitStatus.TOO_FEW_DIGITS)
    if not found.correct:
        raise typer.Exit(ExitStatus.WRONG)
