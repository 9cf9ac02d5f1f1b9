"""The log-sum-exp route: L = log Σ_j e^{z_j} − z_c, whose derivative is s − y in one line."""

from __future__ import annotations

from sce.explain.derivation.stages import (
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
    """Why ``route`` cannot derive this result (the lse and Jacobian routes take a plain label), else None."""
    if route == "chain":
        return None
    options = result.options
    given = [
        name
        for name, on in (
            ("--target", result.labels is None),
            ("--label-smoothing", bool(options.label_smoothing)),
            ("--weight", options.weight is not None),
            ("--temperature", options.temperature != 1.0),
            ("--softcap", options.softcap is not None),
            ("--z-loss", bool(options.z_loss)),
        )
        if on
    ]
    if not given:
        return None
    return (
        f"--route {route} derives the loss of a plain --label; with {' and '.join(given)} "
        "use --route chain (the default), which carries every option"
    )


def log_sum_exp_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    """L written with the log-sum-exp, and its derivative, for a one-hot target and no options."""
    c = result.label_of(0)
    notes = (
        "Put $s_c = e^{z_c} / \\sum_j e^{z_j}$ inside the logarithm: "
        "$L = -\\log s_c = \\log \\sum_j e^{z_j} - z_c$, the log-sum-exp of the logits minus the correct "
        "class's logit; with the shift, $\\log \\sum_j e^{z_j} = M + \\log \\sum_j e^{z_j - M}$.",
        "With one-hot $\\mathbf{y}$, $z_c = \\sum_i y_i z_i$, so $L = \\log \\sum_j e^{z_j} - \\sum_i y_i z_i$.",
        "Differentiate: the log-sum-exp's derivative is the softmax, "
        "$\\frac{\\partial}{\\partial z_i} \\log \\sum_j e^{z_j} = \\frac{e^{z_i}}{\\sum_j e^{z_j}} = s_i$, "
        "so $\\frac{\\partial L}{\\partial z_i} = s_i - y_i$: no case split, no quotient rule.",
    )
    items: list[Item] = [_loss_equation(result, c)]
    items += per_class(result.num_classes, important_classes(result), lambda k: _gradient_equation(result, k, c))
    return Stage("The log-sum-exp route", notes, tuple(items))


def _loss_equation(result: SoftmaxCrossEntropyResult, c: int) -> Equation:
    symbolic = f"L = M + \\log \\sum_j e^{{z_j - M}} - z_{{{c}}}"
    values = {
        "M": float(result.capped_logits[0, int(result.argmax[0])]),
        "z": float(result.logits[0, c]),
        "L": -float(result.log_probabilities[0, c]),
    }
    if rounds_to_one(result, c):  # Σ_j e^{z_j − M} rounds to 1: the sum is written 1 + S, as sce computes it
        return Equation(symbolic, "⟨M⟩ + \\log(1 + ⟨S⟩) - ⟨z⟩ = ⟨L⟩", {**values, "S": float(result.others_sum[0])})
    return Equation(symbolic, "⟨M⟩ + \\log(⟨sum⟩) - ⟨z⟩ = ⟨L⟩", {**values, "sum": float(result.exp_sum[0])})


def _gradient_equation(result: SoftmaxCrossEntropyResult, k: int, c: int) -> Equation:
    symbolic = f"\\frac{{\\partial L}}{{\\partial z_{{{k}}}}} = s_{{{k}}} - y_{{{k}}}"
    s_k, g_k = float(result.probabilities[0, k]), float(result.gradient[0, k])
    if k == c and rounds_to_one(result, c):
        others, total = float(result.others_sum[0]), float(result.exp_sum[0])
        return Equation(symbolic, "-\\frac{⟨S⟩}{⟨sum⟩} = ⟨g⟩", {"S": others, "sum": total, "g": g_k})
    return Equation(symbolic, "⟨s⟩ - ⟨y⟩ = ⟨g⟩", {"s": s_k, "y": 1.0 if k == c else 0.0, "g": g_k})
