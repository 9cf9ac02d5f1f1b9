"""What a batch run is asked for, and what it found: the request and the summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sce.loss import SoftmaxCrossEntropyResult
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.io.arrays import DumpRequest


@dataclass
class BatchSummary:
    rows: int = 0
    ignored_rows: int = 0
    classes: int = 0
    correct: int = 0
    counted: int = 0
    infinite_losses: int = 0
    loss_sums: list[float] = field(default_factory=list)
    z_loss_sums: list[float] = field(default_factory=list)
    """The z-loss terms' part of ``loss_sums`` (the mean divides it by the counted rows instead)."""
    denominator: float = 0.0
    reduction: str = "none"
    seconds: float = 0.0

    @property
    def reduced_loss(self) -> float:
        total = math.fsum(self.loss_sums)
        if self.reduction == "sum":
            return total
        if self.reduction == "mean":
            z_total = math.fsum(self.z_loss_sums)
            cross_entropy = (total - z_total) / self.denominator if self.denominator else float("nan")
            return cross_entropy + (z_total / self.counted if self.counted else 0.0)
        return total / self.counted if self.counted else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.counted if self.counted else float("nan")

    def add(self, result: SoftmaxCrossEntropyResult) -> None:
        counted = result.counted
        self.rows += result.num_rows
        self.ignored_rows += int((~counted).sum())
        self.classes = result.num_classes
        self.counted += int(counted.sum())
        truth = result.labels if result.labels is not None else np.argmax(result.target, axis=1)
        self.correct += int(((result.argmax == truth) & counted).sum())
        self.infinite_losses += int(np.isinf(result.losses).sum())
        with np.errstate(over="ignore"):  # losses near the largest float add up to inf, without a raw warning
            self.loss_sums.append(float(result.losses.sum(dtype=np.float64)))
            if result.z_losses is not None:
                self.z_loss_sums.append(float(result.z_losses.sum(dtype=np.float64)))


def per_row_options() -> LossOptions:
    """A batch's default options: one row written per input row, so each row's own loss."""
    return LossOptions(reduction="none")


@dataclass
class BatchRequest:
    input_path: str
    output_path: str | None
    label_col: str | None = None
    logit_cols: str | None = None
    target_cols: str | None = None
    has_header: bool = True
    delimiter: str = ","
    encoding: str = "utf-8"
    output_format: str = "csv"
    digits: int | None = None
    options: LossOptions = field(default_factory=per_row_options)
    grad_cols: str | None = None
    loss_col: str | None = None
    arrays: DumpRequest | None = None
    """A dump of arrays to read instead of the CSV input (see :mod:`.array_source`)."""
