"""`sce check --csv`: grading the gradient and loss columns of a file against
the exact values, block by block."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from sce.batch.compute import MeanDenominators, compute_block
from sce.batch.csv_source import computed_blocks, csv_input, mean_denominator, readable_input
from sce.batch.loop import check_summary_path, write_summary_file
from sce.batch.request import BatchRequest, BatchSummary
from sce.errors import DataProblem
from sce.grading import catalogue, verdicts
from sce.grading.answers import kept_signs, sign_flipped, within
from sce.grading.catalogue import Mistake
from sce.grading.csv_dtype import exact_options, float64_allowances, in_type, type_allowances
from sce.grading.csv_mistakes import (
    DividedSearch,
    GradedColumns,
    MistakeSearch,
    TypedWhatIf,
    look_alike_rows,
    mean_what_ifs,
    negative_loss,
)
from sce.grading.gradebook import Gradebook
from sce.grading.mistakes import WhatIf, row_what_ifs
from sce.io.csv.columns import ColumnPlan
from sce.io.csv.parse import ParsedBlock, read_numbers
from sce.io.csv.records import record_lines
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import written_tolerances
from sce.options import FloatType


@dataclass
class WrongCell:
    line: int
    column: str
    expected: float
    written: str
    """The answer as written in the file."""
    given: float
    tolerance: float

    @property
    def error(self) -> float:
        return abs(self.given - self.expected)


@dataclass
class FileCheck:
    rows: int = 0
    wrong_rows: int = 0
    max_abs_error: float = 0.0
    """The largest error of an entry that is a number where one is expected (see ``non_finite``)."""
    max_rel_error: float = 0.0
    worst: list[WrongCell] = field(default_factory=list)
    classes: int = 0
    """The logit columns, every one of which joins the softmax."""
    graded_gradients: int = 0
    """The gradient columns graded: all of ``classes``, or some of them."""
    non_finite: int = 0
    """Entries given as NaN or ±inf where the exact value is finite: wrong, and without an error to measure."""
    totals: BatchSummary = field(default_factory=BatchSummary)
    """The file's exact values summed as sce batch sums them (for ``--summary-json``)."""
    mistakes: list[tuple[str, Mistake]] = field(default_factory=list)
    """(the quantity, or "" for every wrong one; the catalogue's mistake) for each mistake that
    explains every wrong entry of that quantity (none when the file is correct)."""
    gradebook: Gradebook | None = None
    """Each learner's grade, with an id column (``request.id_col``)."""
    too_few_digits_rows: int = 0
    """Rows right to the digits written whose digits also fit a usual mistake (as typed check grades a row)."""
    look_alike: tuple[int, Mistake] | None = None
    """The first such row's line, and the mistake its digits fit as well."""
    tolerance_given: bool = False
    """The tolerance is the user's (``--tol``), not the digits'."""

    @property
    def verdict(self) -> str:
        """:data:`~sce.grading.verdicts.CORRECT`, ``TOO_FEW_DIGITS`` (a row right to its digits that
        fit a usual mistake too) or ``NOT_CORRECT`` (a wrong row)."""
        if self.wrong_rows:
            return verdicts.NOT_CORRECT
        return verdicts.TOO_FEW_DIGITS if self.too_few_digits_rows else verdicts.CORRECT

    @property
    def correct(self) -> bool:
        return self.verdict == verdicts.CORRECT

    def document(self) -> dict[str, object]:
        """The summary as ``--summary-json`` writes it: sce batch's, and the verdict's counts."""
        return {
            **self.totals.document(),
            "wrong_rows": self.wrong_rows,
            "too_few_digits_rows": self.too_few_digits_rows,
            "all_correct": self.correct,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
        }


#: How many of the worst rows `sce check --csv` lists.
WORST_SHOWN = 5


