"""JSON: the stable machine interface of ``sce grad --format json``."""

from __future__ import annotations

import json
from typing import Any

from ..core import SoftmaxCrossEntropyResult
from .numbers import json_number


def grad_document(result: SoftmaxCrossEntropyResult, row: int = 0) -> dict[str, Any]:
    """One row's result as plain JSON data, every float at full precision."""
    dtype = result.options.dtype
    options = result.options

    def numbers(values: Any) -> list[float | str]:
        return [json_number(v, dtype) for v in values]

    loss = result.loss if options.reduction != "none" else result.losses[row]
    return {
        "logits": numbers(result.logits[row]),
        "label": None if result.labels is None else int(result.labels[row]),
        "target": numbers(result.target[row]),
        "probabilities": numbers(result.probabilities[row]),
        "loss": json_number(loss, dtype),
        "gradient": numbers(result.gradient[row]),
        "predicted": int(result.argmax[row]),
        "options": {
            "label_smoothing": options.label_smoothing,
            "weight": None if options.weight is None else numbers(options.weight),
            "temperature": options.temperature,
            "reduction": options.reduction,
            "ignore_index": options.ignore_index,
            "dtype": str(options.dtype),
        },
    }


def dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2)
