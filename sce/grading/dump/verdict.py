"""Verdicts by float type: is a dumped gradient (or loss) as accurate as its type allows?

Each entry's error is measured in ulps of the claimed type against the exact
float64 result, and compared with the worst error of a straightforward
correct implementation in that type on the same inputs (see
:mod:`.baseline`). An entry is wrong when its error exceeds

    allowed = MARGIN_FACTOR × (the baseline's worst error) + margin,

rounded up to the next quarter-octave (2^(k/4) ulps), which is also how the
errors are binned (:mod:`.histogram`), so that the count of wrong entries is
exact however the rows are cut into blocks. The factor 4 covers a framework
whose sums and exponentials round differently (the baseline sums as PyTorch's
CPU kernel with AVX-512's 16 lanes; with AVX2's 8, PyTorch's float32 gradient
is ~2.5× further off); the margin, 8 ulps, covers tiny baselines. Where the
values themselves are only a few ulps large (a softcap's factor 1 − tanh²
shrinks a gradient measured in ulps of its uncapped size; a loss of 4e-13 in
ulps of 1), the margin is at most a quarter of their typical size, and never below 2
ulps: 8 ulps would let an all-zero, negated or doubled answer pass. A float32 answer
1,000 ulp off still fails: at 62 × 32,000 the baseline's worst is ~40, so 181
ulps are allowed; at K = 128,000, 512.

The same rule holds for the typical error, the root-mean-square over all
entries: the worst alone is a few entries' (in bfloat16 an entry 20 below
the row's maximum loses 6 % of its value to the shift's rounding, so 152 ulp
were allowed at every entry, and a gradient scaled by 0.5 passed), while a
wrong factor, denominator or term is off at every entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sce.grading.dump.baseline import numpy_dtype, ulps
from sce.grading.dump.block_errors import (
    WORST_SHOWN,
    BlockErrors,
    Entry,
    RouteErrors,
    finite_errors,
    summarize,
)
from sce.grading.dump.histogram import EDGES
from sce.grading.dump.kernel_mistakes import Denominators
from sce.grading.dump.signs import WHY_LOSS, negative_losses
from sce.loss.exact_sum import ExactSum
from sce.options import LossOptions

MARGIN_FACTOR = 4.0
MARGIN_ULPS = 8.0
#: The multiple of the baseline's typical error allowed where 4× would reach a quarter of the values:
#: a route that rounds at other stages is within twice the worse of the baseline's two routes.
TIGHT_FACTOR = 2.0
#: The least margin, where the values are themselves within a few ulps (see :attr:`QuantityVerdict.margin_ulps`).
LEAST_MARGIN_ULPS = 2.0


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
    sign_flips: int = 0
    """Entries of the opposite sign to the exact value's that no rounding explains (:mod:`.signs`)."""
    beyond_rounding: int = 0
    """Entries further off than a half-type kernel's rounding at that entry allows (:mod:`.entry_conditioning`)."""
    sums: tuple[ExactSum, ...] = ()
    """The three sums above held exactly (the answer's, the all-zero answer's, then each route's),
    so that merging blocks in any grouping or order gives the same bits (:meth:`combine`)."""
    sign_reason: str = ""
    """Why no rounding explains a sign flip of this quantity (:func:`.signs.why_sign`)."""

    @property
    def margin_ulps(self) -> float:
        """The ulps allowed beyond 4× the baseline's error: MARGIN_ULPS, but at most a quarter of
        the values' own typical size (an all-zero answer's error), and at least LEAST_MARGIN_ULPS.
        A correct answer is within a rounding or two of the truth (a softcap's factor formed as
        1 − tanh² is within an ulp of 1, counted at the uncapped size); a margin of half the
        values or more would pass a negated or doubled answer, or one for the next label."""
        return min(MARGIN_ULPS, max(LEAST_MARGIN_ULPS, self.zero_rms_ulps / 4))

    @property
    def allowed_ulps(self) -> float:
        return allowance(self.baseline_ulps, self.margin_ulps)

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
        """4× the baseline's typical error + the margin, but no more than a quarter of the values'
        own size where 2× + the margin is below that: in a half type the baseline can be a tenth
        of the values (a logit's rounding moves e^z by percents), and 4× would pass a gradient
        half or 1.5 times the truth, which is off by half the values at every entry."""
        fair = allowance(self.baseline_rms_ulps, self.margin_ulps)
        if self.baseline_rms_ulps <= 1.0:
            return fair
        tight = allowance(self.baseline_rms_ulps, self.margin_ulps, TIGHT_FACTOR)
        return min(fair, max(tight, _edge_below(self.zero_rms_ulps / 4)))

    @property
    def typical_beyond(self) -> bool:
        return self.rms_ulps > self.allowed_rms_ulps

    @property
    def correct(self) -> bool:
        return self.wrong == 0 and not self.typical_beyond and not self.sign_flips and not self.beyond_rounding

    @property
    def zero_rms_ulps(self) -> float:
        """The typical error of an all-zero answer: the values' own size, in ulps."""
        return _root_mean(self.zero_squares, self.entries)

    @property
    def judgeable(self) -> bool:
        """Whether the type can tell an answer from a wrong one here: where the typical error
        allowed reaches half an all-zero answer's, an answer half or 1.5 times the truth (a
        denominator 2N, a term counted twice) would pass, and where it reaches all of it, zeros
        would (float16 logits near 600 / 0.3: the shift's rounding costs whole units). Both are
        diluted alike by entries that are 0. A baseline within an ulp is precise, whatever the
        values (a loss of 4e-13 measured in ulps of 1, where 0 is as right as the truth)."""
        return self.baseline_rms_ulps <= 1.0 or self.allowed_rms_ulps < self.zero_rms_ulps / 2

    @property
    def plainly_wrong(self) -> bool:
        """Wrong whatever the type can judge: not finite where the truth is, or typically
        further from the truth than an all-zero answer (a sign flipped, a factor of 1,000) and
        than is allowed (a loss of 4e-13, in ulps of 1, is as right at 1e-7 as at 0), or of the
        opposite sign where every correct kernel gets the sign right."""
        if self.counts[-1] or self.sign_flips:
            return True
        return self.rms_ulps > max(self.zero_rms_ulps, self.allowed_rms_ulps)

    def merge(self, block: BlockErrors) -> None:
        """One block's summary: its entries' counts added, its sums added exactly, its worst
        entries kept where they are among the worst (ties to the earliest in the dump)."""
        other = QuantityVerdict(
            self.name,
            block.entries,
            block.counts,
            block.max_ulps,
            block.baseline_ulps,
            block.worst,
            sign_flips=block.sign_flips,
            beyond_rounding=block.beyond_rounding,
            sums=_exact_sums(block.squares, block.zero_squares, block.baseline_squares),
        )
        self.combine(other)

    def combine(self, other: QuantityVerdict) -> None:
        """Another part's verdict added to this one: the whole verdict of the entries of both.

        Exact, associative and commutative: the counts are integers, the sums of squares are
        held exactly and rounded when read, and the worst entries are ranked by their error,
        then their place in the dump, so that parts graded apart (blocks in threads, tiles on a
        cluster) merge in any grouping and order to the same verdict."""
        self.entries += other.entries
        self.counts = self.counts + other.counts
        self.max_ulps = max(self.max_ulps, other.max_ulps)
        self.baseline_ulps = max(self.baseline_ulps, other.baseline_ulps)
        self.sign_flips += other.sign_flips
        self.beyond_rounding += other.beyond_rounding
        self.worst = sorted([*self.worst, *other.worst], key=_rank)[:WORST_SHOWN]
        self.sums = _added(self.sums, other.sums)
        self.squares, self.zero_squares = (total.value() for total in self.sums[:2])
        self.baseline_squares = tuple(total.value() for total in self.sums[2:])

    def add(
        self, errors: np.ndarray, baseline: RouteErrors, expected: np.ndarray, given: np.ndarray, start: int
    ) -> None:
        self.merge(summarize(errors, baseline, expected, given, start))


