"""sce: softmax cross-entropy, its loss and its gradient, exactly.

The Python API: :func:`softmax_cross_entropy` computes the loss and its gradient as
``torch.nn.functional.cross_entropy`` defines them, with every digit right; :class:`LossOptions`
holds its options as one value; :class:`SoftmaxCrossEntropyResult` is what it returns;
:class:`InvalidInput` is raised for an input the loss is not defined for and :class:`LossWarning`
warns of an infinite or NaN result. :mod:`sce.testing` grades an implementation or a gradient
computed elsewhere (from pytest too).

Examples
--------
>>> import sce
>>> result = sce.softmax_cross_entropy([[2.0, 3.0, 4.0]], [1])
>>> print(f"{result.loss:.4f}", *(f"{g:.4f}" for g in result.gradient[0]))
1.4076 0.0900 -0.7553 0.6652
>>> sce.LossOptions().reduction, sce.LossOptions(reduction="none").reduction
('mean', 'none')

:func:`explain` derives the same numbers stage by stage, as ``sce grad --steps`` does; a notebook
displays the derivation with its formulas, and a result as a table with bars:

>>> sce.explain([2.0, 3.0, 4.0], label=1).stages[1].title
'Softmax, stabilised'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types a user's mypy sees; at run time the names load lazily (below)
    from sce.loss import InvalidInput, LossWarning, SoftmaxCrossEntropyResult, softmax_cross_entropy
    from sce.notebook import explain as explain
    from sce.options import LossOptions

# Makes the package sce.explain callable as sce.explain(...) (no numpy loaded).
from sce.notebook import Derivation as Derivation
from sce.version import __version__ as __version__

__all__ = [
    "softmax_cross_entropy",
    "explain",
    "LossOptions",
    "SoftmaxCrossEntropyResult",
    "Derivation",
    "InvalidInput",
    "LossWarning",
]


_LOSS_NAMES = ("softmax_cross_entropy", "LossOptions", "SoftmaxCrossEntropyResult", "InvalidInput", "LossWarning")


def __getattr__(name: str) -> Any:
    # The loss imports numpy; `sce --version` and `sce --help` should not wait for it.
    if name in _LOSS_NAMES:
        from sce import loss

        return getattr(loss, name)
    raise AttributeError(f"module 'sce' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names only: not the helpers this module itself imports (Any, TYPE_CHECKING).
    return sorted({*__all__, "__version__"})
