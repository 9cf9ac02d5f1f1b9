"""``sce test FILE.py:FUNCTION``: grade an implementation of the loss and gradient."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sce.cli.choices import Convention, Framework
from sce.cli.declarations import (
    FLAG_OF_FIELD,
    FUNCTION_PANEL,
    OUTPUT,
    REDUCTION,
    RETURNS,
    SEED,
    SHOW_OUTPUT,
    SMOOTHING,
    SMOOTHING_STYLE,
    SOFTCAP,
    STRICT,
    TEMPERATURE,
    TIMEOUT,
    Z_LOSS,
    ConventionOption,
    FrameworkOption,
    bundled,
)
from sce.cli.exit_status import ExitStatus
from sce.cli.typed_inputs import loss_options_from
from sce.errors import UsageProblem
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.grading.gradebook import LearnerGrade
    from sce.grading.implementations.report import Configuration, ImplementationReport


class Returns(str, Enum):
    """What the graded function returns: a pair, one of its two, or a dict of the derivation's stages."""

    loss_grad = "loss,grad"
    grad = "grad"
    loss = "loss"
    stages = "stages"


ReturnsOption = Annotated[Returns, RETURNS.option()]


def graded_loss(given: Mapping[str, Any]) -> LossOptions:
    """The loss the graded function computes: the options given, and PyTorch's mean by default."""
    return loss_options_from({"reduction": "mean", **given})


class TestFormat(str, Enum):
    """sce test's formats: those of the grading commands, and for a gradebook csv and gradescope."""

    table = "table"
    json = "json"
    csv = "csv"
    gradescope = "gradescope"
    html = "html"


_GRADED_REDUCTION = {
    "help": "The batch loss: mean (default, as PyTorch), sum, or none (one per row).",
    "show_default": False,
}


@bundled(
    (SMOOTHING, TEMPERATURE, SOFTCAP, Z_LOSS, SMOOTHING_STYLE, REDUCTION),
    graded_loss,
    into="options",
    given_into="options_given",
    changes={"reduction": _GRADED_REDUCTION},
)
def test(
    function: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE.py:FUNCTION...",
            help="The function to grade (also package.module:FUNCTION). Its file is run. "
            "Several, a glob ('subs/*.py:f') or a folder (subs:f): one gradebook, a row per file.",
        ),
    ],
    convention: ConventionOption = Convention.batch,
    returns: ReturnsOption = Returns.loss_grad,
    targets: Annotated[
        bool,
        typer.Option(
            "--targets",
            help="The function takes probability targets (N×K) instead of labels.",
            rich_help_panel=FUNCTION_PANEL,
        ),
    ] = False,
    framework: FrameworkOption = Framework.auto,
    seed: Annotated[int, SEED.option()] = 0,
    timeout: Annotated[float, TIMEOUT.option()] = 3.0,
    strict: Annotated[bool, STRICT.option()] = False,
    show_output: Annotated[bool, SHOW_OUTPUT.option()] = False,
    output_format: Annotated[
        TestFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="table or json, or html (a printable page); for a gradebook also csv, or gradescope (the "
            "autograder's results.json). Default: from -o's name, else table.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        OUTPUT.option(
            help="Write the gradebook to this file (.csv, .json or .html), or one submission's page (.html), "
            "whole or not at all."
        ),
    ] = None,
    *,
    options: LossOptions,
    options_given: frozenset[str],
) -> None:
    """Grade your implementation of the loss and gradient; name the mistake.

    Example: sce test homework.py:softmax_loss
    Runs the file's code (in a separate process). Exit status 0 when every case
    passes or only cases of extreme range fail (correct, not robust; 1 with
    --strict), 1 when another case fails, 2 when the function cannot be used as
    configured.
    The loss options (--smoothing, --temperature, --softcap, --z-loss,
    --smoothing-style) describe the loss the function computes, with them
    built in: it is still called f(logits, labels).
    """
    if "reduction" in options_given and convention is Convention.row:
        raise UsageProblem("--reduction goes with --convention batch; a row function returns its row's own loss")
    from sce.grading.implementations.configuration import check_implementation
    from sce.grading.implementations.loading import UnusableImplementation

    _check_loss_options(options)
    named = _submissions(function)
    book_format = _book_format(output_format, output)
    html = book_format == "html"  # one submission's report as a page; many, their gradebook as one
    many = len(named) > 1 or named[0][1] != function[0]
    if many or book_format in ("csv", "gradescope") or (output is not None and not html):
        _check_one_only(show_output=show_output)
        configuration = _configuration(convention, returns, targets, framework, seed, timeout, options)
        _grade_many(named, book_format, output, strict, options, configuration)
        return
    configured = {"convention": convention.value, "targets": targets}

    def run(**configuration: Any) -> ImplementationReport:
        return check_implementation(
            function[0],
            returns=returns.value,
            reduction=options.reduction,
            framework=None if framework is Framework.auto else framework.value,
            seed=seed,
            timeout=timeout,
            label_smoothing=options.label_smoothing,
            temperature=options.temperature,
            softcap=options.softcap,
            z_loss=options.z_loss,
            smoothing_style=options.smoothing_style,
            **configuration,
        )

    try:
        report = run(**configured)
        hint = _other_configuration(report, configured, "reduction" in options_given, run)
    except UnusableImplementation as problem:
        raise UsageProblem(problem.message) from None
    except ValueError as problem:  # an option out of range, e.g. --timeout 0
        raise UsageProblem(_as_flags(str(problem))) from None
    _show_report(report, hint, TestFormat(book_format), output, show_output)
    if not report.passed or (strict and report.verdict.value != "correct"):
        raise typer.Exit(ExitStatus.WRONG)


