"""Verdicts by float type: is a dumped gradient (and loss) as accurate as its type allows?

Each entry's error is measured in ulps of the claimed type against the exact
float64 result, and compared with the worst error of a straightforward
correct implementation in that type on the same inputs (see
:mod:`.dtype_baseline`). An entry is wrong when its error exceeds

    allowed = MARGIN_FACTOR × (the baseline's worst error) + MARGIN_ULPS,

rounded up to the next quarter-octave (2^(k/4) ulps), which is also how the
errors are binned, so that the count of wrong entries is exact however the
rows are cut into blocks. The factor 4 covers a framework whose sums and
exponentials round differently (PyTorch's float32 gradient on 256 × 32,000
logits is up to ~60 ulp off where numpy's is ~20: a factor of 3); the 8 ulps
cover tiny baselines. A float32 answer 1,000 ulp off still fails: the
baseline's worst there is ~20, so 88 ulps are allowed.

A dump is processed in blocks of rows read from the file (a memory-mapped 4 GB
array costs one block of memory), in one pass that computes only what the
verdict needs: the exact result, the baseline, the answer's errors. Which
mistake a wrong answer made is asked only once it is known to be wrong, in a
second pass (:mod:`.mistake_pass`) that drops each candidate at the first
block it does not fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..arrays import ArrayDump
from ..arrays.blocks import block_bounds, read_rows
from ..options import LossOptions
from .dtype_baseline import (
    RowCoefficients,
    baseline,
    gradient_magnitude,
    loss_magnitude,
    ulp_unit,
    ulps,
    ulps_if_finite,
)
from .dump_mistakes import Block, denominators, exact_block

MARGIN_FACTOR = 4.0
MARGIN_ULPS = 8.0
#: Entries of logits per block: 2^21 (16 MB per float64 array; the block's ~15 arrays stay under 300 MB).
BLOCK_ENTRIES = 1 << 21
WORST_SHOWN = 10
#: Quarter-octaves 2^(k/4) below each power of two, built so that each edge is exactly twice the one
#: four below it: the bin of an error is then read from its exponent and mantissa (see _bins).
_QUARTERS = np.array([1.0, 2.0**0.25, 2.0**0.5, 2.0**0.75])
#: Bin edges in ulps: 0, then 2^(k/4) from 2^-10 to 2^60.
EDGES = np.concatenate([[0.0], (2.0 ** np.arange(-10, 60)[:, None] * _QUARTERS).ravel(), [2.0**60]])
_LOWEST_EXPONENT = -10


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

    @property
    def allowed_ulps(self) -> float:
        wanted = MARGIN_FACTOR * self.baseline_ulps + MARGIN_ULPS
        return float(EDGES[min(int(np.searchsorted(EDGES, wanted)), len(EDGES) - 1)])

    @property
    def wrong(self) -> int:
        first_wrong = int(np.searchsorted(EDGES, self.allowed_ulps))
        return int(self.counts[first_wrong:].sum())

    def add(
        self, errors: np.ndarray, baseline_worst: float, expected: np.ndarray, given: np.ndarray, start: int
    ) -> None:
        """One block's errors; ``baseline_worst`` is the straightforward computation's worst finite one."""
        self.entries += errors.size
        self.baseline_ulps = max(self.baseline_ulps, baseline_worst)
        if not errors.size:
            return
        worst = float(errors.max())
        if not math.isfinite(worst):
            errors = np.nan_to_num(errors, nan=np.inf, posinf=np.inf)
            finite = np.isfinite(errors)
            self.counts[-1] += int((~finite).sum())
            self.counts += np.bincount(_bins(errors[finite]), minlength=len(self.counts))
            worst = math.inf
        else:
            self.counts += np.bincount(_bins(errors.ravel()), minlength=len(self.counts))
        self.max_ulps = max(self.max_ulps, worst)
        self._keep_worst(errors, expected, given, start)

    def _keep_worst(self, errors: np.ndarray, expected: np.ndarray, given: np.ndarray, start: int) -> None:
        flat = errors.ravel()
        if len(self.worst) == WORST_SHOWN:  # only entries beating the shown ones matter: usually none
            candidates = np.flatnonzero(flat > self.worst[-1].ulps)
        else:
            candidates = np.arange(flat.size)
        if candidates.size > WORST_SHOWN:
            candidates = candidates[np.argpartition(-flat[candidates], WORST_SHOWN - 1)[:WORST_SHOWN]]
        for index in candidates:
            position = np.unravel_index(int(index), errors.shape)
            column = int(position[1]) if errors.ndim == 2 else None
            row = start + int(position[0]) if errors.ndim else 0
            self.worst.append(Entry(row, column, float(expected[position]), float(given[position]), float(flat[index])))
        self.worst = sorted(self.worst, key=lambda e: -e.ulps)[:WORST_SHOWN]


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
    def correct(self) -> bool:
        return all(q.wrong == 0 for q in self.quantities)


Progress = Callable[[str, int], None]
"""Told (phase, rows) after each block: phase "checking", then, for a wrong answer,
"naming the mistake" (a second pass, often cut short)."""


def check_dump(
    dump: ArrayDump, options: LossOptions, claimed_dtype: str, progress: Progress | None = None
) -> DtypeCheck:
    """Grade the dump's gradient and loss, block by block; name the mistake that fits."""
    from .mistake_pass import Allowed, matching_mistakes

    options = options.replace(dtype="float64")
    rows, classes = dump.shape
    d = denominators(dump.labels, rows, options)
    grad = QuantityVerdict("gradient") if dump.grad is not None else None
    per_row_loss = dump.loss is not None and dump.loss.ndim == 1
    loss = QuantityVerdict("loss") if per_row_loss else None
    scalar = _ScalarLoss() if dump.loss is not None and not per_row_loss else None
    for start, stop in block_bounds(rows, classes, BLOCK_ENTRIES):
        block, coef = exact_block(dump, start, stop, options, d.total)
        base = baseline(block.logits, coef, options, claimed_dtype)
        if grad is not None and dump.grad is not None:
            given = read_rows(dump.grad, start, stop)
            _grade_gradient(grad, block, coef, base.gradients, given, claimed_dtype)
        if loss is not None and dump.loss is not None:
            _grade_row_losses(loss, block, coef, base.losses[0], np.asarray(dump.loss[start:stop]), claimed_dtype)
        if scalar is not None:
            scalar.add(block, coef, base.losses[0], options)
        if progress is not None:
            progress("checking", stop - start)
    quantities = [q for q in (grad, loss) if q is not None]
    scalar_verdict = None
    if scalar is not None and dump.loss is not None:
        scalar_verdict = scalar.verdict(float(dump.loss), claimed_dtype, options, d.total)
        quantities.append(scalar_verdict)
    check = DtypeCheck(claimed_dtype, rows, classes, options, quantities, [])
    if not check.correct:
        allowed = Allowed(
            None if grad is None else grad.allowed_ulps,
            None if loss is None else loss.allowed_ulps,
            None
            if scalar is None or scalar_verdict is None
            else (scalar.given, scalar.size, scalar_verdict.allowed_ulps),
        )
        check.mistakes = matching_mistakes(dump, options, d, claimed_dtype, allowed, progress)
    return check


