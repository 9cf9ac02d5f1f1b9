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
baseline's worst there is ~20, so 88 ulps are allowed. A dump is processed in blocks of rows, so a memory-mapped
4 GB array costs one block of memory.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..arrays import ArrayDump
from ..core import softmax_cross_entropy
from ..options import LossOptions
from .dtype_baseline import RowCoefficients, baseline, coefficients, gradient_magnitude, loss_magnitude, ulps
from .dump_mistakes import Block, denominators, what_ifs

MARGIN_FACTOR = 4.0
MARGIN_ULPS = 8.0
#: Entries of logits per block: 2^21 (16 MB per float64 array; the block's ~15 arrays stay under 300 MB).
BLOCK_ENTRIES = 1 << 21
WORST_SHOWN = 10
#: Bin edges in ulps: 0, then 2^(k/4) from 2^-10 to 2^60.
EDGES = np.concatenate([[0.0], 2.0 ** (np.arange(-40, 241) / 4)])


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
    mistake_ulps: dict[str, float] = field(default_factory=dict)

    @property
    def allowed_ulps(self) -> float:
        wanted = MARGIN_FACTOR * self.baseline_ulps + MARGIN_ULPS
        return float(EDGES[min(int(np.searchsorted(EDGES, wanted)), len(EDGES) - 1)])

    @property
    def wrong(self) -> int:
        first_wrong = int(np.searchsorted(EDGES, self.allowed_ulps))
        return int(self.counts[first_wrong:].sum())

    def add(
        self, errors: np.ndarray, baseline_errors: np.ndarray, expected: np.ndarray, given: np.ndarray, start: int
    ) -> None:
        errors = np.nan_to_num(errors, nan=np.inf, posinf=np.inf)
        self.entries += errors.size
        finite = np.isfinite(errors)
        bins = np.searchsorted(EDGES, errors[finite], side="right") - 1
        self.counts += np.bincount(bins, minlength=len(self.counts))
        self.counts[-1] += int((~finite).sum())
        if errors.size:
            self.max_ulps = max(self.max_ulps, float(errors.max()))
            # Where the straightforward computation overflows (inf, NaN) it sets no allowance:
            # an infinite allowance would pass any answer.
            usable = baseline_errors[np.isfinite(baseline_errors)]
            self.baseline_ulps = max(self.baseline_ulps, float(usable.max()) if usable.size else 0.0)
            self._keep_worst(errors, expected, given, start)

    def _keep_worst(self, errors: np.ndarray, expected: np.ndarray, given: np.ndarray, start: int) -> None:
        flat = errors.ravel()
        take = min(WORST_SHOWN, flat.size)
        top = np.argpartition(-flat, take - 1)[:take]
        for index in top:
            position = np.unravel_index(int(index), errors.shape)
            column = int(position[1]) if errors.ndim == 2 else None
            row = start + int(position[0]) if errors.ndim else 0
            self.worst.append(Entry(row, column, float(expected[position]), float(given[position]), float(flat[index])))
        self.worst = sorted(self.worst, key=lambda e: -e.ulps)[:WORST_SHOWN]

    def note_mistake(self, name: str, errors: np.ndarray) -> None:
        worst = float(np.nan_to_num(errors, nan=np.inf, posinf=np.inf).max()) if errors.size else 0.0
        self.mistake_ulps[name] = max(self.mistake_ulps.get(name, 0.0), worst)


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


Progress = Callable[[int], None]


