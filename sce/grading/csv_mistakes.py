"""Naming the mistake of a file's wrong answers (``sce check --csv``), block by block, and
telling a right row whose digits fit a mistake as well.

The search starts at the first block with a wrong row (a correct file costs
nothing) and keeps the catalogue's row-by-row mistakes (:func:`row_what_ifs`)
that fit every graded entry from there on, wrong or not: a name explains
every failing entry. It stops computing once no candidate is left.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from sce.batch.compute import DenominatorTally, MeanDenominators
from sce.grading import catalogue
from sce.grading.answers import PRECISE, ROUNDING_ALLOWANCE, explains_signs, negative_beyond_digits, within
from sce.grading.catalogue import Mistake
from sce.grading.mistakes import WhatIf
from sce.loss import SoftmaxCrossEntropyResult
from sce.options import LossOptions


@dataclass(frozen=True)
class GradedColumns:
    """One quantity of a block as graded: 'gradient' (N×K) or 'loss' (N×1)."""

    quantity: str
    given: np.ndarray
    allowed: np.ndarray
    ok: np.ndarray
    classes: tuple[int, ...] | None = None
    """The class of each gradient column (they may be some of the classes, in any order); None: all, in order."""
    expected: np.ndarray | None = None
    """The exact values, as ``given`` (where known: to tell a mistake that changes nothing)."""
    naming: np.ndarray | None = None
    """The allowance a wrong answer is fitted to a mistake within, where wider than ``allowed``."""
    precision: np.ndarray | float = 0.0
    """What an answer computed in the type claimed may be off by (float32's, with ``--dtype
    float32``), within ``allowed``: a mistake that changes the numbers by less than twice this
    changes nothing that type can show."""
    flipped: np.ndarray | None = None
    """Entries of a sign no computation gives (:func:`~sce.grading.answers.sign_flipped`): only a
    mistake of that sign, told apart from the truth, explains them."""


@dataclass(frozen=True)
class TypedWhatIf(WhatIf):
    """A mistake that is the right computation in another type (float32): its entries are fitted
    within that type's allowance, entry by entry ('gradient' N×K, 'loss' N×1)."""

    allowance: Mapping[str, np.ndarray] = field(default_factory=dict)


Key = tuple[str, str]
"""A candidate: its mistake's words and the variant (the rounding's digits)."""


@dataclass
class MistakeSearch:
    """For each quantity, the candidates still fitting its entries (from the first block where
    it has a wrong entry on), in the catalogue's order."""

    alive: dict[str, dict[Key, Mistake]] = field(default_factory=dict)
    order: list[Key] = field(default_factory=list)

    def observe(self, graded: list[GradedColumns], block_what_ifs: Callable[[], list[WhatIf]]) -> None:
        """Drop every candidate that does not fit this block's graded columns; ``block_what_ifs``
        gives the block's candidates, asked for only where there is something to fit."""
        starting = [c for c in graded if c.quantity not in self.alive and not c.ok.all()]
        going_on = [c for c in graded if self.alive.get(c.quantity)]
        if not starting and not going_on:
            return  # nothing wrong yet, or nothing left that fits
        what_ifs = block_what_ifs()
        for columns in starting:
            self.alive[columns.quantity] = {}
            for what_if in what_ifs:
                key = (what_if.mistake.words, what_if.variant)
                if _fits(what_if, columns):
                    self.alive[columns.quantity].setdefault(key, what_if.mistake)
                    self.order += [] if key in self.order else [key]
        for columns in going_on:
            fitting = {(w.mistake.words, w.variant) for w in what_ifs if _fits(w, columns)}
            self.alive[columns.quantity] = {k: m for k, m in self.alive[columns.quantity].items() if k in fitting}

    def named(self) -> list[tuple[str, Mistake]]:
        """(the quantity, the mistake) for each mistake that fits every entry of a quantity graded
        since its first wrong one, once; the quantity "" where it fits every wrong quantity."""
        found: list[tuple[str, Mistake]] = []
        for key in self.order:
            fitting = [q for q, alive in self.alive.items() if key in alive]
            if not fitting:
                continue
            mistake = self.alive[fitting[0]][key]
            every = len(fitting) == len(self.alive)
            for quantity in [""] if every else fitting:
                if (quantity, mistake) not in found:
                    found.append((quantity, mistake))
        return found


def _fits(what_if: WhatIf, columns: GradedColumns) -> bool:
    """Every entry within its allowance of the what-if (a mistake that says nothing about the
    quantity does not explain it)."""
    return bool(entries_fitting(what_if, columns).all())


