"""What the pictures draw, as numbers: the loss and its slope along one logit with the
others held, and the probabilities over a range of temperatures, each point computed by
the loss itself with the result's own options (so a picture shows what ``sce grad`` would
print for those numbers)."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np

from sce.loss import LossWarning, SoftmaxCrossEntropyResult, softmax_cross_entropy
from sce.options import LossOptions

#: Points along a logit: enough for a smooth curve; fewer for many classes, where each costs a pass over K.
CURVE_POINTS = 201
#: Class-times-point budget of one curve (about a second's work), below which it has CURVE_POINTS.
CURVE_BUDGET = 10_000_000
#: The fewest points a curve gets, however many classes.
FEWEST_POINTS = 41
#: Temperatures from T/8 to 8·T.
TEMPERATURE_RANGE = 8.0
TEMPERATURE_POINTS = 97
#: The widest a curve's range reaches either side of 0: a quarter of float64's largest, so that its width is finite.
LARGEST = float(np.finfo(np.float64).max) / 4


@dataclass(frozen=True)
class LogitCurve:
    """The loss L and its slope ∂L/∂z_c as z_c moves, every other logit held.

    ``at``, ``loss_at`` and ``slope_at`` are the given point: its logit, and the loss and
    gradient entry the result reports there, so that the tangent is L(at) + slope_at·(z − at).
    """

    klass: int
    logits: np.ndarray
    losses: np.ndarray
    slopes: np.ndarray
    at: float
    loss_at: float
    slope_at: float


@dataclass(frozen=True)
class TemperatureSweep:
    """p_k(T) over temperatures from T/8 to 8·T, for the given classes (columns), at the given T."""

    temperatures: np.ndarray
    probabilities: np.ndarray
    classes: tuple[int, ...]
    at: float


def curve_class(result: SoftmaxCrossEntropyResult, row: int = 0) -> int:
    """The logit a curve follows: the label's, or with probability targets the class of the largest."""
    rows = result.as_rows
    if rows.labels is not None:
        return int(rows.labels[row])
    assert rows.given_targets is not None
    return int(np.argmax(rows.given_targets[row]))


def curve_points(classes: int) -> int:
    """Points along the logit for ``classes`` classes: CURVE_POINTS within CURVE_BUDGET, fewer beyond.

    Examples
    --------
    >>> curve_points(3), curve_points(1_000_000)
    (201, 41)
    """
    return int(min(CURVE_POINTS, max(FEWEST_POINTS, CURVE_BUDGET // max(classes, 1))))


def logit_range(logits: np.ndarray, klass: int, temperature: float) -> tuple[float, float]:
    """From well below to well above where p_c crosses 1/2 (z_c = T·lse of the others' z/T),
    and always holding the given z_c; 6·T each side, where p_c is within 0.25% of 0 or 1.

    Never wider than floats can hold (a range of 1e308 and more is cut to ±LARGEST), and never
    narrower than a hundred steps between floats there (logits of 1e300 differ by 1e284 at least).

    Examples
    --------
    >>> logit_range(np.array([2.0, 3.0, 4.0]), 1, 1.0)
    (-3.0, 10.126928011042972)
    >>> logit_range(np.array([2.0, 3.0, 4.0]), 1, 1e308)
    (-4.4942328371557893e+307, 4.4942328371557893e+307)
    """
    here = float(logits[klass])
    with np.errstate(over="ignore", invalid="ignore"):  # z/T beyond floats: the middle is then z_c's
        others = np.delete(logits.astype(np.float64), klass) / temperature
        finite = others[np.isfinite(others)]
        middle = temperature * float(np.logaddexp.reduce(finite)) if finite.size else here
    if not np.isfinite(middle):
        middle = here
    scale = max(abs(here), abs(middle))
    span = max(6.0 * temperature, 100.0 * float(np.spacing(scale)))
    low, high = min(here, middle) - span, max(here, middle) + span
    return max(low, -LARGEST), min(high, LARGEST)


def loss_along_logit(
    result: SoftmaxCrossEntropyResult, klass: int | None = None, points: int | None = None
) -> LogitCurve:
    """The loss and ∂L/∂z_c of the result's first row as z_c runs over :func:`logit_range`.

    Examples
    --------
    >>> result = softmax_cross_entropy([[2.0, 3.0, 4.0]], [1])
    >>> curve = loss_along_logit(result)
    >>> curve.klass, round(curve.loss_at, 6), round(curve.slope_at, 6)
    (1, 1.407606, -0.755272)
    >>> bool(np.all(np.diff(curve.losses) < 0))  # raising the label's logit always lowers the loss
    True
    """
    rows = result.as_rows
    klass = curve_class(result) if klass is None else klass
    logits = rows.logits[0].astype(np.float64)
    low, high = logit_range(logits, klass, rows.options.temperature)
    grid = np.linspace(low, high, points or curve_points(rows.num_classes))
    losses = np.empty_like(grid)
    slopes = np.empty_like(grid)
    for k, value in enumerate(grid):
        moved = logits.copy()
        moved[klass] = value
        # One row at a time, with the result's own options: a reduction divides as it did there.
        point = _same_loss(rows, moved)
        losses[k] = point.reported_loss()
        slopes[k] = float(point.gradient[0, klass])
    return LogitCurve(
        klass, grid, losses, slopes, float(logits[klass]), rows.reported_loss(), float(rows.gradient[0, klass])
    )


def probabilities_over_temperature(
    result: SoftmaxCrossEntropyResult, classes: tuple[int, ...], points: int | None = None
) -> TemperatureSweep:
    """p of ``classes`` in the result's first row at temperatures from T/8 to 8·T (log-spaced).

    Examples
    --------
    >>> result = softmax_cross_entropy([[2.0, 3.0, 4.0]], [1], temperature=2.0)
    >>> sweep = probabilities_over_temperature(result, (0, 1, 2))
    >>> float(sweep.temperatures[0]), float(sweep.temperatures[-1])
    (0.25, 16.0)
    >>> bool(np.allclose(sweep.probabilities.sum(axis=1), 1))
    True
    """
    rows = result.as_rows
    points = points or min(TEMPERATURE_POINTS, curve_points(rows.num_classes) // 2)
    temperature = rows.options.temperature
    low = max(temperature / TEMPERATURE_RANGE, float(np.finfo(np.float64).tiny))
    temperatures = np.geomspace(low, min(temperature * TEMPERATURE_RANGE, LARGEST), points)
    logits = rows.logits[0].astype(np.float64)
    chosen = list(classes)
    probabilities = np.empty((points, len(chosen)))
    for k, value in enumerate(temperatures):
        options = dataclasses.replace(rows.options, temperature=float(value))
        probabilities[k] = _same_loss(rows, logits, options).probabilities[0, chosen]
    return TemperatureSweep(temperatures, probabilities, tuple(classes), temperature)


def _same_loss(
    rows: SoftmaxCrossEntropyResult, logits: np.ndarray, options: LossOptions | None = None
) -> SoftmaxCrossEntropyResult:
    # Far along a curve a loss may overflow: the picture's caller sees the infinity, not a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossWarning)
        return softmax_cross_entropy(
            logits[None, :],
            None if rows.labels is None else rows.labels[:1],
            targets=None if rows.given_targets is None else rows.given_targets[:1],
            options=options or rows.options,
        )
