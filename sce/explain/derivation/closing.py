"""The last stages of every route: sanity checks a student can make, and how sce computes it.

The mathematics of the earlier stages holds for exact numbers; how sce keeps the
digits of floating point (a log1p, a subtraction avoided) is said once, at the
end, and only where it applies to these numbers.
"""

from __future__ import annotations

import math

import numpy as np

from sce.explain.derivation.stages import (
    Equation,
    Item,
    Stage,
    exponent,
    rounding_of_sum,
)
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import latex

#: The gradient's entries sum to this, up to rounding.
SUM_OF_GRADIENT = Equation("\\sum_i \\frac{\\partial L}{\\partial z_i}", "⟨sum⟩")


def gradient_sums_to_zero(result: SoftmaxCrossEntropyResult) -> bool:
    """Whether ∂L/∂z sums to 0 for exact numbers: it does unless a z-loss or a cap is set."""
    return not result.options.has_llm_options


def gradient_sum(result: SoftmaxCrossEntropyResult) -> Equation:
    """Σ_i ∂L/∂z_i, added up in floating point."""
    return Equation(SUM_OF_GRADIENT.symbolic, SUM_OF_GRADIENT.substituted, {"sum": float(result.gradient[0].sum())})


def sanity_stage(result: SoftmaxCrossEntropyResult, digits: int) -> Stage | None:
    """Two checks a student can make of any answer: uniform logits give log K, and the gradient sums to 0."""
    notes: list[str] = []
    items: list[Item] = []
    if _uniform_check_applies(result):
        classes = result.num_classes
        loss = float(result.losses[0])
        uniform = math.log(classes)
        comparison = (
            "equals it: with one class there is nothing to learn" if classes == 1
            else "is above it: on this example the model does worse than that guess" if loss > uniform
            else "is below it: on this example the model does better than that guess"
        )
        notes.append(
            "If every logit were the same, every $s_i$ would be $1/K$ and $L = -\\log(1/K) = \\log K$, "
            f"the loss of a guess that knows nothing. Here $L = {latex(loss, digits)}$ {comparison}."
        )
        items.append(Equation("\\log K", "\\log(⟨K⟩) = ⟨u⟩", {"K": classes, "u": uniform}))
    if gradient_sums_to_zero(result):
        notes.append(
            "The entries of the gradient sum to 0: raising every logit by the same amount changes "
            "no probability, so it cannot change the loss."
        )
        notes += rounding_of_sum(result.gradient[0])
        items.append(gradient_sum(result))
    if not items:
        return None
    return Stage("Sanity checks", tuple(notes), tuple(items))


def _uniform_check_applies(result: SoftmaxCrossEntropyResult) -> bool:
    """log K is the loss at uniform logits where the target sums to 1 and nothing weighs or adds to it."""
    options = result.options
    if options.weight is not None or options.z_loss:
        return False
    target = result.target[0].astype(np.float64)
    return bool(math.isclose(float(target.sum()), 1.0, rel_tol=1e-12)) and result.num_classes >= 1


def how_computed_stage(result: SoftmaxCrossEntropyResult, digits: int) -> Stage:
    """What sce does differently from the formulas above to keep every digit, for these numbers."""
    others = f"\\sum_{{j \\neq m}} e^{{{exponent(result, 'j')}}}"
    notes = [
        "sce never forms $\\log s_i$ from a rounded $s_i$: with $m$ the class of the largest logit and "
        f"$S = {others}$, it computes $-\\log s_i = \\log(1 + S) - ({exponent(result, 'i')})$, "
        "$\\log(1 + S)$ by log1p, so that a confident prediction keeps its tiny loss."
    ]
    if result.labels is not None and not result.options.label_smoothing:
        c = result.label_of(0)
        s_c = float(result.probabilities[0, c])
        here = (
            f"Here $s_c = {latex(s_c, digits)}$ is above $1/2$, so this is the form used."
            if s_c > 0.5
            else f"Here $s_c = {latex(s_c, digits)}$ is not above $1/2$, so $s_c - 1$ is computed as it is written."
        )
        notes.append(
            "It computes $s_c - 1$ as $-\\sum_{j \\neq c} s_j = -S / (1 + S)$ when $s_c > 1/2$: the subtraction "
            "would cancel the digits of a confident prediction. " + here
        )
    return Stage("How sce computes it", tuple(notes), ())
