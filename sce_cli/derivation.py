"""The derivation of ``sce grad --steps``, stage by stage, as data.

Stages are built from a core result (they compute nothing the core already
computed: probabilities, losses and gradient come from the result) and are
rendered per format by ``render.steps_*``. Every formula is written once, in
LaTeX; numbers enter through placeholders ``⟨name⟩`` whose values travel with
the equation, so that each format can write them its own way (rounded for
people, full precision in JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .core import (
    SoftmaxCrossEntropyResult,
    gradient_via_jacobian,
    loss_gradient_wrt_probabilities,
    softmax_jacobian,
)
from .numbers import display

#: Up to this many classes every class gets its own line; beyond, the middle is elided.
MAX_LISTED_CLASSES = 10
#: Up to this many classes the K×K Jacobian is shown in full.
MAX_MATRIX_CLASSES = 6
#: exp() of a float64 overflows beyond this.
EXP_LIMIT = 709.0


@dataclass(frozen=True)
class Equation:
    """``symbolic = substituted``; either part may be empty.

    Both are LaTeX; ``substituted`` holds placeholders ``⟨name⟩`` for ``values``.
    """

    symbolic: str = ""
    substituted: str = ""
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Elided:
    """Classes left out of a per-class list."""

    count: int


@dataclass(frozen=True)
class Matrix:
    """A matrix of numbers, rows and columns labelled by class index."""

    name: str  # LaTeX
    rows: tuple[tuple[float, ...], ...]
    indices: tuple[int, ...]


Item = Equation | Elided | Matrix


@dataclass(frozen=True)
class Stage:
    title: str
    notes: tuple[str, ...]  # prose with inline LaTeX between $...$
    items: tuple[Item, ...]


def shown_classes(n_classes: int, *important: int) -> list[int]:
    """The classes to list: all of them when few, else the ends and the important ones."""
    if n_classes <= MAX_LISTED_CLASSES:
        return list(range(n_classes))
    keep = {0, 1, 2, n_classes - 2, n_classes - 1, *important}
    return sorted(k for k in keep if 0 <= k < n_classes)


def per_class(n_classes: int, important: tuple[int, ...], make) -> list[Item]:  # type: ignore[no-untyped-def]
    """One item per shown class, with an Elided marker where classes are skipped."""
    items: list[Item] = []
    previous = -1
    for k in shown_classes(n_classes, *important):
        if k > previous + 1:
            items.append(Elided(k - previous - 1))
        items.append(make(k))
        previous = k
    if previous < n_classes - 1:
        items.append(Elided(n_classes - 1 - previous))
    return items


def vector(key: str, symbol: str, values: np.ndarray, important: tuple[int, ...] = ()) -> Equation:
    """``symbol = (v0, v1, ...)`` with the middle elided for many classes.

    ``key`` names the placeholders (key0, key1, ...); ``symbol`` is LaTeX.
    """
    parts: list[str] = []
    named: dict[str, float] = {}
    previous = -1
    for k in shown_classes(len(values), *important):
        if k > previous + 1:
            parts.append(r"\ldots")
        parts.append(f"⟨{key}{k}⟩")
        named[f"{key}{k}"] = float(values[k])
        previous = k
    if previous < len(values) - 1:
        parts.append(r"\ldots")
    return Equation(symbol, r"\left(" + ", ".join(parts) + r"\right)", named)


DL_DZ = r"\frac{\partial L}{\partial \mathbf{z}}"
DL_DS = r"\frac{\partial L}{\partial \mathbf{s}}"


def build_derivation(result: SoftmaxCrossEntropyResult, digits: int = 4) -> list[Stage]:
    """The stages for row 0 of ``result``: the one-hot route of the two posts
    when no option changes it, else the general forms."""
    classic = result.labels is not None and result.options.is_plain
    stages = [_setup(result), _softmax(result)]
    if classic:
        stages += _one_hot_route(result, digits)
    else:
        stages += _general_route(result, digits)
    stages.append(_jacobian_route(result, classic))
    return stages


# --- stages common to both routes ------------------------------------------------


def _setup(result: SoftmaxCrossEntropyResult) -> Stage:
    z = result.logits[0]
    n_classes = result.num_classes
    options = result.options
    important = _important(result)
    notes = [
        f"There are $K = {n_classes}$ classes. We write $\\mathbf{{z}}$ for the logits, "
        "$\\mathbf{s} = S(\\mathbf{z})$ for the softmax output and $\\mathbf{y}$ for the target "
        "(the second post writes $o$, $p$ and $k$ for $z$, $s$ and $c$). Classes are numbered from 0, as in PyTorch."
    ]
    items: list[Item] = [vector("z", r"\mathbf{z}", z, important)]
    if result.labels is not None:
        label = int(result.labels[0])
        notes.append(
            f"The correct class is $c = {label}$, so $\\mathbf{{y}}$ is one-hot: "
            f"$y_{{{label}}} = 1$ and $y_i = 0$ for $i \\neq c$."
        )
        if options.label_smoothing:
            eps = display(options.label_smoothing, 6).rstrip("0").rstrip(".")
            notes.append(
                f"Label smoothing $\\varepsilon = {eps}$ replaces the one-hot target by "
                f"$(1 - \\varepsilon)\\,\\mathbf{{y}} + \\varepsilon / K$: every class gets "
                f"$\\varepsilon / K$ and the label $1 - \\varepsilon + \\varepsilon / K$."
            )
    else:
        notes.append(
            "The target is a probability distribution $\\mathbf{y}$ (soft targets), "
            "so no term of the loss drops out."
        )
        if options.label_smoothing:
            notes.append(
                "Label smoothing $\\varepsilon$ mixes it with the uniform distribution: "
                "$\\mathbf{y} \\leftarrow (1 - \\varepsilon)\\,\\mathbf{y} + \\varepsilon / K$."
            )
    items.append(vector("y", r"\mathbf{y}", result.target[0], important))
    if options.weight is not None:
        notes.append(
            "Class weights $\\mathbf{w}$ multiply each class's term of the loss: "
            "$L = -\\sum_i w_i y_i \\log s_i$."
        )
        items.append(vector("w", r"\mathbf{w}", result.class_weights, important))
    if options.temperature != 1.0:
        notes.append(
            f"Temperature $T = {_plain(options.temperature)}$ divides the logits before the softmax, "
            "$\\mathbf{s} = S(\\mathbf{z} / T)$, and the chain rule through $\\mathbf{z} / T$ "
            "multiplies the gradient by $1 / T$."
        )
    if options.dtype == "float32":
        notes.append(
            "Everything is computed in float32 (about 7 significant digits), as a float32 framework would."
        )
    return Stage("Setup", tuple(notes), tuple(items))


def _softmax(result: SoftmaxCrossEntropyResult) -> Stage:
    n_classes = result.num_classes
    important = _important(result)
    z = result.scaled_logits[0]
    zs = "z_{%d}" if result.options.temperature == 1.0 else "z_{%d}/T"
    notes = [
        "Softmax turns the logits into probabilities: "
        "$s_i = \\frac{e^{z_i}}{\\sum_j e^{z_j}}$.",
        "It is computed with the largest logit $M$ subtracted first: the shift cancels in the ratio "
        "(multiply the top and the bottom by $e^{M}$), so it changes nothing, and it keeps every "
        "exponent at or below 0, so nothing overflows even for logits of 1000.",
    ]
    items: list[Item] = []
    if result.options.temperature != 1.0:
        items.append(vector("zt", r"\mathbf{z} / T", z, important))
        notes.append("With a temperature, the logits here are $z_i / T$.")
    items.append(
        Equation(
            "M = \\max_i z_i" + ("" if result.options.temperature == 1.0 else " / T"),
            "⟨M⟩",
            {"M": float(result.max_logit[0])},
        )
    )
    items += per_class(
        n_classes,
        important,
        lambda k: Equation(
            f"{zs % k} - M",
            "⟨d⟩",
            {"d": float(result.shifted_logits[0, k])},
        ),
    )
    items += per_class(
        n_classes,
        important,
        lambda k: Equation(
            f"e^{{{zs % k} - M}}",
            "e^{⟨d⟩} = ⟨e⟩",
            {"d": float(result.shifted_logits[0, k]), "e": float(result.exp_shifted[0, k])},
        ),
    )
    items.append(
        Equation("\\sum_j e^{z_j - M}", "⟨sum⟩", {"sum": float(result.exp_sum[0])})
    )
    if np.all(np.abs(z[np.isfinite(z)]) < EXP_LIMIT):
        # Shown because the posts show e^2 = 7.389: the unshifted route gives the same s.
        unshifted = np.exp(z.astype(np.float64))
        notes.append(
            "Without the shift the same numbers appear scaled by $e^{M}$: "
            "the ratios, and so the probabilities, are the same."
        )
        items += per_class(
            n_classes,
            important,
            lambda k: Equation(f"e^{{{zs % k}}}", "⟨e⟩", {"e": float(unshifted[k])}),
        )
        items.append(Equation("\\sum_j e^{z_j}", "⟨sum⟩", {"sum": float(unshifted.sum())}))
    else:
        notes.append(
            "Here $e^{z_i}$ itself overflows float64 (its logits reach "
            f"${_plain(float(np.max(np.abs(z[np.isfinite(z)]))))}$), so only the shifted "
            "exponentials can be shown: this is exactly what the shift is for."
        )
    items += per_class(
        n_classes,
        important,
        lambda k: Equation(
            f"s_{{{k}}} = \\frac{{e^{{{zs % k} - M}}}}{{\\sum_j e^{{z_j - M}}}}",
            "\\frac{⟨e⟩}{⟨sum⟩} = ⟨s⟩",
            {
                "e": float(result.exp_shifted[0, k]),
                "sum": float(result.exp_sum[0]),
                "s": float(result.probabilities[0, k]),
            },
        ),
    )
    return Stage("Softmax, stabilised", tuple(notes), tuple(items))


def _jacobian_route(result: SoftmaxCrossEntropyResult, classic: bool) -> Stage:
    s = result.probabilities[0].astype(np.float64)
    n_classes = result.num_classes
    jacobian = softmax_jacobian(s)
    dl_ds = loss_gradient_wrt_probabilities(result).astype(np.float64)
    product = gradient_via_jacobian(result)
    important = _important(result)
    notes = [
        "The other route the first post mentions: the row vector $\\frac{\\partial L}{\\partial \\mathbf{s}}$ "
        "times the Jacobian $\\frac{\\partial \\mathbf{s}}{\\partial \\mathbf{z}} = "
        "\\operatorname{diag}(\\mathbf{s}) - \\mathbf{s}\\mathbf{s}^\\top$, whose entries are "
        "$s_i(\\delta_{ij} - s_j)$.",
    ]
    items: list[Item] = [vector("v", DL_DS, dl_ds, important)]
    if n_classes <= MAX_MATRIX_CLASSES:
        items.append(
            Matrix(
                "\\frac{\\partial \\mathbf{s}}{\\partial \\mathbf{z}}",
                tuple(tuple(float(v) for v in row) for row in jacobian),
                tuple(range(n_classes)),
            )
        )
    else:
        rows_that_matter = [int(k) for k in np.flatnonzero(dl_ds)]
        if classic:
            label = int(result.labels[0])  # type: ignore[index]
            notes.append(
                f"The Jacobian is ${n_classes} \\times {n_classes}$, too large to show; "
                f"$\\frac{{\\partial L}}{{\\partial \\mathbf{{s}}}}$ is zero except at $c = {label}$, "
                f"so only row {label} matters: $s_c(\\delta_{{cj}} - s_j)$."
            )
            items.append(
                vector("J", f"\\frac{{\\partial s_{{{label}}}}}{{\\partial \\mathbf{{z}}}}", jacobian[label], important)
            )
        else:
            notes.append(
                f"The Jacobian is ${n_classes} \\times {n_classes}$, too large to show; "
                f"{len(rows_that_matter)} of its rows meet a non-zero entry of "
                "$\\frac{\\partial L}{\\partial \\mathbf{s}}$."
            )
    factors = []
    if result.options.temperature != 1.0:
        factors.append("$\\frac{1}{T}$")
    if result.denominator != 1:
        factors.append("$\\frac{1}{D}$ of the mean")
    factor_latex = "".join(f.split("$")[1] + " \\, " for f in factors)
    items.append(
        vector("p", factor_latex + DL_DS + r" \, \frac{\partial \mathbf{s}}{\partial \mathbf{z}}", product, important)
    )
    if np.isfinite(product).all():
        notes.append(
            ("Their product" if not factors else "Their product, times " + " and ".join(factors) + ",")
            + " is the gradient found above, "
            "but the Jacobian costs $K^2$ numbers where $\\mathbf{s} - \\mathbf{y}$ needs $K$."
        )
        items.append(
            Equation(
                "\\max_i \\left|\\text{product}_i - \\frac{\\partial L}{\\partial z_i}\\right|",
                "⟨diff⟩",
                {"diff": float(np.max(np.abs(product - result.gradient[0])))},
            )
        )
    else:
        notes.append(
            "Here a probability with target mass rounds to 0, so "
            "$\\frac{\\partial L}{\\partial \\mathbf{s}}$ has an infinite entry and the product "
            "meets $\\infty \\times 0$: this route fails in floating point, the simplified one does not."
        )
    return Stage("The Jacobian route", tuple(notes), tuple(items))


# --- the one-hot route, as in the posts -----------------------------------------------


def _one_hot_route(result: SoftmaxCrossEntropyResult, digits: int) -> list[Stage]:
    c = int(result.labels[0])  # type: ignore[index]
    s = result.probabilities[0]
    s_c = float(s[c])
    loss = float(result.losses[0])
    gradient = result.gradient[0]
    n_classes = result.num_classes
    important = _important(result)

    loss_notes = [
        "The cross-entropy is $L = -\\sum_i y_i \\log s_i$. Every $y_i$ but $y_c$ is 0, so "
        "$L = -\\log s_c$ (the natural logarithm)."
    ]
    if s_c > 0:
        loss_notes += _rounding_note(
            s_c, loss, digits, lambda rounded: -np.log(rounded) if rounded > 0 else np.inf, "s_c", "-\\log"
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
    loss_stage = Stage("Loss", tuple(loss_notes), (loss_equation,))
    underflow_note = (
        ()
        if s_c > 0
        else (
            "With $s_c$ rounded to 0, $-\\frac{1}{s_c}$ is infinite in floating point; the "
            "simplified $s_c - 1$ below needs no division, which is why it is the formula to compute.",
        )
    )
    chain = Stage(
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
    at_label = Stage(
        "Case i = c",
        (
            "By the quotient rule, "
            "$\\frac{\\partial s_c}{\\partial z_c} = \\frac{e^{z_c}\\sum_j e^{z_j} - e^{z_c}e^{z_c}}"
            "{\\left(\\sum_j e^{z_j}\\right)^2} = s_c(1 - s_c)$, "
            "so $\\frac{\\partial L}{\\partial z_c} = -\\frac{1}{s_c}\\,s_c(1 - s_c) = s_c - 1$.",
            "sce computes $s_c - 1$ as $-\\sum_{j \\neq c} s_j$ when $s_c > 1/2$: the subtraction "
            "would cancel the digits of a confident prediction.",
        ),
        (
            Equation(
                f"\\frac{{\\partial s_{{{c}}}}}{{\\partial z_{{{c}}}}} = s_{{{c}}}(1 - s_{{{c}}})",
                "⟨s⟩ \\times (1 - ⟨s⟩) = ⟨v⟩",
                {"s": s_c, "v": s_c * (1 - s_c)},
            ),
            Equation(
                f"\\frac{{\\partial L}}{{\\partial z_{{{c}}}}} = s_{{{c}}} - 1",
                "⟨s⟩ - 1 = ⟨g⟩",
                {"s": s_c, "g": float(gradient[c])},
            ),
        ),
    )
    others = [k for k in range(n_classes) if k != c]
    off_label_items: list[Item] = []
    if others:
        off_label_items = per_class(
            n_classes,
            important,
            lambda k: Equation(
                f"\\frac{{\\partial L}}{{\\partial z_{{{k}}}}} = -\\frac{{1}}{{s_{{{c}}}}}"
                f"\\left(-s_{{{k}}} s_{{{c}}}\\right) = s_{{{k}}}",
                "⟨g⟩",
                {"g": float(gradient[k])},
            )
            if k != c
            else Equation(f"\\frac{{\\partial L}}{{\\partial z_{{{c}}}}}", "\\text{(case } i = c \\text{ above)}"),
        )
    off_label = Stage(
        "Case i ≠ c",
        (
            "For $i \\neq c$ only the denominator of $s_c$ depends on $z_i$: "
            "$\\frac{\\partial s_c}{\\partial z_i} = \\frac{-e^{z_i}e^{z_c}}{\\left(\\sum_j e^{z_j}\\right)^2} "
            "= -s_i s_c$, so $\\frac{\\partial L}{\\partial z_i} = s_i$.",
        ),
        tuple(off_label_items),
    )
    result_stage = Stage(
        "Result",
        (
            "Together: $\\frac{\\partial L}{\\partial \\mathbf{z}} = \\mathbf{s} - \\mathbf{y}$, "
            "the probabilities with 1 subtracted at the correct class. "
            "Its entries sum to $\\sum_i s_i - 1 = 0$.",
            *_rounding_of_sum(gradient),
        ),
        (
            vector("g", DL_DZ, gradient, important),
            Equation("\\sum_i \\frac{\\partial L}{\\partial z_i}", "⟨sum⟩", {"sum": float(gradient.sum())}),
        ),
    )
    return [loss_stage, chain, at_label, off_label, result_stage]


# --- the general route: soft or smoothed targets, weights, temperature -------------------


def _general_route(result: SoftmaxCrossEntropyResult, digits: int) -> list[Stage]:
    options = result.options
    s = result.probabilities[0].astype(np.float64)
    y = result.target[0].astype(np.float64)
    w = result.class_weights.astype(np.float64)
    log_s = result.log_probabilities[0].astype(np.float64)
    gradient = result.gradient[0]
    n_classes = result.num_classes
    important = _important(result)
    weighted_target_sum = float((w * y).sum())
    row_loss = float(result.losses[0])

    def term(k: int) -> Equation:
        value = 0.0 if y[k] == 0 else -(w[k] * y[k] * log_s[k])
        return Equation(
            f"-w_{{{k}}} y_{{{k}}} \\log s_{{{k}}}",
            "-⟨w⟩ \\times ⟨y⟩ \\times \\log(⟨s⟩) = ⟨t⟩",
            {"w": float(w[k]), "y": float(y[k]), "s": float(s[k]), "t": value},
        )

    loss_notes = [
        "With a target that is not one-hot (or with weights), no term drops out: "
        "$L = -\\sum_i w_i y_i \\log s_i$, with $0 \\log 0 = 0$."
    ]
    if result.labels is not None and options.label_smoothing:
        loss_notes.append(
            "This equals PyTorch's $(1 - \\varepsilon)\\,w_c(-\\log s_c) + "
            "\\frac{\\varepsilon}{K} \\, \\sum_i w_i(-\\log s_i)$."
        )
    loss_items: list[Item] = per_class(n_classes, important, term)
    shown_terms = [float(display(item.values["t"], digits)) for item in loss_items if isinstance(item, Equation)]
    if len(shown_terms) == n_classes and display(sum(shown_terms), digits) != display(row_loss, digits):
        loss_notes.append(
            f"The terms as shown add up to ${display(sum(shown_terms), digits)}$; the exact terms give "
            f"$L = {_plain(row_loss)}$, the value shown."
        )
    loss_items.append(Equation("L = -\\sum_i w_i y_i \\log s_i", "⟨L⟩", {"L": row_loss}))
    reduced = _reduced_note(result)
    if reduced:
        loss_notes.append(reduced[0])
        loss_items.append(reduced[1])
    loss_stage = Stage("Loss", tuple(loss_notes), tuple(loss_items))

    dl_ds = loss_gradient_wrt_probabilities(result).astype(np.float64)
    chain = Stage(
        "Chain rule",
        (
            "Every $s_j$ with $y_j > 0$ now carries loss, so "
            "$\\frac{\\partial L}{\\partial z_i} = \\sum_j \\frac{\\partial L}{\\partial s_j} \\, "
            "\\frac{\\partial s_j}{\\partial z_i}$, with "
            "$\\frac{\\partial L}{\\partial s_j} = -\\frac{w_j y_j}{s_j}$.",
        ),
        tuple(
            per_class(
                n_classes,
                important,
                lambda k: Equation(
                    f"\\frac{{\\partial L}}{{\\partial s_{{{k}}}}} = -\\frac{{w_{{{k}}} y_{{{k}}}}}{{s_{{{k}}}}}",
                    "⟨v⟩",
                    {"v": float(dl_ds[k])},
                ),
            )
        ),
    )
    jacobian_entries = Stage(
        "Softmax derivative",
        (
            "For every pair of classes, $\\frac{\\partial s_j}{\\partial z_i} = s_j(\\delta_{ij} - s_i)$: "
            "$s_i(1 - s_i)$ on the diagonal ($i = j$, the posts' case $i = c$) and $-s_i s_j$ off it "
            "(the case $i \\neq c$).",
        ),
        (),
    )
    t_factor = "" if options.temperature == 1.0 else " \\cdot \\frac{1}{T}"
    combine_notes = [
        "Summing over $j$: $\\frac{\\partial L}{\\partial z_i} = \\sum_j \\left(-\\frac{w_j y_j}{s_j}\\right) "
        "s_j(\\delta_{ij} - s_i) = s_i \\sum_j w_j y_j - w_i y_i$"
        + (", and the temperature adds the factor $\\frac{1}{T}$." if t_factor else ".")
    ]
    if result.options.reduction == "mean" and result.denominator != 1:
        combine_notes.append(
            f"The mean divides the gradient by $D = {_plain(result.denominator)}$ too."
        )
    combine = Stage(
        "Combining the cases",
        tuple(combine_notes),
        (
            Equation("\\sum_j w_j y_j", "⟨sum⟩", {"sum": weighted_target_sum}),
            *per_class(
                n_classes,
                important,
                lambda k: Equation(
                    f"\\frac{{\\partial L}}{{\\partial z_{{{k}}}}} = "
                    f"\\left(s_{{{k}}} \\sum_j w_j y_j - w_{{{k}}} y_{{{k}}}\\right){t_factor}",
                    "⟨g⟩",
                    {"g": float(gradient[k])},
                ),
            ),
        ),
    )
    denominator = "" if result.denominator == 1 else " / D"
    result_stage = Stage(
        "Result",
        (
            "$\\frac{\\partial L}{\\partial \\mathbf{z}} = \\left(\\mathbf{s} \\sum_c w_c y_c - "
            "\\mathbf{w} \\odot \\mathbf{y}\\right)"
            + ("" if t_factor == "" else " / T")
            + denominator
            + "$; with one-hot $\\mathbf{y}$ and no options this is $\\mathbf{s} - \\mathbf{y}$. "
            "Its entries sum to $\\left(\\sum_c w_c y_c\\right)\\left(\\sum_i s_i - 1\\right) = 0$.",
            *_rounding_of_sum(gradient),
        ),
        (
            vector("g", DL_DZ, gradient, important),
            Equation("\\sum_i \\frac{\\partial L}{\\partial z_i}", "⟨sum⟩", {"sum": float(gradient.sum())}),
        ),
    )
    return [loss_stage, chain, jacobian_entries, combine, result_stage]


# --- helpers ------------------------------------------------------------------------------


def _important(result: SoftmaxCrossEntropyResult) -> tuple[int, ...]:
    """Classes that must stay visible when the middle is elided: the label and the argmax."""
    keep = [int(result.argmax[0])]
    if result.labels is not None:
        keep.append(int(result.labels[0]))
    else:
        keep.extend(int(k) for k in np.flatnonzero(result.target[0])[:3])
    return tuple(keep)


def _reduced_note(result: SoftmaxCrossEntropyResult) -> tuple[str, Equation] | None:
    if result.options.reduction != "mean" or result.denominator == 1:
        return None
    return (
        "With reduction mean the loss is divided by "
        + ("the label's weight" if result.labels is not None else "the number of rows")
        + f", $D = {_plain(result.denominator)}$.",
        Equation("L / D", "⟨L⟩", {"L": float(result.loss)}),  # type: ignore[arg-type]
    )


def _rounding_note(exact_input, exact_output, digits, function, symbol, function_latex) -> list[str]:  # type: ignore[no-untyped-def]
    """Say so where rounding the input first would change the shown output
    (as the second post's -log(0.245) = 1.406 for 1.4076)."""
    rounded = float(display(exact_input, digits))
    from_rounded = float(function(rounded))
    if display(from_rounded, digits) == display(exact_output, digits):
        return []
    return [
        f"Rounding first would mislead: ${function_latex}({display(rounded, digits)}) = "
        f"{display(from_rounded, digits)}$, but the exact ${symbol} = {repr(float(exact_input))}$ "
        f"gives ${display(exact_output, digits)}$, the value shown."
    ]


def _rounding_of_sum(gradient: np.ndarray) -> list[str]:
    total = float(gradient.sum())
    if total == 0:
        return []
    return [
        f"Added up in floating point the entries give ${_plain(total)}$ rather than 0: "
        "the rounding of each entry, not an error in the formula."
    ]


def _plain(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