def _show_report(
    report: ImplementationReport,
    hint: tuple[str, int, int] | None,
    output_format: TestFormat,
    output: str | None,
    show_output: bool,
) -> None:
    """One submission's report as ``output_format`` says, with the hint of another configuration."""
    hint_line = None
    if hint:
        hint_line = (
            f"hint: no case passes as configured, but {hint[1]} of {hint[2]} pass with {hint[0]}: "
            "is that how the function is called?"
        )
    if output_format is TestFormat.html:
        from sce.cli.page_output import write_page
        from sce.render.html_reports import implementation_page

        notes = [hint_line] if hint_line else []
        write_page(implementation_page(report, FLAG_OF_FIELD, show_output, notes=notes), output)
    elif output_format is TestFormat.json:
        from sce.cli.stdout import write_stdout
        from sce.render.implementation_report import report_document
        from sce.render.json_format import dumps_escaped

        document = report_document(report, FLAG_OF_FIELD)
        if hint:
            document["hint"] = {"flags": hint[0], "passing_cases": hint[1], "cases": hint[2]}
        write_stdout(dumps_escaped(document) + "\n")
    else:
        from sce.cli.stdout import stdout_console
        from sce.render.implementation_report import print_report

        print_report(stdout_console(), report, FLAG_OF_FIELD, show_output)
        if hint_line:
            stdout_console().print(hint_line, markup=False)


def _submissions(named: list[str]) -> list[tuple[str, str]]:
    from sce.grading.implementations.submissions import submissions

    try:
        return submissions(named)
    except ValueError as problem:
        raise UsageProblem(str(problem)) from None


def _book_format(chosen: TestFormat | None, output: str | None) -> str:
    """The format: --format, else from -o's name (.csv, .json or .html), else table; a --format the
    name contradicts is refused."""
    from sce.cli.output_names import format_of_output

    if output in (None, "-"):
        return "table" if chosen is None else chosen.value
    if chosen is TestFormat.table:
        problem = "the gradebook's file is csv, json or html; say --format csv, json, html or gradescope"
        raise UsageProblem(f"{OUTPUT.name} {output}: {problem}")
    format_of_output(output, None if chosen is None else chosen.value)
    if chosen is not None:
        return chosen.value
    suffix = output.rsplit(".", 1)[-1].lower() if "." in output else ""
    suffix = "html" if suffix == "htm" else suffix
    if suffix not in ("csv", "json", "html"):
        raise UsageProblem(
            f"{OUTPUT.name} {output}: say the gradebook's format with --format csv, json, html or gradescope, "
            "or name the file .csv, .json or .html"
        )
    return suffix


def _check_one_only(*, show_output: bool) -> None:
    if show_output:
        raise UsageProblem(f"{SHOW_OUTPUT.name} goes with one submission; a gradebook shows one row per file")


def _configuration(
    convention: Convention,
    returns: Returns,
    targets: bool,
    framework: Framework,
    seed: int,
    timeout: float,
    options: LossOptions,
) -> Configuration:
    """The configuration of every submission of a gradebook, as check_implementation makes it."""
    from sce.grading.implementations.configuration import make_configuration

    try:
        return make_configuration(
            convention=convention.value,
            returns=returns.value,
            reduction=options.reduction,
            targets=targets,
            framework=None if framework is Framework.auto else framework.value,
            seed=seed,
            timeout=timeout,
            loss=options,
        )
    except ValueError as problem:
        raise UsageProblem(_as_flags(str(problem))) from None


def _grade_many(
    named: list[tuple[str, str]],
    book_format: str,
    output: str | None,
    strict: bool,
    options: LossOptions,
    configuration: Configuration,
) -> None:
    from sce.cli.gradebook import submissions_book
    from sce.grading.implementations.configuration import function_spec
    from sce.grading.implementations.session import grade_implementation
    from sce.grading.implementations.submissions import grade_submissions

    def grade() -> list[LearnerGrade]:
        return grade_submissions(
            named, configuration, lambda spec, each: grade_implementation(function_spec(spec), each)
        )

    submissions_book(grade, book_format, output, options.reduction, strict)


def _other_configuration(
    report: ImplementationReport,
    configured: dict[str, Any],
    reduction_given: bool,
    run: Callable[..., ImplementationReport],
) -> tuple[str, int, int] | None:
    """Where every case fails, the usual slip of configuration (a row function graded as a batch one,
    a function of targets given labels) under which most cases pass: its flag, how many pass, of how many."""
    from sce.grading.implementations.loading import UnusableImplementation

    if any(case.passed for case in report.cases):
        return None
    targets = not configured["targets"]
    others: list[tuple[dict[str, Any], str]] = [({"targets": targets}, "--targets" if targets else "no --targets")]
    if not reduction_given and not configured["targets"]:
        row = configured["convention"] == "batch"
        others.insert(0, ({"convention": "row" if row else "batch"}, f"--convention {'row' if row else 'batch'}"))
    for change, flags in others:
        try:
            cases = run(**(configured | change)).cases
        except (UnusableImplementation, ValueError):
            continue
        passing = sum(case.passed for case in cases)
        if 2 * passing > len(cases):
            return flags, passing, len(cases)
    return None


def _as_flags(message: str) -> str:
    """check_implementation's "timeout=0.0: …" as the command line's "--timeout 0.0: …"."""
    keyword, equals, rest = message.partition("=")
    if equals and keyword in (SEED.field, TIMEOUT.field):
        return f"{FLAG_OF_FIELD[keyword]} {rest}"
    return message


def _check_loss_options(options: LossOptions) -> None:
    """The loss options checked as the core checks them, worded as their flags as in sce grad."""
    from sce.errors import option_problem
    from sce.loss import InvalidInput
    from sce.loss.validation import validated_options

    try:
        validated_options(options)
    except InvalidInput as problem:
        raise option_problem(problem) from None
