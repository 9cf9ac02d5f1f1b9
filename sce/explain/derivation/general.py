"""The general route: soft or smoothed targets, weights, temperature: (s Σ w y − w ⊙ y) / T."""

from __future__ import annotations

import numpy as np

from sce.explain.derivation.jacobian import jacobian_stage
from sce.explain.derivation.log_sum_exp import log_sum_exp_stage
from sce.explain.derivation.softcap_and_z_loss import (
    LSE,
    combined_gradient,
    combined_gradient_notes,
    cross_entropy_part,
    total_with_z_loss,
)
from sce.explain.derivation.stages import (
    DL_DZ,
    Equation,
    Item,
    Stage,
    denominator_notes,
    given_one_hot_class,
    important_classes,
    others_sum,
    per_class,
    plain,
    reduced_note,
    rounds_to_one,
    scale_factor,
    softmax_input,
    vector,
)
from sce.loss import SoftmaxCrossEntropyResult, loss_gradient_wrt_probabilities
from sce.number_text import display


def general_stages(result: SoftmaxCrossEntropyResult, digits: int, route: str = "chain") -> list[Stage]:
    """The general forms (soft targets, smoothing); the lse and Jacobian routes replace the chain rule's stages."""
    if route == "lse":
        return [_loss_stage(result, digits), log_sum_exp_stage(result), _result_stage(result)]
    if route == "jacobian":
        return [_loss_stage(result, digits), jacobian_stage(result, False, main=True), _result_stage(result)]
    return [
        _loss_stage(result, digits),
        _chain_stage(result),
        _softmax_derivative_stage(result),
        _combine_stage(result),
        _result_stage(result),
    ]


def _loss_stage(result: SoftmaxCrossEntropyResult, digits: int) -> Stage:
    s = result.probabilities[0].astype(np.float64)
    y = result.target[0].astype(np.float64)
    w = result.class_weights.astype(np.float64)
    log_s = result.log_probabilities[0].astype(np.float64)
    row_loss = cross_entropy_part(result)  # the z-loss term is added after the sum, below

    def term(k: int) -> Equation:
        if w[k] * y[k] == 0:  # no weight or no target mass: nothing, even where log s_k is -inf
            return Equation(f"-w_{{{k}}} y_{{{k}}} \\log s_{{{k}}}", "⟨t⟩", {"t": 0.0})
        value = -(w[k] * y[k] * log_s[k])
        if y[k] > 0 and rounds_to_one(result, k):
            return Equation(
                f"-w_{{{k}}} y_{{{k}}} \\log s_{{{k}}} = "
                f"w_{{{k}}} y_{{{k}}} \\log\\left(1 + {others_sum(result)}\\right)",
                "⟨w⟩ \\times ⟨y⟩ \\times \\log(1 + ⟨S⟩) = ⟨t⟩",
                {"w": float(w[k]), "y": float(y[k]), "S": float(result.others_sum[0]), "t": value},
            )
        return Equation(
            f"-w_{{{k}}} y_{{{k}}} \\log s_{{{k}}}",
            "-⟨w⟩ \\times ⟨y⟩ \\times \\log(⟨s⟩) = ⟨t⟩",
            {"w": float(w[k]), "y": float(y[k]), "s": float(s[k]), "t": value},
        )

    loss_notes = [_why_general(result) + ": $L = -\\sum_i w_i y_i \\log s_i$, with $0 \\log 0 = 0$."]
    if result.labels is not None and result.options.label_smoothing:
        loss_notes.append(
            "This equals Megatron's and t5x's $(1 - \\varepsilon)\\,w_c(-\\log s_c) + "
            "\\frac{\\varepsilon}{K - 1} \\, \\sum_{i \\neq c} w_i(-\\log s_i)$."
            if result.options.smoothing_style == "off-target"
            else "This equals PyTorch's $(1 - \\varepsilon)\\,w_c(-\\log s_c) + "
            "\\frac{\\varepsilon}{K} \\, \\sum_i w_i(-\\log s_i)$."
        )
    loss_items: list[Item] = per_class(result.num_classes, important_classes(result), term)
    shown_terms = [float(display(item.values["t"], digits)) for item in loss_items if isinstance(item, Equation)]
    if len(shown_terms) == result.num_classes and display(sum(shown_terms), digits) != display(row_loss, digits):
        loss_notes.append(
            f"The terms as shown add up to ${display(sum(shown_terms), digits)}$; the exact terms give "
            f"$L = {plain(row_loss)}$, the value shown."
        )
    if not result.options.z_loss:
        loss_items.append(Equation("L = -\\sum_i w_i y_i \\log s_i", "⟨L⟩", {"L": row_loss}))
        reduced = reduced_note(result)
        if reduced:
            loss_notes.append(reduced[0])
            loss_items.append(reduced[1])
        return Stage("Loss", tuple(loss_notes), tuple(loss_items))
    loss_items.append(Equation("L_{\\mathrm{CE}} = -\\sum_i w_i y_i \\log s_i", "⟨L⟩", {"L": row_loss}))
    loss_notes.append(
        f"The z-loss term found above is added: $L = L_{{\\mathrm{{CE}}}} + \\lambda \\, {LSE}^2$"
        + (
            "; the mean divides $L_{\\mathrm{CE}}$ by $D$ and the z-loss by $D_z$, the number of counted rows."
            if result.options.reduction == "mean"
            else "."
        )
    )
    loss_items.append(total_with_z_loss(result, row_loss))
    return Stage("Loss", tuple(loss_notes), tuple(loss_items))


