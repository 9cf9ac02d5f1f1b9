"""Verdicts by float type: is a dumped gradient (and loss) as accurate as its type allows?

Each entry's error is measured in ulps of the claimed type against the exact
float64 result, and compared with the worst error of a straightforward
correct implementation in that type on the same inputs (see
:mod:`.dtype_baseline`). An entry is wrong when its error exceeds

    allowed = MARGIN_FACTOR × (the baseline's worst error) + MARGIN_ULPS,

rounded up to the next quarter-octave (2^(k/4) ulps), which is also how the
errors are binned, so that the count of wrong entries is exact however the
rows are cut into blocks. The factor 4 covers a framework whose sums and
exponentials round differently (the baseline sums as PyTorch's CPU kernel
with AVX-512's 16 lanes; with AVX2's 8, PyTorch's float32 gradient is ~2.5×
further off); the 8 ulps cover tiny baselines. A float32 answer 1,000 ulp off
still fails: at 62 × 32,000 the baseline's worst is ~40, so 181 ulps are
allowed; at K = 128,000, 512.

The same rule holds for the typical error, the root-mean-square over all
entries: the worst alone is a few entries' (in bfloat16 an entry 20 below
the row's maximum loses 6 % of its value to the shift's rounding, so 152 ulp
were allowed at every entry, and a gradient scaled by 0.5 passed), while a
wrong factor, denominator or term is off at every entry.

A dump is processed in blocks of rows read from the file (a memory-mapped 4 GB
array costs one block of memory), in one pass that computes only what the
verdict needs: the exact result, the baseline, the answer's errors. Which
mistake a wrong answer made is asked only once it is known to be wrong, in a
second pass (:mod:`.mistake_pass`) that drops each candidate at the first
block it does not fit.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache, partial
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from sce.errors import option_problem
from sce.grading.dump import sparse_labels, ulp_kernel
from sce.grading.dump.baseline import (
    Baseline,
    RowCoefficients,
    RowScale,
    autograd_route_applies,
    baseline,
    coefficients,
    gradient_magnitude,
    loss_magnitude,
    numpy_dtype,
    result_magnitudes,
    ulp_format,
    ulp_unit,
    ulps,
    ulps_if_finite,
)
from sce.grading.dump.kernel_mistakes import Block, Denominators, denominators, exact_block, exact_rows
from sce.io.arrays import ArrayDump
from sce.io.arrays.dump import placed_in_dump
from sce.io.arrays.heap import reused_heap
from sce.io.arrays.mapped_rows import block_bounds, read_rows
from sce.loss import InvalidInput
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.grading.dump.mistake_pass import Allowed

MARGIN_FACTOR = 4.0
MARGIN_ULPS = 8.0
#: Entries of logits per block: 2^20 (8 MB per float64 array; the block's ~20 arrays stay under 200 MB).
BLOCK_ENTRIES = 1 << 20
#: Blocks graded at once, in threads (at most WORKERS + 1 blocks in memory, about 40 MB each). Two
#: where there are two cores: once freed pages stopped being faulted in afresh (arrays.heap), two
#: threads measured 20–35 % faster even on the busy development machine (README, Large dumps); the
#: verdict is the same (see the tests).
WORKERS = min(2, os.cpu_count() or 1)
#: Entries of a slice of a block graded at once (labels without smoothing): its float64 arrays,
#: 2 MB each, stay in the cache from one step to the next.
SLICE_ENTRIES = 1 << 18
#: Blocks of labels without smoothing are graded by :mod:`.sparse_labels` (the same numbers in fewer
#: passes); False: every block by the dense coefficients (the tests compare the two).
SPARSE_LABELS = True
#: The worst entries a report shows (as many as the compiled loop keeps).
WORST_SHOWN = ulp_kernel.WORST_SHOWN
#: Quarter-octaves 2^(k/4) below each power of two, built so that each edge is exactly twice the one
#: four below it: the bin of an error is then read from its exponent and mantissa (see _bins).
_QUARTERS = np.array([1.0, 2.0**0.25, 2.0**0.5, 2.0**0.75])
#: Bin edges in ulps: 0, then 2^(k/4) from 2^-10 to 2^60.
EDGES = np.concatenate([[0.0], (2.0 ** np.arange(-10, 60)[:, None] * _QUARTERS).ravel(), [2.0**60]])
_LOWEST_EXPONENT = -10
_NUMPY_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


@dataclass
class Entry:
    row: int
    column: int | None
    expected: float
    given: float
    ulps: float


@dataclass
class QuantityVerdict:
    """One quantity (the gradient or the loss): its errors, against what the type allows."""

    name: str
    entries: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(len(EDGES) + 1, dtype=np.int64))
    """Entries per bin: bin i is [EDGES[i], EDGES[i+1]); the last counts the infinite and NaN."""
    max_ulps: float = 0.0
    baseline_ulps: float = 0.0
    worst: list[Entry] = field(default_factory=list)
    squares: float = 0.0
    """Σ e² of the finite errors."""
    baseline_squares: tuple[float, ...] = ()
    """The same of each of the baseline's routes."""
    zero_squares: float = 0.0
    """The same of an all-zero answer: the values' own size, in ulps."""

    @property
    def allowed_ulps(self) -> float:
        return allowance(self.baseline_ulps)

    @property
    def wrong(self) -> int:
        first_wrong = int(np.searchsorted(EDGES, self.allowed_ulps))
        return int(self.counts[first_wrong:].sum())

    @property
    def rms_ulps(self) -> float:
        """The typical error: the root-mean-square of the finite errors over all entries."""
        return _root_mean(self.squares, self.entries)

    @property
    def baseline_rms_ulps(self) -> float:
        """The typical error of the baseline's route whose errors are larger."""
        return _root_mean(max(self.baseline_squares, default=0.0), self.entries)

    @property
    def allowed_rms_ulps(self) -> float:
        return allowance(self.baseline_rms_ulps)

    @property
    def typical_beyond(self) -> bool:
        return self.rms_ulps > self.allowed_rms_ulps

    @property
    def correct(self) -> bool:
        return self.wrong == 0 and not self.typical_beyond

    @property
    def zero_rms_ulps(self) -> float:
        """The typical error of an all-zero answer: the values' own size, in ulps."""
        return _root_mean(self.zero_squares, self.entries)

    @property
    def judgeable(self) -> bool:
        """Whether the type can tell an answer from a wrong one here: where the typical error
        allowed (4× a straightforward computation's + 8) reaches an all-zero answer's (float16
        logits near 600 / 0.3: the shift's rounding costs whole units), zeros would pass. Both
        are diluted alike by entries that are 0. A baseline within an ulp is precise, whatever
        the values (a loss of 4e-13 measured in ulps of 1, where 0 is as right as the truth)."""
        return self.baseline_rms_ulps <= 1.0 or self.allowed_rms_ulps < self.zero_rms_ulps

    @property
    def plainly_wrong(self) -> bool:
        """Wrong whatever the type can judge: not finite where the truth is, or typically
        further from the truth than an all-zero answer (a sign flipped, a factor of 1,000) and
        than is allowed (a loss of 4e-13, in ulps of 1, is as right at 1e-7 as at 0)."""
        return bool(self.counts[-1]) or self.rms_ulps > max(self.zero_rms_ulps, self.allowed_rms_ulps)

    def merge(self, block: BlockErrors) -> None:
        """One block's summary, blocks taken in order (the worst entries' ties go to the earliest)."""
        self.entries += block.entries
        self.counts += block.counts
        self.max_ulps = max(self.max_ulps, block.max_ulps)
        self.baseline_ulps = max(self.baseline_ulps, block.baseline_ulps)
        self.squares += block.squares
        self.baseline_squares = _added(self.baseline_squares, block.baseline_squares)
        self.zero_squares += block.zero_squares
        self.worst = sorted([*self.worst, *block.worst], key=lambda e: -e.ulps)[:WORST_SHOWN]

    def add(
        self, errors: np.ndarray, baseline: RouteErrors, expected: np.ndarray, given: np.ndarray, start: int
    ) -> None:
        self.merge(summarize(errors, baseline, expected, given, start))


