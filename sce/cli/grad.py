"""``sce grad``: one vector of logits, its loss and gradient, and their explanations."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from sce.cli.choices import GradFormat
from sce.cli.commandline import say_warning
from sce.cli.declarations import (
    LOSS_OPTIONS,
    OUTPUT,
    PER_ROW_REDUCTION,
    DigitsOption,
    LabelOption,
    LogitsArgument,
    LogitsFileOption,
    PlotOption,
    TargetOption,
    bundled,
)
from sce.cli.page_output import page_format, refuse_output_without_page, write_page
from sce.cli.plot_file import check_plot_path, write_picture
from sce.cli.stdout import stdout_console, write_stdout
from sce.cli.typed_inputs import (
    check_class_counts,
    check_digits,
    parse_vector_input,
    row_loss_options_from,
    run_core,
)
from sce.errors import UsageProblem
from sce.number_text import DISPLAY_DIGITS
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.explain.proofs import Proofs
    from sce.loss import SoftmaxCrossEntropyResult


class DerivationRoute(str, Enum):
    """How ``--steps`` reaches ∂L/∂z (the names of ``sce.explain.derivation.ROUTES``)."""

    chain = "chain"
    lse = "lse"
    jacobian = "jacobian"


@bundled(LOSS_OPTIONS, row_loss_options_from, into="options", changes=PER_ROW_REDUCTION)
def grad(
    logits: LogitsArgument = None,
    logits_file: LogitsFileOption = None,
    label: LabelOption = None,
    target: TargetOption = None,
    digits: DigitsOption = DISPLAY_DIGITS,
    chosen_format: Annotated[
        GradFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="table (for people; the default), markdown, json or csv (full precision), or html (a printable "
            "page; the default for -o FILE.html).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        OUTPUT.option(
            help="Write the page (--format html, or a FILE named .html) to FILE, whole or not at all.",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        bool, typer.Option("--steps", help="Derive the result stage by stage with these numbers.")
    ] = False,
    route: Annotated[
        DerivationRoute | None,
        typer.Option(
            "--route",
            help="With --steps, how to reach ∂L/∂z: chain (the chain rule through s, case by case; the default), "
            "lse (through the log-sum-exp) or jacobian (∂L/∂s times ∂s/∂z).",
        ),
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the gradient against central finite differences of the loss.")
    ] = False,
    jacobian: Annotated[
        bool, typer.Option("--jacobian", help="Show ∂s/∂z = diag(s) - s sᵀ, ∂L/∂s and their product.")
    ] = False,
    hessian: Annotated[
        bool, typer.Option("--hessian", help="Show ∇²L with respect to the logits and its eigenvalues.")
    ] = False,
    plot: PlotOption = None,
    *,
    options: LossOptions,
) -> None:
    """Probabilities, loss and gradient ∂L/∂z for one vector of logits.

    Example: sce grad 2 3 4 --label 1
    Picture: sce grad 2 3 4 --label 1 --plot grad.svg
    """
    check_digits(digits)
    plot_kind = None if plot is None else check_plot_path(plot)
    if plot is not None and output is not None:
        from sce.io.writers.atomic import refuse_same_file

        refuse_same_file(plot, output, "plot_path", f"{plot} is the page's file (-o); draw the picture elsewhere")
    output_format = GradFormat(page_format(output, chosen_format and chosen_format.value) or GradFormat.table)
    _check_format(output_format, steps, verify, jacobian, hessian)
    refuse_output_without_page(output, output_format is GradFormat.html, chosen_format and chosen_format.value)
    if route is not None and not steps:
        raise UsageProblem(f"--route {route.value} chooses the route of the --steps derivation; add --steps")
    vector = parse_vector_input(logits, label, target, logits_file)
    check_class_counts(vector, options)
    result = run_core(vector, options)
    _check_language_model_options(options, hessian, result.num_classes)
    if steps:
        _check_derivable(result, route or DerivationRoute.chain)
    from sce.explain.proofs import prove

    proofs = prove(result, verify=verify, jacobian=jacobian, hessian=hessian)
    if plot is not None and plot_kind is not None:
        _draw(plot, plot_kind, result, digits, logits_file)
    if output_format is GradFormat.json:
        _warn_about_omitted_matrices(proofs, result.num_classes, result.options)
    if output_format is GradFormat.html:
        figures = [] if plot is None else _page_figures(result, digits)
        _write_page(result, digits, (route or DerivationRoute.chain) if steps else None, output, logits_file, figures)
    elif steps:
        _print_derivation(result, proofs, digits, output_format, route or DerivationRoute.chain)
    else:
        _print_result(result, proofs, digits, output_format)


def _draw(path: str, kind: str, result: SoftmaxCrossEntropyResult, digits: int, logits_file: str | None) -> None:
    from sce.render.plot_grad import grad_picture, grad_plot_note, plot_refusal

    refusal = plot_refusal(result)
    if refusal is not None:
        raise UsageProblem(refusal)
    write_picture(path, lambda: grad_picture(result, kind, digits), logits_file, grad_plot_note(result))


def _warn_about_omitted_matrices(proofs: Proofs, classes: int, options: LossOptions) -> None:
    from sce.explain.proofs import MATRIX_LIMIT

    omitted = [
        name
        for name, proof in (("--jacobian", proofs.jacobian), ("--hessian", proofs.hessian))
        if proof is not None and classes > MATRIX_LIMIT
    ]
    if omitted:
        what = (
            "∂s/∂z is (diag(s) - s sᵀ)·diag(1 − tanh²(z/c))/T, from the probabilities and the logits"
            if options.softcap is not None
            else "they are diag(s) - s sᵀ times a factor, from the probabilities"
        )
        say_warning(
            f"{' and '.join(omitted)}: the {classes:,}×{classes:,} matrices are written as null "
            f"(JSON writes them up to {MATRIX_LIMIT:,} classes); {what}"
        )


def _check_language_model_options(options: LossOptions, hessian: bool, classes: int) -> None:
    """With a cap or a z-loss the Hessian is no multiple of diag(s) − s sᵀ: it is formed, so K is bounded."""
    from sce.explain.proofs import MATRIX_LIMIT

    if hessian and options.has_llm_options and classes > MATRIX_LIMIT:
        given = [name for name, on in (("--softcap", options.softcap is not None), ("--z-loss", options.z_loss)) if on]
        raise UsageProblem(
            f"--hessian with {' and '.join(given)} forms the K×K matrix (it is no multiple of diag(s) - s sᵀ), "
            f"up to {MATRIX_LIMIT:,} classes (here {classes:,}); leave out --hessian or {' and '.join(given)}"
        )


def _check_format(output_format: GradFormat, steps: bool, verify: bool, jacobian: bool, hessian: bool) -> None:
    if steps and output_format is GradFormat.csv:
        raise UsageProblem("--steps cannot be written as csv; use --format table, markdown, json or html")
    extras = [name for name, on in (("--verify", verify), ("--jacobian", jacobian), ("--hessian", hessian)) if on]
    if extras and output_format in (GradFormat.csv, GradFormat.markdown, GradFormat.html):
        raise UsageProblem(f"{extras[0]} is shown as a table or in JSON; use --format table or json")


def _print_result(result: SoftmaxCrossEntropyResult, proofs: Proofs, digits: int, output_format: GradFormat) -> None:
    from sce.explain.exact_values import exact_row

    if output_format is GradFormat.json:
        from sce.render.json_format import dumps, grad_document, proofs_document

        exact = exact_row(result, 17)
        write_stdout(dumps({**grad_document(result, exact=exact), **proofs_document(proofs)}) + "\n")
    elif output_format is GradFormat.markdown:
        from sce.render.markdown_format import grad_markdown

        write_stdout(grad_markdown(result, digits, exact_row(result, digits)))
    elif output_format is GradFormat.csv:
        from sce.render.csv_format import grad_csv

        write_stdout(grad_csv(result))
    else:
        from sce.render.table import print_grad, print_proofs

        console = stdout_console()
        print_grad(console, result, digits, exact_row(result, digits))
        if proofs.any:
            console.print()
            print_proofs(console, proofs, digits, float64=str(result.dtype) == "float64")


def _write_page(
    result: SoftmaxCrossEntropyResult,
    digits: int,
    route: DerivationRoute | None,
    output: str | None,
    logits_file: str | None,
    figures: list[str],
) -> None:
    """The printable page: the result, the derivation by ``route`` (None: without one), and ``figures``."""
    from sce.render.html_format import grad_page

    stages = None
    if route is not None:
        from sce.explain.derivation import build_derivation

        stages = build_derivation(result, digits, route.value)
    write_page(grad_page(result, digits, stages, figures), output, logits_file)


def _page_figures(result: SoftmaxCrossEntropyResult, digits: int) -> list[str]:
    """``--plot``'s picture, embedded in the page too (the file is written by ``--plot`` itself)."""
    from sce.render.plot_grad import grad_figure_svg

    return [grad_figure_svg(result, digits, embedded=True)]


