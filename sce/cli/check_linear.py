"""``sce check --arrays DUMP`` on a dump of hidden states: grade a fused linear cross-entropy's loss and gradients."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import typer

from sce.cli.choices import CheckFormat
from sce.cli.declarations import FLAG_OF_FIELD
from sce.cli.exit_status import ExitStatus
from sce.cli.stdout import stdout_console, write_stdout
from sce.errors import DataProblem, UsageProblem
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.grading.linear.report import Report
    from sce.io.arrays.linear_dump import LinearDump
    from sce.loss.result import InvalidInput


def is_linear_dump(arrays: str | None) -> bool:
    """Whether ``--arrays FILE`` holds hidden states and a classifier rather than logits."""
    if arrays is None:
        return False
    from sce.io.arrays.formats import open_arrays
    from sce.io.arrays.linear_dump import holds_hidden_states

    return holds_hidden_states(open_arrays(arrays))


def check_linear_dump(
    arrays: str,
    *,
    ranks: list[str] | None = None,
    given: list[str],
    options: LossOptions,
    profile: str = "pytorch",
    mode: str = "full",
    seed: int | None = None,
    reduction_given: bool,
    output_format: CheckFormat,
    page_output: str | None,
    cluster: tuple[str | None, int | None] | None = None,
) -> None:
    """Read the dump, grade every output it holds, print the verdict; exit 1 when wrong.

    ``given``: the flags given that only a dump of logits takes (refused, in one line). Without
    --reduction, the reduction is PyTorch's default, mean, unless the dump's loss is one per row.
    ``ranks``: the dumps of the other ranks of a vocabulary-parallel kernel, in order. ``cluster``:
    a Dask cluster's (scheduler address, local workers) to compute the full check's blocks on."""
    from sce.io.arrays.linear_dump import read_linear_dump

    _refuse_cluster(cluster, bool(ranks), mode)
    _refuse_flags_for_logits(arrays, given, options)
    if ranks:
        from sce.io.arrays.rank_dumps import read_rank_dumps

        several = read_rank_dumps([arrays, *ranks], options.ignore_index)
        dump = several.dumps[0]
        inputs = _Inputs(several.shards("classifier"), several.shards("bias"), several.shards("grad_classifier"),
                         several.shards("grad_bias"))  # fmt: skip
        shape = several.shape
    else:
        dump = read_linear_dump(arrays, options.ignore_index)
        inputs, shape = None, dump.shape
    if not reduction_given:
        loss = dump.answers.get("loss")
        per_row = loss is not None and loss.ndim == 1 and dump.shape[0] > 1
        options = options.replace(reduction="none" if per_row else "mean")
    report = _graded(dump, options, profile, mode, seed, inputs, cluster=cluster)
    if ranks:
        graded = (dump, options, profile, mode, seed)
        report = _ranks_suspected(report, [arrays, *ranks], several.same_shards(), graded, inputs)
    if output_format is CheckFormat.json:
        from sce.render.json_format import dumps
        from sce.render.linear_check import linear_check_document

        write_stdout(dumps(linear_check_document(report, shape, options.reduction, FLAG_OF_FIELD)) + "\n")
    elif output_format is CheckFormat.html:
        from sce.cli.page_output import write_report_page
        from sce.render.linear_check import print_linear_check

        def page(console: object) -> None:
            print_linear_check(console, report, shape, options.reduction, FLAG_OF_FIELD)  # type: ignore[arg-type]

        write_report_page(f"Checked: {' '.join([arrays, *(ranks or [])])}", [], page, page_output)
    else:
        from sce.render.linear_check import print_linear_check

        print_linear_check(stdout_console(), report, shape, options.reduction, FLAG_OF_FIELD)
    if not report.passed:
        raise typer.Exit(ExitStatus.WRONG)


def _refuse_flags_for_logits(arrays: str, given: list[str], options: LossOptions) -> None:
    """The flags only a dump of logits takes, each refused in one line."""
    if given:
        raise UsageProblem(
            f"{given[0]}: {arrays} holds hidden states (a dump of a linear layer and its loss), whose arrays are "
            "named hidden, classifier, labels, bias, grad_output, loss, grad_hidden, grad_classifier, grad_bias: "
            "leave it out"
        )
    if options.temperature != 1.0:
        raise UsageProblem("--temperature: a dump of hidden states is graded without a temperature; leave it out")
    if options.dtype != "float64":
        raise UsageProblem("--dtype: each output of a dump is graded in the type it is stored in; leave out --dtype")


def _refuse_cluster(cluster: tuple[str | None, int | None] | None, ranks: bool, mode: str) -> None:
    """The dask engine takes one dump in full mode: quick mode's sample and the ranks' shards run here."""
    if cluster is None:
        return
    from sce.batch.cluster import require_dask

    if ranks:
        raise UsageProblem(
            "--engine dask checks one dump of hidden states; the ranks' dumps of a vocabulary-parallel kernel are "
            "checked in this process: leave out --engine"
        )
    if mode == "quick":
        raise UsageProblem("--engine dask runs the full check; --quick runs in this process: leave out one of them")
    require_dask()


class _Inputs(NamedTuple):
    """The ranks' shards: the classifier, bias and their gradients, one array per rank (None where absent)."""

    classifier: Any
    bias: Any
    grad_classifier: Any
    grad_bias: Any


