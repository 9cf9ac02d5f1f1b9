"""Plain words shared by the renderers (no rich: the Markdown format needs none)."""

from __future__ import annotations

from ..core import SoftmaxCrossEntropyResult
from ..numbers import given


def options_summary(result: SoftmaxCrossEntropyResult) -> list[str]:
    """The options that differ from the defaults, in words."""
    options = result.options
    dtype = options.dtype
    words = []
    if options.label_smoothing:
        words.append(f"label smoothing {given(options.label_smoothing)}")
    if options.weight is not None:
        words.append("class weights " + ", ".join(given(w, dtype) for w in options.weight))
    if options.label_smoothing and options.smoothing_style != "uniform":
        words.append("smoothed off the target (1 − ε on the label, ε/(K − 1) on each other class)")
    if options.softcap is not None:
        words.append(f"logits soft-capped at {given(options.softcap)} (c·tanh(z/c))")
    if options.temperature != 1.0:
        words.append(f"temperature {given(options.temperature)}")
    if options.z_loss:
        words.append(f"z-loss {given(options.z_loss)}·lse²")
    if options.reduction != "none":
        words.append(f"reduction {options.reduction}")
    if dtype != "float64":
        words.append(f"computed in {dtype}")
    return words


JACOBIAN_ROUTE_FAILS = (
    "A probability with target mass is 0 in float64, so ∂L/∂s has an infinite entry and the product "
    "meets ∞ × 0 (NaN): this route fails in floating point, s - y does not."
)
HESSIAN_OVERFLOWS = (
    "The Hessian overflows float64 here (its factor 1/T² is beyond 1.8e308), so its eigenvalues "
    "cannot be computed (NaN); they are ≥ 0, the smallest 0 along (1, 1, …, 1)."
)
