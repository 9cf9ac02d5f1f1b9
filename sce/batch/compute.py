"""The loss on one block of a file, with the whole file's denominators, its
errors placed in the file."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sce.errors import DataProblem, option_problem
from sce.io.csv.columns import ColumnPlan
from sce.loss import InvalidInput, SoftmaxCrossEntropyResult, softmax_cross_entropy
from sce.loss.reduction import class_counts, weight_sum_of_counts
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.io.csv.parse import ParsedBlock
    from sce.io.csv.plain import PlainBlock
    from sce.io.csv.wide import WideBlock


@dataclass(frozen=True)
class MeanDenominators:
    """What the whole input's mean divides by, counted in a first pass."""

    cross_entropy: float
    """The weight sum of the counted rows (class indices), or the row count (probabilities)."""
    z_loss: float
    """The counted rows: the z-loss is unweighted."""
    rows: float = 0.0
    """Every row, counted or not (for naming a mean over every row; 0 where not counted)."""


def compute_block(
    parsed: ParsedBlock | WideBlock | PlainBlock,
    plan: ColumnPlan,
    options: LossOptions,
    mean_denominator: MeanDenominators | None,
) -> SoftmaxCrossEntropyResult:
    """Run the core on one block; its errors name the line and column."""

    def placed(error: InvalidInput) -> DataProblem:
        assert error.row is not None
        if error.field == "labels":
            column = plan.label
        elif error.column is None:
            column = None
        else:
            column = (plan.logits if error.field == "logits" else plan.targets)[error.column]  # type: ignore[index]
        where = f"line {parsed.line_of_row(error.row)}" + (f", column {column}" if column else "")
        hint = f"; {error.marked_hint}" if error.marked_hint else ""
        return DataProblem(f"{where}: {error.problem}{hint}")

    return core_on_block(parsed.logits, parsed.labels, parsed.targets, options, mean_denominator, placed)


def core_on_block(
    logits: np.ndarray,
    labels: np.ndarray | None,
    targets: np.ndarray | None,
    options: LossOptions,
    denominators: MeanDenominators | None,
    placed: Callable[[InvalidInput], DataProblem],
) -> SoftmaxCrossEntropyResult:
    """The core on one block of a file, with the whole file's denominators; an error about
    the block's data is ``placed`` in the file (an option's is worded as the option's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch reports infinite losses in its summary
        try:
            return softmax_cross_entropy(
                logits,
                labels,
                targets=targets,
                options=options,
                mean_denominator=None if denominators is None else denominators.cross_entropy,
                z_loss_denominator=None if denominators is None else denominators.z_loss,
            )
        except InvalidInput as error:
            if error.field not in ("logits", "labels", "targets") or error.row is None:
                raise option_problem(error) from None
            raise placed(error) from None


@dataclass
class DenominatorTally:
    """The mean's denominators, summed block by block over a first pass."""

    weight_sum: float = 0.0
    counted_rows: float = 0.0
    counts: np.ndarray | None = None
    """Counted rows per class, for labels: D as one call of the core rounds it."""
    rows: float = 0.0

    def add(self, result: SoftmaxCrossEntropyResult) -> None:
        self.rows += result.num_rows
        self.counted_rows += float(result.counted.sum())
        if result.labels is None:
            self.weight_sum += result.num_rows  # probability targets: the mean divides by N
        else:
            block = class_counts(result.labels, result.counted, result.num_classes)
            self.counts = block if self.counts is None else self.counts + block

    def __add__(self, other: DenominatorTally) -> DenominatorTally:
        """The tally of two parts of one input, counted apart: integer counts, so exact and
        associative; the weight sum is taken once, from the summed counts (:meth:`denominators`)."""
        counts = [part for part in (self.counts, other.counts) if part is not None]
        return DenominatorTally(
            weight_sum=self.weight_sum + other.weight_sum,
            counted_rows=self.counted_rows + other.counted_rows,
            counts=sum(counts[1:], counts[0]) if counts else None,
            rows=self.rows + other.rows,
        )

    def denominators(self, options: LossOptions) -> MeanDenominators:
        weight_sum = self.weight_sum if self.counts is None else weight_sum_of_counts(self.counts, options)
        return MeanDenominators(weight_sum, self.counted_rows, self.rows)
