"""The one-hot route of the textbook derivation: L = -log s_c, the cases i = c and i ≠ c, s − y."""

from __future__ import annotations

import math

import numpy as np

from sce.explain.derivation.stages import (
    CONFIDENT_NOTE,
    DL_DZ,
    OTHERS_SUM,
    Equation,
    Item,
    Stage,
    important_classes,
    per_class,
    rounding_note,
    rounding_of_sum,
    rounds_to_one,
    vector,
)
from sce.loss import SoftmaxCrossEntropyResult


def one_hot_stages(result: SoftmaxCrossEntropyResult, digits: int) -> list[Stage]:
    return [
        _loss_stage(result, digits),
        _chain_stage(result, digits),
        _at_label_stage(result, digits),
        _off_label_stage(result),
        _result_stage(result),
    ]


def _label_and_probability(result: SoftmaxCrossEntropyResult) -> tuple[int, float]:
    c = result.label_of(0)
    return c, float(result.probabilities[0, c])


def _loss_stage(result: SoftmaxCrossEntropyResult, digits: int) -> Stage:
    c, s_c = _label_and_probability(result)
    loss = float(result.losses[0])
    loss_notes = [
        "The cross-entropy is $L = -\\sum_i y_i \\log s_i$. Every $y_i$ but $y_c$ is 0, so "
        "$L = -\\log s_c$ (the natural logarithm)."
    ]
    if rounds_to_one(result, c):
        loss_notes.append(CONFIDENT_NOTE.format(others=OTHERS_SUM))
        loss_equation = Equation(
            f"L = -\\log s_{{{c}}} = \\log\\left(1 + {OTHERS_SUM}\\right)",
            "\\log(1 + ⟨S⟩) = ⟨L⟩",
            {"S": float(result.others_sum[0]), "L": loss},
        )
    elif s_c > 0:
        loss_notes += rounding_note(
            s_c,
            loss,
            digits,
            _minus_log,
            "s_c",
            lambda x: f"-\\log({x})",
        )
        loss_equation = Equation(f"L = -\\log s_{{{c}}}", "-\\log(⟨s⟩) = ⟨L⟩", {"s": s_c, "L": loss})
    else:
        loss_notes.append(
            "Here $s_c$ is too small for float64 and rounds to 0, so $-\\log s_c$ is taken from "
            "$\\log s_c = (z_c - M) - \\log \\sum_j e^{z_j - M}$, which never forms $s_c$ itself."
        )
        loss_equation = Equation(
            f"L = -\\left(z_{{{c}}} - M - \\log \\sum_j e^{{z_j - M}}\\right)",
            "-\\left(⟨d⟩ - \\log ⟨sum⟩\\right) = ⟨L⟩",
            {"d": float(result.shifted_logits[0, c]), "sum": float(result.exp_sum[0]), "L": loss},
        )
    return Stage("Loss", tuple(loss_notes), (loss_equation,))


def _chain_stage(result: SoftmaxCrossEntropyResult, digits: int) -> Stage:
    c, s_c = _label_and_probability(result)
    if s_c > 0:
        underflow_note = rounding_note(
            s_c, -1.0 / s_c, digits, _minus_reciprocal, "s_c", lambda x: f"-\\frac{{1}}{{{x}}}"
        )
    else:
        underflow_note = [
            "With $s_c$ rounded to 0, $-\\frac{1}{s_c}$ is infinite in floating point; the "
            "simplified $s_c - 1$ below needs no division, which is why it is the formula to compute."
        ]
    return Stage(
        "Chain rule",
        (
            "$L$ depends on $\\mathbf{z}$ only through $s_c$, so "
            "$\\frac{\\partial L}{\\partial z_i} = \\frac{\\partial L}{\\partial s_c} \\, "
            "\\frac{\\partial s_c}{\\partial z_i}$, with "
            "$\\frac{\\partial L}{\\partial s_c} = -\\frac{1}{s_c}$.",
            *underflow_note,
        ),
        (
            Equation(
                f"\\frac{{\\partial L}}{{\\partial s_{{{c}}}}} = -\\frac{{1}}{{s_{{{c}}}}}",
                "-\\frac{1}{⟨s⟩} = ⟨v⟩",
                {"s": s_c, "v": -1.0 / s_c if s_c > 0 else -np.inf},
            ),
        ),
    )


