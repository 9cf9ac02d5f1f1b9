"""One row's probabilities, target, gradient and loss, exact: decimal arithmetic from the float64 inputs.

float64 holds 15 to 17 significant digits, and sce's results are within 1e-14 of
the exact values, so their 16th and 17th digits (and, near a rounding boundary,
an earlier one) are not the exact value's; and where a gradient entry p − q is the
difference of two nearly equal numbers (a prediction within 1e-17 of a soft target),
float64's p − q keeps none of its digits at all. So ``sce grad`` shows these instead
for every row of up to :data:`EXACT_ALWAYS_LIMIT` classes, for larger rows where an
entry cancels, and for any row up to :data:`EXACT_LIMIT` classes from 12 digits on:
every input (logits, weights, target, options) is a float64 and so an exact decimal;
the loss is evaluated on them in decimal arithmetic, at the precision its
cancellations need, and each value is then rounded once for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, Underflow, getcontext, localcontext

import numpy as np

from sce.loss import SoftmaxCrossEntropyResult

#: From this many significant digits on, ``sce grad`` shows the exact values' digits.
EXACT_FROM_DIGITS = 12
#: Up to this many classes the row is evaluated exactly (about a second at 10,000).
EXACT_LIMIT = 10_000
#: Up to this many classes the row is evaluated exactly at any number of digits (about 40 ms at 1,000).
EXACT_ALWAYS_LIMIT = 1_000
#: An entry whose p − q is below this fraction of p or q has lost digits float64 cannot show.
_CANCELLED = 1e-6
#: Digits kept beyond those shown, after every cancellation: the rounding for display is then exact.
_GUARD_DIGITS = 12
#: No cancellation is followed beyond this precision (a target equal to the prediction to 1e-1000).
_MOST_PRECISION = 2_000
_RANGE = 10**8


@dataclass(frozen=True)
class ExactRow:
    """Exact values of one row, as decimals (each to at least the digits asked for plus guard digits)."""

    probabilities: tuple[Decimal, ...]
    target: tuple[Decimal, ...]
    gradient: tuple[Decimal, ...]
    loss: Decimal


def exact_row(result: SoftmaxCrossEntropyResult, digits: int) -> ExactRow | None:
    """Row 0 of ``result``, exact to ``digits`` significant digits; None where it is not re-evaluated.

    Only float64 results of up to :data:`EXACT_LIMIT` classes with a finite loss: rows of
    up to :data:`EXACT_ALWAYS_LIMIT` classes at any digits; larger ones asked for with
    :data:`EXACT_FROM_DIGITS` digits or more, or where an entry p − q cancels (elsewhere
    float64's own values give the same digits but at a rounding boundary within 1e-14 of them).

    Examples
    --------
    >>> from sce.loss import softmax_cross_entropy
    >>> row = exact_row(softmax_cross_entropy([2.0, 3.0, 4.0], 1, reduction="none"), 17)
    >>> rounded_text(row.probabilities[2], 17)  # float64's nearest value is 0.66524095577482178
    '0.66524095577482189'

    A prediction equal to its soft target to 17 digits: float64's p − q is −2.8e-17.

    >>> soft = softmax_cross_entropy([0.0, 2.1972245773362196], targets=[0.1, 0.9], reduction="none")
    >>> rounded_text(exact_row(soft, 5).gradient[0], 5)
    '-1.9104e-17'
    """
    result = result.as_rows
    if (
        not _re_evaluated(result, digits)
        or result.num_classes > EXACT_LIMIT
        or str(result.dtype) != "float64"
        or not np.isfinite(result.losses[0])
        or not np.isfinite(result.gradient[0]).all()
    ):
        return None
    precision = digits + 2 * _GUARD_DIGITS
    while True:
        try:
            row, lost = _evaluated(result, precision)
        except _BeyondRange:
            return None
        if precision - lost >= digits + _GUARD_DIGITS or precision >= _MOST_PRECISION:
            return row
        precision = min(_MOST_PRECISION, max(2 * precision, lost + digits + 2 * _GUARD_DIGITS))


def _re_evaluated(result: SoftmaxCrossEntropyResult, digits: int) -> bool:
    """Whether row 0 is worth evaluating exactly for ``digits``: see :func:`exact_row`."""
    if digits >= EXACT_FROM_DIGITS or result.num_classes <= EXACT_ALWAYS_LIMIT:
        return True
    p, q = result.probabilities[0], result.target[0]
    with np.errstate(all="ignore"):
        return bool((np.abs(p - q) < _CANCELLED * np.maximum(p, np.abs(q))).any())


def _context(precision: int) -> Context:
    return Context(prec=precision, Emax=_RANGE, Emin=-_RANGE)


def _tanh(x: Decimal, precision: int) -> Decimal:
    """tanh(x) to ``precision`` digits, with no digit lost near 0 (where 1 - e^{-2|x|} would cancel)."""
    if x.is_infinite():
        return Decimal(1).copy_sign(x)
    magnitude = abs(x)
    if magnitude.is_zero():
        return x
    digits_below_one = max(0, -magnitude.adjusted())
    if digits_below_one > precision // 2:  # x - x³/3, exact to x⁵: well past the precision kept
        return x - x**3 / 3
    with localcontext(_context(precision + digits_below_one + 2)):
        e = (-2 * magnitude).exp()
        return ((1 - e) / (1 + e)).copy_sign(x)


def _shifted_inputs(
    result: SoftmaxCrossEntropyResult, precision: int
) -> tuple[list[Decimal | None], Decimal, list[Decimal]]:
    """b - M for b = c·tanh(z/c)/T (or z/T) and M = max b, None for a logit of -inf without a cap;
    M itself; and the cap's factor 1 - tanh²(z/c) per class (1 without a cap)."""
    options = result.options
    temperature = Decimal(float(options.temperature))
    logits = [Decimal(v) for v in result.logits[0].tolist()]
    if options.softcap is None:
        top = max(logits)
        # z - M exactly (two float64s differ by at most ~1,100 digits), then one rounding in the division.
        with localcontext(_context(1_200)):
            differences = [None if z.is_infinite() else z - top for z in logits]
        shifted = [None if d is None else d / temperature for d in differences]
        return shifted, top / temperature, [Decimal(1)] * len(logits)
    cap = Decimal(float(options.softcap))
    capped = [cap * _tanh(z / cap, precision) for z in logits]
    top = max(capped)
    factors = []
    for z in logits:
        e = Decimal(0) if z.is_infinite() else _exp(-2 * abs(z / cap))
        factors.append(4 * e / (1 + e) ** 2)  # 1 - tanh², with no 1 to cancel against
    return [(a - top) / temperature for a in capped], top / temperature, factors


def _target(result: SoftmaxCrossEntropyResult) -> list[Decimal]:
    """The effective target q: the label or the given target, smoothed as the options say."""
    options = result.options
    size = result.num_classes
    if not result.counted[0]:
        return [Decimal(0)] * size
    if result.labels is not None:
        label = int(result.labels[0])
        given = [Decimal(1) if k == label else Decimal(0) for k in range(size)]
    else:
        assert result.given_targets is not None
        given = [Decimal(v) for v in np.asarray(result.given_targets).reshape(-1, size)[0].tolist()]
    eps = Decimal(float(options.label_smoothing))
    if not eps:
        return given
    if options.smoothing_style == "off-target":
        if size == 1:
            return given
        return [(1 - eps) * y + eps / (size - 1) * (1 - y) for y in given]
    return [(1 - eps) * y + eps / size for y in given]


def _log1p(s: Decimal, precision: int) -> Decimal:
    """log(1 + S) with S's own digits kept however small S is."""
    if s.is_zero() or -s.adjusted() > precision:  # S - S²/2 + …: S itself to the precision kept
        return s
    with localcontext(_context(precision + max(0, -s.adjusted()) + 2)):
        return (1 + s).ln()


def _digits_lost(first: Decimal, second: Decimal) -> int:
    """How many leading digits first + second loses to cancellation (all of them where it gives 0:
    then only more precision tells a true 0 from one that cancelled every digit kept)."""
    total, larger = first + second, max(abs(first), abs(second))
    if not larger:
        return 0
    if not total:
        return getcontext().prec
    return max(0, larger.adjusted() - total.adjusted())


class _BeyondRange(ArithmeticError):
    """A value not 0 lies beyond 10^±RANGE, where a decimal would hold it as 0 or ∞."""


def _exp(x: Decimal) -> Decimal:
    if x < -2 * _RANGE:  # e^x below 10^-RANGE: no decimal here holds it
        raise _BeyondRange
    return x.exp()


def _evaluated(result: SoftmaxCrossEntropyResult, precision: int) -> tuple[ExactRow, int]:
    """The row at ``precision`` digits, and how many digits its worst cancellation lost."""
    options = result.options
    with localcontext(_context(precision)):
        shifted, top, cap_factors = _shifted_inputs(result, precision)
        first_max = next(k for k, d in enumerate(shifted) if d is not None and d.is_zero())
        exp_shifted = [Decimal(0) if d is None else _exp(d) for d in shifted]
        # An exponent x known to `precision` digits gives e^x to `precision` minus the digits of x.
        lost = max((d.adjusted() + 1 for d in shifted if d is not None and d), default=0)
        others = sum((e for k, e in enumerate(exp_shifted) if k != first_max), Decimal(0))
        log_sum = _log1p(others, precision)
        total = 1 + others
        probabilities = [e / total for e in exp_shifted]
        lse = top + log_sum
        lost = max(lost, _digits_lost(top, log_sum))
        q = _target(result)
        w = [Decimal(v) for v in result.class_weights.astype(np.float64).tolist()]
        mass = sum((wk * qk for wk, qk in zip(w, q)), Decimal(0))
        cross_entropy = -sum(
            (wk * qk * (d - log_sum) for wk, qk, d in zip(w, q, shifted) if wk * qk != 0 and d is not None), Decimal(0)
        )
        denominator = Decimal(float(result.denominator))
        z_denominator = Decimal(float(result.z_loss_denominator))
        z_loss = Decimal(float(options.z_loss)) if result.counted[0] else Decimal(0)
        temperature = Decimal(float(options.temperature))
        z_term = z_loss * lse * lse / z_denominator if z_loss else Decimal(0)
        loss = (cross_entropy / denominator if denominator else Decimal("NaN")) + z_term
        gradient = []
        for p, wk, qk, factor in zip(probabilities, w, q, cap_factors):
            cross_part = (p * mass - wk * qk) / denominator if denominator else Decimal(0)
            z_part = 2 * z_loss * lse * p / z_denominator if z_loss else Decimal(0)
            lost = max(lost, _digits_lost(p * mass, -wk * qk), _digits_lost(cross_part, z_part))
            gradient.append((cross_part + z_part) / temperature * factor)
        if getcontext().flags[Underflow]:
            raise _BeyondRange
    return ExactRow(tuple(probabilities), tuple(q), tuple(gradient), loss), lost


def float64_digits(result: SoftmaxCrossEntropyResult, digits: int) -> int:
    """The digits float64's own values are shown with where they are not re-evaluated exactly: at most
    one fewer than :data:`EXACT_FROM_DIGITS` for a float64 result (float32's are shown as asked: they are
    float32's values)."""
    if str(result.dtype) != "float64":
        return digits
    return min(digits, EXACT_FROM_DIGITS - 1)


def digits_capped_line(classes: int, digits: int) -> str:
    """Why fewer digits are shown than asked: one line under the table."""
    reason = (
        f"beyond {EXACT_LIMIT:,} classes"
        if classes > EXACT_LIMIT
        else "where the loss or the gradient is not finite, or a value lies beyond 10^±100,000,000,"
    )
    return (
        f"digits: {digits} shown; {reason} the values are float64's, within 1e-14 of the exact ones, and are not "
        "re-evaluated exactly"
    )


def rounded_text(value: Decimal, digits: int) -> str:
    """``value`` rounded once to ``digits`` significant digits, written as :func:`sce.number_text.display`
    writes a float (fixed from 1e-4 up to 10**digits, scientific beyond, trailing zeros kept)."""
    from sce.number_text import display

    if not value.is_finite() or value.is_zero():
        return display(float(value), digits)
    with localcontext(_context(digits)) as context:
        context.rounding = "ROUND_HALF_EVEN"
        rounded = context.plus(value)
        exponent = rounded.adjusted()
        mantissa = abs(rounded).scaleb(-exponent)
    sign = "-" if rounded < 0 else ""
    if -4 <= exponent < digits:
        text = f"{abs(rounded):.{max(digits - 1 - exponent, 0)}f}"
        return sign + text
    return sign + f"{mantissa:.{digits - 1}f}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"

