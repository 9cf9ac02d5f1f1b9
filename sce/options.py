"""Everything the loss depends on, targets aside, in one typed value.

Built once (from the command line, a file request or Python keywords),
passed unchanged to the core, batch and grading, and printed by the
renderers. The core validates it (:func:`sce.loss.validated_options`).
Adding an option means adding a field here, using it in the core, and
parsing it in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Reduction = Literal["none", "mean", "sum"]
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")
FloatType = Literal["float64", "float32"]
FLOAT_TYPES: tuple[str, ...] = ("float64", "float32")
SmoothingStyle = Literal["uniform", "off-target"]
SMOOTHING_STYLES: tuple[str, ...] = ("uniform", "off-target")


@dataclass(frozen=True)
class LossOptions:
    """Everything the loss depends on, targets aside: one frozen value.

    The options of ``torch.nn.functional.cross_entropy``, plus a temperature, a float type
    and the options of language-model losses (soft-capping, z-loss, the smoothing convention).
    Built once (from the command line, a file request or Python keywords) and passed unchanged
    to the loss, batch and grading; two equal options are the same loss.

    Parameters
    ----------
    weight : tuple of float, optional
        One non-negative weight per class; None for all 1.
    label_smoothing : float, default 0.0
        ε in [0, 1]: the target becomes (1 − ε)·y + ε/K ('uniform').
    ignore_index : int, default -100
        A label whose rows contribute neither loss nor gradient.
    reduction : {'mean', 'none', 'sum'}, default 'mean'
        As PyTorch: the mean (its default), the sum, or 'none' (each row's own loss).
    temperature : float, default 1.0
        T > 0: the softmax is taken of logits / T.
    dtype : {'float64', 'float32'}, default 'float64'
        The float type computed in, throughout.
    softcap : float, optional
        c > 0: the logits become c·tanh(z/c) before the temperature (Gemma 2).
    z_loss : float, default 0.0
        λ >= 0: each counted row adds λ·lse(b)².
    smoothing_style : {'uniform', 'off-target'}, default 'uniform'
        Where smoothing puts its mass: ε/K on every class, or 1 − ε on the label and
        ε/(K − 1) on each other class (Megatron, t5x).

    See Also
    --------
    sce.softmax_cross_entropy : takes these as keywords, or as ``options=``.

    Notes
    -----
    Order of operations: softcap on the logits as given (a = c·tanh(z/c)),
    then the temperature (b = a/T), then the softmax p = softmax(b).
    The loss checks the values (:func:`sce.loss.validation.validated_options`); building a
    ``LossOptions`` does not.

    Examples
    --------
    >>> from sce import LossOptions, softmax_cross_entropy
    >>> smoothed = LossOptions(label_smoothing=0.1)
    >>> result = softmax_cross_entropy([2.0, 3.0, 4.0], 2, options=smoothed)
    >>> print(f"{result.loss:.4f}")
    0.5076
    >>> per_row = smoothed.replace(reduction="none")
    >>> per_row.reduction, per_row.label_smoothing, smoothed.reduction
    ('none', 0.1, 'mean')
    >>> LossOptions().is_plain, smoothed.is_plain
    (True, False)
    """

    weight: tuple[float, ...] | None = None
    """One non-negative weight per class, or None for all 1."""
    label_smoothing: float = 0.0
    """ε in [0, 1]: the target becomes (1 − ε)·y + ε/K."""
    ignore_index: int = -100
    """A label whose rows contribute neither loss nor gradient."""
    reduction: Reduction = "mean"
    """'mean' (PyTorch's default), 'sum' or 'none' (each row's own loss)."""
    temperature: float = 1.0
    """T > 0: the softmax is taken of logits / T."""
    dtype: FloatType = "float64"
    """The float type computed in, throughout."""
    softcap: float | None = None
    """c > 0: the logits become c·tanh(z/c) before the temperature (Gemma 2); None: no cap."""
    z_loss: float = 0.0
    """λ >= 0: each counted row adds λ·lse(b)², lse(b) = log Σ_j e^(b_j), unweighted;
    with 'mean' divided by the number of counted rows (PaLM, Liger, flash-attention)."""
    smoothing_style: SmoothingStyle = "uniform"
    """'uniform' (PyTorch, Liger, optax): ε/K on every class; 'off-target' (Megatron,
    t5x): 1 − ε on the label and ε/(K − 1) on each other class."""

    def replace(self, **changes: Any) -> LossOptions:
        """These options with some fields changed (the options are frozen)."""
        return dataclasses.replace(self, **changes)

    @property
    def is_plain(self) -> bool:
        """No option changes the posts' one-hot derivation (reduction and ignore index aside)."""
        return (
            self.label_smoothing == 0
            and self.weight is None
            and self.temperature == 1.0
            and self.dtype == "float64"
            and not self.has_llm_options
        )

    @property
    def has_llm_options(self) -> bool:
        """Soft-capping or a z-loss (the smoothing style changes nothing without smoothing)."""
        return self.softcap is not None or self.z_loss != 0
