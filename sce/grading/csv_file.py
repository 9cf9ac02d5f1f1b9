"""`sce check --csv`: grading the gradient and loss columns of a file against
the exact values, block by block."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sce.batch.csv_source import computed_blocks, csv_input, mean_denominator, readable_input
from sce.batch.loop import check_summary_path, write_summary_file
from sce.batch.request import BatchRequest, BatchSummary
from sce.errors import DataProblem
from sce.grading.answers import within
from sce.grading.catalogue import Mistake
from sce.grading.csv_mistakes import GradedColumns, MistakeSearch
from sce.io.csv.parse import ParsedBlock, read_numbers
from sce.io.csv.records import record_lines
from sce.number_text import written_tolerances


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
    max_rel_error: float = 0.0
    worst: list[WrongCell] = field(default_factory=list)
    totals: BatchSummary = field(default_factory=BatchSummary)
    """The file's exact values summed as sce batch sums them (for ``--summary-json``)."""
    mistakes: list[tuple[str, Mistake]] = field(default_factory=list)
    """(the quantity, or "" for every wrong one; the catalogue's mistake) for each mistake that
    explains every wrong entry of that quantity (none when the file is correct)."""

    @property
    def correct(self) -> bool:
        return self.wrong_rows == 0

    def document(self) -> dict[str, object]:
        """The summary as ``--summary-json`` writes it: sce batch's, and the verdict's counts."""
        return {
            **self.totals.document(),
            "wrong_rows": self.wrong_rows,
            "all_correct": self.correct,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
        }


#: How many of the worst rows `sce check --csv` lists.
WORST_SHOWN = 5


def check_file(request: BatchRequest, tolerance: float | None = None) -> FileCheck:
    """Grade the gradient (and loss) columns of a file against the exact values, streaming.

    The caller installs the stopping signals' handlers around it (as around :func:`sce.batch.run_batch`).
    With ``request.summary_path``, the summary is written there as JSON, whole, once every row is graded."""
    reading, options = csv_input(request), request.options
    if request.summary_path is not None:
        check_summary_path(request.summary_path, [request.input_path])
    with readable_input(request.input_path, reads_twice=options.reduction == "mean") as path:
        denominator = mean_denominator(path, reading, options)
        found, search = FileCheck(), MistakeSearch()
        found.totals.reduction = options.reduction
        found.totals.denominator = 0.0 if denominator is None else denominator.cross_entropy
        for parsed, plan, result, _ in computed_blocks(path, reading, options, denominator):
            assert isinstance(parsed, ParsedBlock)  # the wide way is asked for by sce batch only
            pairs = []
            if plan.grads:
                pairs.append((plan.grads, result.gradient))
            if plan.loss:
                pairs.append(((plan.loss,), result.losses[:, None]))
            wrong = np.zeros(result.num_rows, dtype=bool)
            graded = []
            for columns, expected in pairs:
                expected = expected.astype(np.float64)
                given = read_numbers(parsed.text, columns, parsed.block, plan, request.delimiter)
                allowed = tolerance if tolerance is not None else written_tolerances(parsed.text, columns)
                allowed = np.broadcast_to(np.asarray(allowed, dtype=np.float64), given.shape)
                ok = within(given, expected, allowed)
                wrong |= ~ok.all(axis=1)
                quantity = "loss" if tuple(columns) == (plan.loss,) else "gradient"
                graded.append(GradedColumns(quantity, given, allowed, ok))
                with np.errstate(divide="ignore", invalid="ignore"):
                    # The same infinity read back is no error (inf - inf would be NaN).
                    error = np.where(given == expected, 0.0, np.abs(given - expected))
                    relative = np.where(expected != 0, error / np.abs(expected), np.where(error > 0, np.inf, 0))
                found.max_abs_error = max(found.max_abs_error, float(np.nanmax(error)))
                found.max_rel_error = max(found.max_rel_error, float(np.nanmax(relative)))
                bad = np.argwhere(~ok)
                if len(bad):
                    errors = error[bad[:, 0], bad[:, 1]]
                    keep = bad[np.argsort(-errors, kind="stable")[:WORST_SHOWN]]
                    lines = record_lines(parsed.block, request.delimiter)
                    found.worst += [
                        WrongCell(
                            lines[row],
                            columns[col],
                            float(expected[row, col]),
                            str(parsed.text[int(row), columns[col]]).strip(),
                            float(given[row, col]),
                            float(allowed[row, col]),
                        )
                        for row, col in keep
                    ]
                    found.worst = sorted(found.worst, key=lambda cell: -cell.error)[:WORST_SHOWN]
            search.observe(result, graded)
            found.rows += result.num_rows
            found.wrong_rows += int(wrong.sum())
            found.totals.add(result)
    if found.rows == 0:
        raise DataProblem("the input has a header but no rows")
    found.mistakes = search.named() if not found.correct else []
    if request.summary_path is not None:
        write_summary_file(request.summary_path, request.input_path, found.document())
    return found