def _minus_log(value: float) -> float:
    return -math.log(value) if value > 0 else math.inf


def _minus_reciprocal(value: float) -> float:
    return -1.0 / value if value else -math.inf


def _at_label_stage(result: SoftmaxCrossEntropyResult, digits: int) -> Stage:
    c, s_c = _label_and_probability(result)
    gradient_at_label = float(result.gradient[0, c])
    notes = rounding_note(
        s_c, s_c * (1 - s_c), digits, lambda s: s * (1 - s), "s_c", lambda x: f"{x} \\times (1 - {x})"
    )
    notes += rounding_note(s_c, gradient_at_label, digits, lambda s: s - 1, "s_c", lambda x: f"{x} - 1")
    return Stage(
        "Case i = c",
        (
            "By the quotient rule, "
            "$\\frac{\\partial s_c}{\\partial z_c} = \\frac{e^{z_c}\\sum_j e^{z_j} - e^{z_c}e^{z_c}}"
            "{\\left(\\sum_j e^{z_j}\\right)^2} = s_c(1 - s_c)$, "
            "so $\\frac{\\partial L}{\\partial z_c} = -\\frac{1}{s_c}\\,s_c(1 - s_c) = s_c - 1$.",
            "sce computes $s_c - 1$ as $-\\sum_{j \\neq c} s_j$ when $s_c > 1/2$: the subtraction "
            "would cancel the digits of a confident prediction.",
            *notes,
        ),
        (*_at_label_equations(result, c, s_c),),
    )


def _at_label_equations(result: SoftmaxCrossEntropyResult, c: int, s_c: float) -> list[Item]:
    derivative = f"\\frac{{\\partial s_{{{c}}}}}{{\\partial z_{{{c}}}}} = s_{{{c}}}(1 - s_{{{c}}})"
    gradient = f"\\frac{{\\partial L}}{{\\partial z_{{{c}}}}} = s_{{{c}}} - 1"
    g = float(result.gradient[0, c])
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
    n_classes = result.num_classes
    gradient = result.gradient[0]
    off_label_items: list[Item] = []
    if n_classes > 1:
        off_label_items = per_class(
            n_classes,
            important_classes(result),
            lambda k: (
                Equation(
                    f"\\frac{{\\partial L}}{{\\partial z_{{{k}}}}} = -\\frac{{1}}{{s_{{{c}}}}}"
                    f"\\left(-s_{{{k}}} s_{{{c}}}\\right) = s_{{{k}}}",
                    "⟨g⟩",
                    {"g": float(gradient[k])},
                )
                if k != c
                else Equation(f"\\frac{{\\partial L}}{{\\partial z_{{{c}}}}}", "\\text{(case } i = c \\text{ above)}")
            ),
        )
    return Stage(
        "Case i ≠ c",
        (
            "For $i \\neq c$ only the denominator of $s_c$ depends on $z_i$: "
            "$\\frac{\\partial s_c}{\\partial z_i} = \\frac{-e^{z_i}e^{z_c}}{\\left(\\sum_j e^{z_j}\\right)^2} "
            "= -s_i s_c$, so $\\frac{\\partial L}{\\partial z_i} = s_i$.",
        ),
        tuple(off_label_items),
    )


def _result_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    gradient = result.gradient[0]
    return Stage(
        "Result",
        (
            "Together: $\\frac{\\partial L}{\\partial \\mathbf{z}} = \\mathbf{s} - \\mathbf{y}$, "
            "the probabilities with 1 subtracted at the correct class. "
            "Its entries sum to $\\sum_i s_i - 1 = 0$.",
            *rounding_of_sum(gradient),
        ),
        (
            vector("g", DL_DZ, gradient, important_classes(result)),
            Equation("\\sum_i \\frac{\\partial L}{\\partial z_i}", "⟨sum⟩", {"sum": float(gradient.sum())}),
        ),
    )
