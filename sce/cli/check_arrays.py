"""``sce check --arrays DUMP`` and ``sce check --logits FILE …``: grade dumped tensors by their type."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from sce.cli.choices import CheckFormat, ClaimedDType, KernelProfile, SumOrder
from sce.cli.declarations import (
    CLAIMED_DTYPE,
    FLAG_OF_FIELD,
    LABELS_PATH,
    PROFILE,
    QUICK,
    SEED,
    SUM_ORDER,
    TARGETS_PATH,
)
from sce.cli.declarations_engine import ENGINE, SCHEDULER, WORKERS
from sce.cli.exit_status import ExitStatus
from sce.cli.stdout import stdout_console, write_stdout
from sce.errors import UsageProblem
from sce.number_text import is_number
from sce.options import LossOptions

if TYPE_CHECKING:
    from rich.progress import TaskID

    from sce.grading.dump.tiles import TileEngine
    from sce.grading.dump.verdict import DtypeCheck
    from sce.io.arrays import ArrayDump, DumpRequest

Cluster = tuple[str, "str | None", "int | None"]
"""The engine ("local" or "dask"), a running scheduler's address, the local cluster's workers."""


ARRAY_ROLES = ("logits", "labels", "targets", "grad", "loss")
#: The endings of "--profile goes with …" (and --quick's, --seed's): given without a dump, and given with logits.
_NEEDS_A_HIDDEN_STATE_DUMP = "--arrays FILE holding hidden states (hidden, classifier, labels)"
_NEEDS_HIDDEN_STATES_NOT_LOGITS = "a dump of hidden states (hidden, classifier, labels), not with logits"


def rank_dumps(arrays: str | None, extra: list[str] | None) -> list[str]:
    """The other ranks' dumps after ``--arrays FIRST``: the words after it, unless they are all numbers
    (typed numbers beside --arrays are refused as before); a word that is no readable file is then
    named by the reader, as a single ``--arrays`` names it."""
    from sce.cli.check_linear import is_linear_dump

    if arrays is None or not extra or all(is_number(word) for word in extra):
        return []
    if not is_linear_dump(arrays):
        raise UsageProblem(
            f"{arrays} holds logits: several dumps are a vocabulary-parallel kernel's, one per rank, each holding "
            "hidden, classifier and labels; give one dump of logits"
        )
    return list(extra)



def refuse_typed_inputs(
    logits: list[str] | None, csv_input: str | None, label: str | None, target: str | None, tol: float | None = None
) -> None:
    if logits or csv_input is not None or label is not None or target is not None:
        raise UsageProblem(
            "give the arrays (--arrays or --logits FILE) alone, without LOGITS, --csv, --label or --target"
        )
    if tol is not None:
        raise UsageProblem("--tol: arrays are graded in ulps of their type against a baseline; leave out --tol")


def refuse_array_options(
    labels: str | None,
    targets: str | None,
    claimed: ClaimedDType | None,
    sum_order: SumOrder = SumOrder.parallel,
    profile: KernelProfile | None = None,
    cluster: Cluster = ("local", None, None),
    quick: tuple[bool, int | None] = (False, None),
) -> None:
    order = None if sum_order is SumOrder.parallel else sum_order
    engine, scheduler, workers = cluster
    for name, value in (
        (LABELS_PATH.name, labels),
        (TARGETS_PATH.name, targets),
        (CLAIMED_DTYPE.name, claimed),
        (SUM_ORDER.name, order),
        (ENGINE.name, None if engine == "local" else engine),
        (SCHEDULER.name, scheduler),
        (WORKERS.name, workers),
    ):
        if value is not None:
            raise UsageProblem(f"{name} goes with --arrays FILE or --logits FILE")
    _refuse_hidden_state_options(profile, quick, _NEEDS_A_HIDDEN_STATE_DUMP)


def check_arrays(
    *,
    arrays: str | None,
    ranks: list[str] | None = None,
    paths: dict[str, str | None],
    keys: dict[str, str | None],
    claimed: ClaimedDType | None,
    options: LossOptions,
    sum_order: str = "parallel",
    profile: KernelProfile | None = None,
    quick: tuple[bool, int | None] = (False, None),
    digits: int,
    output_format: CheckFormat,
    reduction_given: bool = True,
    page_output: str | None = None,
    cluster: Cluster = ("local", None, None),
) -> None:
    """Read the dump, grade it by type, print the verdict; exit 1 when wrong.

    Without --reduction, the reduction is PyTorch's default, mean, unless
    the dump's loss is one per row: then none, or mean where the gradient
    is the mean's (each row's loss logged beside the mean's backward, as
    ``sce batch --reduction mean`` writes them). With ``cluster`` ("dask", a scheduler's address
    or None, the local cluster's workers or None), a dump of logits is graded in tiles on a Dask cluster."""
    from sce.batch.cluster import check_cluster_options
    from sce.cli.check_linear import check_linear_dump, is_linear_dump
    from sce.grading.dump.check import check_options
    from sce.io.arrays import DumpRequest, read_dump
    from sce.io.arrays.dump import float_name

    check_cluster_options(*cluster)
    if arrays is not None and is_linear_dump(arrays):
        check_linear_dump(
            arrays,
            ranks=ranks,
            given=_logits_only_flags(paths, keys, claimed, sum_order),
            options=options,
            profile="pytorch" if profile is None else profile.value,
            mode="quick" if quick[0] else "full",
            seed=quick_seed(*quick),
            reduction_given=reduction_given,
            output_format=output_format,
            page_output=page_output,
            cluster=cluster[1:] if cluster[0] == "dask" else None,
        )
        return
    _refuse_hidden_state_options(profile, quick, _NEEDS_HIDDEN_STATES_NOT_LOGITS)
    if options.dtype != "float64":
        raise UsageProblem(
            "--dtype: arrays are graded against the exact float64 result; "
            "say what the answer was computed in with --claimed-dtype"
        )
    request = DumpRequest(
        arrays,
        {role: path for role, path in paths.items() if path is not None},
        {role: key for role, key in keys.items() if key is not None},
    )
    dump = read_dump(request, options.ignore_index)
    if not reduction_given:
        per_row = dump.loss is not None and dump.loss.ndim == 1 and dump.shape[0] > 1
        options = options.replace(reduction="none" if per_row else "mean")
    answer = dump.grad if dump.grad is not None else dump.loss
    assert answer is not None
    claimed_name = claimed.value if claimed is not None else float_name(answer.dtype) or "float64"
    if claimed_name == "bfloat16":
        _require_ml_dtypes()
    if dump.loss is not None and dump.loss.ndim == 0 and dump.shape[0] == 1 and options.reduction == "none":
        dump = dataclasses.replace(dump, loss=dump.loss.reshape(1))
    _check_loss_shape(dump.loss, options, dump.where.get("loss", ""))
    check_options(options, dump.shape[1])  # before a cluster is started or reached
    with _engine(cluster, request, dump, options.ignore_index) as engine:
        found = _check_with_progress(dump, options, claimed_name, sum_order, engine)
        if not reduction_given and options.reduction == "none" and dump.grad is not None and not found.correct:
            # The gradient says which: a wrong loss beside the mean's right gradient is a wrong loss,
            # not "divided by N".
            as_mean = _check_with_progress(dump, options.replace(reduction="mean"), claimed_name, sum_order, engine)
            if as_mean.quantities[0].correct and not found.quantities[0].correct:
                found = as_mean
    _show(found, digits, output_format, (f"Checked: {arrays or paths['logits']}", page_output))
    if not found.judgeable:
        raise typer.Exit(ExitStatus.UNGRADED)  # neither right nor wrong: the type cannot hold the answer
    if not found.correct:
        raise typer.Exit(ExitStatus.WRONG)


def quick_seed(quick: bool, seed: int | None) -> int | None:
    """The seed of quick mode's sample: a whole number from 0, given only with --quick."""
    if seed is not None and not quick:
        raise UsageProblem(f"{SEED.name} chooses the rows {QUICK.name} samples: give {QUICK.name} too, or leave it out")
    if seed is not None and seed < 0:
        raise UsageProblem(f"{SEED.name}: a whole number from 0, not {seed}")
    return seed


def _refuse_hidden_state_options(profile: KernelProfile | None, quick: tuple[bool, int | None], goes_with: str) -> None:
    """Refuse the options only the fused check takes (a kernel's profile, quick mode and its seed): "NAME goes
    with ``goes_with``", the sentence's ending saying what the option needs where it was given."""
    for name, given in ((PROFILE.name, profile is not None), (QUICK.name, quick[0]), (SEED.name, quick[1] is not None)):
        if given:
            raise UsageProblem(f"{name} goes with {goes_with}")


def _logits_only_flags(
    paths: dict[str, str | None], keys: dict[str, str | None], claimed: ClaimedDType | None, sum_order: str
) -> list[str]:
    """The flags given that only a dump of logits takes."""
    fields = [f"{role}_path" for role, path in paths.items() if path is not None]
    fields += [f"key_{role}" for role, key in keys.items() if key is not None]
    fields += ["claimed_dtype"] * (claimed is not None) + ["sum_order"] * (sum_order != "parallel")
    return [FLAG_OF_FIELD[field] for field in fields]


def _show(found: DtypeCheck, digits: int, output_format: CheckFormat, page: tuple[str, str | None]) -> None:
    """The verdict as ``output_format`` says; a page has ``page``'s title and goes to its file (None: stdout)."""
    if output_format is CheckFormat.json:
        from sce.render.json_format import dtype_check_document, dumps

        write_stdout(dumps(dtype_check_document(found, FLAG_OF_FIELD)) + "\n")
        return
    from sce.render.dtype_check import print_dtype_check

    if output_format is CheckFormat.html:
        from sce.cli.page_output import write_report_page

        title, output = page
        write_report_page(title, [], lambda console: print_dtype_check(console, found, digits, FLAG_OF_FIELD), output)
    else:
        print_dtype_check(stdout_console(), found, digits, FLAG_OF_FIELD)


@contextmanager
def _engine(cluster: Cluster, request: DumpRequest, dump: ArrayDump, ignore_index: int) -> Iterator[TileEngine | None]:
    """None for this process; for the dask engine, the cluster's, which each task opens the dump
    for by its absolute paths (and names it in messages as it was given)."""
    engine, scheduler, workers = cluster
    if engine != "dask":
        yield None
        return
    from sce.batch.cluster import cluster_client
    from sce.grading.dump.cluster_tiles import on_cluster
    from sce.grading.dump.tiles import DumpFile

    absolute = dataclasses.replace(
        request,
        arrays=None if request.arrays is None else os.path.abspath(request.arrays),
        paths={role: os.path.abspath(path) for role, path in request.paths.items()},
    )
    loss_per_row = dump.loss is not None and dump.loss.ndim == 1 and dump.shape[0] == 1
    with cluster_client(scheduler, workers) as client:
        yield on_cluster(client, DumpFile(absolute, ignore_index, loss_per_row, dump.where))


def _check_with_progress(
    dump: ArrayDump, options: LossOptions, claimed: str, sum_order: str, engine: TileEngine | None = None
) -> DtypeCheck:
    """check_dump, with a bar on stderr when it is a terminal (never in a pipe or a log)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from sce.grading.dump.check import check_dump

    stderr = Console(stderr=True)
    if not stderr.is_terminal:
        return check_dump(dump, options, claimed, tune_heap=True, sum_order=sum_order, engine=engine)
    rows = dump.shape[0]
    with Progress(
        TextColumn("sce check: {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} of {task.total:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        redirect_stdout=False,
        redirect_stderr=False,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(phase: str, done: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=rows)
            bar.advance(tasks[phase], done)

        return check_dump(
            dump, options, claimed, progress=advance, tune_heap=True, sum_order=sum_order, engine=engine
        )


def _require_ml_dtypes() -> None:
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        raise UsageProblem("--claimed-dtype bfloat16 needs ml_dtypes: pip install 'sce[bfloat16]'") from None


def _check_loss_shape(loss: object, options: LossOptions, where: str) -> None:
    import numpy as np

    if not isinstance(loss, np.ndarray):
        return
    if loss.ndim == 0 and options.reduction == "none":
        raise UsageProblem(
            f"{where} is one number but --reduction is none (one loss per row); say --reduction mean or sum"
        )
