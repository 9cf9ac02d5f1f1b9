"""A class at once (``sce check --csv FILE --id-col COL``): one verdict, score and named
mistake per learner, whose answers may span several rows, and the mistakes counted over the class.

Each learner's rows are graded as a whole: the score is the entries right out of those
graded; the mistake named is the first of the catalogue (:func:`row_what_ifs`) that fits
every entry of each quantity the learner got wrong, right entries included, over all the
learner's rows. Where none does, the two that explain the most wrong entries are named as
"more than one mistake". A learner right to every digit written, one of whose rows the digits
written also fit a usual mistake that changes that row's numbers, gets "too few digits to grade",
as that row typed would: each row is an answer, graded by its own digits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sce.errors import DataProblem
from sce.grading import verdicts
from sce.grading.catalogue import Mistake
from sce.grading.csv_mistakes import GradedColumns, Key, entries_fitting
from sce.grading.mistakes import WhatIf


@dataclass(frozen=True)
class LearnerGrade:
    """One learner's grade: ``mistakes`` holds the mistake named (``whole``: it explains every
    wrong entry), or the two that explain the most (none where no mistake of the catalogue fits)."""

    learner: str
    rows: int
    graded: int
    right: int
    verdict: str
    mistakes: tuple[Mistake, ...] = ()
    whole: bool = False
    also_fits: Mistake | None = None
    """For too few digits: the usual mistake those digits fit as well."""
    note: str = ""
    """Why the learner's work could not be graded (a missing file, one that cannot be imported)."""

    @property
    def score(self) -> float:
        """The entries right, out of those graded."""
        return self.right / self.graded if self.graded else 1.0

    @property
    def passed(self) -> bool:
        return verdicts.Verdict(self.verdict).passed


@dataclass
class _Fits:
    """Per learner, for one candidate and one quantity: entries it does not fit."""

    unfit: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class Gradebook:
    """The learners of a file, in the order they first appear, graded block by block."""

    column: str
    """The id column's name, kept as the gradebook's first column."""
    codes: dict[str, int] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    """Per learner: 'rows', 'graded', 'right', and 'wrong <quantity>'."""
    fits: dict[tuple[str, Key], _Fits] = field(default_factory=dict)
    explained: dict[Key, np.ndarray] = field(default_factory=dict)
    candidates: dict[Key, WhatIf] = field(default_factory=dict)
    """Each candidate, in the catalogue's order (the first of its what-ifs)."""
    look_alikes: dict[int, Mistake] = field(default_factory=dict)
    """Per learner, the usual mistake that the first of their rows with too few digits fits as well."""

    def learners_of(self, ids: Sequence[str | None], lines: Sequence[int]) -> np.ndarray:
        """Each row's learner as a number, first seen first; an empty id is refused."""
        codes = np.empty(len(ids), dtype=np.int64)
        for row, learner in enumerate(ids):
            text = (learner or "").strip()
            if not text:
                raise DataProblem(
                    f"line {lines[row]}: the id column {self.column!r} is empty; give every row its learner's id"
                )
            codes[row] = self.codes.setdefault(text, len(self.codes))
        return codes

    def observe(
        self,
        codes: np.ndarray,
        graded: list[GradedColumns],
        what_ifs: list[WhatIf],
        look_alikes: Sequence[Mistake | None],
    ) -> None:
        """Add one block's graded columns, row by row, to their learners; ``look_alikes``: each row's
        usual mistake that its digits fit as well (:func:`look_alike_rows`)."""
        self._add("rows", codes, np.ones(len(codes)))
        for row, mistake in enumerate(look_alikes):
            if mistake is not None:
                self.look_alikes.setdefault(int(codes[row]), mistake)
        for columns in graded:
            self._add("graded", codes, np.full(len(codes), columns.ok.shape[1]))
            self._add("right", codes, columns.ok.sum(axis=1))
            self._add(f"wrong {columns.quantity}", codes, (~columns.ok).sum(axis=1))
            for what_if in what_ifs:
                key = (what_if.mistake.words, what_if.variant)
                self.candidates.setdefault(key, what_if)
                fitting = entries_fitting(what_if, columns)
                fits = self.fits.setdefault((columns.quantity, key), _Fits())
                fits.unfit = self._added(fits.unfit, codes, (~fitting).sum(axis=1))
                self.explained[key] = self._added(
                    self.explained.get(key, np.zeros(0, dtype=np.int64)), codes, (fitting & ~columns.ok).sum(axis=1)
                )

    def grades(self) -> list[LearnerGrade]:
        """Every learner's grade, in the order they first appear."""
        return [self._grade(learner, code) for learner, code in self.codes.items()]

    def _grade(self, learner: str, code: int) -> LearnerGrade:
        quantities = [name.removeprefix("wrong ") for name in self.counts if name.startswith("wrong ")]
        wrong = [q for q in quantities if self._count(f"wrong {q}", code)]
        rows, graded, right = (self._count(name, code) for name in ("rows", "graded", "right"))
        if not wrong:
            look_alike = self.look_alikes.get(code)
            verdict = verdicts.CORRECT if look_alike is None else verdicts.TOO_FEW_DIGITS
            return LearnerGrade(learner, rows, graded, right, verdict, also_fits=look_alike)
        whole = next((key for key in self.candidates if all(self._fit(q, key, code) for q in wrong)), None)
        if whole is not None:
            mistakes: tuple[Mistake, ...] = (self.candidates[whole].mistake,)
        else:
            explaining = [key for key in self.candidates if self._at(self.explained[key], code) > 0]
            explaining.sort(key=lambda key: -self._at(self.explained[key], code))  # stable: catalogue order in ties
            mistakes = tuple(dict.fromkeys(self.candidates[key].mistake for key in explaining))[:2]
        return LearnerGrade(learner, rows, graded, right, verdicts.NOT_CORRECT, mistakes, whole is not None)

    def _fit(self, quantity: str, key: Key, code: int) -> bool:
        fits = self.fits.get((quantity, key))
        return fits is not None and self._at(fits.unfit, code) == 0

    def _count(self, name: str, code: int) -> int:
        return self._at(self.counts.get(name, np.zeros(0, dtype=np.int64)), code)

    @staticmethod
    def _at(values: np.ndarray, code: int) -> int:
        return int(values[code]) if code < len(values) else 0

    def _add(self, name: str, codes: np.ndarray, values: np.ndarray) -> None:
        self.counts[name] = self._added(self.counts.get(name, np.zeros(0, dtype=np.int64)), codes, values)

    def _added(self, totals: np.ndarray, codes: np.ndarray, values: np.ndarray) -> np.ndarray:
        block = np.bincount(codes, weights=values, minlength=len(self.codes)).astype(np.int64)
        grown = np.zeros(len(self.codes), dtype=np.int64)
        grown[: len(totals)] = totals
        return grown + block


def mistake_counts(grades: list[LearnerGrade]) -> list[tuple[Mistake, int]]:
    """Each mistake named over the class (whole or in part), with how many learners it is named for,
    most first (then in the order first named)."""
    counted = Counter(mistake for grade in grades for mistake in grade.mistakes)
    return counted.most_common()
