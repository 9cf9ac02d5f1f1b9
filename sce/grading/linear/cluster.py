"""The full check of a fused linear cross-entropy on a Dask cluster, in tiles of classes.

One machine goes by classes where ∂L/∂C would not fit whole (:mod:`sce.loss.linear_cross_entropy`):
a pass over the rows' maxima and log-sum-exps, then each block of classes over every row. A
cluster takes the same blocks as tasks, whatever the size:

1. each row's (max, lse), and the same-type baseline's lse, in tiles of rows (runs of whole
   blocks: a row's figures depend on its own logits only, so a tile computes them as one machine does);
2. a task per block of classes: its finished ∂L/∂C and its parts of ∂L/∂E, of the losses and of
   ∂L/∂b, for the reference and the baseline alike, each begun from zeros; the client adds the
   parts in the blocks' order, as one machine's loop adds them (0 + x is x, to the bit) and grades;
3. where ∂L/∂E does not fit whole, ∂L/∂E a block of rows per task, as one machine's third pass.

Same operations in the same order: where one machine also goes by classes, every figure of the
report is the same, to the bit. The inputs go to the workers once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from sce.grading.linear.answers import LinearAnswer, LinearInputs
from sce.grading.linear.profiles import Profile
from sce.grading.linear.report import Report
from sce.grading.linear.stepped_baseline import SteppedBaseline, baseline_for, keeps_every_logit
from sce.loss.class_sums import ClassSums
from sce.loss.linear_blocks import RowBlocks
from sce.loss.linear_cross_entropy import (
    Finished,
    Streamed,
    add_class_block,
    block_steps,
    by_classes,
    finished_by_classes,
    hidden_by_rows,
    logit_error_bound,
    row_statistics,
)
from sce.loss.linear_terms import LinearTerms

#: Tiles of rows per thread of the cluster in the passes by rows (the passes by classes take one
#: task per block of classes).
TILES_PER_THREAD = 2
#: Tasks under way per thread of the cluster: enough that a thread never waits for the next, few
#: enough that the parts waiting to be added in order (N × D each) stay a few per thread.
TASKS_PER_THREAD = 4


class ClusterBaseline(SteppedBaseline):
    """The same-type baseline going by classes at any size, its blocks formed by the cluster's
    tasks (on a worker: one block of classes, from the rows' lse)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.restart()

    def restart(self) -> None:
        """Sums of nothing yet, going by classes (for another pass of the cluster's)."""
        n, d = self.e.shape
        self.losses = np.zeros((n, 2), self.work)
        self.grad_bias = np.zeros(len(self.c), self.work)
        self.by_classes = True
        self.hidden_later = by_classes(n, d, 6) and self.wants_hidden
        self.done = np.zeros(len(self.c), bool)
        held = self.wants_hidden and not self.hidden_later
        self.sums = np.zeros((n, d) if held else (0, d), self.work)
        self.handed: dict[tuple[str, int], np.ndarray] = {}

    def fresh(self) -> SteppedBaseline:
        """Itself: its blocks are those the cluster hands over during the check."""
        return self

    def classifier_classes(self, classes: slice) -> np.ndarray:
        found = self.handed.pop(("classes", classes.start))
        with np.errstate(over="ignore"):
            return found.astype(self.output_types.get("grad_classifier", self.work))

    def hidden_rows(self, rows: slice) -> np.ndarray:
        if not self.hidden_later:
            return super().hidden_rows(rows)
        found = self.handed.pop(("rows", rows.start))
        with np.errstate(over="ignore"):
            return found.astype(self.output_types.get("grad_hidden", self.work))


class ClusterStream:
    """:func:`~sce.loss.linear_cross_entropy.stream_gradients` on a cluster, filling ``baseline``
    as it goes (see the module's passes)."""

    def __init__(self, client: Any, baseline: ClusterBaseline, with_baseline: bool = True) -> None:
        self.client = client
        self.baseline = baseline
        self.with_baseline = with_baseline
        """Whether the cluster forms the baseline's blocks too (else the client's baseline serves)."""

    def __call__(
        self, e: np.ndarray, c: np.ndarray, b: np.ndarray | None, terms: LinearTerms,
        rows_done: Finished | None, classes_done: Finished | None,
    ) -> Streamed:  # fmt: skip
        n, d = e.shape
        base = self.baseline
        base.restart()
        shared = held(self.client, [e, c, b, terms, base.terms])
        top, lse = self._statistics(shared, n, len(c), d)
        shared_lse = held(self.client, [(top, lse), base.lse])
        later = rows_done is not None and by_classes(n, d, 6)
        sums = ClassSums.zeros(n, d, len(c), rows_done is not None and not later)
        for classes, block in self._classes(shared, shared_lse, sums, classes_done is not None):
            if classes_done is not None and block is not None:
                classes_done(classes, *block)  # with the baseline's block of the same classes in hand
        base.done[:] = True
        bound = logit_error_bound(e, c)
        with np.errstate(over="ignore", invalid="ignore"):  # sizes past float32's range, as one machine's
            streamed = finished_by_classes(sums, top, lse, terms, bound, None if later else rows_done)
        if later and rows_done is not None:
            self._hidden(shared, shared_lse, n, len(c), d, rows_done)
        return streamed

    def _statistics(self, shared: list[Any], n: int, v: int, d: int) -> tuple[np.ndarray, np.ndarray]:
        """Pass 1: each row's (max, lse), and the baseline's lse (kept on the baseline)."""
        unit = math.lcm(block_steps(n, v, d)[1], self.baseline.steps()[1])
        tiles = _row_tiles(n, unit, self._threads())
        arguments = [(*shared, self.baseline.profile, rows, self.with_baseline) for rows in tiles]
        parts = list(in_order(self.client, statistics_tile, arguments))
        if self.with_baseline:  # else this machine's baseline serves, with its own lse
            self.baseline.lse = np.concatenate([part[2] for part in parts])
        return np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])

    def _classes(
        self, shared: list[Any], shared_lse: list[Any], sums: ClassSums, classes_wanted: bool
    ) -> Iterator[tuple[slice, tuple[np.ndarray, np.ndarray] | None]]:
        """Pass 2: the reference's blocks of classes (and the baseline's, the same blocks where ∂L/∂C
        is graded, else its own), added in order; each reference block handed on with its baseline's."""
        e, c, b, terms, base_terms = shared
        base = self.baseline
        n, d = base.e.shape
        step = block_steps(n, len(base.c), d)[0]
        blocks = [slice(k, min(k + step, len(base.c))) for k in range(0, len(base.c), step)]
        rows_wanted = len(sums.grad_hidden) > 0
        reference = [("reference", k, (e, c, b, terms, shared_lse[0], k, rows_wanted, classes_wanted)) for k in blocks]
        own = blocks if classes_wanted else base.own_class_blocks()
        spec = (e, c, b, base_terms, base.profile, base.output_types, base.wants_hidden, shared_lse[1])
        baseline = [("baseline", k, (*spec, k, classes_wanted)) for k in own] if self.with_baseline else []
        tasks: list[tuple[str, slice, tuple[Any, ...]]]
        if not self.with_baseline:
            tasks = list(reference)
        elif classes_wanted:
            tasks = [t for pair in zip(reference, baseline) for t in pair]
        else:
            tasks = [*reference, *baseline]
        pending: tuple[slice, Any] | None = None
        for (kind, classes, _), part in zip(tasks, in_order(self.client, class_tile, [(t[0], t[2]) for t in tasks])):
            if kind == "reference":
                sums.add(part[0], classes)
                pending = (classes, part[1])
                if not self.with_baseline and classes_wanted:
                    yield pending
                continue
            hidden, losses, grad_bias, block = part
            if len(base.sums):
                base.sums += hidden
            base.losses[:, 0] += losses
            base.grad_bias[classes] += grad_bias
            if block is not None:
                base.handed[("classes", classes.start)] = block
            if classes_wanted and pending is not None:
                yield pending

    def _hidden(self, shared: list[Any], shared_lse: list[Any], n: int, v: int, d: int, rows_done: Finished) -> None:
        """Pass 3, where ∂L/∂E does not fit whole: a block of rows at a time, over every block of classes."""
        base = self.baseline
        step = block_steps(n, v, d)[2]  # a block's work is a pass over every class: a task each
        tiles = [slice(start, min(start + step, n)) for start in range(0, n, step)]
        spec = (*shared, base.profile, base.output_types, *shared_lse)
        for found in in_order(self.client, hidden_tile, [(*spec, rows, self.with_baseline) for rows in tiles]):
            for rows, values, magnitude, base_values in found:
                if self.with_baseline:  # else this machine's baseline serves, and nothing takes it
                    base.handed[("rows", rows.start)] = base_values
                rows_done(rows, values, magnitude)

    def _threads(self) -> int:
        return int(sum(self.client.nthreads().values())) or 1