def _rank(entry: Entry) -> tuple[float, int, int]:
    """Worst first; among equal errors, the earliest in the dump (row, then column)."""
    return (-entry.ulps, entry.row, -1 if entry.column is None else entry.column)


def _exact_sums(squares: float, zero_squares: float, by_route: tuple[float, ...]) -> tuple[ExactSum, ...]:
    return tuple(ExactSum.of(np.array([value])) for value in (squares, zero_squares, *by_route))


def _added(sums: tuple[ExactSum, ...], more: tuple[ExactSum, ...]) -> tuple[ExactSum, ...]:
    """Two parts' exact sums, position by position (a route missing from one adds nothing)."""
    longer, shorter = (sums, more) if len(sums) >= len(more) else (more, sums)
    return tuple(a + shorter[i] if i < len(shorter) else a for i, a in enumerate(longer))


def _root_mean(squares: float, entries: int) -> float:
    """√(squares / entries) to 6 digits: the squares are summed block by block, and the last bits
    of the sum would otherwise change with the rows' cut into blocks (and threads)."""
    return float(f"{math.sqrt(squares / entries):.6g}") if entries else 0.0


def _edge_below(ulps: float) -> float:
    """The histogram's largest edge at or below ``ulps``."""
    return float(EDGES[max(int(np.searchsorted(EDGES, ulps, side="right")) - 1, 0)])


