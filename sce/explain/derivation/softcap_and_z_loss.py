"""The language-model options in the derivation: soft-capping, the z-loss and the combined gradient.

Each option is derived where it acts: the cap on the logits before the softmax
(:func:`softcap_stage`), the z-loss after it, from the log-sum-exp
(:func:`z_loss_stage`), and both in the gradient (:func:`combined_gradient`).
"""

from __future__ import annotations

import math

import numpy as np

from sce.explain.derivation.stages import (
    Equation,
    Item,
    Stage,
    important_classes,
    per_class,
    plain,
)
from sce.loss import SoftmaxCrossEntropyResult

LSE = "\\operatorname{lse}"


def softcap_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    """a_k = c·tanh(z_k/c) and its derivative 1 − tanh²(z_k/c), computed as 4t/(1 + t)²."""
    cap = float(result.options.softcap or 0.0)
    z = result.logits[0].astype(np.float64)
    capped = result.capped_logits[0].astype(np.float64)
    derivative = result.cap_derivative[0].astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        # t = e^{-2|z/c|} <= 1: the form that keeps 1 - tanh² accurate where tanh is near ±1.
        t = np.exp(-2 * np.abs(z) / cap)
    notes = (
        f"Soft-capping with $C = {plain(cap)}$ replaces each logit by $a_i = C \\tanh(z_i / C)$, "
        "which stays within $(-C, C)$; everything after it (temperature, softmax, loss) sees $\\mathbf{a}$.",
        "Its derivative is $\\frac{\\partial a_i}{\\partial z_i} = 1 - \\tanh^2(z_i / C)$. Near $\\pm 1$, "
        "$1 - \\tanh^2$ formed from a rounded $\\tanh$ loses its digits, so it is computed as "
        "$\\frac{4 t_i}{(1 + t_i)^2}$ with $t_i = e^{-2|z_i / C|}$, the same number exactly.",
    )

    def capped_logit(k: int) -> Equation:
        return Equation(
            f"a_{{{k}}} = C \\tanh(z_{{{k}}} / C)",
            "⟨c⟩ \\times \\tanh\\left(\\frac{⟨z⟩}{⟨c⟩}\\right) = ⟨a⟩",
            {"c": cap, "z": float(z[k]), "a": float(capped[k])},
        )

    def factor(k: int) -> Equation:
        return Equation(
            f"1 - \\tanh^2(z_{{{k}}} / C) = \\frac{{4 t_{{{k}}}}}{{(1 + t_{{{k}}})^2}}",
            "\\frac{4 \\times ⟨t⟩}{\\left(1 + ⟨t⟩\\right) \\times \\left(1 + ⟨t⟩\\right)} = ⟨d⟩",
            {"t": float(t[k]), "d": float(derivative[k])},
        )

    def exponential(k: int) -> Equation:
        return Equation(
            f"t_{{{k}}} = e^{{-2|z_{{{k}}} / C|}}",
            "e^{-2 \\times \\frac{⟨x⟩}{⟨c⟩}} = ⟨t⟩",
            {"x": float(abs(z[k])), "c": cap, "t": float(t[k])},
        )

    important = important_classes(result)
    items: list[Item] = per_class(result.num_classes, important, capped_logit)
    items += per_class(result.num_classes, important, exponential)
    items += per_class(result.num_classes, important, factor)
    return Stage("Soft-capping", notes, tuple(items))


def log_sum_exp_equation(result: SoftmaxCrossEntropyResult) -> Equation:
    """lse = M/T + log(1 + S), M the largest (capped) logit, S the other shifted exponentials."""
    temperature = result.options.temperature
    top = float(result.capped_logits[0, int(result.argmax[0])])
    lse = float(result.log_sum_exp[0]) if result.log_sum_exp is not None else float("nan")
    if temperature == 1.0:
        return Equation(
            f"{LSE} = M + \\log(1 + S)",
            "⟨M⟩ + \\log\\left(1 + ⟨S⟩\\right) = ⟨lse⟩",
            {"M": top, "S": float(result.others_sum[0]), "lse": lse},
        )
    return Equation(
        f"{LSE} = \\frac{{M}}{{T}} + \\log(1 + S)",
        "\\frac{⟨M⟩}{⟨T⟩} + \\log\\left(1 + ⟨S⟩\\right) = ⟨lse⟩",
        {"M": top, "T": float(temperature), "S": float(result.others_sum[0]), "lse": lse},
    )