def entries_fitting(what_if: WhatIf, columns: GradedColumns, naming: bool = True) -> np.ndarray:
    """Whether each graded entry is within its allowance of what the mistake gives (all False
    where the mistake says nothing about the quantity); ``naming``: within the allowance for
    naming a wrong answer's mistake, else for a right answer within ``allowed`` itself."""
    if what_if.mistake == catalogue.NEGATIVE_LOSS:
        return _negative_fits(columns)
    value = mistaken_value(what_if, columns)
    if value is None:
        return np.zeros(columns.given.shape, dtype=bool)
    rounding = ROUNDING_ALLOWANCE if what_if.rounding is None else what_if.rounding
    with np.errstate(invalid="ignore", over="ignore"):
        allowed = columns.naming if naming and columns.naming is not None else columns.allowed
        if isinstance(what_if, TypedWhatIf) and columns.quantity in what_if.allowance:
            # Entry by entry, as grading in that type would allow: the advice to grade so then passes.
            allowed = columns.allowed + _typed_allowance(what_if.allowance[columns.quantity], columns)
        fitting = np.asarray(within(columns.given, value, allowed, rounding), dtype=bool)
        if naming and columns.flipped is not None and columns.expected is not None:
            written = columns.allowed - np.asarray(columns.precision)
            fitting &= explains_signs(value, columns.given, columns.expected, columns.flipped, (written, allowed))
        return fitting


def _negative_fits(columns: GradedColumns) -> np.ndarray:
    """A negative loss fits a loss column's right entries and those below 0 beyond their digits."""
    if columns.quantity != "loss" or columns.expected is None:
        return np.zeros(columns.given.shape, dtype=bool)
    written = columns.allowed - np.asarray(columns.precision)
    return columns.ok | negative_beyond_digits(columns.given, columns.expected, written)


def negative_loss() -> WhatIf:
    """The catalogue's negative loss as a file's candidate, after every mistake that gives numbers:
    a loss below 0 that no computed mistake explains (it fits by its sign, not by a value)."""
    return WhatIf(catalogue.NEGATIVE_LOSS, look_alike=False)


def _typed_allowance(allowance: np.ndarray, columns: GradedColumns) -> np.ndarray:
    """A type's allowance for the graded columns (the gradient's: those of their classes)."""
    if columns.classes is not None and allowance.shape[1] > 1:
        return allowance[:, list(columns.classes)]
    return allowance


