"""The usual mistakes: what each slip gives, to name it when an answer matches."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sce.grading import conventions
from sce.grading.conventions import convention_slips
from sce.loss import SoftmaxCrossEntropyResult, softmax_cross_entropy
from sce.options import LossOptions


@dataclass(frozen=True)
class Mistake:
    name: str
    quantity: str
    value: np.ndarray


def rerun(
    result: SoftmaxCrossEntropyResult,
    targets: ArrayLike | None = None,
    *,
    label: int | None = None,
    **changes: Any,
) -> SoftmaxCrossEntropyResult:
    """Row 0 of ``result`` again, with some options (or the label) changed.

    ``targets`` are the probability targets as given (before smoothing).
    Silent: a what-if's warnings are not the user's business.
    """
    labels = None if result.labels is None else [int(result.labels[0]) if label is None else label]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return softmax_cross_entropy(
            result.logits[:1],
            labels,
            targets=None if labels is not None else targets,
            options=result.options.replace(**changes),
        )


def usual_mistakes(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None = None) -> list[Mistake]:
    """What the usual slips give, for every quantity where each can occur.

    ``targets`` are the probability targets as given, if any (before smoothing).
    """
    # Where the result overflows (a tiny T), the what-ifs do too: inf and NaN
    # values that no answer matches, computed without numpy's warnings.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        found = _formula_mistakes(result) + _reduction_mistakes(result) + _weight_mistakes(result)
        found += _temperature_mistakes(result, targets) + _smoothing_mistakes(result, targets)
        found += _label_mistakes(result)
        found += _slip_mistakes(result, targets)
    return found


def _row(values: np.ndarray) -> np.ndarray:
    return values[0].astype(np.float64)


def _formula_mistakes(result: SoftmaxCrossEntropyResult) -> list[Mistake]:
    g, y, w = _row(result.gradient), _row(result.target), result.class_weights.astype(np.float64)
    scale = result.gradient_scale
    mass = float((w * y).sum())
    loss = result.reported_loss()
    unnormalised = _row(result.exp_shifted)
    return [
        Mistake(
            "the probabilities, without subtracting 1 at the correct class (∂L/∂z = s - y)",
            "gradient",
            g + w * y * scale,
        ),
        Mistake("y - s: the sign is flipped (∂L/∂z = s - y)", "gradient", -g),
        Mistake("the loss in log base 10: cross-entropy uses the natural log", "loss", np.array([loss / math.log(10)])),
        Mistake("the loss in log base 2: cross-entropy uses the natural log", "loss", np.array([loss / math.log(2)])),
        Mistake(
            "the gradient of a loss in log base 10: cross-entropy uses the natural log", "gradient", g / math.log(10)
        ),
        Mistake(
            "the gradient of a loss in log base 2: cross-entropy uses the natural log", "gradient", g / math.log(2)
        ),
        Mistake("the shifted exponentials e^(z - M), not divided by their sum", "probabilities", unnormalised),
        Mistake(
            "the shifted exponentials e^(z - M) in place of the probabilities: they are not divided by their sum",
            "gradient",
            (unnormalised * mass - w * y) * scale,
        ),
    ]


def _reduction_mistakes(result: SoftmaxCrossEntropyResult) -> list[Mistake]:
    if result.denominator in (0, 1):
        return []
    what = "the weight sum" if result.labels is not None else "N"
    why = f"the mean divides by {what} ({result.denominator:g})"
    loss = result.reported_loss()
    return [
        Mistake(f"the gradient of the summed loss: {why}", "gradient", _row(result.gradient) * result.denominator),
        Mistake(f"the summed loss: {why}", "loss", np.array([loss * result.denominator])),
    ]


def _weight_mistakes(result: SoftmaxCrossEntropyResult) -> list[Mistake]:
    if result.labels is None or result.options.weight is None:
        return []
    label = result.label_of(0)
    p, w = _row(result.probabilities), result.class_weights.astype(np.float64)
    per_class = w * (p - np.eye(len(p))[label]) * result.gradient_scale
    return [
        Mistake(
            f"weights applied class by class, w ⊙ (s - y): every entry is scaled by the label's weight w_{label}",
            "gradient",
            per_class,
        )
    ]


def _temperature_mistakes(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None) -> list[Mistake]:
    temperature = result.options.temperature
    if temperature == 1.0:
        return []
    untempered = rerun(result, targets, temperature=1.0)
    return [
        Mistake("the factor 1/T of the temperature is missing", "gradient", _row(result.gradient) * temperature),
        Mistake("the softmax of z, not of z / T", "probabilities", _row(untempered.probabilities)),
        Mistake(
            "the gradient without the temperature: the softmax of z, not of z / T, and no factor 1/T",
            "gradient",
            _row(untempered.gradient),
        ),
        Mistake(
            "the loss without the temperature (softmax of z, not z / T)",
            "loss",
            np.array([untempered.reported_loss()]),
        ),
    ]


def _smoothing_mistakes(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None) -> list[Mistake]:
    if not result.options.label_smoothing:
        return []
    plain = rerun(result, targets, label_smoothing=0.0)
    return [
        Mistake("label smoothing left out", "gradient", _row(plain.gradient)),
        Mistake("label smoothing left out", "loss", np.array([plain.reported_loss()])),
    ]


def _label_mistakes(result: SoftmaxCrossEntropyResult) -> list[Mistake]:
    if result.labels is None or result.label_of(0) < 1:
        return []
    # A label read as 1-based: "--label 2" taken to mean the second class.
    label = result.label_of(0)
    other = rerun(result, label=label - 1)
    why = f"labels are 0-based, so --label {label} is the class at index {label}"
    return [
        Mistake(f"the gradient for class {label - 1}: {why}", "gradient", _row(other.gradient)),
        Mistake(f"the loss for class {label - 1}: {why}", "loss", np.array([other.reported_loss()])),
    ]


def _slip_mistakes(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None) -> list[Mistake]:
    """The language-model options' other conventions (grading.conventions), for row 0, in sce check's words."""
    found: list[Mistake] = []
    for slip in convention_slips(result, targets):
        words = slip_words(slip.kind, result.options, result.z_loss_denominator, result.denominator)
        if words is None:
            continue
        gradient_words, loss_words = words
        if slip.gradient is not None:
            found.append(Mistake(gradient_words, "gradient", slip.gradient[0]))
        if slip.loss is not None and loss_words:
            loss = slip.loss if slip.loss.ndim == 0 else slip.loss[0]
            found.append(Mistake(loss_words, "loss", np.array([float(loss)])))
        if slip.kind == conventions.SOFTCAP_LEFT_OUT and slip.rerun is not None:
            found.append(Mistake(f"the softcap left out: the softmax is of {_cap(result)}", "probabilities",
                                 _row(slip.rerun.probabilities)))  # fmt: skip
    return found


def _cap(result: SoftmaxCrossEntropyResult) -> str:
    return _cap_words(result.options)


def _cap_words(options: LossOptions) -> str:
    return f"c·tanh(z/c) with c = {options.softcap:g}"


def slip_words(kind: str, options: LossOptions, z_count: float, weight_sum: float) -> tuple[str, str] | None:
    """(the gradient's words, the loss's) for each slip sce check names (``z_count``: what the
    z-loss's mean divides by; ``weight_sum``: the cross-entropy's)."""
    if kind == conventions.OTHER_SMOOTHING_STYLE:
        style = options.smoothing_style
        other = "uniform" if style == "off-target" else "off-target"
        styles = {
            "uniform": "ε/K on every class, the label included (PyTorch)",
            "off-target": "1 − ε on the label and ε/(K − 1) on each other class (Megatron, t5x)",
        }
        why = f"smoothed {other}, {styles[other]}; asked for {style}: {styles[style]}"
        return f"the gradient with the target {why}", f"the loss with the target {why}"
    if kind == conventions.Z_LOSS_LEFT_OUT:
        why = f"each counted row adds λ·lse² with λ = {options.z_loss:g}"
        return f"the gradient without the z-loss's 2λ·lse·s: {why}", f"the loss without the z-loss: {why}"
    if kind == conventions.Z_LOSS_BY_WEIGHT_SUM:
        why = f"the z-loss is unweighted: the mean divides it by the counted rows ({z_count:g}), not the weight sum"
        return (
            f"the z-loss's gradient divided by the weight sum ({weight_sum:g}): {why}",
            f"the z-loss divided by the weight sum ({weight_sum:g}): {why}",
        )
    if kind == conventions.Z_LOSS_SUMMED:
        why = f"the mean divides the z-loss by the counted rows ({z_count:g})"
        return f"the z-loss's gradient summed: {why}", f"the z-loss summed: {why}"
    if kind == conventions.SOFTCAP_LEFT_OUT:
        words = f"the softcap left out: the logits are first capped, {_cap_words(options)}"
        return words, words
    if kind == conventions.TANH_DERIVATIVE_LEFT_OUT:
        return (
            "the gradient with respect to the capped logits: the chain rule through the cap multiplies "
            "each entry by its derivative 1 − tanh²(z/c)",
            "",
        )
    return None  # smoothing and temperature left out: named above, with the probabilities' what-ifs