def _why_general(result: SoftmaxCrossEntropyResult) -> str:
    """Why the loss keeps every class's term: the reason this route was taken."""
    given_class = given_one_hot_class(result)
    if given_class is not None and not result.options.label_smoothing:
        return (
            "With a target given as probabilities the loss is written in its general form "
            f"(only the term of class {given_class} is not 0)"
        )
    if result.labels is None and given_class is None:
        return "With a target that is not one-hot, no term drops out"
    if result.options.label_smoothing:
        return "Label smoothing gives every class some of the target, so no term drops out"
    return "With class weights the loss is written in its general form (only the label's term is not 0)"


def _input_of(result: SoftmaxCrossEntropyResult) -> str:
    """What b, the softmax's input, is: z/T, a or a/T."""
    logits = "\\mathbf{z}" if result.options.softcap is None else "\\mathbf{a}"
    return logits if result.options.temperature == 1.0 else f"{logits} / T"


def _chain_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    dl_ds = loss_gradient_wrt_probabilities(result).astype(np.float64)
    b = softmax_input(result)
    return Stage(
        "Chain rule",
        (
            "Every $s_j$ with $y_j > 0$ now carries loss, so "
            f"$\\frac{{\\partial L}}{{\\partial {b}_i}} = \\sum_j \\frac{{\\partial L}}{{\\partial s_j}} \\cdot "
            f"\\frac{{\\partial s_j}}{{\\partial {b}_i}}$, with "
            "$\\frac{\\partial L}{\\partial s_j} = -\\frac{w_j y_j}{s_j}$"
            + ("." if b == "z" else f", $\\mathbf{{b}} = {_input_of(result)}$ the softmax's input."),
        ),
        tuple(
            per_class(
                result.num_classes,
                important_classes(result),
                lambda k: Equation(
                    f"\\frac{{\\partial L}}{{\\partial s_{{{k}}}}} = -\\frac{{w_{{{k}}} y_{{{k}}}}}{{s_{{{k}}}}}",
                    "⟨v⟩",
                    {"v": float(dl_ds[k])},
                ),
            )
        ),
    )


def _softmax_derivative_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    b = softmax_input(result)
    return Stage(
        "Softmax derivative",
        (
            f"For every pair of classes, $\\frac{{\\partial s_j}}{{\\partial {b}_i}} = s_j(\\delta_{{ij}} - s_i)$: "
            "$s_i(1 - s_i)$ on the diagonal ($i = j$, the one-hot derivation's case $i = c$) and $-s_i s_j$ off it "
            "(the case $i \\neq c$).",
        ),
        (),
    )


