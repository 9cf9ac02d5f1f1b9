"""``sce test FILE.py:FUNCTION``: grade an implementation of the loss and gradient."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sce.cli.commandline import FLAG_OF_FIELD
from sce.cli.declarations import (
    CheckFormat,
    Convention,
    Framework,
    ReductionChoice,
    Returns,
    SmoothingOption,
    SmoothingStyleChoice,
    SmoothingStyleOption,
    SoftcapOption,
    TemperatureOption,
    ZLossOption,
)
from sce.cli.exit_status import ExitStatus
from sce.errors import UsageProblem

#: The core's keyword for each loss option, as the user typed it (in messages about its value).
_FLAGS = {
    "timeout=": "--timeout ",
    "seed=": "--seed ",
}


def test(
    function: Annotated[
        str,
        typer.Argument(
            metavar="FILE.py:FUNCTION", help="The function to grade (also package.module:FUNCTION). Its file is run."
        ),
    ],
    convention: Annotated[
        Convention,
        typer.Option("--convention", help="batch: f(logits N×K, labels N); row: f(logits K, label), once per row."),
    ] = Convention.batch,
    returns: Annotated[Returns, typer.Option("--returns", help="What the function returns.")] = Returns.loss_grad,
    reduction: Annotated[
        Optional[ReductionChoice],
        typer.Option(
            "--reduction",
            help="The batch loss: mean (default, as PyTorch), sum, or none (one per row).",
            show_default=False,
        ),
    ] = None,
    targets: Annotated[
        bool, typer.Option("--targets", help="The function takes probability targets (N×K) instead of labels.")
    ] = False,
    framework: Annotated[
        Framework, typer.Option("--framework", help="Arrays as numpy, torch or jax (auto: from the file's imports).")
    ] = Framework.auto,
    seed: Annotated[int, typer.Option("--seed", help="Varies the random cases.")] = 0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds each case may take.")] = 3.0,
    output_format: Annotated[CheckFormat, typer.Option("--format", "-f", help="table or json.")] = CheckFormat.table,
    smoothing: SmoothingOption = 0.0,
    temperature: TemperatureOption = 1.0,
    softcap: SoftcapOption = None,
    z_loss: ZLossOption = 0.0,
    smoothing_style: SmoothingStyleOption = SmoothingStyleChoice.uniform,
) -> None:
    """Grade your implementation of the loss and gradient; name the mistake.

    Example: sce test homework.py:softmax_loss
    Runs the file's code (in a separate process). Exit status 0 when every case
    passes, 1 when one fails, 2 when the function cannot be used as configured.
    The loss options (--smoothing, --temperature, --softcap, --z-loss,
    --smoothing-style) describe the loss the function computes, with them
    built in: it is still called f(logits, labels).
    """
    if smoothing_style is not SmoothingStyleChoice.uniform and not smoothing:
        raise UsageProblem(
            "--smoothing-style changes only how label smoothing spreads ε: give --smoothing too (e.g. --smoothing 0.1)"
        )
    if reduction is not None and convention is Convention.row:
        raise UsageProblem("--reduction goes with --convention batch; a row function returns its row's own loss")
    from sce.grading.implementations.loading import UnusableImplementation
    from sce.testing import check_implementation

    _check_loss_options(smoothing, temperature, softcap, z_loss, smoothing_style)
    try:
        report = check_implementation(
            function,
            convention=convention.value,
            returns=returns.value,
            reduction=(reduction or ReductionChoice.mean).value,
            targets=targets,
            framework=None if framework is Framework.auto else framework.value,
            seed=seed,
            timeout=timeout,
            label_smoothing=smoothing,
            temperature=temperature,
            softcap=softcap,
            z_loss=z_loss,
            smoothing_style=smoothing_style.value,
        )
    except UnusableImplementation as problem:
        raise UsageProblem(problem.message) from None
    except ValueError as problem:  # an option out of range, e.g. --timeout 0
        raise UsageProblem(_as_flags(str(problem))) from None
    if output_format is CheckFormat.json:
        from sce.cli.stdout import write_stdout
        from sce.render.implementation_report import report_document
        from sce.render.json_format import dumps

        write_stdout(dumps(report_document(report, FLAG_OF_FIELD)) + "\n")
    else:
        from sce.cli.stdout import stdout_console
        from sce.render.implementation_report import print_report

        print_report(stdout_console(), report, FLAG_OF_FIELD)
    if not report.passed:
        raise typer.Exit(ExitStatus.WRONG)


def _as_flags(message: str) -> str:
    for keyword, flag in _FLAGS.items():
        if message.startswith(keyword):
            return flag + message[len(keyword) :]
    return message


def _check_loss_options(
    smoothing: float, temperature: float, softcap: float | None, z_loss: float, style: SmoothingStyleChoice
) -> None:
    """The loss options checked as the core checks them, worded as their flags as in sce grad."""
    from sce.errors import option_problem
    from sce.loss import InvalidInput
    from sce.loss.validation import validated_options
    from sce.options import LossOptions

    chosen = LossOptions(
        label_smoothing=smoothing,
        temperature=temperature,
        softcap=softcap,
        z_loss=z_loss,
        smoothing_style=style.value,
    )
    try:
        validated_options(chosen)
    except InvalidInput as problem:
        raise option_problem(problem) from None
