"""What a failing case shows the learner: its inputs, the expected answer beside the given one, entry by entry."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sce.grading.implementations.cases import Case

#: A case of at most this many entries (rows × classes) is shown whole; a larger one is cut to its worst row.
WHOLE_ENTRIES = 12
#: A row of more classes than this is cut to the label's class and its worst entries.
SHOWN_CLASSES = 8


@dataclass(frozen=True)
class Judged:
    """One quantity of one case as it was judged: the given and expected values, and whether each entry
    is within the allowance (judged, under a softcap, per unit of the cap's factor)."""

    given: np.ndarray
    expected: np.ndarray
    agrees: np.ndarray


@dataclass(frozen=True)
class CaseEvidence:
    """The part of a case shown beside its verdict: ``rows`` and ``classes`` of the case's logits
    (all of them for a small case; the worst row, and the worst of its classes, for a large one)."""

    rows: tuple[int, ...]
    classes: tuple[int, ...]
    total_rows: int
    total_classes: int
    logits: np.ndarray
    """rows × classes, as given to the function."""
    labels: np.ndarray | None
    targets: np.ndarray | None
    expected: dict[str, np.ndarray] = field(default_factory=dict)
    """By quantity ("gradient": rows × classes; "loss": a number, or one per shown row)."""
    given: dict[str, np.ndarray] = field(default_factory=dict)
    """The same quantities, as the function returned them (empty when it returned none)."""
    agrees: dict[str, np.ndarray] = field(default_factory=dict)
    """The same shapes: True where the given entry is within the case's allowance."""
    wrong_elsewhere: dict[str, int] = field(default_factory=dict)
    """By quantity: how many of its entries outside those shown are not within the allowance."""

    @property
    def whole(self) -> bool:
        return len(self.rows) == self.total_rows and len(self.classes) == self.total_classes


def agreement(given: np.ndarray, right: np.ndarray, allowed: float) -> np.ndarray:
    """True where ``given`` is within ``allowed`` of ``right`` (the same infinity agrees; NaN never does)."""
    with np.errstate(all="ignore"):
        values = given.astype(np.float64)
        same_infinity = (values == right) & np.isinf(right)
        return np.asarray(same_infinity | (np.abs(values - right) <= allowed))


def case_evidence(case: Case, judged: dict[str, Judged], expected: dict[str, np.ndarray]) -> CaseEvidence:
    """The case cut to what a learner can read, with every judged quantity beside its expected value."""
    rows = _shown_rows(case, judged)
    classes = _shown_classes(case, judged, rows)
    grid = np.ix_(rows, classes)
    per_row_loss = np.ndim(expected.get("loss", 0.0)) == 1

    def cut(quantity: str, values: np.ndarray) -> np.ndarray:
        if quantity == "gradient":
            return np.asarray(values)[grid]
        return np.asarray(values)[list(rows)] if per_row_loss else np.asarray(values)

    agrees = {quantity: cut(quantity, judgement.agrees) for quantity, judgement in judged.items()}
    wrong_elsewhere = {
        quantity: int((~judgement.agrees).sum()) - int((~agrees[quantity]).sum())
        for quantity, judgement in judged.items()
    }
    return CaseEvidence(
        rows=tuple(rows),
        classes=tuple(classes),
        total_rows=case.rows,
        total_classes=case.classes,
        logits=case.logits[grid],
        labels=None if case.targets is not None else case.labels[list(rows)],
        targets=None if case.targets is None else case.targets[grid],
        expected={quantity: cut(quantity, values) for quantity, values in expected.items()},
        given={quantity: cut(quantity, judgement.given) for quantity, judgement in judged.items()},
        agrees=agrees,
        wrong_elsewhere=wrong_elsewhere,
    )


def _badness(judged: dict[str, Judged], rows: int) -> np.ndarray:
    """Per row, how many of its entries are wrong (the gradient's, and a per-row loss)."""
    wrong = np.zeros(rows)
    for quantity, judgement in judged.items():
        if quantity == "gradient" and judgement.agrees.ndim == 2:
            wrong += (~judgement.agrees).sum(axis=1)
        elif judgement.agrees.ndim == 1 and judgement.agrees.shape[0] == rows:
            wrong += ~judgement.agrees
    return wrong


def _shown_rows(case: Case, judged: dict[str, Judged]) -> list[int]:
    if case.rows * case.classes <= WHOLE_ENTRIES:
        return list(range(case.rows))
    return [int(np.argmax(_badness(judged, case.rows)))]  # ties (and no gradient): the first row


def _shown_classes(case: Case, judged: dict[str, Judged], rows: list[int]) -> list[int]:
    if case.classes <= SHOWN_CLASSES or len(rows) != 1:
        return list(range(case.classes))
    row = rows[0]
    wanted = [int(case.labels[row])] if case.targets is None else []
    gradient = judged.get("gradient")
    if gradient is not None and gradient.agrees.ndim == 2:
        with np.errstate(all="ignore"):
            error = np.abs(gradient.given[row].astype(np.float64) - gradient.expected[row])
        error = np.where(gradient.agrees[row], 0.0, np.where(np.isnan(error), np.inf, error))
        worst = [int(k) for k in np.argsort(-error, kind="stable") if not gradient.agrees[row, k]]
        wanted += [k for k in worst if k not in wanted]
    wanted += [k for k in range(case.classes) if k not in wanted]  # then the first classes
    return sorted(wanted[:SHOWN_CLASSES])