def _combine_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    if result.options.has_llm_options:
        return _combine_stage_language_model(result)
    w = result.class_weights.astype(np.float64)
    y = result.target[0].astype(np.float64)
    factor = scale_factor(result)
    combine_notes = [
        f"Summing over $j$: $\\frac{{\\partial L}}{{\\partial {softmax_input(result)}_i}} = "
        "\\sum_j \\left(-\\frac{w_j y_j}{s_j}\\right) \\cdot "
        "s_j(\\delta_{ij} - s_i) = s_i \\sum_j w_j y_j - w_i y_i$"
        + (", and the temperature adds the factor $\\frac{1}{T}$." if result.options.temperature != 1.0 else ".")
    ]
    combine_notes += denominator_notes(result)
    return Stage(
        "Combining the cases",
        tuple(combine_notes),
        (
            Equation("\\sum_j w_j y_j", "⟨sum⟩", {"sum": float((w * y).sum())}),
            *per_class(
                result.num_classes,
                important_classes(result),
                lambda k: Equation(
                    f"\\frac{{\\partial L}}{{\\partial z_{{{k}}}}} = "
                    f"{factor}\\left(s_{{{k}}} \\sum_j w_j y_j - w_{{{k}}} y_{{{k}}}\\right)",
                    "⟨g⟩",
                    {"g": float(result.gradient[0, k])},
                ),
            ),
        ),
    )


def _combine_stage_language_model(result: SoftmaxCrossEntropyResult) -> Stage:
    w = result.class_weights.astype(np.float64)
    y = result.target[0].astype(np.float64)
    notes = [
        "Summing over $j$ as without the options: the cross-entropy's gradient with respect to "
        "$b_i$ is $\\sum_j \\left(-\\frac{w_j y_j}{s_j}\\right) \\cdot s_j(\\delta_{ij} - s_i) = "
        "s_i \\sum_j w_j y_j - w_i y_i$.",
        *combined_gradient_notes(result),
    ]
    items: list[Item] = [Equation("\\sum_j w_j y_j", "⟨sum⟩", {"sum": float((w * y).sum())})]
    items += per_class(result.num_classes, important_classes(result), lambda k: combined_gradient(result, k))
    return Stage("Combining the cases", tuple(notes), tuple(items))


def _result_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    gradient = result.gradient[0]
    if result.options.has_llm_options:
        return _result_stage_language_model(result)
    return Stage(
        "Result",
        (
            f"${DL_DZ} = {scale_factor(result)}"
            "\\left(\\mathbf{s} \\sum_j w_j y_j - \\mathbf{w} \\odot \\mathbf{y}\\right)"
            "$; with one-hot $\\mathbf{y}$ and no options this is $\\mathbf{s} - \\mathbf{y}$. "
            "Its entries sum to $\\left(\\sum_j w_j y_j\\right)\\left(\\sum_i s_i - 1\\right) = 0$.",
        ),
        (vector("g", DL_DZ, gradient, important_classes(result)),),
    )


def _result_stage_language_model(result: SoftmaxCrossEntropyResult) -> Stage:
    gradient = result.gradient[0]
    return Stage(
        "Result",
        (
            f"${DL_DZ} = \\frac{{1}}{{T}} \\left(1 - \\tanh^2(\\mathbf{{z}} / C)\\right) \\odot "
            f"\\left[\\left(\\frac{{\\sum_j w_j y_j}}{{D}} + \\frac{{2 \\lambda \\, {LSE}}}{{D_z}}\\right)"
            "\\mathbf{s} - \\frac{\\mathbf{w} \\odot \\mathbf{y}}{D}\\right]$; "
            "unweighted, with $D = D_z = 1$, this is "
            f"$\\frac{{1}}{{T}}(1 - \\tanh^2)\\left[(1 + 2 \\lambda \\, {LSE})\\mathbf{{s}} - \\mathbf{{y}}\\right]$.",
            "Its entries no longer sum to 0: the z-loss moves every logit the same way "
            "(its part sums to $2 \\lambda \\, \\operatorname{lse}$), and the cap's factor differs by class.",
        ),
        (
            vector("g", DL_DZ, gradient, important_classes(result)),
            Equation("\\sum_i \\frac{\\partial L}{\\partial z_i}", "⟨sum⟩", {"sum": float(gradient.sum())}),
        ),
    )