def held(client: Any, values: list[Any]) -> list[Any]:
    """Each value as the result of a task of its own, which the tasks that need it take from the
    worker that holds it (once per worker, never sent again per task). Not scattered: Dask keeps
    one copy of scattered data and cannot make it again where its worker dies; a task's result it
    can (its value kept with the task)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Dask's advice to scatter a large argument instead
        return [client.submit(_same, value, pure=False) for value in values]


def _same(value: Any) -> Any:
    return value


def _row_tiles(n: int, unit: int, threads: int) -> list[slice]:
    """Runs of whole blocks of ``unit`` rows, about TILES_PER_THREAD per thread."""
    units = max(1, -(-n // unit))
    per_tile = max(1, -(-units // (TILES_PER_THREAD * threads))) * unit
    return [slice(start, min(start + per_tile, n)) for start in range(0, n, per_tile)]


def statistics_tile(
    e: np.ndarray, c: np.ndarray, b: np.ndarray | None, terms: LinearTerms, base_terms: LinearTerms,
    profile: Any, rows: slice, with_baseline: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # fmt: skip
    """A tile of rows' (max, lse) and, where the cluster forms the baseline, its lse (a task of pass 1)."""
    with np.errstate(over="ignore", invalid="ignore"):
        top, lse = row_statistics(e[rows], c, b, terms)
    if not with_baseline:
        return top, lse, None
    baseline = SteppedBaseline(e[rows], c, b, base_terms, profile, {}, False, keeps_logits=False)
    return top, lse, baseline.row_lse()