def z_loss_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    """The z-loss λ·lse² of the row and its gradient 2λ·lse·s with respect to b = a/T."""
    lam = float(result.options.z_loss)
    lse = float(result.log_sum_exp[0]) if result.log_sum_exp is not None else float("nan")
    z_term = float(result.z_losses[0]) if result.z_losses is not None else 0.0
    s = result.probabilities[0].astype(np.float64)
    notes = (
        f"The z-loss with $\\lambda = {plain(lam)}$ adds $\\lambda \\, {LSE}^2$ to the row's loss, "
        f"${LSE} = \\log \\sum_j e^{{b_j}}$ the log of the softmax's denominator (unweighted); it pulls "
        f"${LSE}$ towards 0. From the stabilised sums above, ${LSE} = M + \\log(1 + S)$ "
        "(over $T$ where there is a temperature), $S$ the sum of the other shifted exponentials.",
        f"Since $\\frac{{\\partial {LSE}}}{{\\partial b_i}} = s_i$, its gradient is "
        f"$\\frac{{\\partial}}{{\\partial b_i}} \\lambda \\, {LSE}^2 = 2 \\lambda \\, {LSE} \\, s_i$.",
    )
    items: list[Item] = [
        log_sum_exp_equation(result),
        Equation(
            f"\\lambda \\, {LSE}^2",
            "⟨lam⟩ \\times ⟨lse⟩ \\times ⟨lse⟩ = ⟨zl⟩",
            {"lam": lam, "lse": lse, "zl": z_term},
        ),
    ]
    items += per_class(
        result.num_classes,
        important_classes(result),
        lambda k: Equation(
            f"2 \\lambda \\, {LSE} \\, s_{{{k}}}",
            "2 \\times ⟨lam⟩ \\times ⟨lse⟩ \\times ⟨s⟩ = ⟨v⟩",
            {"lam": lam, "lse": lse, "s": float(s[k]), "v": 2 * lam * lse * float(s[k])},
        ),
    )
    return Stage("The z-loss", notes, tuple(items))


def cross_entropy_part(result: SoftmaxCrossEntropyResult) -> float:
    """The row's loss without its z-loss term: -Σ w_i y_i log s_i from the log-softmax (the loss
    less the z-loss term would cancel the digits of a tiny cross-entropy beside a large z-loss)."""
    if result.z_losses is None:
        return float(result.losses[0])
    weighted = (result.class_weights * result.target[0]).astype(np.float64)
    log_s = result.log_probabilities[0].astype(np.float64)
    carried = weighted != 0  # 0·log 0 = 0, even where log s_i is -inf
    return 0.0 - math.fsum((weighted[carried] * log_s[carried]).tolist())  # 0.0 -: never -0


def total_with_z_loss(
    result: SoftmaxCrossEntropyResult, cross_entropy: float, symbol: str = "L_{\\mathrm{CE}}"
) -> Equation:
    """L = L_CE + λ·lse², each divided by its denominator under the mean (``symbol`` names L_CE)."""
    z_term = float(result.z_losses[0]) if result.z_losses is not None else 0.0
    values = {"ce": cross_entropy, "zl": z_term, "L": result.reported_loss()}
    if result.options.reduction != "mean":
        return Equation(f"L = {symbol} + \\lambda \\, {LSE}^2", "⟨ce⟩ + ⟨zl⟩ = ⟨L⟩", values)
    return Equation(
        f"L = \\frac{{{symbol}}}{{D}} + \\frac{{\\lambda \\, {LSE}^2}}{{D_z}}",
        "\\frac{⟨ce⟩}{⟨D⟩} + \\frac{⟨zl⟩}{⟨Dz⟩} = ⟨L⟩",
        {**values, "D": float(result.denominator), "Dz": float(result.z_loss_denominator)},
    )