def allowance(baseline_ulps: float, margin_ulps: float = MARGIN_ULPS, factor: float = MARGIN_FACTOR) -> float:
    """The error allowed where a straightforward correct computation is ``baseline_ulps`` off.

    Parameters
    ----------
    baseline_ulps : float
        The baseline's error in ulps (its worst, or its root-mean-square).
    margin_ulps : float
        What is allowed beyond MARGIN_FACTOR × ``baseline_ulps`` (MARGIN_ULPS unless the values
        are themselves a few ulps large: :attr:`QuantityVerdict.margin_ulps`).
    factor : float
        The multiple of ``baseline_ulps`` allowed: MARGIN_FACTOR, or TIGHT_FACTOR where that
        would reach a quarter of the values (:attr:`QuantityVerdict.allowed_rms_ulps`).

    Returns
    -------
    float
        MARGIN_FACTOR × ``baseline_ulps`` + ``margin_ulps``, rounded up to the next edge of the
        histogram (:data:`~sce.grading.dump.histogram.EDGES`), so that the entries beyond it are
        whole bins.

    Examples
    --------
    >>> allowance(0.0)  # a baseline without error: 8 ulps, an edge itself
    8.0
    >>> round(allowance(40.0), 2)  # 4 × 40 + 8 = 168, up to 2^7.5
    181.02
    >>> allowance(0.0, 2.0)
    2.0
    """
    wanted = factor * baseline_ulps + margin_ulps
    return float(EDGES[min(int(np.searchsorted(EDGES, wanted)), len(EDGES) - 1)])


@dataclass
class DtypeCheck:
    claimed_dtype: str
    rows: int
    classes: int
    options: LossOptions
    quantities: list[QuantityVerdict]
    mistakes: list[str]
    sum_order: str = "parallel"
    """"sequential": graded as one running sum per row over the classes (:mod:`.sequential_sums`)."""
    hints: list[str] = field(default_factory=list)
    """For a wrong answer, a known implementation choice it is consistent with, and the option that
    grades it so (options marked by :func:`sce.errors.option`)."""
    sum_bound: float = 0.0
    """Graded as a sequential sum: the largest bound on a row's δ (:func:`.sequential_sums.row_sum_bounds`)."""

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


class ReducedLoss:
    """A reduced loss: sums of the exact and baseline contributions over the blocks."""

    def __init__(self) -> None:
        self.exact: list[float] = []
        self.magnitude: list[float] = []
        self.baseline_rows: list[np.ndarray] = []
        self.baseline_z_rows: list[np.ndarray] = []
        self.moved: list[float] = []
        self.given = math.nan
        self.size = 0.0
        """The magnitude the reduced loss's errors are measured at."""

    def add(
        self,
        exact: float,
        magnitude: float,
        baseline_losses: np.ndarray,
        z_losses: np.ndarray | None,
        moved: float = 0.0,
    ) -> None:
        """One block's part; ``moved``: how far a sequential sum's factors move its contribution
        (the answer is compared with the moved value, the baseline with the exact one)."""
        self.moved.append(moved)
        self.exact.append(exact)
        self.magnitude.append(magnitude)
        self.baseline_rows.append(baseline_losses)
        if z_losses is not None:
            self.baseline_z_rows.append(z_losses)

    def extend(self, later: ReducedLoss) -> None:
        """The parts of rows that come after this one's (a tile's, merged in the dump's order:
        the baseline's sum is taken in row order, as one machine takes it)."""
        self.exact += later.exact
        self.magnitude += later.magnitude
        self.baseline_rows += later.baseline_rows
        self.baseline_z_rows += later.baseline_z_rows
        self.moved += later.moved

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
        found = QuantityVerdict("loss", sign_reason=WHY_LOSS)
        given_array = np.array(given)
        base = finite_errors(
            np.atleast_1d(ulps(reduced, expected, magnitude, dtype)),
            np.atleast_1d(ulps(np.zeros(()), expected, magnitude, dtype)),
        )
        target = np.array(math.fsum([*self.exact, *self.moved])) if any(self.moved) else expected
        if options.reduction == "mean" and d.total == 0:
            target = expected
        found.add(ulps(given_array, target, magnitude, dtype), base, target, given_array, 0)
        found.sign_flips = negative_losses(given_array)
        return found