def check_dump(
    dump: ArrayDump, options: LossOptions, claimed_dtype: str, progress: Progress | None = None
) -> DtypeCheck:
    """Grade the dump's gradient and loss, block by block; name the mistake that fits."""
    options = options.replace(dtype="float64")
    rows, classes = dump.shape
    d = denominators(dump.labels, rows, options)
    candidates = what_ifs(dump.labels, d, options)
    grad = QuantityVerdict("gradient") if dump.grad is not None else None
    per_row_loss = dump.loss is not None and dump.loss.ndim == 1
    loss = QuantityVerdict("loss") if per_row_loss else None
    scalar = _ScalarLoss(candidates) if dump.loss is not None and not per_row_loss else None
    step = max(1, BLOCK_ENTRIES // classes)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        block, coef = _exact_block(dump, start, stop, options, d.total)
        base = baseline(block.logits, coef, options, claimed_dtype)
        if grad is not None and dump.grad is not None:
            _grade_gradient(
                grad, block, coef, base.gradients, np.asarray(dump.grad[start:stop]), claimed_dtype, candidates
            )
        if loss is not None and dump.loss is not None:
            _grade_row_losses(
                loss, block, coef, base.losses[0], np.asarray(dump.loss[start:stop]), claimed_dtype, candidates
            )
        if scalar is not None:
            scalar.add(block, coef, base.losses[0], options)
        if progress is not None:
            progress(stop - start)
    quantities = [q for q in (grad, loss) if q is not None]
    if scalar is not None and dump.loss is not None:
        quantities.append(scalar.verdict(float(dump.loss), claimed_dtype, options, d.total))
    check = DtypeCheck(claimed_dtype, rows, classes, options, quantities, [])
    if not check.correct:
        check.mistakes = [name for name in candidates if _fits(name, quantities)]
    return check


def _fits(name: str, quantities: list[QuantityVerdict]) -> bool:
    graded = [q for q in quantities if name in q.mistake_ulps]
    return bool(graded) and all(q.mistake_ulps[name] < q.allowed_ulps for q in graded)


def _exact_block(
    dump: ArrayDump, start: int, stop: int, options: LossOptions, total: float
) -> tuple[Block, RowCoefficients]:
    logits = np.asarray(dump.logits[start:stop], dtype=np.float64)
    labels = None if dump.labels is None else np.asarray(dump.labels[start:stop])
    targets = None if dump.targets is None else np.asarray(dump.targets[start:stop], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an infinite loss is graded, not warned about
        exact = softmax_cross_entropy(
            logits,
            labels,
            targets=targets,
            options=options,
            mean_denominator=total if options.reduction == "mean" else None,
        )
    contributions = exact.losses * (0.0 if total == 0 else 1 / total) if options.reduction == "mean" else exact.losses
    coef = coefficients(labels, targets, logits.shape[1], options, total)
    return Block(start, logits, labels, targets, exact, contributions), coef


def _grade_gradient(
    verdict: QuantityVerdict,
    block: Block,
    coef: RowCoefficients,
    routes: tuple[np.ndarray, ...],
    given: np.ndarray,
    dtype: str,
    candidates: dict,
) -> None:
    magnitude = gradient_magnitude(block.exact.probabilities, coef)
    expected = block.exact.gradient
    baseline_errors = np.maximum.reduce([ulps(route, expected, magnitude, dtype) for route in routes])
    verdict.add(ulps(given, expected, magnitude, dtype), baseline_errors, expected, given, block.start)
    for name, what_if in candidates.items():
        other, _ = what_if(block)
        verdict.note_mistake(name, ulps(given, other, np.maximum(magnitude, np.abs(other)), dtype))


def _grade_row_losses(
    verdict: QuantityVerdict,
    block: Block,
    coef: RowCoefficients,
    route: np.ndarray,
    given: np.ndarray,
    dtype: str,
    candidates: dict,
) -> None:
    expected = block.exact.losses
    magnitude = loss_magnitude(expected, coef)
    verdict.add(
        ulps(given, expected, magnitude, dtype), ulps(route, expected, magnitude, dtype), expected, given, block.start
    )
    for name, what_if in candidates.items():
        _, other = what_if(block)
        if other is not None:
            verdict.note_mistake(name, ulps(given, other, np.maximum(magnitude, np.abs(other)), dtype))


class _ScalarLoss:
    """A reduced loss: sums of the exact, baseline and what-if contributions over the blocks."""

    def __init__(self, candidates: dict) -> None:
        self.candidates = candidates
        self.exact: list[float] = []
        self.magnitude: list[float] = []
        self.baseline_rows: list[np.ndarray] = []
        self.what_if: dict[str, list[float]] = {name: [] for name in candidates}

    def add(self, block: Block, coef: RowCoefficients, baseline_losses: np.ndarray, options: LossOptions) -> None:
        self.exact.append(math.fsum(block.contributions))
        share = coef.a * options.temperature  # 1/D for 'mean', 1 for 'sum'
        self.magnitude.append(math.fsum(loss_magnitude(block.exact.losses, coef) * share))
        self.baseline_rows.append(baseline_losses)
        for name, what_if in self.candidates.items():
            _, other = what_if(block)
            if other is not None:
                self.what_if[name].append(math.fsum(other))

    def verdict(self, given: float, dtype: str, options: LossOptions, total: float) -> QuantityVerdict:
        from .dtype_baseline import numpy_dtype

        expected = np.array(math.fsum(self.exact))
        magnitude = np.array(math.fsum(self.magnitude))
        kind = numpy_dtype(dtype)
        with np.errstate(all="ignore"):
            reduced = np.concatenate(self.baseline_rows).astype(kind).sum(dtype=kind)
            if options.reduction == "mean":
                reduced = (reduced / kind.type(total)).astype(kind)
        found = QuantityVerdict("loss")
        given_array = np.array(given)
        found.add(
            ulps(given_array, expected, magnitude, dtype),
            ulps(reduced, expected, magnitude, dtype),
            expected,
            given_array,
            0,
        )
        for name, parts in self.what_if.items():
            if parts:
                other = np.array(math.fsum(parts))
                found.note_mistake(name, ulps(given_array, other, np.maximum(magnitude, np.abs(other)), dtype))
        return found