def combined_gradient(result: SoftmaxCrossEntropyResult, k: int) -> Equation:
    """∂L/∂z_k = (1 − tanh²)/T · [(s_k Σ w y − w_k y_k)/D + 2λ·lse·s_k/D_z], every factor written out."""
    s = float(result.probabilities[0, k])
    w = result.class_weights.astype(np.float64)
    y = result.target[0].astype(np.float64)
    mean = result.options.reduction == "mean"
    lse = float(result.log_sum_exp[0]) if result.log_sum_exp is not None else 0.0
    return Equation(
        f"\\frac{{\\partial L}}{{\\partial z_{{{k}}}}} = \\frac{{1 - \\tanh^2(z_{{{k}}} / C)}}{{T}} "
        f"\\left[\\frac{{s_{{{k}}} \\sum_j w_j y_j - w_{{{k}}} y_{{{k}}}}}{{D}} + "
        f"\\frac{{2 \\lambda \\, {LSE} \\, s_{{{k}}}}}{{D_z}}\\right]",
        "\\frac{⟨d⟩}{⟨T⟩} \\times \\left("
        # D = 0 (every counted label of weight 0): the cross-entropy's part is taken as 0, as in the core.
        + ("\\frac{⟨s⟩ \\times ⟨sum⟩ - ⟨wy⟩}{⟨D⟩}" if not mean or result.denominator != 0 else "0")
        + " + \\frac{2 \\times ⟨lam⟩ \\times ⟨lse⟩ \\times ⟨s⟩}{⟨Dz⟩}\\right) = ⟨g⟩",
        {
            "d": float(result.cap_derivative[0, k]),
            "T": float(result.options.temperature),
            "s": s,
            "sum": float((w * y).sum()),
            "wy": float(w[k] * y[k]),
            "D": float(result.denominator) if mean else 1.0,
            "lam": float(result.options.z_loss),
            "lse": lse,
            "Dz": float(result.z_loss_denominator) if mean else 1.0,
            "g": float(result.gradient[0, k]),
        },
    )


def combined_gradient_notes(result: SoftmaxCrossEntropyResult) -> list[str]:
    """How the chain rule carries the cap, the temperature, the z-loss and the mean into the gradient."""
    notes = [
        "The chain rule runs back through $b = a / T$ (the factor $\\frac{1}{T}$) and "
        "$a_i = C \\tanh(z_i / C)$ (the factor $1 - \\tanh^2(z_i / C)$, 1 without a cap); the z-loss adds "
        f"$2 \\lambda \\, {LSE} \\, s_i$ to the cross-entropy's $s_i \\sum_j w_j y_j - w_i y_i$.",
    ]
    if result.options.reduction == "mean":
        notes.append(
            f"The mean divides the cross-entropy by $D = {plain(result.denominator)}$ and the z-loss by "
            f"the number of counted rows, $D_z = {plain(result.z_loss_denominator)}$ (the z-loss is unweighted)."
        )
    else:
        notes.append("Without the mean, $D = D_z = 1$.")
    return notes


def one_hot_gradient_formula(result: SoftmaxCrossEntropyResult) -> str:
    """∂L/∂z for a one-hot target, in LaTeX, with only the factors and terms the options add."""
    options = result.options
    inner = "\\mathbf{s} - \\mathbf{y}"
    if options.weight is not None:
        inner = f"{_weight_symbol(result)} \\cdot \\left({inner}\\right)"
    if options.z_loss:
        inner += f" + 2 \\lambda \\, {LSE} \\, \\mathbf{{s}}"
    if options.temperature == 1.0 and options.softcap is None:
        return inner
    formula = f"\\left({inner}\\right)"
    if options.temperature != 1.0:
        formula = f"\\frac{{1}}{{T}} \\cdot {formula}"
    if options.softcap is not None:
        formula = f"\\left(1 - \\tanh^2(\\mathbf{{z}} / C)\\right) \\odot {formula}"
    return formula


