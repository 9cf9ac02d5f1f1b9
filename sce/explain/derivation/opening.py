"""The first stages, common to every derivation: the setup and the stabilised softmax."""

from __future__ import annotations

import numpy as np

from sce.explain.derivation.stages import (
    EXP_LIMIT,
    Equation,
    Item,
    Stage,
    exponent,
    given_one_hot_class,
    important_classes,
    logit_symbol,
    per_class,
    plain,
    vector,
)
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import display
from sce.options import LossOptions


def setup_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    z = result.logits[0]
    n_classes = result.num_classes
    options = result.options
    important = important_classes(result)
    notes = [
        f"There are $K = {n_classes}$ classes. We write $\\mathbf{{z}}$ for the logits, "
        "$\\mathbf{s} = S(\\mathbf{z})$ for the softmax output and $\\mathbf{y}$ for the target "
        "(other texts write $o$, $p$ and $k$ for $z$, $s$ and $c$). Classes are numbered from 0, as in PyTorch."
    ]
    items: list[Item] = [vector("z", r"\mathbf{z}", z, important)]
    if result.labels is not None:
        label = int(result.labels[0])
        notes.append(
            f"The correct class is $c = {label}$, so $\\mathbf{{y}}$ is one-hot: "
            f"$y_{{{label}}} = 1$ and $y_i = 0$ for $i \\neq c$."
        )
        if options.label_smoothing:
            notes.append(_smoothing_note(options.label_smoothing, options.smoothing_style))
    elif (given_class := given_one_hot_class(result)) is not None:
        notes.append(
            f"The target is given as probabilities, and it is one-hot: $y_{{{given_class}}} = 1$ and $y_i = 0$ "
            f"for $i \\neq {given_class}$."
        )
    else:
        notes.append(
            "The target is a probability distribution $\\mathbf{y}$ (soft targets), so no term of the loss drops out."
        )
    if result.labels is None:
        if options.label_smoothing and options.smoothing_style == "off-target":
            notes.append(
                "Label smoothing $\\varepsilon$, off-target (Megatron, t5x): "
                "$\\mathbf{y} \\leftarrow (1 - \\varepsilon)\\,\\mathbf{y} + "
                "\\frac{\\varepsilon}{K - 1}(1 - \\mathbf{y})$."
            )
        elif options.label_smoothing:
            notes.append(
                "Label smoothing $\\varepsilon$ mixes it with the uniform distribution: "
                "$\\mathbf{y} \\leftarrow (1 - \\varepsilon)\\,\\mathbf{y} + \\varepsilon / K$."
            )
    items.append(vector("y", r"\mathbf{y}", result.target[0], important))
    if options.weight is not None:
        notes.append(
            "Class weights $\\mathbf{w}$ multiply each class's term of the loss: $L = -\\sum_i w_i y_i \\log s_i$."
        )
        items.append(vector("w", r"\mathbf{w}", result.class_weights, important))
    if options.temperature != 1.0:
        notes.append(
            f"Temperature $T = {plain(options.temperature)}$ divides the logits before the softmax, "
            "$\\mathbf{s} = S(\\mathbf{z} / T)$, and the chain rule through $\\mathbf{z} / T$ "
            "multiplies the gradient by $1 / T$."
        )
    notes += _language_model_notes(options)
    if options.dtype == "float32":
        notes.append("Everything is computed in float32 (about 7 significant digits), as a float32 framework would.")
    return Stage("Setup", tuple(notes), tuple(items))


def _smoothing_note(label_smoothing: float, style: str) -> str:
    """The target under either smoothing convention: PyTorch's uniform one, or off-target."""
    eps = display(label_smoothing, 6).rstrip("0").rstrip(".")
    if style == "off-target":
        return (
            f"Label smoothing $\\varepsilon = {eps}$, off-target (Megatron, t5x): the label keeps "
            f"$1 - \\varepsilon$ and each of the $K - 1$ other classes gets $\\frac{{\\varepsilon}}{{K - 1}}$ "
            "(PyTorch's uniform convention would give every class $\\varepsilon / K$, the label included)."
        )
    return (
        f"Label smoothing $\\varepsilon = {eps}$ replaces the one-hot target by "
        f"$(1 - \\varepsilon)\\,\\mathbf{{y}} + \\varepsilon / K$: every class gets "
        f"$\\varepsilon / K$ and the label $1 - \\varepsilon + \\varepsilon / K$."
    )


def _language_model_notes(options: LossOptions) -> list[str]:
    notes = []
    if options.softcap is not None:
        notes.append(
            f"Soft-capping $C = {plain(options.softcap)}$: the logits become $a_i = C \\tanh(z_i / C)$ "
            "before anything else (Gemma 2)."
        )
    if options.z_loss:
        notes.append(
            f"A z-loss $\\lambda = {plain(options.z_loss)}$ adds $\\lambda \\operatorname{{lse}}^2$ to the "
            "loss (PaLM), $\\operatorname{lse}$ the log of the softmax's denominator."
        )
    return notes