def check_file(request: BatchRequest, tolerance: float | None = None) -> FileCheck:
    """Grade the gradient (and loss) columns of a file against the exact values, streaming.

    Each gradient column is paired with its logit column by name (``grad_z0`` with ``z0``),
    and every logit column joins the softmax, whichever gradient columns are graded.
    The caller installs the stopping signals' handlers around it (as around :func:`sce.batch.run_batch`).
    With ``request.summary_path``, the summary is written there as JSON, whole, once every row is graded."""
    reading, options = csv_input(request), exact_options(request.options)
    dtype = request.options.dtype
    if request.summary_path is not None:
        check_summary_path(request.summary_path, [request.input_path])
    with readable_input(request.input_path, reads_twice=options.reduction == "mean") as path:
        denominator = mean_denominator(path, reading, options)
        found, search, divided = FileCheck(tolerance_given=tolerance is not None), MistakeSearch(), DividedSearch()
        found.gradebook = None if request.id_col is None else Gradebook(request.id_col)
        found.totals.reduction = options.reduction
        found.totals.denominator = 0.0 if denominator is None else denominator.cross_entropy
        denominators = (1.0, 1.0) if denominator is None else (denominator.cross_entropy, denominator.z_loss)
        for parsed, plan, result, _ in computed_blocks(path, reading, options, denominator):
            assert isinstance(parsed, ParsedBlock)  # the wide way is asked for by sce batch only
            found.classes, found.graded_gradients = len(plan.logits), len(plan.grads or ())
            if dtype != "float64":
                result = _exact_in_type(result, parsed, plan, denominator, dtype)
                typed = type_allowances(result, parsed.targets, dtype, denominators)
            else:
                typed = float64_allowances(result, parsed.targets, denominators)
            graded = []
            beside = dtype != "float64"
            for columns, cells in _graded_block(parsed, plan, result, typed, tolerance, request.delimiter, beside):
                graded.append(columns)
                _add_errors(found, cells, parsed, request.delimiter)
            wrong = np.logical_or.reduce([~columns.ok.all(axis=1) for columns in graded])
            what_ifs = _BlockWhatIfs(_Block(result, parsed, plan, denominator), denominators)
            search.observe(graded, what_ifs)
            divided.observe(result, graded)
            look_alikes = look_alike_rows(what_ifs.look_alikes, graded)
            _add_look_alikes(found, look_alikes, parsed, request.delimiter)
            if found.gradebook is not None:
                lines = record_lines(parsed.block, request.delimiter)
                codes = found.gradebook.learners_of(parsed.text[found.gradebook.column].to_list(), lines)
                found.gradebook.observe(codes, graded, what_ifs(), look_alikes)
            found.rows += result.num_rows
            found.wrong_rows += int(wrong.sum())
            found.totals.add(result)
    if found.rows == 0:
        raise DataProblem("the input has a header but no rows")
    found.mistakes = search.named() if not found.correct else []
    mean = divided.named(options) if not found.correct else None
    if mean is not None:
        found.mistakes.append(("" if set(search.alive) <= {"gradient"} else "gradient", mean))
    if request.summary_path is not None:
        write_summary_file(request.summary_path, request.input_path, found.document())
    return found


def _graded_block(
    parsed: ParsedBlock,
    plan: ColumnPlan,
    result: SoftmaxCrossEntropyResult,
    typed: Mapping[str, np.ndarray] | None,
    tolerance: float | None,
    delimiter: str,
    beside_digits: bool = True,
) -> list[tuple[GradedColumns, _Cells]]:
    """Each graded quantity of a block: given against expected, within the digits written (or
    ``tolerance``) plus, for answers computed in a narrower type, that type's ``typed`` allowance."""
    graded = []
    for quantity, columns, expected in _graded(plan, result.gradient, result.losses):
        given = read_numbers(parsed.text, columns, parsed.block, plan, delimiter)
        written = tolerance if tolerance is not None else written_tolerances(parsed.text, columns)
        written = np.broadcast_to(np.asarray(written, dtype=np.float64), given.shape)
        precision = np.zeros(given.shape) if typed is None else _in_columns(typed[quantity], quantity, plan)
        if not beside_digits:  # float64's rounding: the larger of it and the digits, as typed check allows
            precision = np.maximum(precision - written, 0.0)
        kept = kept_signs(result, quantity)
        if kept is not None:
            kept = kept[:, list(plan.grad_classes or ())] if quantity == "gradient" else kept[:, None]
        flipped = sign_flipped(given, expected, written, kept)
        ok = within(given, expected, written + precision) & ~flipped
        classes = plan.grad_classes if quantity == "gradient" else None
        # A mistake may move the label's −1 to any class: its rounding there is in ulps of 1, as
        # the label's own entry is, so a mistake is fitted within the row's largest allowance.
        naming = written + precision.max(axis=1, keepdims=True, initial=0.0)
        graded.append(
            (
                GradedColumns(quantity, given, written + precision, ok, classes, expected, naming, precision, flipped),
                _Cells(columns, expected, given, written + precision, ok),
            )
        )
    return graded


class _Block(NamedTuple):
    """A block of the file as graded: its exact result, its rows parsed, the column plan, the mean's denominators."""

    result: SoftmaxCrossEntropyResult
    parsed: ParsedBlock
    plan: ColumnPlan
    denominator: MeanDenominators | None


def _exact_in_type(
    result: SoftmaxCrossEntropyResult,
    parsed: ParsedBlock,
    plan: ColumnPlan,
    denominator: MeanDenominators | None,
    dtype: FloatType,
) -> SoftmaxCrossEntropyResult:
    """The exact result of the block's logits as a program computing in ``dtype`` holds them."""
    logits = in_type(parsed.logits, dtype)
    if np.array_equal(logits, parsed.logits):
        return result  # 2, 3, 4 are the same in float32
    if (np.isinf(logits) & np.isfinite(parsed.logits)).any():
        # Beyond the type's range: the core refuses it in the type's own words, at its line and column.
        compute_block(parsed, plan, replace(result.options, dtype=dtype), denominator)
    return compute_block(replace(parsed, logits=logits), plan, result.options, denominator)


def _fits_type(logits: np.ndarray, dtype: FloatType) -> bool:
    """Whether every finite logit is finite in ``dtype``: beyond its range no program computes them in it."""
    return not bool((np.isinf(in_type(logits, dtype)) & np.isfinite(logits)).any())


