"""The one-hot route of the textbook derivation: L = -log s_c, the cases i = c and i ≠ c, s − y."""

from __future__ import annotations

import numpy as np

from sce.explain.derivation.by_hand import rounding_note
from sce.explain.derivation.closing import gradient_sum, gradient_sums_to_zero
from sce.explain.derivation.jacobian import jacobian_stage
from sce.explain.derivation.log_sum_exp import log_sum_exp_stage
from sce.explain.derivation.softcap_and_z_loss import (
    LSE,
    back_to_logits_stage,
    cross_entropy_part,
    one_hot_gradient_formula,
    total_with_z_loss,
)
from sce.explain.derivation.stages import (
    CONFIDENT_NOTE,
    DL_DZ,
    Equation,
    Item,
    Stage,
    exponent,
    important_classes,
    others_sum,
    per_class,
    reduced_note,
    rounds_to_one,
    softmax_input,
    vector,
)
from sce.loss import SoftmaxCrossEntropyResult


def one_hot_stages(result: SoftmaxCrossEntropyResult, digits: int, route: str = "chain") -> list[Stage]:
    """The textbook route for a one-hot target; a temperature, a cap or a z-loss each add
    one factor or term, carried back to the logits by the chain rule in a stage of their own.
    The lse and Jacobian routes (for a plain label) replace the chain rule's cases."""
    if route == "lse":
        return [_loss_stage(result, digits), log_sum_exp_stage(result), _result_stage(result)]
    if route == "jacobian":
        return [_loss_stage(result, digits), jacobian_stage(result, True, main=True), _result_stage(result)]
    stages = [
        _loss_stage(result, digits),
        _chain_stage(result, digits),
        _at_label_stage(result, digits),
        _off_label_stage(result),
    ]
    if _has_factors(result):
        stages.append(back_to_logits_stage(result, _input_gradient(result)))
    return [*stages, _result_stage(result)]


def _has_factors(result: SoftmaxCrossEntropyResult) -> bool:
    options = result.options
    return options.temperature != 1.0 or options.has_llm_options or options.weight is not None


def _loss_symbol(result: SoftmaxCrossEntropyResult) -> str:
    """L, or ℓ = -log s_c alone, where a class weight multiplies it or a z-loss is added to it."""
    return "\\ell" if result.options.z_loss or result.options.weight is not None else "L"


def _input_gradient(result: SoftmaxCrossEntropyResult) -> np.ndarray:
    """∂L_CE/∂b = s − y, with s_c − 1 as −S/(1 + S) where s_c > 1/2 (no cancellation)."""
    s = result.probabilities[0].astype(np.float64)
    c = result.label_of(0)
    gradient = s.copy()
    if s[c] > 0.5:
        gradient[c] = -float(result.others_sum[0]) / float(result.exp_sum[0])
    else:
        gradient[c] = s[c] - 1
    return gradient


def _label_and_probability(result: SoftmaxCrossEntropyResult) -> tuple[int, float]:
    c = result.label_of(0)
    return c, float(result.probabilities[0, c])


def _loss_stage(result: SoftmaxCrossEntropyResult, digits: int) -> Stage:
    c, s_c = _label_and_probability(result)
    loss = -float(result.log_probabilities[0, c])
    big_l = _loss_symbol(result)

    loss_notes = [
        f"The cross-entropy is ${big_l} = -\\sum_i y_i \\log s_i$. Every $y_i$ but $y_c$ is 0, so "
        f"${big_l} = -\\log s_c$ (the natural logarithm)."
    ]
    if rounds_to_one(result, c):
        loss_notes.append(CONFIDENT_NOTE.format(others=others_sum(result)))
        loss_equation = Equation(
            f"{big_l} = -\\log s_{{{c}}} = \\log\\left(1 + {others_sum(result)}\\right)",
            "\\log(1 + ⟨S⟩) = ⟨L⟩",
            {"S": float(result.others_sum[0]), "L": loss},
        )
    elif s_c > 0:
        loss_notes += rounding_note(s_c, loss, digits, "s_c", lambda x: f"-\\log({x})")
        loss_equation = Equation(f"{big_l} = -\\log s_{{{c}}}", "-\\log(⟨s⟩) = ⟨L⟩", {"s": s_c, "L": loss})
    else:
        loss_notes.append(
            "Here $s_c$ is too small for float64 and rounds to 0, so $-\\log s_c$ is taken from "
            f"$\\log s_c = {exponent(result, 'c')} - \\log \\sum_j e^{{{exponent(result, 'j')}}}$, "
            "which never forms $s_c$ itself."
        )
        loss_equation = Equation(
            f"{big_l} = -\\left({exponent(result, c)} - \\log \\sum_j e^{{{exponent(result, 'j')}}}\\right)",
            "-\\left(⟨d⟩ - \\log ⟨sum⟩\\right) = ⟨L⟩",
            {"d": float(result.shifted_logits[0, c]), "sum": float(result.exp_sum[0]), "L": loss},
        )
    notes, totals = _weighted_total(result, loss)
    return Stage("Loss", (*loss_notes, *notes), (loss_equation, *totals))