def softmax_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    tempered = result.options.temperature != 1.0
    what = "logits" if result.options.softcap is None else "capped logits"
    notes = [
        f"Softmax turns the {what} into probabilities: "
        f"$s_i = \\frac{{e^{{{_power(result, 'i')}}}}}{{\\sum_j e^{{{_power(result, 'j')}}}}}$.",
        "It is computed with the largest logit $M$ subtracted first: the shift cancels in the ratio "
        "(multiply the top and the bottom by $e^{M}$), so it changes nothing, and it keeps every "
        "exponent at or below 0, so nothing overflows even for logits of 1000.",
    ]
    if tempered:
        notes.append(
            "With a temperature the exponents are $(z_i - M) / T$: the shift comes before the division, "
            "so that a small $T$ cannot overflow $z_i / T$ on the way."
        )
    if result.options.softcap is not None:
        notes.append("With soft-capping the softmax is of the capped logits $\\mathbf{a}$, and $M = \\max_i a_i$.")
    top = float(result.capped_logits[0, int(result.argmax[0])])  # the logits themselves without a cap
    items: list[Item] = [Equation(f"M = \\max_i {logit_symbol(result, 'i')}", "⟨M⟩", {"M": top})]
    items += _shifted_exponentials(result)
    unshifted_items, unshifted_note = _unshifted_exponentials(result)
    notes.append(unshifted_note)
    items += unshifted_items
    items += per_class(
        result.num_classes,
        important_classes(result),
        lambda k: Equation(
            f"s_{{{k}}} = \\frac{{e^{{{exponent(result, k)}}}}}{{{_shifted_sum(result)}}}",
            "\\frac{⟨e⟩}{⟨sum⟩} = ⟨s⟩",
            {
                "e": float(result.exp_shifted[0, k]),
                "sum": float(result.exp_sum[0]),
                "s": float(result.probabilities[0, k]),
            },
        ),
    )
    return Stage("Softmax, stabilised", tuple(notes), tuple(items))


def _shifted_sum(result: SoftmaxCrossEntropyResult) -> str:
    return f"\\sum_j e^{{{exponent(result, 'j')}}}"


def _shifted_exponentials(result: SoftmaxCrossEntropyResult) -> list[Item]:
    important = important_classes(result)
    items = per_class(
        result.num_classes,
        important,
        lambda k: Equation(exponent(result, k), "⟨d⟩", {"d": float(result.shifted_logits[0, k])}),
    )
    items += per_class(
        result.num_classes,
        important,
        lambda k: Equation(
            f"e^{{{exponent(result, k)}}}",
            "e^{⟨d⟩} = ⟨e⟩",
            {"d": float(result.shifted_logits[0, k]), "e": float(result.exp_shifted[0, k])},
        ),
    )
    items.append(Equation(_shifted_sum(result), "⟨sum⟩", {"sum": float(result.exp_sum[0])}))
    return items


def _unshifted_exponentials(result: SoftmaxCrossEntropyResult) -> tuple[list[Item], str]:
    """e^{z_i} (or e^{z_i/T}) themselves where they fit in float64, as a derivation by hand shows
    e^2 = 7.389, with the note that says what they show; else only the note."""
    z = result.scaled_logits[0].astype(np.float64)
    finite = z[np.isfinite(z)]
    if not np.all(np.abs(finite) < EXP_LIMIT):
        return [], (
            f"Here $e^{{{_power(result, 'i')}}}$ itself overflows float64 (its exponents reach "
            f"${plain(float(np.max(np.abs(finite))))}$), so only the shifted "
            "exponentials can be shown: this is exactly what the shift is for."
        )
    unshifted = np.exp(z)
    items = per_class(
        result.num_classes,
        important_classes(result),
        lambda k: Equation(f"e^{{{_power(result, k)}}}", "⟨e⟩", {"e": float(unshifted[k])}),
    )
    items.append(Equation(f"\\sum_j e^{{{_power(result, 'j')}}}", "⟨sum⟩", {"sum": float(unshifted.sum())}))
    note = (
        "Without the shift the same numbers appear scaled by "
        + ("$e^{M}$" if result.options.temperature == 1.0 else "$e^{M/T}$")
        + ": the ratios, and so the probabilities, are the same."
    )
    return items, note


def _power(result: SoftmaxCrossEntropyResult, k: int | str) -> str:
    z = logit_symbol(result, k)
    return z if result.options.temperature == 1.0 else f"{z} / T"