def _in_columns(allowances: np.ndarray, quantity: str, plan: ColumnPlan) -> np.ndarray:
    """A quantity's allowances for its graded columns (the gradient's: those of their classes)."""
    if quantity != "gradient":
        return allowances
    assert plan.grad_classes is not None
    return allowances[:, list(plan.grad_classes)]


class _BlockWhatIfs:
    """A block's candidate mistakes, computed once when first asked for: the catalogue's row by
    row (:func:`row_what_ifs`), and those of the file's mean (its denominators). Answers graded as
    float64 may be float32's: that candidate is the exact value of the float32 logits, fitted
    within float32's allowance (as ``--dtype float32`` would grade it), not sce's own float32 result."""

    def __init__(self, block: _Block, denominators: tuple[float, float]) -> None:
        self.block, self.denominators = block, denominators
        self.found: list[WhatIf] | None = None

    def look_alikes(self) -> list[WhatIf]:
        """Only the candidates a right answer's few digits may fit (half the work of all of them)."""
        result = self.block.result
        return row_what_ifs(result, look_alikes_only=True) + mean_what_ifs(result, self.block.denominator)

    def __call__(self) -> list[WhatIf]:
        if self.found is None:
            result = self.block.result
            self.found = row_what_ifs(result) + mean_what_ifs(result, self.block.denominator) + [negative_loss()]
            parsed = self.block.parsed
            if result.options.dtype == "float64" and _fits_type(parsed.logits, "float32"):
                exact = _exact_in_type(*self.block, "float32")
                allowance = type_allowances(exact, self.block.parsed.targets, "float32", self.denominators)
                in_float32 = TypedWhatIf(
                    catalogue.FLOAT32, exact.gradient, losses=exact.losses, look_alike=False, allowance=allowance
                )
                self.found = [w if w.mistake != catalogue.FLOAT32 else in_float32 for w in self.found]
        return self.found


def _add_look_alikes(found: FileCheck, look_alikes: list[Mistake | None], parsed: ParsedBlock, delimiter: str) -> None:
    """Count the block's rows whose digits fit a usual mistake as well; keep the first one's line."""
    rows = [row for row, mistake in enumerate(look_alikes) if mistake is not None]
    found.too_few_digits_rows += len(rows)
    if rows and found.look_alike is None:
        mistake = look_alikes[rows[0]]
        assert mistake is not None
        found.look_alike = (record_lines(parsed.block, delimiter)[rows[0]], mistake)


def _graded(
    plan: ColumnPlan, gradient: np.ndarray, losses: np.ndarray
) -> list[tuple[str, tuple[str, ...], np.ndarray]]:
    """Each quantity graded ('gradient', 'loss'), its columns, and their exact values column for column."""
    graded = []
    if plan.grads:
        assert plan.grad_classes is not None
        graded.append(("gradient", plan.grads, gradient[:, list(plan.grad_classes)].astype(np.float64)))
    if plan.loss:
        graded.append(("loss", (plan.loss,), losses[:, None].astype(np.float64)))
    return graded


@dataclass(frozen=True)
class _Cells:
    """A block's graded cells of some columns: what was expected, given, allowed, and found right."""

    columns: tuple[str, ...]
    expected: np.ndarray
    given: np.ndarray
    allowed: np.ndarray
    ok: np.ndarray


def _add_errors(found: FileCheck, cells: _Cells, parsed: ParsedBlock, delimiter: str) -> None:
    """The block's errors into the summary, and its worst wrong cells into the list shown."""
    given, expected = cells.given, cells.expected
    # NaN or ±inf where a number is expected is wrong, with no size of error to compare:
    # counted apart, and listed first among the worst.
    non_finite = ~cells.ok & ~np.isfinite(given) & np.isfinite(expected)
    found.non_finite += int(non_finite.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        # The same infinity read back is no error (inf - inf would be NaN).
        error = np.where(given == expected, 0.0, np.abs(given - expected))
        relative = np.where(expected != 0, error / np.abs(expected), np.where(error > 0, np.inf, 0))
    measured = ~non_finite & ~np.isnan(error)
    if measured.any():
        found.max_abs_error = max(found.max_abs_error, float(error[measured].max()))
        found.max_rel_error = max(found.max_rel_error, float(np.nanmax(np.where(measured, relative, 0.0))))
    bad = np.argwhere(~cells.ok)
    if not len(bad):
        return
    severity = np.where(measured, error, np.inf)[bad[:, 0], bad[:, 1]]
    keep = bad[np.argsort(-severity, kind="stable")[:WORST_SHOWN]]
    lines = record_lines(parsed.block, delimiter)
    found.worst += [
        WrongCell(
            lines[row],
            cells.columns[col],
            float(expected[row, col]),
            str(parsed.text[int(row), cells.columns[col]]).strip(),
            float(given[row, col]),
            float(cells.allowed[row, col]),
        )
        for row, col in keep
    ]
    found.worst = sorted(found.worst, key=_severity)[:WORST_SHOWN]


def _severity(cell: WrongCell) -> float:
    """The sort key of the worst cells: a NaN given where a number is expected first, then by error."""
    error = cell.error
    return -np.inf if np.isnan(error) else -error