def _root_mean(squares: float, entries: int) -> float:
    """√(squares / entries) to 6 digits: the squares are summed block by block, and the last bits
    of the sum would otherwise change with the rows' cut into blocks (and threads)."""
    return float(f"{math.sqrt(squares / entries):.6g}") if entries else 0.0


def allowance(baseline_ulps: float) -> float:
    """MARGIN_FACTOR × the baseline's error + MARGIN_ULPS, rounded up to a bin's edge."""
    wanted = MARGIN_FACTOR * baseline_ulps + MARGIN_ULPS
    return float(EDGES[min(int(np.searchsorted(EDGES, wanted)), len(EDGES) - 1)])


def _added(sums: tuple[float, ...], more: tuple[float, ...]) -> tuple[float, ...]:
    """Two blocks' sums, route by route (a route missing from one adds nothing)."""
    longer, shorter = (sums, more) if len(sums) >= len(more) else (more, sums)
    return tuple(a + (shorter[i] if i < len(shorter) else 0.0) for i, a in enumerate(longer))


@dataclass(frozen=True)
class RouteErrors:
    """What the allowance needs of a baseline's errors on a block."""

    worst: float
    """The worst finite error of any route."""
    squares: tuple[float, ...]
    """Σ e² of each route's finite errors (kept apart: the whole dump's largest is taken)."""
    zero_squares: float = 0.0
    """Σ e² of an all-zero answer on the block: the values' own size, in ulps."""

    @staticmethod
    def of_routes(routes: Iterable[RouteErrors], zero_squares: float = 0.0) -> RouteErrors:
        found = list(routes)
        return RouteErrors(max(r.worst for r in found), tuple(sq for r in found for sq in r.squares), zero_squares)