def _errors(given: np.ndarray, expected: np.ndarray, unit: np.ndarray, magnitude: np.ndarray, dtype: str) -> np.ndarray:
    fast = ulps_if_finite(given, expected, unit)
    return fast if fast is not None else ulps(given, expected, magnitude, dtype)


def _finite_worst(errors: np.ndarray) -> float:
    """The worst finite error: where the straightforward computation overflows (inf, NaN) it sets
    no allowance (an infinite allowance would pass any answer)."""
    worst = float(errors.max(initial=0.0))
    if math.isfinite(worst):
        return worst
    usable = errors[np.isfinite(errors)]
    return float(usable.max()) if usable.size else 0.0


def _grade_gradient(
    verdict: QuantityVerdict,
    block: Block,
    coef: RowCoefficients,
    routes: tuple[np.ndarray, ...],
    given: np.ndarray,
    dtype: str,
) -> None:
    magnitude = gradient_magnitude(block.exact.probabilities, coef)
    unit = ulp_unit(magnitude, dtype)
    expected = block.exact.gradient
    baseline_worst = max(_finite_worst(_errors(route, expected, unit, magnitude, dtype)) for route in routes)
    verdict.add(_errors(given, expected, unit, magnitude, dtype), baseline_worst, expected, given, block.start)


def _grade_row_losses(
    verdict: QuantityVerdict, block: Block, coef: RowCoefficients, route: np.ndarray, given: np.ndarray, dtype: str
) -> None:
    expected = block.exact.losses
    magnitude = loss_magnitude(expected, coef)
    baseline_worst = _finite_worst(ulps(route, expected, magnitude, dtype))
    verdict.add(ulps(given, expected, magnitude, dtype), baseline_worst, expected, given, block.start)


class _ScalarLoss:
    """A reduced loss: sums of the exact and baseline contributions over the blocks."""

    def __init__(self) -> None:
        self.exact: list[float] = []
        self.magnitude: list[float] = []
        self.baseline_rows: list[np.ndarray] = []
        self.given = math.nan
        self.size = 0.0
        """The magnitude the reduced loss's errors are measured at."""

    def add(self, block: Block, coef: RowCoefficients, baseline_losses: np.ndarray, options: LossOptions) -> None:
        self.exact.append(math.fsum(block.contributions))
        share = coef.a * options.temperature  # 1/D for 'mean', 1 for 'sum'
        self.magnitude.append(math.fsum(loss_magnitude(block.exact.losses, coef) * share))
        self.baseline_rows.append(baseline_losses)

    def verdict(self, given: float, dtype: str, options: LossOptions, total: float) -> QuantityVerdict:
        from .dtype_baseline import numpy_dtype

        self.given = given
        self.size = math.fsum(self.magnitude)
        expected = np.array(math.fsum(self.exact))
        magnitude = np.array(self.size)
        kind = numpy_dtype(dtype)
        with np.errstate(all="ignore"):
            reduced = np.concatenate(self.baseline_rows).astype(kind).sum(dtype=kind)
            if options.reduction == "mean":
                reduced = (reduced / kind.type(total)).astype(kind)
        found = QuantityVerdict("loss")
        given_array = np.array(given)
        baseline_worst = _finite_worst(np.atleast_1d(ulps(reduced, expected, magnitude, dtype)))
        found.add(ulps(given_array, expected, magnitude, dtype), baseline_worst, expected, given_array, 0)
        return found