def class_tile(kind: str, arguments: tuple[Any, ...]) -> Any:
    """A block of classes of the reference or of the baseline (a task of pass 2)."""
    if kind == "reference":
        e, c, b, terms, statistics, classes, rows_wanted, classes_wanted = arguments
        sums = ClassSums.zeros(len(e), e.shape[1], len(c), rows_wanted)
        row_blocks = RowBlocks(e, block_steps(len(e), len(c), e.shape[1])[1])
        with np.errstate(over="ignore", invalid="ignore"):  # as one machine's pass: sizes past float32's range
            return sums, add_class_block(row_blocks, c, b, terms, classes, statistics, sums, classes_wanted)
    e, c, b, terms, profile, types, wants_hidden, lse, classes, classes_wanted = arguments
    baseline = ClusterBaseline(e, c, b, terms, profile, types, wants_hidden)
    baseline.lse = lse
    block = baseline.class_block(classes)
    return baseline.sums, baseline.losses[:, 0], baseline.grad_bias[classes], block if classes_wanted else None


def hidden_tile(
    e: np.ndarray, c: np.ndarray, b: np.ndarray | None, terms: LinearTerms, base_terms: LinearTerms,
    profile: Any, types: dict[str, np.dtype], statistics: tuple[np.ndarray, np.ndarray], base_lse: np.ndarray | None,
    rows: slice, with_baseline: bool = True,
) -> list[tuple[slice, np.ndarray, np.ndarray, np.ndarray | None]]:  # fmt: skip
    """∂L/∂E of a tile of rows, the reference's and (where the cluster forms it) the baseline's, block by
    block (a task of pass 3)."""
    found: list[Any] = []

    def done(block: slice, values: np.ndarray, magnitude: np.ndarray) -> None:
        found.append([slice(rows.start + block.start, rows.start + block.stop), values, magnitude])

    with np.errstate(over="ignore", invalid="ignore"):
        hidden_by_rows(e[rows], c, b, terms.of_rows(rows), done, statistics[1][rows])  # type: ignore[arg-type]
    if not with_baseline:
        return [(block, values, magnitude, None) for block, values, magnitude in found]
    baseline = ClusterBaseline(e, c, b, base_terms, profile, types, True)
    baseline.lse = base_lse
    return [(block, values, magnitude, baseline.hidden_over_classes(block)) for block, values, magnitude in found]