def sum_of_squares(errors: np.ndarray) -> float:
    """Σ e² over the finite errors: one pass where all are finite. By einsum's own loop, not
    BLAS's dot: OpenBLAS wakes a thread per core for it, and with both cores grading blocks
    they wait on each other (a dump of 1,024 × 128,000 took 3.2 s instead of 1.6 on a busy
    machine)."""
    flat = np.ascontiguousarray(errors, dtype=np.float64).ravel()
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.einsum("i,i->", flat, flat))
        if math.isfinite(total):
            return total
        finite = flat[np.isfinite(flat)]
        return float(np.einsum("i,i->", finite, finite))


@dataclass
class BlockErrors:
    """What a verdict keeps of one block's errors: small, so that blocks can be graded apart."""

    entries: int
    counts: np.ndarray
    max_ulps: float
    baseline_ulps: float
    worst: list[Entry]
    squares: float = 0.0
    baseline_squares: tuple[float, ...] = ()
    zero_squares: float = 0.0


def summarize(
    errors: np.ndarray, baseline: RouteErrors, expected: np.ndarray, given: np.ndarray, start: int
) -> BlockErrors:
    """Bin counts, the worst error and entries of one block; ``baseline``: the straightforward
    computation's errors on it."""
    counts = np.zeros(len(EDGES) + 1, dtype=np.int64)
    if not errors.size:
        return BlockErrors(0, counts, 0.0, baseline.worst, [], 0.0, baseline.squares, baseline.zero_squares)
    worst = float(errors.max())
    if not math.isfinite(worst):
        errors = np.nan_to_num(errors, nan=np.inf, posinf=np.inf)
        finite = np.isfinite(errors)
        counts[-1] += int((~finite).sum())
        counts += _bin_counts(errors[finite])
        squares = sum_of_squares(errors[finite])
        worst = math.inf
    else:
        counts += _bin_counts(errors.ravel())
        squares = sum_of_squares(errors)
    entries = _worst_entries(errors, counts, expected, given, start)
    return BlockErrors(
        errors.size, counts, worst, baseline.worst, entries, squares, baseline.squares, baseline.zero_squares
    )


def _worst_entries(
    errors: np.ndarray, counts: np.ndarray, expected: np.ndarray, given: np.ndarray, start: int
) -> list[Entry]:
    """The block's WORST_SHOWN largest errors, ties to the earliest entry. The bins say which
    edge they all lie above: one comparison finds them, and only they are sorted."""
    flat = errors.ravel()
    from_top = np.cumsum(counts[::-1])
    first_bin = len(counts) - 1 - int(np.searchsorted(from_top, min(WORST_SHOWN, flat.size)))
    floor = math.inf if first_bin == len(EDGES) else float(EDGES[first_bin])
    candidates = np.flatnonzero(flat >= floor) if first_bin > 0 else np.arange(flat.size)
    if candidates.size > WORST_SHOWN:
        kth = np.partition(flat[candidates], candidates.size - WORST_SHOWN)[candidates.size - WORST_SHOWN]
        above = candidates[flat[candidates] > kth]
        ties = candidates[flat[candidates] == kth][: WORST_SHOWN - above.size]
        candidates = np.concatenate([above, ties])
    found = []
    for index in sorted(candidates.tolist(), key=lambda i: (-flat[i], i)):
        position = np.unravel_index(index, errors.shape)
        column = int(position[1]) if errors.ndim == 2 else None
        row = start + int(position[0]) if errors.ndim else 0
        found.append(Entry(row, column, float(expected[position]), float(given[position]), float(flat[index])))
    return found


#: The bits of a float64 kept in a bin key: its exponent and the top 8 bits of its mantissa.
_KEY_SHIFT = 44
#: Errors per call from which the bins are looked up (a block of a large dump has 2^18).
_LOOKED_UP_FROM = 1 << 16


@cache
def _bins_by_key() -> np.ndarray:
    """Each key's bin, or len(EDGES) + 1 ("look closer") for the three keys per octave that
    a quarter-octave edge cuts in two."""
    low = np.arange(1 << (63 - _KEY_SHIFT), dtype=np.int64) << _KEY_SHIFT
    high = low | np.int64((1 << _KEY_SHIFT) - 1)
    first, last = _bins(low.view(np.float64)), _bins(high.view(np.float64))
    return np.where(first == last, first, len(EDGES) + 1)