def _check_derivable(result: SoftmaxCrossEntropyResult, route: DerivationRoute) -> None:
    if result.labels is not None and not result.counted[0]:
        raise UsageProblem(
            f"--steps: label {int(result.labels[0])} is the ignore index, so the loss is 0 "
            "and there is nothing to derive; give a class index"
        )
    from sce.explain.derivation import route_refusal

    refusal = route_refusal(result, route.value)
    if refusal:
        chain = "use --route chain (the default), which carries every option"
        raise UsageProblem(f"--route {route.value} {refusal}; {chain}")


def _print_derivation(
    result: SoftmaxCrossEntropyResult,
    proofs: Proofs,
    digits: int,
    output_format: GradFormat,
    route: DerivationRoute,
) -> None:
    """The derivation, followed by whatever --verify, --jacobian and --hessian asked for."""
    from sce.explain.derivation import build_derivation

    stages = build_derivation(result, digits, route.value)
    if output_format is GradFormat.json:
        from sce.render.json_format import dumps, proofs_document, steps_json_document

        write_stdout(dumps({**steps_json_document(result, stages, route.value), **proofs_document(proofs)}) + "\n")
    elif output_format is GradFormat.markdown:
        from sce.render.markdown_format import derivation_markdown

        write_stdout(derivation_markdown(result, stages, digits))
    else:
        from sce.render.grid import print_styled
        from sce.render.steps_terminal import print_steps
        from sce.render.table import print_proofs
        from sce.render.words import reduction_line

        console = stdout_console()
        print_steps(console, stages, digits)
        print_styled(console, reduction_line(result.options.reduction))
        if proofs.any:
            console.print()
            print_proofs(console, proofs, digits, float64=str(result.dtype) == "float64")
