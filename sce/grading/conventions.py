"""Other conventions of the loss's options, as what-ifs of an exact result over all its rows.

What an answer gives when it leaves an option out or follows another
project's convention (Liger, flash-attention, Megatron, t5x).
``sce check`` names them for its row in its own words, ``sce test`` for a
whole batch in a learner's: both compute them here, once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sce.loss import SoftmaxCrossEntropyResult, softmax_cross_entropy

SOFTCAP_LEFT_OUT = "softcap left out"
TANH_DERIVATIVE_LEFT_OUT = "tanh derivative left out"
Z_LOSS_LEFT_OUT = "z-loss left out"
Z_LOSS_BY_WEIGHT_SUM = "z-loss divided by the weight sum"
Z_LOSS_SUMMED = "z-loss summed"
OTHER_SMOOTHING_STYLE = "other smoothing style"
SMOOTHING_LEFT_OUT = "label smoothing left out"
TEMPERATURE_LEFT_OUT = "temperature left out"


@dataclass(frozen=True)
class Slip:
    """One convention's what-if: its gradient (N×K) and reported loss (a number, or N with
    'none'); None where the slip says nothing about that quantity."""

    kind: str
    gradient: np.ndarray | None
    loss: np.ndarray | None
    rerun: SoftmaxCrossEntropyResult | None = None
    """The exact computation again with the option changed, where the slip is one."""


def reported(result: SoftmaxCrossEntropyResult) -> np.ndarray:
    """The loss as reported: the reduced number, or each row's with 'none' (float64)."""
    if result.options.reduction == "none":
        return np.asarray(result.losses, dtype=np.float64)
    return np.asarray(float(result.loss))


def rerun_with(
    result: SoftmaxCrossEntropyResult, targets: ArrayLike | None = None, **changes: Any
) -> SoftmaxCrossEntropyResult:
    """Every row of ``result`` again with some options changed (silently: a what-if's
    warnings are not the user's business). ``targets``: as given, before smoothing."""
    if targets is None and result.labels is None:
        targets = result.given_targets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return softmax_cross_entropy(
            result.logits,
            result.labels,
            targets=None if result.labels is not None else targets,
            options=result.options.replace(**changes),
        )


def _changed(kind: str, result: SoftmaxCrossEntropyResult, targets: ArrayLike | None, **changes: Any) -> Slip:
    other = rerun_with(result, targets, **changes)
    return Slip(kind, other.gradient.astype(np.float64), reported(other), other)


def z_loss_gradients(result: SoftmaxCrossEntropyResult, *, through_cap: bool = True) -> np.ndarray:
    """The z-loss term's share of the gradient with respect to the logits as given:
    2λ·lse·s/(T·D_z), times the cap's factor 1 − tanh²(z/c) unless ``through_cap`` is
    False (then with respect to the capped logits); 0 on uncounted rows (N×K, float64)."""
    s = result.probabilities.astype(np.float64)
    if not result.options.z_loss or result.log_sum_exp is None or result.z_loss_denominator == 0:
        return np.zeros_like(s)  # (no counted row: a 'mean' z-loss of nothing has no gradient)
    lse = np.where(result.counted, result.log_sum_exp.astype(np.float64), 0.0)
    factor = 2 * result.options.z_loss / (result.z_loss_denominator * result.options.temperature)
    gradient = (factor * lse)[:, None] * s
    return gradient * result.cap_derivative.astype(np.float64) if through_cap else gradient


def _z_loss_slips(result: SoftmaxCrossEntropyResult) -> list[Slip]:
    """Left out; and for 'mean', divided by the weight sum D instead of the counted rows D_z, or summed."""
    if not result.options.z_loss or result.z_losses is None:
        return []
    z_gradient = z_loss_gradients(result)
    gradient, loss = result.gradient.astype(np.float64), reported(result)
    z_reported = (
        np.asarray(result.z_losses, dtype=np.float64)
        if result.options.reduction == "none"
        else np.asarray(float(result.z_loss))
    )
    found = [Slip(Z_LOSS_LEFT_OUT, gradient - z_gradient, loss - z_reported)]
    if result.options.reduction != "mean":
        return found
    z_count, weight_sum = result.z_loss_denominator, result.denominator
    if weight_sum not in (0, z_count):
        change = z_count / weight_sum - 1
        found.append(Slip(Z_LOSS_BY_WEIGHT_SUM, gradient + z_gradient * change, loss + z_reported * change))
    if z_count not in (0, 1):
        change = z_count - 1
        found.append(Slip(Z_LOSS_SUMMED, gradient + z_gradient * change, loss + z_reported * change))
    return found


def _softcap_slips(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None) -> list[Slip]:
    """The cap left out altogether, or only its chain factor 1 − tanh²(z/c) left out of the gradient."""
    if result.options.softcap is None:
        return []
    without_factor = gradient_wrt_capped(result)
    return [
        _changed(SOFTCAP_LEFT_OUT, result, targets, softcap=None),
        Slip(TANH_DERIVATIVE_LEFT_OUT, without_factor, None),
    ]


def gradient_wrt_capped(result: SoftmaxCrossEntropyResult) -> np.ndarray:
    """∂L/∂a, a = c·tanh(z/c) the capped logits: the gradient without the chain factor
    1 − tanh²(z/c), from its parts (where the factor underflows it cannot be divided out) (N×K)."""
    s, y = result.probabilities.astype(np.float64), result.target.astype(np.float64)
    w = result.class_weights.astype(np.float64)
    scale = np.where(result.counted, result.gradient_scale, 0.0)[:, None]
    cross_entropy = scale * (s * (w * y).sum(axis=1, keepdims=True) - w * y)
    return cross_entropy + z_loss_gradients(result, through_cap=False)


def convention_slips(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None = None) -> list[Slip]:
    """Every slip that the result's options make possible (none for the plain loss)."""
    options = result.options
    found: list[Slip] = []
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if options.label_smoothing and result.num_classes >= 2:
            other = "uniform" if options.smoothing_style == "off-target" else "off-target"
            found.append(_changed(OTHER_SMOOTHING_STYLE, result, targets, smoothing_style=other))
        found += _z_loss_slips(result)
        found += _softcap_slips(result, targets)
        if options.label_smoothing:
            found.append(_changed(SMOOTHING_LEFT_OUT, result, targets, label_smoothing=0.0))
        if options.temperature != 1.0:
            found.append(_changed(TEMPERATURE_LEFT_OUT, result, targets, temperature=1.0))
    return found