def _bin_counts(errors: np.ndarray) -> np.ndarray:
    """Counts per bin of finite non-negative errors (1-D), as bincount(_bins(errors)): the bin
    is looked up by its key, and only the errors near an edge (about 1 in 100) are binned
    one by one. Small arrays are binned by the formula: the table takes ~50 ms to build."""
    if errors.size < _LOOKED_UP_FROM:
        return np.bincount(_bins(errors), minlength=len(EDGES) + 1)
    keys = np.right_shift(np.ascontiguousarray(errors, dtype=np.float64).view(np.int64), _KEY_SHIFT)
    table = _bins_by_key()
    binned = table.take(keys, out=keys)
    counts = np.bincount(binned, minlength=len(EDGES) + 2)
    near_edge = counts[-1]
    counts = counts[:-1]
    if near_edge:
        counts += np.bincount(_bins(errors[binned == len(EDGES) + 1]), minlength=len(counts))
    return counts


def _bins(errors: np.ndarray) -> np.ndarray:
    """Each finite error's bin (searchsorted(EDGES, e, 'right') − 1), from its exponent and
    mantissa: four times cheaper than a search, and exact because the edges are built from
    the same quarter powers in every octave."""
    bits = np.ascontiguousarray(errors, dtype=np.float64).view(np.int64)
    exponent = (bits >> 52) - 1023  # 0 and subnormals give −1023: bin 0
    mantissa = ((bits & np.int64((1 << 52) - 1)) | np.int64(1023 << 52)).view(np.float64)
    quarter = (mantissa >= _QUARTERS[1]).view(np.int8) + (mantissa >= _QUARTERS[2]).view(np.int8)
    quarter += (mantissa >= _QUARTERS[3]).view(np.int8)
    index = 4 * (exponent - _LOWEST_EXPONENT) + 1 + quarter
    return np.clip(index, 0, len(EDGES) - 1)


@dataclass
class DtypeCheck:
    claimed_dtype: str
    rows: int
    classes: int
    options: LossOptions
    quantities: list[QuantityVerdict]
    mistakes: list[str]

    @property
    def wrong(self) -> bool:
        """Some quantity the type can judge is wrong."""
        return any((q.judgeable and not q.correct) or q.plainly_wrong for q in self.quantities)

    @property
    def judgeable(self) -> bool:
        """Not wrong, and some quantity the type cannot judge (see QuantityVerdict.judgeable):
        neither right nor wrong, when False."""
        return self.wrong or all(q.judgeable for q in self.quantities)

    @property
    def correct(self) -> bool:
        return all(q.judgeable and q.correct for q in self.quantities)


Progress = Callable[[str, int], None]
"""Told (phase, rows) after each block: phase "checking", then, for a wrong answer,
"naming the mistake" (a second pass, often cut short)."""


def check_dump(
    dump: ArrayDump,
    options: LossOptions,
    claimed_dtype: str,
    progress: Progress | None = None,
    tune_heap: bool = False,
) -> DtypeCheck:
    """Grade the dump's gradient and loss, block by block; name the mistake that fits.

    ``tune_heap``: keep freed blocks in the heap (glibc's malloc settings, see
    :mod:`..arrays.heap`) — for the command line's own process, never a library caller's."""
    from sce.grading.dump.mistake_pass import Allowance, Allowed, matching_mistakes

    options = options.replace(dtype="float64")
    rows, classes = dump.shape
    _check_options(options, classes)
    d = denominators(dump.labels, rows, options)
    grad = QuantityVerdict("gradient") if dump.grad is not None else None
    per_row_loss = dump.loss is not None and dump.loss.ndim == 1
    loss = QuantityVerdict("loss") if per_row_loss else None
    scalar = _ScalarLoss() if dump.loss is not None and not per_row_loss else None
    job = _BlockJob(dump, options, claimed_dtype, d, per_row_loss, scalar is not None)
    with warnings.catch_warnings(), reused_heap(tune_heap and rows * classes > BLOCK_ENTRIES):
        # Here, not in each block: catch_warnings is not thread-safe. An infinite loss is graded, not warned about.
        warnings.simplefilter("ignore")
        for graded in in_order(job.grade, block_bounds(rows, classes, BLOCK_ENTRIES)):
            if grad is not None and graded.gradient is not None:
                grad.merge(graded.gradient)
            if loss is not None and graded.losses is not None:
                loss.merge(graded.losses)
            if scalar is not None and graded.reduced is not None:
                scalar.add(*graded.reduced)
            if progress is not None:
                progress("checking", graded.rows)
        dump.verify()  # a damaged file is a data error, not an answer judged wrong
        quantities = [q for q in (grad, loss) if q is not None]
        scalar_verdict = None
        if scalar is not None and dump.loss is not None:
            scalar_verdict = scalar.verdict(float(dump.loss), claimed_dtype, options, d)
            quantities.append(scalar_verdict)
        check = DtypeCheck(claimed_dtype, rows, classes, options, quantities, [])
        if check.wrong:
            allowed = Allowed(
                None if grad is None else Allowance(grad.allowed_ulps, grad.allowed_rms_ulps),
                None if loss is None else Allowance(loss.allowed_ulps, loss.allowed_rms_ulps),
                None
                if scalar is None or scalar_verdict is None
                else (scalar.given, scalar.size, scalar_verdict.allowed_ulps),
            )
            check.mistakes = matching_mistakes(dump, options, d, claimed_dtype, allowed, progress)
            if not check.mistakes and len(quantities) > 1:
                check.mistakes = _mistakes_by_quantity(dump, options, d, claimed_dtype, allowed, quantities, progress)
    return check