def _ranks_suspected(
    report: Report, paths: list[str], same: tuple[int, int] | None,
    graded: tuple[LinearDump, LossOptions, str, str, int | None], shards: _Inputs | None,
) -> Report:
    """A failing set of rank dumps, two of which hold the same shards byte for byte (``same``), or which
    pass in another order: the dumps given, most likely, rather than the kernel, said as the mistake."""
    if report.passed:
        return report
    if same is not None:  # two copies of one shard fail in any order: no order is searched for
        return _copies_named(report, paths, same)
    return _order_suspected(report, paths, graded, shards)


def _copies_named(report: Report, paths: list[str], same: tuple[int, int]) -> Report:
    """A rank's dump copied over another's (or written under its name), as the mistake."""
    import dataclasses

    first, second = (paths[k] for k in same)
    return dataclasses.replace(
        report, mistake="two ranks' dumps hold the same shard",
        fix=f"{second} holds the same shard of the classifier (and of every sharded array) as {first}, byte for "
        "byte: a rank's dump copied over another's, or written under its name? give each rank's own dump",
    )  # fmt: skip


def _order_suspected(
    report: Report, paths: list[str], graded: tuple[LinearDump, LossOptions, str, str, int | None],
    shards: _Inputs | None,
) -> Report:
    """A failing set of rank dumps that two neighbours swapped would pass: the ranks were given out of
    the vocabulary's order, most likely, rather than the kernel being wrong; said as the mistake."""
    import dataclasses

    if report.passed or shards is None:
        return report
    import numpy as np

    from sce.grading.linear.shards import swaps_that_could_pass

    dump, options, profile, mode, seed = graded
    failing_rows = [
        output.worst_entry[0] for output in (report.grad_hidden, report.loss)
        if output is not None and not output.passed and output.worst_entry
    ]  # fmt: skip
    widths = [len(part) for part in shards.classifier]
    # Only the pairs whose swap moves a label, and every failing row's, are checked; of those, the loss and
    # ∂L/∂b cost the logits' product alone: a pair whose swap fails them is ruled out before the full check.
    cheap = ("loss", "grad_bias")
    for k in swaps_that_could_pass(widths, np.asarray(dump.labels).reshape(-1), options, failing_rows):
        swapped = _Inputs(*(None if part is None else [*part[:k], part[k + 1], part[k], *part[k + 2 :]]
                            for part in shards))  # fmt: skip
        try:
            screened = swapped.grad_bias is not None or dump.answers.get("loss") is not None
            if screened and not _graded(dump, options, profile, mode, seed, swapped, cheap).passed:
                continue
            passed = _graded(dump, options, profile, mode, seed, swapped).passed
        except (DataProblem, UsageProblem):
            continue  # swapped, the shards do not fit the dump (a label beyond a shard's bias, …)
        if passed:
            return dataclasses.replace(
                report, mistake="rank dumps out of the vocabulary's order",
                fix=f"with {paths[k]} and {paths[k + 1]} swapped every output is correct: give the ranks' dumps in "
                f"the order of the vocabulary ({paths[k + 1]} before {paths[k]})",
            )  # fmt: skip
    return report


def _graded(
    dump: LinearDump,
    options: LossOptions,
    profile: str,
    mode: str,
    seed: int | None = None,
    shards: _Inputs | None = None,
    only: tuple[str, ...] | None = None,
    cluster: tuple[str | None, int | None] | None = None,
) -> Report:
    """The check of every output in the dump (the first rank's, with ``shards`` the ranks' shards; of
    the outputs ``only`` names, where given); an input it refuses, placed at its array in the dump."""
    from sce.grading.linear.grade import check_linear
    from sce.loss.result import InvalidInput

    answers = {name: dump.answers.get(name) for name in ("loss", "grad_hidden", "grad_classifier", "grad_bias")}
    classifier, bias = dump.classifier, dump.bias
    if shards is not None:
        classifier, bias = shards.classifier, shards.bias
        answers.update(grad_classifier=shards.grad_classifier, grad_bias=shards.grad_bias)
    if only is not None:
        answers = {name: answer if name in only else None for name, answer in answers.items()}
    loss_options = {
        "reduction": options.reduction,
        "ignore_index": options.ignore_index,
        "label_smoothing": options.label_smoothing,
        "smoothing_style": options.smoothing_style,
        "softcap": options.softcap,
        "z_loss": options.z_loss,
        "weight": options.weight,
    }
    client = None
    if cluster is not None:
        from functools import partial

        from sce.batch.cluster import cluster_client

        client = partial(cluster_client, *cluster)  # started once the dump's arrays are checked
    try:
        return check_linear(
            dump.hidden, classifier, dump.labels, bias=bias, outputs=answers, options=loss_options,
            profile=profile, mode=mode, seed=seed, client=client,
            grad_output=1.0 if dump.grad_output is None else dump.grad_output,
        )  # fmt: skip
    except InvalidInput as problem:
        raise _placed(problem, dump.where) from None


def _placed(problem: InvalidInput, where: dict[str, str]) -> DataProblem | UsageProblem:
    """The grader's words for a bad input, placed as ``sce check --arrays`` places them: an array's
    file, row and class (bad data), or an option's flag and class (a usage error)."""
    hint = f"; {problem.marked_hint}" if problem.marked_hint else ""
    if problem.field not in where:
        flag = FLAG_OF_FIELD.get(problem.field, problem.field)
        column = "" if problem.column is None else f" (class {problem.column})"
        return UsageProblem(f"{flag}{column}: {problem.problem}{hint}")
    row = "" if problem.row is None else f": row {problem.row}"
    column = "" if problem.column is None else f", column {problem.column}"
    return DataProblem(f"{where[problem.field]}{row}{column}: {problem.problem}{hint}")
