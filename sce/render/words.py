"""Plain words shared by the renderers (no rich: the Markdown format needs none)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import display, given

if TYPE_CHECKING:
    from sce.explain.proofs import HessianProof, JacobianProof


def options_summary(result: SoftmaxCrossEntropyResult) -> list[str]:
    """The options that differ from the defaults, in words (the reduction has its own line:
    :func:`reduction_line`)."""
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
    if dtype != "float64":
        words.append(f"computed in {dtype}")
    return words


def reduction_line(reduction: str) -> str:
    """The reduction an output used, in the same words in every output: "reduction: none"."""
    return f"reduction: {reduction}"


JACOBIAN_ROUTE_FAILS = (
    "A probability with target mass is 0 in float64, so ∂L/∂s has an infinite entry and the product "
    "meets ∞ × 0 (NaN): this route fails in floating point, s - y does not."
)
DL_DS_OVERFLOWS = (
    "∂L/∂s = -w ⊙ y / s has an entry beyond float64's range (1.8e308) here, though no probability is 0, "
    "so the product meets ∞: this route fails in floating point, s - y does not."
)


def jacobian_failure(dl_ds_overflows: bool) -> str:
    """Why the Jacobian route gives ∞ or NaN: ∂L/∂s overflowed, or a probability with target mass is 0."""
    return DL_DS_OVERFLOWS if dl_ds_overflows else JACOBIAN_ROUTE_FAILS


HESSIAN_OVERFLOWS = (
    "The Hessian overflows float64 here (its factor 1/T² is beyond 1.8e308), so its eigenvalues "
    "cannot be computed (NaN); they are ≥ 0, the smallest 0 along (1, 1, …, 1)."
)


HESSIAN_WITH_OPTIONS = (
    "∇²L = diag(a′) H_a diag(a′) + diag(∂L/∂a ⊙ a″), a = c·tanh(z/c), "
    "H_a = [(Σⱼ wⱼ yⱼ)/D (diag(s) - s sᵀ) + λ/D_z (2 s sᵀ + 2·lse·(diag(s) - s sᵀ))] / T²"
)


def jacobian_words(proof: JacobianProof) -> tuple[str, str]:
    """(what ∂s/∂z is, what the product is), true for the options the result has."""
    if proof.softmax_jacobian is None:
        matrix = "∂s/∂z = diag(s) - s sᵀ"
    elif proof.options.softcap is not None:
        matrix = "∂s/∂z = (diag(s) - s sᵀ) · diag(1 − tanh²(z/c)) / T, the softmax's Jacobian at b = a/T times ∂b/∂z"
    else:
        matrix = "∂s/∂z = (diag(s) - s sᵀ) / T, the softmax's Jacobian at z/T times 1/T"
    options = proof.options
    includes = []
    if options.reduction == "mean" and proof.denominator != 1:
        includes.append("the mean's 1/D")
    if options.z_loss:
        through = " ⊙ (1 − tanh²(z/c))" if options.softcap is not None else ""
        over = "(T·D_z)" if options.temperature != 1.0 else "D_z"
        includes.append(f"the z-loss's 2λ·lse·s{through} / {over}, which is not through s")
    product = "∂L/∂s · ∂s/∂z"
    if includes:
        product += " with " + " and ".join(includes)
    return matrix, product


def eigenvalue_text(value: float, error: float, digits: int) -> str:
    """An eigenvalue with no more digits than ``error`` (how far it may be from the exact one) leaves it:
    0.11855 as asked, -3.8e-13 where the error is 4e-15, "0 ± 4.0e-15" where the value is within it."""
    if not error or not math.isfinite(value):
        return display(value, digits)
    if abs(value) <= error:
        return f"0 ± {display(error, 2)}"
    kept = math.floor(math.log10(abs(value) / error))
    return display(value, max(1, min(digits, kept)))


def hessian_formula(proof: HessianProof) -> str:
    if not proof.language_model:
        return "∇²L = (Σⱼ wⱼ yⱼ) (diag(s) - s sᵀ) / T²"
    return HESSIAN_WITH_OPTIONS if proof.softcap else HESSIAN_WITH_OPTIONS.split("H_a = ")[1].replace("[", "∇²L = [", 1)


def hessian_statement(proof: HessianProof) -> str:
    """What the eigenvalues say, only what is true for the options and the numbers given."""
    if not proof.language_model:
        return (
            "All are ≥ 0 (up to rounding): the loss is convex in z. The smallest is 0, along (1, 1, …, 1): "
            "adding the same number to every logit changes nothing."
        )
    if not proof.all_eigenvalues or not proof.finite:
        return "With a cap or a z-loss the loss need not be convex in z."
    reasons = ["tanh bends the logits"] if proof.softcap else []
    if proof.negative_lse:
        reasons.append("λ·lse² is not convex where lse < 0, as here")
    if proof.positive_semidefinite:
        return (
            "All are ≥ 0 (up to rounding) here: the loss is convex near these logits"
            + (f", not necessarily elsewhere ({'; '.join(reasons)})" if reasons else "")
            + ". Adding the same number to every logit changes "
            + ("the capped logits' differences" if proof.softcap else "lse, the z-loss")
            + ": no eigenvalue need be 0."
        )
    return (
        f"The smallest, {display(float(np.min(proof.eigenvalues)), 3)}, is negative: the loss is not convex in z "
        f"at these logits ({'; '.join(reasons) or 'rounding'})."
    )