def _mistakes_by_quantity(
    dump: ArrayDump,
    options: LossOptions,
    d: Denominators,
    dtype: str,
    allowed: Allowed,
    quantities: list[QuantityVerdict],
    progress: Progress | None,
) -> list[str]:
    """Where no mistake fits the gradient and the loss together, one that fits a wrong one alone
    (the loss logged with one denominator while the backward uses another), named with it."""
    from sce.grading.dump.mistake_pass import Allowed, matching_mistakes  # noqa: F811 (the class, at run time)

    found = []
    for verdict, alone in (
        (quantities[0], Allowed(allowed.gradient, None, None)),
        (quantities[-1], Allowed(None, allowed.row_losses, allowed.reduced_loss)),
    ):
        if verdict.correct or (alone.gradient is None and alone.row_losses is None and alone.reduced_loss is None):
            continue
        found += [f"{verdict.name}: {name}" for name in matching_mistakes(dump, options, d, dtype, alone, progress)]
    return found


T = TypeVar("T")


def in_order(work: Callable[[tuple[int, int]], T], bounds: list[tuple[int, int]]) -> Iterator[T]:
    """work(block) for every block, WORKERS at a time in threads (numpy lets go of the
    interpreter lock inside its loops), yielded in block order. At most WORKERS + 1 blocks
    are in flight, which bounds the memory; on an error or Ctrl-C the blocks not started
    are cancelled and the running ones finish before it propagates."""
    if WORKERS < 2 or len(bounds) < 2:
        yield from map(work, bounds)
        return
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="sce-check")
    try:
        pending: deque[Future[T]] = deque()
        for bound in bounds:
            pending.append(pool.submit(work, bound))
            if len(pending) > WORKERS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class _BlockGrade:
    rows: int
    gradient: BlockErrors | None
    losses: BlockErrors | None
    reduced: tuple[float, float, np.ndarray, np.ndarray | None] | None
    """For a reduced loss: the block's exact contribution, its magnitude, its baseline row losses
    and their z-loss terms (None without a z-loss)."""


@dataclass(frozen=True)
class _Slice:
    """Some rows of a block, graded: the gradient's summary, and what the loss's grading needs."""

    gradient: BlockErrors | None
    losses: np.ndarray
    contributions: np.ndarray
    loss_magnitude: np.ndarray
    baseline_losses: np.ndarray
    scale: float
    baseline_z_losses: np.ndarray | None = None
    """The baseline's z-loss terms, where there is a z-loss (for the reduced loss: 'mean' divides
    them by the counted rows, the rest by the weight sum)."""


def _merged(parts: list[BlockErrors]) -> BlockErrors:
    """Consecutive slices' summaries as the summary of the rows they make up together."""
    if len(parts) == 1:
        return parts[0]
    worst = sorted([entry for part in parts for entry in part.worst], key=lambda e: -e.ulps)[:WORST_SHOWN]
    return BlockErrors(
        sum(part.entries for part in parts),
        np.sum([part.counts for part in parts], axis=0),
        max(part.max_ulps for part in parts),
        max(part.baseline_ulps for part in parts),
        worst,
        sum(part.squares for part in parts),
        functools.reduce(_added, (part.baseline_squares for part in parts), ()),
        sum(part.zero_squares for part in parts),
    )


