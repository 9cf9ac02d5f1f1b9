"""``sce check``: grade a typed answer, or a file of answers, against the exact result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from sce.cli.check_arrays import (
    ARRAY_ROLES,
    ArraysOption,
    ClaimedDTypeOption,
    KeyGrad,
    KeyLabels,
    KeyLogits,
    KeyLoss,
    KeyTargets,
    LabelsPathOption,
    LogitsPathOption,
    TargetsPathOption,
    check_arrays,
    refuse_array_options,
    refuse_typed_inputs,
)
from sce.cli.declarations import (
    CheckFormat,
    DelimiterOption,
    DigitsOption,
    DType,
    DTypeOption,
    EncodingOption,
    IgnoreIndexOption,
    LabelColOption,
    LabelOption,
    LogitColsOption,
    LogitsArgument,
    NoHeaderOption,
    ReductionChoice,
    ReductionOption,
    SmoothingOption,
    SmoothingStyleChoice,
    SmoothingStyleOption,
    SoftcapOption,
    TargetColsOption,
    TargetOption,
    TemperatureOption,
    WeightOption,
    ZLossOption,
)
from sce.cli.file_request import file_request
from sce.cli.stdout import stdout_console, write_stdout
from sce.cli.typed_inputs import (
    VectorInput,
    check_class_counts,
    check_digits,
    command_loss_options,
    parse_numbers,
    parse_vector_input,
    run_core,
)
from sce.errors import UNGRADED, SceError, UsageProblem
from sce.number_text import split_numbers
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.batch import BatchRequest

#: Each quantity a typed answer can give: (name, option).
QUANTITIES = (("gradient", "--grad"), ("probabilities", "--probs"), ("loss", "--loss"))


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
        typer.Option(
            "--tol", help="Absolute tolerance (default: half a unit in the last digit you wrote).", show_default=False
        ),
    ] = None,
    csv_input: Annotated[
        Optional[str],
        typer.Option("--csv", help="Grade a file row by row instead (INPUT, or - for stdin).", show_default=False),
    ] = None,
    grad_cols: Annotated[
        Optional[str],
        typer.Option("--grad-cols", help="With --csv: the gradient columns (a list or a glob such as 'grad_*')."),
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
    softcap: SoftcapOption = None,
    z_loss: ZLossOption = 0.0,
    smoothing_style: SmoothingStyleOption = SmoothingStyleChoice.uniform,
    reduction: ReductionOption = ReductionChoice.none,
    ignore_index: IgnoreIndexOption = -100,
    dtype: DTypeOption = DType.float64,
    digits: DigitsOption = 4,
    output_format: Annotated[CheckFormat, typer.Option("--format", "-f", help="table or json.")] = CheckFormat.table,
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
) -> None:
    """Grade a hand-computed gradient, loss or probabilities; name the mistake.

    Example: sce check 2 3 4 --label 1 --grad 0.090,-0.755,0.665
    Dumped tensors: sce check --arrays dump.npz --reduction mean (--grad and --loss are then files).
    Exit status 0 when everything matches, 1 when something does not, 2 when
    the answer or the file cannot be graded.
    """
    check_digits(digits)
    if tol is not None and not tol > 0:
        raise UsageProblem(
            f"--tol: {tol:g} is not a positive number; give the largest difference to accept, e.g. --tol 1e-4"
        )
    options = command_loss_options()  # the loss options declared above
    if arrays is not None or logits_path is not None:
        refuse_typed_inputs(logits, csv_input, label, target)
        if tol is not None:
            raise UsageProblem("--tol: arrays are graded in ulps of their type against a baseline; leave out --tol")
        check_arrays(
            arrays=arrays,
            paths={"logits": logits_path, "labels": labels_path, "targets": targets_path, "grad": grad, "loss": loss},
            keys=dict(zip(ARRAY_ROLES, (key_logits, key_labels, key_targets, key_grad, key_loss))),
            claimed=claimed_dtype,
            options=options,
            reduction_given=_given("reduction"),
            digits=digits,
            output_format=output_format,
        )
        return
    refuse_array_options(labels_path, targets_path, claimed_dtype)
    if csv_input is not None:
        if logits:
            raise UsageProblem("give LOGITS or --csv INPUT, not both")
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
        )
        _grade_file(request, tol, digits, output_format)
        return
    for name, value in (
        ("--grad-cols", grad_cols),
        ("--loss-col", loss_col),
        ("--label-col", label_col),
        ("--logit-cols", logit_cols),
        ("--target-cols", target_cols),
    ):
        if value is not None:
            raise UsageProblem(f"{name} goes with --csv INPUT")
    vector = parse_vector_input(logits, label, target)
    check_class_counts(vector, options)
    given = _typed_answers(vector, {"gradient": grad, "probabilities": probs, "loss": loss})
    _grade_answers(vector, options, given, tol, digits, output_format)


def _typed_answers(vector: VectorInput, texts: dict[str, str | None]) -> dict[str, list[str]]:
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
                f"{option}: {len(tokens)} {'number' if len(tokens) == 1 else 'numbers'} for "
                f"{'one loss' if name == 'loss' else f'{expected} classes'}; give "
                + ("one number" if name == "loss" else "one per class")
            )
        given[name] = tokens
    if not given:
        raise UsageProblem("nothing to check: give your answer with --grad G1,G2,..., --loss X or --probs P1,P2,...")
    return given


def _grade_answers(
    vector: VectorInput,
    options: LossOptions,
    given: dict[str, list[str]],
    tol: float | None,
    digits: int,
    output_format: CheckFormat,
) -> None:
    from sce.grading import check_answer

    result = run_core(vector, options)
    checks = check_answer(result, given, tol, targets=vector.targets)
    if output_format is CheckFormat.json:
        from sce.render.json_format import check_document, dumps

        write_stdout(dumps(check_document(checks)) + "\n")
    else:
        from sce.render.table import print_check

        print_check(stdout_console(), checks, digits)
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


def _grade_file(request: BatchRequest, tol: float | None, digits: int, output_format: CheckFormat) -> None:
    from sce.grading.csv_file import check_file
    from sce.io.signals import stopping_signals_handled

    try:
        with stopping_signals_handled():
            found = check_file(request, tol)
    except SceError as error:
        # 1 means "graded, and wrong": a file that could not be graded must differ (as diff and cmp do).
        error.exit_code = UNGRADED
        raise
    if output_format is CheckFormat.json:
        from sce.render.json_format import dumps, file_check_document

        write_stdout(dumps(file_check_document(found)) + "\n")
    else:
        from sce.render.table import print_file_check

        print_file_check(stdout_console(), found, digits)
    if not found.correct:
        raise typer.Exit(1)


def _given(parameter: str) -> bool:
    """Whether the command line set ``parameter`` (rather than its default applying)."""
    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context

    return get_current_context().get_parameter_source(parameter) is not ParameterSource.DEFAULT