def in_order(client: Any, function: Callable[..., Any], arguments: list[tuple[Any, ...]]) -> Iterator[Any]:
    """Each task's result in the order of ``arguments``: :data:`TASKS_PER_THREAD` tasks per thread
    under way at a time, the next sent as each is taken (they finish in any order; those finished
    early wait on their workers), so that the parts waiting to be added stay a few per thread; an
    error of sce's raised as one machine raises it; the tasks still under way cancelled on the way out."""
    import contextlib
    from collections import deque

    from sce.batch.dask_engine import task_result
    from sce.batch.partition import PartitionFailure
    from sce.batch.partitioned import guarded

    window = TASKS_PER_THREAD * (int(sum(client.nthreads().values())) or 1)
    waiting = iter(arguments)
    under_way: deque[Any] = deque()

    def send(count: int) -> None:
        for given in itertools.islice(waiting, count):
            under_way.append(client.submit(guarded, function, *given, pure=False))

    send(window)
    try:
        while under_way:
            result = task_result(under_way.popleft())
            if isinstance(result, PartitionFailure):
                raise result.error()
            send(1)
            yield result
    finally:
        with contextlib.suppress(Exception):  # a client already closed has nothing left to cancel
            client.cancel(list(under_way))


def cluster_check(inputs: LinearInputs, answer: LinearAnswer, profile: Profile, client: Any) -> Report:
    """:func:`~sce.grading.linear.check.full_check` with the reference and the baseline computed on
    the cluster of ``client`` (a ``distributed.Client``, or a function that opens one as a context,
    called only now: after the inputs are checked); for a wrong answer, the mistakes' what-ifs on
    this machine once the cluster is let go, as one machine tries them (against the report's allowances)."""
    from sce.grading.linear.check import full_check

    baseline = ClusterBaseline(inputs.e, inputs.c, inputs.b, inputs.terms, profile, answer.types,
                               "grad_hidden" in answer.types)  # fmt: skip
    # Where one machine holds ∂L/∂C whole it forms the baseline by rows, its float32 sums in another
    # order than tiles of classes would: this machine forms that baseline (0.5 of the reference's
    # products, in float32), so that the allowance is one machine's; the cluster forms the reference.
    n, d = inputs.e.shape
    whole = not by_classes(len(inputs.c), d) and not keeps_every_logit(n, d, len(inputs.c), inputs.e.dtype)
    steps = baseline_for(inputs.e, inputs.c, inputs.b, inputs.terms, profile, answer.types, None) if whole else baseline
    with _connected(client) as connected:
        stream = ClusterStream(connected, baseline, with_baseline=not whole)
        report, reference, used = full_check(inputs, answer, profile, baseline=steps, stream=stream)
    if report.passed:
        return report
    from sce.grading.linear.mistakes import named_mistake

    # The cluster's baseline holds only the blocks it was handed; this machine's serves the what-ifs.
    local = used if whole else baseline_for(inputs.e, inputs.c, inputs.b, inputs.terms, profile, answer.types, None)
    return named_mistake(report, inputs, answer, profile, reference, local)


@contextmanager
def _connected(client: Any) -> Iterator[Any]:
    if hasattr(client, "submit"):
        yield client
        return
    with client() as opened:
        yield opened
