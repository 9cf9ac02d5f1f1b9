"""`sce grad --verify`: the gradient against central finite differences of the loss."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sce.loss import SoftmaxCrossEntropyResult, softmax_cross_entropy

#: Entries that disagree by more than this, relative to the largest gradient entry, are reported.
AGREEMENT = 1e-6
#: Beyond this many classes, --verify checks a sample (each check costs a pass over all K).
MAX_CHECKED_CLASSES = 40


@dataclass(frozen=True)
class Verification:
    classes: np.ndarray
    """The classes checked (all of them up to MAX_CHECKED_CLASSES)."""
    analytic: np.ndarray
    numeric: np.ndarray
    steps: np.ndarray
    relative_difference: np.ndarray
    relative_resolution: np.ndarray
    """What finite differences can resolve at each step: rounding noise of the
    loss over 2h plus the truncation error h²·|∂³L|/6, relative to the largest entry."""
    num_classes: int
    """K, of which ``classes`` were checked."""

    @property
    def worst(self) -> float:
        return float(np.max(self.relative_difference)) if self.relative_difference.size else 0.0

    @property
    def verdict(self) -> str:
        """'agree', 'disagree', or 'cannot verify' where every difference beyond
        AGREEMENT is within what the differences can resolve at that scale."""
        if not np.isfinite(self.relative_difference).all():
            return "cannot verify"  # an infinite gradient or loss: no difference can be taken
        beyond = self.relative_difference > AGREEMENT
        if not beyond.any():
            return "agree"
        if (self.relative_difference[beyond] > 10 * self.relative_resolution[beyond]).any():
            return "disagree"
        return "cannot verify"


def finite_difference_check(
    result: SoftmaxCrossEntropyResult, loss_of: Callable[[np.ndarray], float], classes: np.ndarray | None = None
) -> Verification:
    """Central differences of the loss, one logit at a time, beside the analytic gradient.

    The step for logit i is ε^(1/3)·max(1, |z_i|) (ε the float64 epsilon,
    about 6e-6 for logits near 1): the step that balances the O(h²) error of
    the central difference against the rounding in (L(z+h) - L(z-h)) / 2h.
    The difference is relative to the largest gradient entry, so that an
    entry of 1e-18 beside entries of 0.5 is not judged on its own digits.
    """
    rows = result.as_rows
    z = rows.logits[0].astype(np.float64)
    classes = np.arange(len(z)) if classes is None else classes
    analytic = rows.gradient[0].astype(np.float64)
    steps = np.cbrt(np.finfo(np.float64).eps) * np.maximum(1.0, np.abs(z[classes]))
    numeric = np.zeros(len(classes))
    noise = np.zeros(len(classes))
    for n, i in enumerate(classes):
        if not np.isfinite(z[i]):
            continue  # a masked class: its gradient is 0
        up, down = z.copy(), z.copy()
        up[i] += steps[n]
        down[i] -= steps[n]
        high, low = np.float64(loss_of(up)), np.float64(loss_of(down))
        with np.errstate(over="ignore", invalid="ignore"):  # an infinite loss: "cannot verify"
            numeric[n] = (high - low) / (up[i] - down[i])
            noise[n] = 4 * np.finfo(np.float64).eps * max(abs(high), abs(low)) / (up[i] - down[i])
    scale = max(float(np.max(np.abs(analytic))), np.finfo(np.float64).tiny)
    with np.errstate(over="ignore", invalid="ignore"):  # an infinite bound: nothing can be verified
        truncation = steps**2 * _third_derivative_bound(rows) / 6
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: reported as "cannot verify"
        relative = np.abs(numeric - analytic[classes]) / scale
        resolution = (noise + truncation) / scale
    return Verification(classes, analytic[classes], numeric, steps, relative, resolution, len(z))


def _third_derivative_bound(result: SoftmaxCrossEntropyResult) -> float:
    """|∂³L/∂z_i³| ≤ (Σ_c w_c y_c)·max|s(1 - s)(1 - 2s)|/T³·(1/D), and max|s(1-s)(1-2s)| < 0.1;
    with the language-model options, the bound of :func:`_language_model_bound`."""
    mass = (result.class_weights.astype(np.float64) * result.target[0]).sum()
    temperature = np.float64(result.options.temperature)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # an infinite bound: nothing verifiable
        third = float(0.1 * mass * result.gradient_scale / temperature / temperature)
        if not result.options.has_llm_options:
            return third
        return _language_model_bound(result, float(mass), third)


def _language_model_bound(result: SoftmaxCrossEntropyResult, mass: float, third: float) -> float:
    """A bound on |∂³L/∂z_i³| with a z-loss and a cap, term by term.

    The z-loss λ·lse²/D_z has, along b_i, derivatives 2·lse·s, 2s² + 2·lse·s(1 - s) and
    6s²(1 - s) + 2·lse·s(1 - s)(1 - 2s): at most 2|lse|, 2 + |lse|/2 and 0.9 + 0.2|lse|
    (times λ/D_z, over T, T², T³). Through a = c·tanh(z/c), with |a′| ≤ 1, |a″| ≤ 0.77/c and
    |a‴| ≤ 2/c², ∂³ = F‴a′³ + 3F″a′a″ + F′a‴ for the first, second and third derivatives F of the rest.
    """
    # numpy floats, under the caller's errstate: a tiny T or cap makes the bound inf
    # (nothing can be verified), where Python floats would raise ZeroDivisionError.
    temperature = np.float64(result.options.temperature)
    lse = abs(float(result.log_sum_exp[0])) if result.log_sum_exp is not None else 0.0
    weight = result.options.z_loss / result.z_loss_denominator
    first = mass * result.gradient_scale + weight * 2 * lse / temperature
    second = 0.25 * mass * result.gradient_scale / temperature + weight * (2 + lse / 2) / temperature**2
    third += weight * (0.9 + 0.2 * lse) / temperature**3
    if result.options.softcap is None:
        return float(third)
    cap = np.float64(result.options.softcap)
    return float(third + 3 * second * 0.77 / cap + first * 2 / cap**2)


def checked_classes(result: SoftmaxCrossEntropyResult) -> np.ndarray:
    """Every class when few; else the label, the prediction, the largest entries and an even spread."""
    n_classes = result.num_classes
    if n_classes <= MAX_CHECKED_CLASSES:
        return np.arange(n_classes)
    gradient = np.abs(result.gradient[0])
    largest = np.argpartition(-gradient, 10)[:10]
    spread = np.linspace(0, n_classes - 1, MAX_CHECKED_CLASSES - 12).astype(int)
    keep = {int(result.argmax[0]), *largest.tolist(), *spread.tolist()}
    if result.labels is not None:
        keep.add(result.label_of(0))
    return np.array(sorted(keep))


def verify_gradient(result: SoftmaxCrossEntropyResult) -> Verification:
    """`sce grad --verify`: finite differences of the same loss, in float64."""
    options = result.options
    labels = result.labels

    def loss_of(logits: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the result's own warnings were reported already
            moved = softmax_cross_entropy(
                logits,
                labels,
                # For probability targets the effective (already smoothed) target is passed as it is.
                targets=None if labels is not None else result.target[:1],
                options=options.replace(
                    dtype="float64", label_smoothing=options.label_smoothing if labels is not None else 0.0
                ),
            )
        return moved.reported_loss()

    return finite_difference_check(result, loss_of, checked_classes(result))