@dataclass(frozen=True)
class _BlockJob:
    """Grading one block, with nothing shared but what it reads: safe to run in a thread."""

    dump: ArrayDump
    options: LossOptions
    dtype: str
    d: Denominators
    per_row_loss: bool
    reduced_loss: bool

    def grade(self, bounds: tuple[int, int]) -> _BlockGrade:
        try:
            return self._grade(bounds)
        except InvalidInput as problem:  # a NaN logit, a row of -inf, targets that do not sum to 1
            if problem.field not in ("logits", "labels", "targets"):
                raise option_problem(problem) from None  # an option: the command line words it as its flag
            raise placed_in_dump(problem, self.dump.where, bounds[0]) from None

    def _grade(self, bounds: tuple[int, int]) -> _BlockGrade:
        start, stop = bounds
        sparse = SPARSE_LABELS and sparse_labels.applies(self.dump.labels, self.options)
        # Rows are graded in slices whose arrays stay in the cache; the results are row by row
        # (the reduced loss's sums are taken over the whole block, as before).
        step = max(1, SLICE_ENTRIES // max(1, self.dump.shape[1])) if sparse else stop - start
        slices = [self._slice(first, min(first + step, stop), sparse) for first in range(start, stop, step)]
        gradients = [piece.gradient for piece in slices if piece.gradient is not None]
        gradient = _merged(gradients) if gradients else None
        losses = reduced = None
        if self.per_row_loss or self.reduced_loss:
            expected = np.concatenate([piece.losses for piece in slices])
            magnitude = np.concatenate([piece.loss_magnitude for piece in slices])
            route = np.concatenate([piece.baseline_losses for piece in slices])
            if self.per_row_loss and self.dump.loss is not None:
                given = np.asarray(self.dump.loss[start:stop])
                losses = _grade_row_losses(expected, magnitude, route, given, self.dtype, start)
            if self.reduced_loss:
                share = slices[0].scale * self.options.temperature  # 1/D for 'mean', 1 for 'sum'
                contributions = np.concatenate([piece.contributions for piece in slices])
                z_parts = [piece.baseline_z_losses for piece in slices if piece.baseline_z_losses is not None]
                z_route = np.concatenate(z_parts) if z_parts else None
                reduced = (math.fsum(contributions), math.fsum(magnitude * share), route, z_route)
        return _BlockGrade(stop - start, gradient, losses, reduced)

    def _slice(self, start: int, stop: int, sparse: bool) -> _Slice:
        dump, dtype = self.dump, self.dtype
        base: Baseline | sparse_labels.LabelBaseline
        if sparse:
            block, coef, base, grad_magnitude = self._labels_without_smoothing(start, stop)
        else:
            block, dense = exact_block(dump, start, stop, self.options, self.d)
            autograd = autograd_route_applies(block.targets, self.options)
            coef = dense
            base = baseline(block.logits, dense, self.options, dtype, autograd)
            grad_magnitude = partial(self._magnitudes, block, dense)
        gradient = None
        if dump.grad is not None:
            given = read_rows(dump.grad, start, stop)
            if self.options.reduction == "mean" and self.d.total == 0:
                # The gradient of 0/0: sce says 0 (nothing counts); PyTorch's backward gives NaN where
                # the counted rows' weights are all 0. Either is the right answer.
                given = np.where(np.isnan(given), 0, given).astype(given.dtype, copy=False)
            if isinstance(coef, sparse_labels.LabelCoefficients) and isinstance(base, sparse_labels.LabelBaseline):
                gradient = _grade_gradient_compiled(block, coef, base, given, dtype)
            if gradient is None:
                gradient = _grade_gradient(block, grad_magnitude(), base.gradients, given, dtype)
        rows = self.per_row_loss or self.reduced_loss
        z_losses = block.exact.z_losses if self.options.z_loss else None
        return _Slice(
            gradient,
            block.exact.losses,
            block.contributions,
            loss_magnitude(block.exact.losses, coef, z_losses) if rows else block.exact.losses,
            base.losses[0] if rows else block.exact.losses,
            coef.a,
            base.z_losses if rows else None,
        )

    def _magnitudes(self, block: Block, coef: RowCoefficients) -> np.ndarray:
        return result_magnitudes(block.exact, coef)[0]

    def _labels_without_smoothing(
        self, start: int, stop: int
    ) -> tuple[Block, RowScale, Baseline | sparse_labels.LabelBaseline, Callable[[], np.ndarray]]:
        """The block by :mod:`.sparse_labels` (the same numbers, fewer passes); by the dense
        coefficients where its baseline is not finite."""
        block, stored = exact_rows(self.dump, start, stop, self.options, self.d)
        assert block.labels is not None
        classes = block.logits.shape[1]
        sparse = sparse_labels.label_coefficients(block.labels, classes, self.options, self.d.total)
        logits = stored if stored.dtype == numpy_dtype(self.dtype) else block.logits
        labels_base = sparse_labels.baseline(
            logits, sparse, self.options, self.dtype, self.per_row_loss or self.reduced_loss
        )
        if labels_base is not None:
            magnitude = partial(sparse_labels.gradient_magnitude, block.exact.probabilities, sparse)
            return block, sparse, labels_base, magnitude
        dense = coefficients(block.labels, None, classes, self.options, self.d.total, self.d.counted_rows)
        base = baseline(block.logits, dense, self.options, self.dtype)
        return block, dense, base, partial(gradient_magnitude, block.exact.probabilities, dense)


def _check_options(options: LossOptions, classes: int) -> None:
    """Every option checked before the first block (a weight per class among them), as the core checks them."""
    from sce.loss.validation import class_weights, validated_options

    try:
        dtype, weights = validated_options(options)
        class_weights(weights, classes, dtype)
    except InvalidInput as problem:
        raise option_problem(problem) from None


def _errors(given: np.ndarray, expected: np.ndarray, unit: np.ndarray, magnitude: np.ndarray, dtype: str) -> np.ndarray:
    fast = ulps_if_finite(given, expected, unit)
    return fast if fast is not None else ulps(given, expected, magnitude, dtype)


def _route_errors(
    route: np.ndarray, expected: np.ndarray, unit: np.ndarray, magnitude: np.ndarray, dtype: str
) -> RouteErrors:
    """The worst and Σ e² of _errors(...) of a baseline route, one pass cheaper: the largest
    |d| is max(max d, −min d), read without writing |d| (where d is finite; else as _errors does)."""
    difference = np.subtract(route.astype(np.float64) if route.dtype not in _NUMPY_FLOATS else route, expected)
    with np.errstate(invalid="ignore", over="ignore"):
        difference /= unit
    worst = max(float(difference.max(initial=0.0)), -float(difference.min(initial=0.0)))
    if math.isfinite(worst):
        return RouteErrors(worst + 0.0, (sum_of_squares(difference),))  # + 0.0: not −0.0
    return _finite_errors(_errors(route, expected, unit, magnitude, dtype))


def _finite_worst(errors: np.ndarray) -> float:
    """The worst finite error: where the straightforward computation overflows (inf, NaN) it sets
    no allowance (an infinite allowance would pass any answer)."""
    worst = float(errors.max(initial=0.0))
    if math.isfinite(worst):
        return worst
    usable = errors[np.isfinite(errors)]
    return float(usable.max()) if usable.size else 0.0


def _finite_errors(errors: np.ndarray, zero_errors: np.ndarray | None = None) -> RouteErrors:
    zero = 0.0 if zero_errors is None else sum_of_squares(zero_errors)
    return RouteErrors(_finite_worst(errors), (sum_of_squares(errors),), zero)


def _grade_gradient(
    block: Block, magnitude: np.ndarray, routes: tuple[np.ndarray, ...], given: np.ndarray, dtype: str
) -> BlockErrors:
    unit = ulp_unit(magnitude, dtype)
    expected = block.exact.gradient
    base = RouteErrors.of_routes(
        (_route_errors(route, expected, unit, magnitude, dtype) for route in routes), _zero_squares(expected, unit)
    )
    return summarize(_errors(given, expected, unit, magnitude, dtype), base, expected, given, block.start)


#: False: every gradient graded by numpy (the tests compare the two).
COMPILED = True


def _grade_gradient_compiled(
    block: Block,
    coef: sparse_labels.LabelCoefficients,
    base: sparse_labels.LabelBaseline,
    given: np.ndarray,
    dtype: str,
) -> BlockErrors | None:
    """_grade_gradient(...) by the compiled loop (:mod:`.ulp_kernel`): the same bins, largest
    errors and worst entries; None where it does not apply or something is not finite."""
    expected = block.exact.gradient
    if not (COMPILED and expected.size and dtype in ("float32", "float64")):
        return None
    routes = base.parts or base.gradients
    if not ulp_kernel.grades(given, routes, dtype):
        return None
    classes = expected.shape[1]
    counted = np.flatnonzero(coef.counted)
    label = np.full(len(expected), -1, np.int64)
    label[counted] = coef.at - counted * classes
    weighted = not coef.unweighted
    rows = ulp_kernel.Rows(expected, block.exact.probabilities, coef.s, label, coef.row_c(), coef.a, weighted)
    step = _zero_step(expected)
    found = ulp_kernel.grade(
        rows, given, routes, ulp_format(dtype), step, (_QUARTERS[1:], _LOWEST_EXPONENT, len(EDGES) - 1)
    )
    if found is None:
        return None
    stats = found.stats.tolist()
    two = isinstance(routes, ulp_kernel.RouteParts) or len(routes) > 1
    route_worst = max(stats[2], stats[4]) if two else stats[2]
    worst = []
    for index, error in zip(found.worst_index.tolist(), found.worst_error.tolist()):
        row, column = divmod(index, classes)
        worst.append(Entry(block.start + row, column, float(expected[row, column]), float(given[row, column]), error))
    zero_squares = stats[6] * (expected.size / len(range(0, expected.size, step)))
    squares = (stats[3], stats[5]) if two else (stats[3],)
    return BlockErrors(expected.size, found.counts, stats[0], route_worst + 0.0, worst, stats[1], squares, zero_squares)


#: Entries of a block whose size sets a zero answer's Σ e²: it only decides whether the type can
#: judge at all (against 8× the baseline's), so a sample serves, at a 64th of a full pass's cost.
ZERO_SAMPLE = 1 << 12


def _zero_squares(expected: np.ndarray, unit: np.ndarray) -> float:
    """Σ (expected/unit)², the errors of an all-zero answer, from evenly spaced entries: a step
    prime to the row's length, so that the sample goes through every column (a step of K would
    read one class only, the label's column for labels all 0)."""
    step = _zero_step(expected)
    sample = expected.reshape(-1)[::step]
    with np.errstate(invalid="ignore", over="ignore"):
        return sum_of_squares(np.divide(sample, unit.reshape(-1)[::step])) * (expected.size / sample.size)


def _zero_step(expected: np.ndarray) -> int:
    """The step between the entries that sample an all-zero answer (see _zero_squares)."""
    step = max(1, expected.size // ZERO_SAMPLE)
    while expected.ndim == 2 and step > 1 and math.gcd(step, expected.shape[1]) != 1:
        step += 1
    return step


def _grade_row_losses(
    expected: np.ndarray, magnitude: np.ndarray, route: np.ndarray, given: np.ndarray, dtype: str, start: int
) -> BlockErrors:
    zero = ulps(np.zeros_like(expected), expected, magnitude, dtype)
    base = _finite_errors(ulps(route, expected, magnitude, dtype), zero)
    return summarize(ulps(given, expected, magnitude, dtype), base, expected, given, start)


class _ScalarLoss:
    """A reduced loss: sums of the exact and baseline contributions over the blocks."""

    def __init__(self) -> None:
        self.exact: list[float] = []
        self.magnitude: list[float] = []
        self.baseline_rows: list[np.ndarray] = []
        self.baseline_z_rows: list[np.ndarray] = []
        self.given = math.nan
        self.size = 0.0
        """The magnitude the reduced loss's errors are measured at."""

    def add(self, exact: float, magnitude: float, baseline_losses: np.ndarray, z_losses: np.ndarray | None) -> None:
        self.exact.append(exact)
        self.magnitude.append(magnitude)
        self.baseline_rows.append(baseline_losses)
        if z_losses is not None:
            self.baseline_z_rows.append(z_losses)

    def verdict(self, given: float, dtype: str, options: LossOptions, d: Denominators) -> QuantityVerdict:
        self.given = given
        self.size = math.fsum(self.magnitude)
        expected = np.array(math.fsum(self.exact))
        if options.reduction == "mean" and d.total == 0:
            expected = np.array(math.nan)  # 0/0: a mean over no counted weight is NaN, as PyTorch returns it
        magnitude = np.array(self.size)
        kind = numpy_dtype(dtype)
        # Half types are summed in float32, as frameworks do (a bfloat16 sum of N losses is
        # ~150 ulp off, and 4× that allowed a mean loss of 0, or twice the truth).
        work = np.dtype(np.float32) if kind.itemsize == 2 else kind
        with np.errstate(all="ignore"):
            rows = np.concatenate([np.zeros(0, kind), *self.baseline_rows]).astype(kind).astype(work)  # N = 0 too
            z_rows = np.concatenate(self.baseline_z_rows).astype(kind).astype(work) if self.baseline_z_rows else None
            if z_rows is not None and options.reduction == "mean":
                # The cross-entropy over the weight sum, the z-loss over the counted rows.
                ce = (rows - z_rows).sum(dtype=work) / work.type(d.total)
                reduced = (ce + z_rows.sum(dtype=work) / work.type(d.counted_rows)).astype(kind)
            else:
                reduced = rows.sum(dtype=work)
                if options.reduction == "mean":
                    reduced = reduced / work.type(d.total)
                reduced = reduced.astype(kind)
        found = QuantityVerdict("loss")
        given_array = np.array(given)
        base = _finite_errors(
            np.atleast_1d(ulps(reduced, expected, magnitude, dtype)),
            np.atleast_1d(ulps(np.zeros(()), expected, magnitude, dtype)),
        )
        found.add(ulps(given_array, expected, magnitude, dtype), base, expected, given_array, 0)
        return found
