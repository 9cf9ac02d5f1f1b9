"""sce: softmax cross-entropy, its loss and its gradient, exactly.

The Python API is :func:`softmax_cross_entropy` (see :mod:`sce.loss`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types a user's mypy sees; at run time the names load lazily (below)
    from sce.loss import InvalidInput, LossWarning, SoftmaxCrossEntropyResult, softmax_cross_entropy

__version__ = "0.1.0"

__all__ = ["softmax_cross_entropy", "SoftmaxCrossEntropyResult", "InvalidInput", "LossWarning"]


def __getattr__(name: str) -> Any:
    # The core imports numpy; `sce --version` and `sce --help` should not wait for it.
    if name in __all__:
        from sce import loss

        return getattr(loss, name)
    raise AttributeError(f"module 'sce' has no attribute {name!r}")