def _weighted_total(result: SoftmaxCrossEntropyResult, loss: float) -> tuple[list[str], list[Item]]:
    """The class weight, the mean's D and the z-loss, applied to ℓ = -log s_c."""
    options = result.options
    c = result.label_of(0)
    notes: list[str] = []
    items: list[Item] = []
    cross_entropy = loss
    if options.weight is not None:
        weight = float(result.class_weights[c])
        cross_entropy = cross_entropy_part(result)
        symbol = "L_{\\mathrm{CE}}" if options.z_loss else "L"
        notes.append(f"The class weight multiplies it: ${symbol} = w_c \\, \\ell$.")
        items.append(Equation(f"{symbol} = w_{{{c}}} \\, \\ell", "⟨w⟩ \\times ⟨l⟩ = ⟨L⟩",
                              {"w": weight, "l": loss, "L": cross_entropy}))
    if options.z_loss:
        ce = "L_{\\mathrm{CE}}" if options.weight is not None else "\\ell"
        notes.append(f"The z-loss term found above is added: $L = {ce} + \\lambda \\, {LSE}^2$.")
        items.append(total_with_z_loss(result, cross_entropy, ce))
    elif (reduced := reduced_note(result)) is not None:
        notes.append(reduced[0])
        items.append(reduced[1])
    return notes, items


def _chain_stage(result: SoftmaxCrossEntropyResult, digits: int) -> Stage:
    c, s_c = _label_and_probability(result)
    big_l, b = _loss_symbol(result), softmax_input(result)
    if s_c > 0:
        underflow_note = rounding_note(s_c, -1.0 / s_c, digits, "s_c", lambda x: f"-\\frac{{1}}{{{x}}}")
    else:
        underflow_note = [
            "With $s_c$ rounded to 0, $-\\frac{1}{s_c}$ is infinite in floating point; the "
            "simplified $s_c - 1$ below needs no division, which is why it is the formula to compute."
        ]
    return Stage(
        "Chain rule",
        (
            *_input_notes(result),
            f"${big_l}$ depends on $\\mathbf{{{b}}}$ only through $s_c$, so "
            f"$\\frac{{\\partial {big_l}}}{{\\partial {b}_i}} = \\frac{{\\partial {big_l}}}{{\\partial s_c}} \\cdot "
            f"\\frac{{\\partial s_c}}{{\\partial {b}_i}}$, with "
            f"$\\frac{{\\partial {big_l}}}{{\\partial s_c}} = -\\frac{{1}}{{s_c}}$.",
            *underflow_note,
        ),
        (
            Equation(
                f"\\frac{{\\partial {big_l}}}{{\\partial s_{{{c}}}}} = -\\frac{{1}}{{s_{{{c}}}}}",
                "-\\frac{1}{⟨s⟩} = ⟨v⟩",
                {"s": s_c, "v": -1.0 / s_c if s_c > 0 else -np.inf},
            ),
        ),
    )


def _input_notes(result: SoftmaxCrossEntropyResult) -> list[str]:
    """What b stands for, where the softmax's input is not the logits themselves."""
    options = result.options
    if softmax_input(result) == "z":
        return []
    if options.softcap is None:
        b = "$\\mathbf{b} = \\mathbf{z} / T$"
    elif options.temperature == 1.0:
        b = "$\\mathbf{b} = \\mathbf{a}$, the capped logits"
    else:
        b = "$\\mathbf{b} = \\mathbf{a} / T$"
    return [
        f"The softmax's input is {b}: the cases below find the gradient with respect to $\\mathbf{{b}}$, "
        "and the chain rule carries it back to $\\mathbf{z}$ at the end."
    ]


def _at_label_stage(result: SoftmaxCrossEntropyResult, digits: int) -> Stage:
    c, s_c = _label_and_probability(result)
    big_l, b = _loss_symbol(result), softmax_input(result)
    gradient_at_label = float(_input_gradient(result)[c])
    notes = []
    if not rounds_to_one(result, c):  # else the forms with S are shown, and the loss stage said why
        notes += rounding_note(s_c, s_c * (1 - s_c), digits, "s_c", lambda x: f"{x} \\times (1 - {x})")
        notes += rounding_note(s_c, gradient_at_label, digits, "s_c", lambda x: f"{x} - 1")
    return Stage(
        "Case i = c",
        (
            "By the quotient rule, "
            f"$\\frac{{\\partial s_c}}{{\\partial {b}_c}} = \\frac{{e^{{{b}_c}} \\cdot \\sum_j e^{{{b}_j}} - "
            f"e^{{{b}_c}} \\cdot e^{{{b}_c}}}}{{\\left(\\sum_j e^{{{b}_j}}\\right)^2}} = s_c(1 - s_c)$, "
            f"so $\\frac{{\\partial {big_l}}}{{\\partial {b}_c}} = -\\frac{{1}}{{s_c}} \\cdot s_c(1 - s_c) = s_c - 1$.",
            *notes,
        ),
        (*_at_label_equations(result, c, s_c),),
    )


