"""The usual mistakes: what each slip gives, to name it when an answer matches."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..core import SoftmaxCrossEntropyResult, softmax_cross_entropy


@dataclass(frozen=True)
class Mistake:
    name: str
    quantity: str
    value: np.ndarray


def rerun(
    result: SoftmaxCrossEntropyResult,
    targets: ArrayLike | None = None,
    *,
    label: int | None = None,
    **changes: Any,
) -> SoftmaxCrossEntropyResult:
    """Row 0 of ``result`` again, with some options (or the label) changed.

    ``targets`` are the probability targets as given (before smoothing).
    Silent: a what-if's warnings are not the user's business.
    """
    labels = None if result.labels is None else [int(result.labels[0]) if label is None else label]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return softmax_cross_entropy(
            result.logits[:1],
            labels,
            targets=None if labels is not None else targets,
            options=result.options.replace(**changes),
        )


def usual_mistakes(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None = None) -> list[Mistake]:
    """What the usual slips give, for the gradient, the probabilities and the loss.

    ``targets`` are the probability targets as given, if any (before smoothing).
    """

    def recompute(label: int | None = None, **changes: Any) -> SoftmaxCrossEntropyResult:
        return rerun(result, targets, label=label, **changes)

    options = result.options
    p = result.probabilities[0].astype(np.float64)
    g = result.gradient[0].astype(np.float64)
    y = result.target[0].astype(np.float64)
    w = result.class_weights.astype(np.float64)
    scale = result.gradient_scale
    loss = result.reported_loss()
    found = [
        Mistake(
            "the probabilities, without subtracting 1 at the correct class (∂L/∂z = s - y)",
            "gradient",
            g + w * y * scale,
        ),
        Mistake("y - s: the sign is flipped (∂L/∂z = s - y)", "gradient", -g),
        Mistake("the loss in log base 10: cross-entropy uses the natural log", "loss", np.array([loss / math.log(10)])),
        Mistake("the loss in log base 2: cross-entropy uses the natural log", "loss", np.array([loss / math.log(2)])),
        Mistake(
            "the shifted exponentials e^(z - M), not divided by their sum",
            "probabilities",
            result.exp_shifted[0].astype(np.float64),
        ),
    ]
    if result.denominator != 1:
        what = "the weight sum" if result.labels is not None else "N"
        found.append(
            Mistake(
                f"the gradient of the summed loss: the mean divides by {what} ({result.denominator:g})",
                "gradient",
                g * result.denominator,
            )
        )
        found.append(
            Mistake(
                f"the summed loss: the mean divides by {what} ({result.denominator:g})",
                "loss",
                np.array([loss * result.denominator]),
            )
        )
    if result.labels is not None and options.weight is not None:
        label = int(result.labels[0])
        per_class = w * (p - np.eye(len(p))[label]) * scale
        found.append(
            Mistake(
                f"weights applied class by class, w ⊙ (s - y): every entry is scaled by the label's weight w_{label}",
                "gradient",
                per_class,
            )
        )
    if options.temperature != 1.0:
        found.append(Mistake("the factor 1/T of the temperature is missing", "gradient", g * options.temperature))
        untempered = recompute(temperature=1.0)
        found.append(
            Mistake("the softmax of z, not of z / T", "probabilities", untempered.probabilities[0].astype(np.float64))
        )
        found.append(
            Mistake(
                "the loss without the temperature (softmax of z, not z / T)",
                "loss",
                np.array([untempered.reported_loss()]),
            )
        )
    if options.label_smoothing:
        plain = recompute(label_smoothing=0.0)
        found.append(Mistake("label smoothing left out", "gradient", plain.gradient[0].astype(np.float64)))
        found.append(Mistake("label smoothing left out", "loss", np.array([plain.reported_loss()])))
    if result.labels is not None and int(result.labels[0]) >= 1:
        # A label read as 1-based: "--label 2" taken to mean the second class.
        label = int(result.labels[0])
        other = recompute(label=label - 1)
        why = f"labels are 0-based, so --label {label} is the class at index {label}"
        found.append(
            Mistake(f"the gradient for class {label - 1}: {why}", "gradient", other.gradient[0].astype(np.float64))
        )
        found.append(Mistake(f"the loss for class {label - 1}: {why}", "loss", np.array([other.reported_loss()])))
    return found
