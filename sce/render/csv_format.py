"""CSV: one row per class, full precision."""

from __future__ import annotations

import csv
import io

from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import exact

GRAD_COLUMNS = ("class", "logit", "target", "probability", "gradient", "loss", "reduction")


def grad_csv(result: SoftmaxCrossEntropyResult, row: int = 0) -> str:
    """One line per class; ``loss`` (the row's loss, or the reduced loss) and the ``reduction``
    it used repeat so each line stands alone."""
    dtype = result.options.dtype
    loss = result.reported_loss(row)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(GRAD_COLUMNS)
    for k in range(result.num_classes):
        writer.writerow(
            (
                k,
                exact(result.logits[row, k], dtype),
                exact(result.target[row, k], dtype),
                exact(result.probabilities[row, k], dtype),
                exact(result.gradient[row, k], dtype),
                exact(loss, dtype),
                result.options.reduction,
            )
        )
    return buffer.getvalue()
