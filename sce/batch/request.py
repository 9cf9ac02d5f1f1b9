"""What a batch run is asked for, and what it found: the request and the summary."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sce.loss import SoftmaxCrossEntropyResult
from sce.loss.exact_sum import ExactSum, exact_ratio
from sce.loss.reduction import reduced_loss
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.io.arrays import DumpRequest


@dataclass
class BatchSummary:
    """What a run found: counts, and the rows' losses summed exactly (the same bits whatever
    the block size, or the order of the rows within blocks)."""

    rows: int = 0
    ignored_rows: int = 0
    classes: int = 0
    correct: int = 0
    counted: int = 0
    infinite_losses: int = 0
    loss_total: ExactSum = field(default_factory=ExactSum)
    """The rows' losses (as written, with their z-loss), summed exactly."""
    z_loss_total: ExactSum | None = None
    """The z-loss terms' part of ``loss_total`` (None without a z-loss): the mean divides it by the counted rows."""
    denominator: float = 0.0
    """For 'mean', what the cross-entropy's sum is divided by (the counted rows' weight sum)."""
    reduction: str = "none"
    seconds: float = 0.0

    @property
    def loss_sum(self) -> float:
        """Σ of the rows' losses, rounded once."""
        return self.loss_total.value()

    @property
    def mean_denominator(self) -> float:
        """What :attr:`mean_loss` divides by: D for 'mean', else the counted rows."""
        return self.denominator if self.reduction == "mean" else float(self.counted)

    @property
    def mean_loss(self) -> float:
        """The mean loss, rounded once: as 'mean' reduces for 'mean', else Σℓ / counted rows."""
        if self.reduction == "mean":
            return reduced_loss(self.loss_total, self.z_loss_total, "mean", (self.denominator, float(self.counted)))
        return exact_ratio([(self.loss_total, float(self.counted))])

    @property
    def reduced_loss(self) -> float:
        """The figure the summary shows: the sum for 'sum', else :attr:`mean_loss`."""
        return self.loss_sum if self.reduction == "sum" else self.mean_loss

    @property
    def accuracy(self) -> float:
        return self.correct / self.counted if self.counted else float("nan")

    def document(self) -> dict[str, object]:
        """The summary as ``--summary-json`` writes it: counts, and every float to its last bit
        (nothing that changes from one run to the next: no time, path or host)."""
        return {
            "reduction": self.reduction,
            "rows": self.rows,
            "counted_rows": self.counted,
            "ignored_rows": self.ignored_rows,
            "classes": self.classes,
            "denominator": self.mean_denominator,
            "loss_sum": self.loss_sum,
            "z_loss_sum": 0.0 if self.z_loss_total is None else self.z_loss_total.value(),
            "mean_loss": self.mean_loss,
            "correct_predictions": self.correct,
            "accuracy": self.accuracy,
            "infinite_losses": self.infinite_losses,
        }

    def __add__(self, other: BatchSummary) -> BatchSummary:
        """The summary of two parts of one input (partitions summed apart, by workers of a
        cluster): exact and associative, so any grouping of the parts gives the same bits."""
        z_totals = [total for total in (self.z_loss_total, other.z_loss_total) if total is not None]
        return BatchSummary(
            rows=self.rows + other.rows,
            ignored_rows=self.ignored_rows + other.ignored_rows,
            classes=max(self.classes, other.classes),
            correct=self.correct + other.correct,
            counted=self.counted + other.counted,
            infinite_losses=self.infinite_losses + other.infinite_losses,
            loss_total=self.loss_total + other.loss_total,
            z_loss_total=sum(z_totals, ExactSum()) if z_totals else None,
            denominator=self.denominator,
            reduction=self.reduction,
            seconds=max(self.seconds, other.seconds),
        )

    def add(self, result: SoftmaxCrossEntropyResult) -> None:
        counted = result.counted
        self.rows += result.num_rows
        self.ignored_rows += int((~counted).sum())
        self.classes = result.num_classes
        self.counted += int(counted.sum())
        truth = result.labels if result.labels is not None else np.argmax(result.target, axis=1)
        self.correct += int(((result.argmax == truth) & counted).sum())
        self.infinite_losses += int(np.isinf(result.losses).sum())
        self.loss_total += ExactSum.of(result.losses)
        if result.options.z_loss != 0 and result.z_losses is not None:
            self.z_loss_total = ExactSum.of(result.z_losses) + (self.z_loss_total or ExactSum())


def json_text(document: dict[str, object]) -> str:
    """``document`` as JSON, floats as their shortest round-trip text (``repr``); NaN and ±inf,
    which JSON has no number for, as the strings "nan", "inf" and "-inf", as in sce's other
    JSON (Python's ``float()`` reads them back)."""

    def spelled(value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return value

    return json.dumps({key: spelled(value) for key, value in document.items()}, indent=2, allow_nan=False) + "\n"


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
    summary_path: str | None = None
    """Where to write the summary as JSON, put in place with the output (None: nowhere)."""
    id_col: str | None = None
    """`sce check --csv`: the column of each row's learner id, to grade each learner apart."""