def back_to_logits_stage(result: SoftmaxCrossEntropyResult, input_gradient: np.ndarray) -> Stage:
    """The one-hot route's last step: from ∂L_CE/∂b = s − y to ∂L/∂z, one factor per option."""
    options = result.options
    notes = []
    letter = "z" if options.temperature == 1.0 and options.softcap is None else "b"
    if options.weight is not None:
        notes.append(
            "The class weight of the label multiplies $s_i - y_i$"
            + (f", over the mean's $D = {plain(result.denominator)}$." if options.reduction == "mean" else ".")
        )
        if result.denominator == 0:
            notes.append(
                "The label's weight is 0, so the mean divides by $D = 0$: the loss is $0/0$, NaN (as in PyTorch), "
                "and the cross-entropy's part of the gradient is taken as 0, the factor $\\frac{1}{D}$ as 0."
            )
    if options.z_loss:
        notes.append(
            f"The z-loss adds $2 \\lambda \\, {LSE} \\, s_i$ (found above) to $s_i - y_i$: "
            f"$\\frac{{\\partial {LSE}}}{{\\partial {letter}_i}} = s_i$."
        )
    if options.temperature != 1.0:
        divided = "\\mathbf{a}" if options.softcap is not None else "\\mathbf{z}"
        notes.append(f"Through $\\mathbf{{b}} = {divided} / T$ the chain rule adds the factor $\\frac{{1}}{{T}}$.")
    if options.softcap is not None:
        notes.append(
            "Through the cap $a_i = C \\tanh(z_i / C)$ the chain rule adds the factor $1 - \\tanh^2(z_i / C)$ "
            "found above, one per class."
        )
    lse = float(result.log_sum_exp[0]) if result.log_sum_exp is not None else 0.0

    def entry(k: int) -> Equation:
        symbolic, substituted = _factors(result, k)
        values = {
            "gb": float(input_gradient[k]),
            "lam": float(options.z_loss),
            "lse": lse,
            "s": float(result.probabilities[0, k]),
            "T": float(options.temperature),
            "d": float(result.cap_derivative[0, k]),
            "w": float(result.class_weights[int(result.labels[0])]) if result.labels is not None else 1.0,
            "D": float(result.denominator),
            "g": float(result.gradient[0, k]),
        }
        used = {name: value for name, value in values.items() if f"⟨{name}⟩" in substituted}
        return Equation(symbolic, substituted, used)

    items = per_class(result.num_classes, important_classes(result), entry)
    return Stage("Back to the logits", tuple(notes), tuple(items))


def _weight_symbol(result: SoftmaxCrossEntropyResult) -> str:
    """w_c, over D under the mean (D = w_c for one row: the weight cancels, as PyTorch's mean does)."""
    c = int(result.labels[0]) if result.labels is not None else 0
    return f"\\frac{{w_{{{c}}}}}{{D}}" if result.options.reduction == "mean" else f"w_{{{c}}}"


def _weighted(result: SoftmaxCrossEntropyResult, k: int) -> tuple[str, str]:
    """(symbolic, substituted) of the cross-entropy's part of ∂L/∂b_k: s_k - y_k, times w_c (over D)."""
    symbolic, substituted = f"s_{{{k}}} - y_{{{k}}}", "⟨gb⟩"
    if result.options.weight is None:
        return symbolic, substituted
    if result.options.reduction == "mean" and result.denominator == 0:
        # The label's weight is 0: the mean's factor 1/D is taken as 0, as in the core.
        return f"{_weight_symbol(result)} \\cdot \\left({symbolic}\\right)", "0"
    weight = "\\frac{⟨w⟩}{⟨D⟩}" if result.options.reduction == "mean" else "⟨w⟩"
    return f"{_weight_symbol(result)} \\cdot \\left({symbolic}\\right)", f"{weight} \\times {substituted}"


def _factors(result: SoftmaxCrossEntropyResult, k: int) -> tuple[str, str]:
    """(symbolic, substituted) of ∂L/∂z_k for the one-hot route with the options given."""
    options = result.options
    symbolic, substituted = _weighted(result, k)
    if options.z_loss:
        symbolic += f" + 2 \\lambda \\, {LSE} \\, s_{{{k}}}"
        substituted += " + 2 \\times ⟨lam⟩ \\times ⟨lse⟩ \\times ⟨s⟩"
    if options.temperature != 1.0:
        symbolic, substituted = f"\\frac{{{symbolic}}}{{T}}", f"\\frac{{{substituted}}}{{⟨T⟩}}"
    elif options.softcap is not None and options.z_loss:
        symbolic, substituted = f"\\left({symbolic}\\right)", f"\\left({substituted}\\right)"
    if options.softcap is not None:
        if options.temperature == 1.0 and not options.z_loss:
            symbolic = f"\\left({symbolic}\\right)"
        symbolic = f"\\left(1 - \\tanh^2(z_{{{k}}} / C)\\right) \\cdot {symbolic}"
        substituted = f"⟨d⟩ \\times {substituted}"
    if substituted == "0":  # nothing else to add or multiply: the value itself
        return f"\\frac{{\\partial L}}{{\\partial z_{{{k}}}}} = {symbolic}", "⟨g⟩"
    return f"\\frac{{\\partial L}}{{\\partial z_{{{k}}}}} = {symbolic}", f"{substituted} = ⟨g⟩"