def differing(what_if: WhatIf, columns: GradedColumns) -> np.ndarray:
    """The entries where the mistake gives another number than the exact one, beyond the type's
    precision (none where unknown)."""
    value = mistaken_value(what_if, columns)
    if value is None or columns.expected is None:
        return np.zeros(columns.given.shape, dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        # Twice the type's allowance: within it, an answer exact to the type can lie within its allowance of
        # both, and it is the type, not the digits written, that cannot tell them apart. Nor is a mistake
        # that agrees with the truth to ten digits one that any answer's digits should tell apart.
        same = np.maximum(2 * np.asarray(columns.precision), PRECISE * np.abs(columns.expected))
        return ~np.asarray(within(value, columns.expected, same), dtype=bool)




def look_alike_rows(
    block_what_ifs: Callable[[], list[WhatIf]], graded: list[GradedColumns]
) -> list[Mistake | None]:
    """Each row's first usual mistake of ``block_what_ifs()`` that the row, right to the digits
    written, also fits, in a quantity where the mistake changes the numbers; None where none
    does, the row is wrong, or every entry is written to :data:`PRECISE` digits (then the
    candidates are not computed at all). Row by row, as a typed row is graded: one mistake need
    not fit every row for a row's digits to be too few to tell it from the right answer."""
    rows = graded[0].ok.shape[0] if graded else 0
    found = np.full(rows, -1, dtype=np.int64)
    right = np.logical_and.reduce([columns.ok.all(axis=1) for columns in graded]) if graded else found < 0
    coarse = np.logical_or.reduce([_coarse(columns) for columns in graded]) if graded else found < 0
    candidates = right & coarse
    if not candidates.any():
        return [None] * rows
    what_ifs = block_what_ifs()
    _first_fitting(what_ifs, graded, candidates, found)
    return [None if index < 0 else what_ifs[index].mistake for index in found.tolist()]


def _first_fitting(
    what_ifs: list[WhatIf], graded: list[GradedColumns], candidates: np.ndarray, found: np.ndarray
) -> None:
    """Into ``found``, each candidate row's first look-alike (its index in ``what_ifs``): a mistake
    that every graded quantity it gives numbers for fits, and that changes some of them. A row is
    one computation: a gradient that rules the mistake out grades the loss beside it."""
    for index, what_if in enumerate(what_ifs):
        pending = candidates & (found < 0)
        if not pending.any():
            return
        if not what_if.look_alike:
            continue
        fits, differs = pending.copy(), np.zeros_like(pending)
        for columns in graded:
            if mistaken_value(what_if, columns) is None:
                continue  # it says nothing of this quantity
            fits &= entries_fitting(what_if, columns, naming=False).all(axis=1)
            differs |= differing(what_if, columns).any(axis=1)
        found[fits & differs] = index


def _coarse(columns: GradedColumns) -> np.ndarray:
    """Rows with an entry written to fewer digits than :data:`PRECISE` (or with no exact value to compare)."""
    if columns.expected is None:
        return np.ones(columns.ok.shape[0], dtype=bool)
    written = columns.allowed - np.asarray(columns.precision)
    with np.errstate(invalid="ignore", over="ignore"):
        coarse = ~(written <= PRECISE * np.abs(columns.expected))
    return np.asarray(coarse.any(axis=1), dtype=bool)


def mistaken_value(what_if: WhatIf, columns: GradedColumns) -> np.ndarray | None:
    """What the mistake gives for the graded columns, shaped as they are (None: it says nothing of them)."""
    value = what_if.gradient if columns.quantity == "gradient" else _column(what_if.losses)
    if value is not None and columns.classes is not None and value.ndim == 2:
        value = value[:, list(columns.classes)]
    if value is None or value.shape != columns.given.shape:
        return None
    return value


def _column(losses: np.ndarray | None) -> np.ndarray | None:
    return None if losses is None else np.asarray(losses, dtype=np.float64)[:, None]


def mean_what_ifs(result: SoftmaxCrossEntropyResult, denominator: MeanDenominators | None) -> list[WhatIf]:
    """The mistakes of a file's mean that its rows alone cannot show: the mean over every row,
    ignored (padding) rows included, and the weighted mean divided by the row count, as
    ``sce check --arrays`` names them. Gradient only: ``sce check --csv`` grades each row's loss."""
    d = denominator
    if result.options.reduction != "mean" or d is None or not d.cross_entropy or result.options.z_loss:
        return []
    gradient = result.gradient.astype(np.float64)
    found = []
    if d.rows > d.z_loss:
        found.append(WhatIf(catalogue.IGNORED_ROWS_COUNTED, gradient=gradient * (d.cross_entropy / d.rows)))
    if result.options.weight is not None and d.z_loss and d.cross_entropy != d.z_loss:
        found.append(WhatIf(catalogue.WEIGHT_SUM_BY_ROW_COUNT, gradient=gradient * (d.cross_entropy / d.z_loss)))
    return found


@dataclass
class DividedSearch:
    """A gradient divided by one number throughout, where 'none' or 'sum' asks for none: the mean
    PyTorch returns by default. The number is read from the first wrong block's largest entry,
    checked on every entry from there on, and compared at the end with the file's weight sum,
    which is only known then (``sce check --arrays`` knows it first: its dumps are read twice)."""

    ratio: float | None = None
    spread: float = 0.0
    """How far the ratio may be from the weight sum: the digits of the entry it was read from."""
    alive: bool = True
    tally: DenominatorTally = field(default_factory=DenominatorTally)

    def observe(self, result: SoftmaxCrossEntropyResult, graded: list[GradedColumns]) -> None:
        self.tally.add(result)
        columns = next((c for c in graded if c.quantity == "gradient"), None)
        if not self.alive or columns is None or columns.expected is None or (self.ratio is None and columns.ok.all()):
            return
        expected, given = columns.expected, columns.given
        if self.ratio is None:
            at = np.unravel_index(int(np.argmax(np.abs(np.where(np.isfinite(expected), expected, 0.0)))), given.shape)
            self.ratio = float(expected[at] / given[at]) if given[at] else math.nan
            self.spread = 2 * float(columns.allowed[at]) / abs(float(given[at])) if given[at] else math.inf
            if not math.isfinite(self.ratio) or self.ratio <= 1:
                self.alive = False
                return
        allowed = columns.naming if columns.naming is not None else columns.allowed
        with np.errstate(invalid="ignore", over="ignore"):
            fits = within(given, expected / self.ratio, allowed)
        self.alive = bool(fits.all())

    def named(self, options: LossOptions) -> Mistake | None:
        """The mistake, where the number is the file's weight sum (its counted rows, unweighted)."""
        if not self.alive or self.ratio is None or options.reduction == "mean":
            return None
        total = self.tally.denominators(options).cross_entropy
        if abs(self.ratio - total) > total * (self.spread + 1e-12):
            return None
        return catalogue.MEAN_NOT_SUM if options.reduction == "sum" else catalogue.MEAN_NOT_NONE