def _at_label_equations(result: SoftmaxCrossEntropyResult, c: int, s_c: float) -> list[Item]:
    big_l, b = _loss_symbol(result), softmax_input(result)
    derivative = f"\\frac{{\\partial s_{{{c}}}}}{{\\partial {b}_{{{c}}}}} = s_{{{c}}}(1 - s_{{{c}}})"
    gradient = f"\\frac{{\\partial {big_l}}}{{\\partial {b}_{{{c}}}}} = s_{{{c}}} - 1"
    g = float(result.gradient[0, c]) if not _has_factors(result) else float(_input_gradient(result)[c])
    if rounds_to_one(result, c):
        others = float(result.others_sum[0])
        complement = others / float(result.exp_sum[0])
        return [
            Equation(
                derivative,
                "⟨s⟩ \\times \\frac{⟨S⟩}{⟨sum⟩} = ⟨v⟩",
                {"s": s_c, "S": others, "sum": float(result.exp_sum[0]), "v": s_c * complement},
            ),
            Equation(gradient, "-\\frac{⟨S⟩}{⟨sum⟩} = ⟨g⟩", {"S": others, "sum": float(result.exp_sum[0]), "g": g}),
        ]
    return [
        Equation(derivative, "⟨s⟩ \\times (1 - ⟨s⟩) = ⟨v⟩", {"s": s_c, "v": s_c * (1 - s_c)}),
        Equation(gradient, "⟨s⟩ - 1 = ⟨g⟩", {"s": s_c, "g": g}),
    ]


def _off_label_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    c, _ = _label_and_probability(result)
    big_l, b = _loss_symbol(result), softmax_input(result)
    n_classes = result.num_classes
    gradient = result.gradient[0] if not _has_factors(result) else _input_gradient(result)
    off_label_items: list[Item] = []
    if n_classes > 1:
        off_label_items = per_class(
            n_classes,
            important_classes(result),
            lambda k: (
                Equation(
                    f"\\frac{{\\partial {big_l}}}{{\\partial {b}_{{{k}}}}} = -\\frac{{1}}{{s_{{{c}}}}}"
                    f" \\cdot \\left(-s_{{{k}}} \\cdot s_{{{c}}}\\right) = s_{{{k}}}",
                    "⟨g⟩",
                    {"g": float(gradient[k])},
                )
                if k != c
                else Equation(
                    f"\\frac{{\\partial {big_l}}}{{\\partial {b}_{{{c}}}}}", "\\text{(case } i = c \\text{ above)}"
                )
            ),
        )
    return Stage(
        "Case i ≠ c",
        (
            f"For $i \\neq c$ only the denominator of $s_c$ depends on ${b}_i$: "
            f"$\\frac{{\\partial s_c}}{{\\partial {b}_i}} = \\frac{{-e^{{{b}_i}} \\cdot e^{{{b}_c}}}}"
            f"{{\\left(\\sum_j e^{{{b}_j}}\\right)^2}} = -s_i \\cdot s_c$, so "
            f"$\\frac{{\\partial {big_l}}}{{\\partial {b}_i}} = s_i$.",
        ),
        tuple(off_label_items),
    )


def _result_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    gradient = result.gradient[0]
    options = result.options
    if not _has_factors(result):
        notes = [
            "Together: $\\frac{\\partial L}{\\partial \\mathbf{z}} = \\mathbf{s} - \\mathbf{y}$, "
            "the probabilities with 1 subtracted at the correct class. "
            "Its entries sum to $\\sum_i s_i - 1 = 0$.",
        ]
    elif options.has_llm_options:
        notes = [
            f"Together: ${DL_DZ} = {one_hot_gradient_formula(result)}$.",
            "Its entries no longer sum to 0"
            + (": the z-loss moves every logit the same way" if options.z_loss else "")
            + ("; the cap's factor differs by class." if options.softcap is not None else "."),
        ]
    else:
        notes = [
            f"Together: ${DL_DZ} = {one_hot_gradient_formula(result)}$: the probabilities with 1 subtracted "
            "at the correct class, times one factor for every class. Its entries sum to 0, as those of "
            "$\\mathbf{s} - \\mathbf{y}$ do.",
        ]
    items: list[Item] = [vector("g", DL_DZ, gradient, important_classes(result))]
    if not gradient_sums_to_zero(result):  # else the sanity checks add it up
        items.append(gradient_sum(result))
    return Stage("Result", tuple(notes), tuple(items))
