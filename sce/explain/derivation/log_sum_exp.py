"""The log-sum-exp route: L = log Σ_j e^{z_j} − z_c, whose derivative is s − y in one line."""

from __future__ import annotations

import math

import numpy as np

from sce.explain.derivation.stages import (
    MAX_LISTED_CLASSES,
    Equation,
    Item,
    Stage,
    important_classes,
    per_class,
    rounds_to_one,
)
from sce.loss import SoftmaxCrossEntropyResult

#: How a derivation may reach ∂L/∂z: through s by the chain rule, through the log-sum-exp, through the Jacobian.
ROUTES = ("chain", "lse", "jacobian")


def route_refusal(result: SoftmaxCrossEntropyResult, route: str) -> str | None:
    """Why ``route`` cannot derive this result, else None: the lse route takes a label or a target
    (smoothed or not) without a weight, a temperature, a cap or a z-loss; the Jacobian route also
    takes a weight and a temperature."""
    if route == "chain":
        return None
    options = result.options
    given = [
        name
        for name, on in (
            ("--weight", options.weight is not None and route == "lse"),
            ("--temperature", options.temperature != 1.0 and route == "lse"),
            ("--softcap", options.softcap is not None),
            ("--z-loss", bool(options.z_loss)),
        )
        if on
    ]
    if not given:
        return None
    names = " and ".join(given)
    return f"--route {route} cannot carry {names}; use --route chain (the default), which carries every option"


def log_sum_exp_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    """L written with the log-sum-exp, and its derivative, for a target that sums to 1 and no options."""
    one_hot = result.labels is not None and not result.options.label_smoothing
    target_logits = "z_c" if one_hot else "\\sum_i y_i z_i"
    notes = [
        "Put $s_c = e^{z_c} / \\sum_j e^{z_j}$ inside the logarithm: "
        "$L = -\\log s_c = \\log \\sum_j e^{z_j} - z_c$, the log-sum-exp of the logits minus the correct "
        "class's logit." if one_hot else
        "Put $\\log s_i = z_i - \\log \\sum_j e^{z_j}$ into the loss: $L = -\\sum_i y_i \\log s_i = "
        "\\left(\\sum_i y_i\\right) \\log \\sum_j e^{z_j} - \\sum_i y_i z_i = \\log \\sum_j e^{z_j} - "
        "\\sum_i y_i z_i$, the target summing to 1: the log-sum-exp of the logits minus their mean under the target.",
        "With the shift, $\\log \\sum_j e^{z_j} = M + \\log \\sum_j e^{z_j - M}$."
        + (" With one-hot $\\mathbf{y}$, $z_c = \\sum_i y_i z_i$." if one_hot else ""),
        "Differentiate: the log-sum-exp's derivative is the softmax, "
        "$\\frac{\\partial}{\\partial z_i} \\log \\sum_j e^{z_j} = \\frac{e^{z_i}}{\\sum_j e^{z_j}} = s_i$, "
        f"and that of ${target_logits}$ is $y_i$, so $\\frac{{\\partial L}}{{\\partial z_i}} = s_i - y_i$: "
        "no case split, no quotient rule.",
    ]
    items: list[Item] = [] if one_hot else [_target_mean(result)]
    items.append(_loss_equation(result, f"z_{{{result.label_of(0)}}}" if one_hot else target_logits))
    items += per_class(result.num_classes, important_classes(result), lambda k: _gradient_equation(result, k))
    return Stage("The log-sum-exp route", tuple(notes), tuple(items))


def _target_mean(result: SoftmaxCrossEntropyResult) -> Equation:
    """Σ_i y_i z_i over the classes with target mass (0 · −∞ is no term), written out for a few classes."""
    y, z = result.target[0].astype(np.float64), result.logits[0].astype(np.float64)
    terms = [int(k) for k in np.flatnonzero(y)]
    value = math.fsum(float(y[k]) * float(z[k]) for k in terms)
    if len(terms) > MAX_LISTED_CLASSES:
        return Equation("\\sum_i y_i z_i", "⟨m⟩", {"m": value})
    written = " + ".join(f"⟨y{k}⟩ \\times ⟨z{k}⟩" for k in terms) or "0"
    named = {f"y{k}": float(y[k]) for k in terms} | {f"z{k}": float(z[k]) for k in terms}
    return Equation("\\sum_i y_i z_i", f"{written} = ⟨m⟩", {**named, "m": value})


def _loss_equation(result: SoftmaxCrossEntropyResult, target_logits: str) -> Equation:
    symbolic = f"L = M + \\log \\sum_j e^{{z_j - M}} - {target_logits}"
    top = int(result.argmax[0])
    y, z = result.target[0].astype(np.float64), result.logits[0].astype(np.float64)
    values = {
        "M": float(result.capped_logits[0, top]),
        "m": math.fsum(float(y[k]) * float(z[k]) for k in np.flatnonzero(y)),
        "L": float(result.losses[0]),
    }
    if y[top] > 0 and rounds_to_one(result, top):  # Σ_j e^{z_j − M} rounds to 1: written 1 + S, as sce computes it
        return Equation(symbolic, "⟨M⟩ + \\log(1 + ⟨S⟩) - ⟨m⟩ = ⟨L⟩", {**values, "S": float(result.others_sum[0])})
    return Equation(symbolic, "⟨M⟩ + \\log(⟨sum⟩) - ⟨m⟩ = ⟨L⟩", {**values, "sum": float(result.exp_sum[0])})


def _gradient_equation(result: SoftmaxCrossEntropyResult, k: int) -> Equation:
    symbolic = f"\\frac{{\\partial L}}{{\\partial z_{{{k}}}}} = s_{{{k}}} - y_{{{k}}}"
    s_k, y_k, g_k = float(result.probabilities[0, k]), float(result.target[0, k]), float(result.gradient[0, k])
    if y_k == 1 and rounds_to_one(result, k):
        others, total = float(result.others_sum[0]), float(result.exp_sum[0])
        return Equation(symbolic, "-\\frac{⟨S⟩}{⟨sum⟩} = ⟨g⟩", {"S": others, "sum": total, "g": g_k})
    return Equation(symbolic, "⟨s⟩ - ⟨y⟩ = ⟨g⟩", {"s": s_k, "y": y_k, "g": g_k})
