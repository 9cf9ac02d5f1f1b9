"""Soft-capped logits c·tanh(z/c), kept as an unevaluated sum so that their differences keep their digits.

Language models cap their logits (Gemma 2's ``final_logit_softcapping``) before the softmax. The
softmax needs only differences a_j - a_m of capped logits, which a rounded c·tanh(z/c) would lose
wherever |a| is much larger than a difference; here a = high + low (+ lower), with ``high`` exact.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from sce.loss.exact_arithmetic import fast_two_sum, two_product, two_sum
from sce.loss.row_blocks import flat

# tanh(x) = x + x³·P(x²) for |x| < SMALL_TANH: the Taylor coefficients of P
# (those of tanh from x³ on), enough for 1 ulp where x² < 0.09.
_TANH_SERIES = (
    -0.3333333333333333,
    0.13333333333333333,
    -0.05396825396825397,
    0.021869488536155203,
    -0.008863235529902197,
    0.003592128036572481,
    -0.0014558343870513183,
    0.000590027440945586,
    -0.00023912911424355248,
    9.691537956929451e-05,
    -3.927832388331683e-05,
    1.5918905069328964e-05,
    -6.451689215655431e-06,
)
SMALL_TANH = 0.3


@dataclass(frozen=True)
class Capped:
    """Soft-capped logits a = c·tanh(z/c) as an unevaluated sum high + low (+ lower), and tanh's derivative.

    ``high`` is exact (z itself where |z/c| < 0.3, else ±c) and ``low`` a
    correction known to a few ulp of itself, so that the differences a_j - a_m
    the softmax needs keep their digits: c·tanh(z/c) rounded would lose them
    wherever |a| is much larger than a difference (a logit 600 below the
    maximum, or a weak cap c ≫ |z|). Where a few ulp of ``low`` over T would
    still be more than ~1e-16 (|z/c| of order 1 with c/T ≫ 1: the error of
    the exponent e^((a_j - a_m)/T) is that of a_j - a_m over T), ``low`` is
    known to twice the digits, as low + lower, at the flat indices ``precise``.
    """

    high: np.ndarray
    low: np.ndarray
    derivative: np.ndarray
    """1 - tanh²(z/c), as 4E/(1 + E)² with E = exp(-2|z/c|): never 1 minus a number near 1."""
    precise: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    """Flat (row-major) indices of the logits whose low part has a second part, ascending."""
    lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """That second part, the rounding of ``low`` there (as many as ``precise``)."""

    @property
    def rounded(self) -> np.ndarray:
        """a = c·tanh(z/c), rounded."""
        rounded = self.high + self.low
        flat(rounded)[self.precise] += self.lower
        return rounded

    def lower_at(self, at: np.ndarray) -> np.ndarray:
        """``lower`` at the flat indices ``at`` (ascending), 0 where there is none."""
        values = np.zeros(len(at), self.low.dtype)
        if self.precise.size:
            where = np.minimum(np.searchsorted(self.precise, at), self.precise.size - 1)
            found = self.precise[where] == at
            values[found] = self.lower[where[found]]
        return values

    def shift_low_parts(self, difference: np.ndarray, err: np.ndarray, at_max: np.ndarray) -> np.ndarray:
        """The shift of the capped logits: ``difference`` (that of the high parts) + (low - low_max)
        + (lower - lower_max), each rounding added to ``err`` (in place).

        ``at_max``: each row's argmax as flat indices (:func:`~sce.loss.row_blocks.flat_indices`).
        """
        low_max = flat(self.low).take(at_max)
        # Both TwoSums: a low part is as large as c (|z/c| of order 1), and the
        # rounding of a difference of two of them would be an ulp of c, over T.
        low_difference, rounding = two_sum(self.low, -low_max[:, None])
        err += rounding
        if self.precise.size:
            flat(err)[self.precise] += self.lower
            err -= self.lower_at(at_max)[:, None]  # the max's lower part, in every entry of its row
        total, rounding = two_sum(difference, low_difference)
        err += rounding
        return total


def soft_capped(z: np.ndarray, cap: float, temperature: float = 1.0) -> Capped:
    """c·tanh(z/c) for each logit of a row-major block, as :class:`Capped`.

    Parameters
    ----------
    z : numpy.ndarray
        A row-major block of logits (N×K), float32 or float64; -inf marks a masked logit.
    cap : float
        c > 0.
    temperature : float
        T, which the capped logits are divided by later: it decides where the low part needs
        a second part (a few ulp of it over T would show in exp((a_j - a_m)/T)).

    Returns
    -------
    Capped
        The capped logits as high + low (+ lower), and tanh's derivative 1 - tanh²(z/c).

    Notes
    -----
    x = z/c is kept as x + x_lo (TwoProduct gives the division's remainder).
    Small |x|: tanh(x + x_lo) = x + x³·P(x²) + x_lo·(1 - x²), so
    a = z + c·(x³·P(x²) - x_lo·x²). Larger |x|: tanh|x| = 1 - ω with
    ω = 2E/(1 + E), E = exp(-2|x|)·(1 - 2·x_lo·sign x), so a = ±c ∓ c·ω, and
    ω keeps its digits however near 1 tanh is. A masked logit (-inf) becomes -c.
    Where c/T makes a few ulp of the low part matter (:func:`_needing_precision`),
    ω is formed in double-double arithmetic instead (:func:`_precise_tail`). The division's
    remainder and the double-double products are Dekker's TwoProduct
    (:func:`~sce.loss.exact_arithmetic.two_product`).

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> capped = soft_capped(np.array([[0.0, 100.0, -np.inf]]), 30.0)
    >>> [float(v) for v in capped.high[0]], float(capped.rounded[0, 2])
    ([0.0, 30.0, -30.0], -30.0)
    >>> abs(float(capped.rounded[0, 1]) - 30 * math.tanh(100 / 30)) < 1e-14
    True
    """
    c = z.dtype.type(cap)
    with np.errstate(all="ignore"):
        x = z / c
        product, product_err = two_product(x, c)
        x_low = ((z - product) - product_err) / c
        x_low = np.where(np.isfinite(x_low), x_low, 0).astype(z.dtype, copy=False)
        magnitude = np.abs(x)
        sign = np.where(x < 0, -1, 1).astype(z.dtype)
        e = np.exp(-2 * magnitude) * (1 - 2 * sign * x_low)
        derivative = (4 * e) / np.square(1 + e)
        derivative = np.where(np.isfinite(derivative), derivative, 0).astype(z.dtype, copy=False)
        small = magnitude < SMALL_TANH
        square = x * x
        series = np.full_like(x, _TANH_SERIES[-1])
        for coefficient in _TANH_SERIES[-2::-1]:
            series = series * square + coefficient
        small_low = c * (x * square * series - x_low * square)
        omega = 2 * e / (1 + e)
        high = np.where(small, z, sign * c).astype(z.dtype, copy=False)
        low = np.where(small, small_low, -sign * c * omega).astype(z.dtype, copy=False)
        precise = _needing_precision(magnitude, omega, float(cap) / float(temperature))
        if not precise.size:
            return Capped(high, low, derivative)
        lower = np.empty(precise.size, z.dtype)
        # In chunks that stay in the cache: the tail makes some thirty temporaries.
        for start in range(0, precise.size, _TAIL_CHUNK):
            at = precise[start : start + _TAIL_CHUNK]
            at_x = flat(x)[at]
            flat(high)[at] = np.where(at_x < 0, -c, c)
            flat(low)[at], lower[start : start + _TAIL_CHUNK] = _precise_tail(at_x, flat(x_low)[at], c)
    return Capped(high, low, derivative, precise, lower)


# The plain low part is within about 3 ulp of itself: c·ω beyond the series,
# c·|x|³/3 within it. Where that over T exceeds ~3e-16 (the exponent's error,
# so the relative error of e^((a_j - a_m)/T)), the low part is made precise.
_PLAIN_LIMIT = 1.0  # on ω·c/T
_SERIES_LIMIT = 3.0  # on |x|³·c/T
# exp(-k/64) as double-double for 2|x| = k/64 up to 64 (beyond, E < 2e-28 and
# c·ω/T needs c/T > 1e27 to matter).
_TABLE_STEPS = 64
_TAIL_CHUNK = 16384
_TABLE_END = 64.0


def _needing_precision(magnitude: np.ndarray, omega: np.ndarray, scale: float) -> np.ndarray:
    """Flat indices where the plain low part's rounding, times c/T (``scale``), would show."""
    need = omega * scale > _PLAIN_LIMIT
    need &= magnitude >= SMALL_TANH
    if scale * SMALL_TANH**3 > _SERIES_LIMIT:
        need |= (magnitude < SMALL_TANH) & (np.square(magnitude) * magnitude * scale > _SERIES_LIMIT)
    need &= 2 * magnitude <= _TABLE_END
    return np.flatnonzero(need)


@cache
def _exp_table(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """exp(-k/64) for k = 0 … 4096, each as high + low (the rounding of high), from 40-digit decimals."""
    context = decimal.Context(prec=40)
    exact = [context.exp(decimal.Decimal(-k) / _TABLE_STEPS) for k in range(int(_TABLE_END * _TABLE_STEPS) + 1)]
    high = np.array([float(v) for v in exact], dtype)
    low = np.array([float(context.subtract(v, decimal.Decimal(float(h)))) for v, h in zip(exact, high)], dtype)
    return high, low


# exp(y) = 1 + y + y²·Q(y) for |y| <= 1/128: the coefficients of Q (the first, 1/2, is
# applied exactly), enough for 1e-24 relative.
_EXP_SERIES = (1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040, 1 / 40320)


def _precise_tail(x: np.ndarray, x_low: np.ndarray, c: np.floating) -> tuple[np.ndarray, np.ndarray]:
    """-sign(x)·c·ω with ω = 1 - tanh|x + x_low| = 2E/(1 + E), as high + low parts (1-D).

    E = exp(-2|x|)·exp(-2·sign(x)·x_low) = exp(-k/64)·exp(y) with k = round(128|x|)
    and y = k/64 - 2|x| exact (|y| <= 1/128): the first factor from a double-double
    table, the second as 1 + y + y²·Q(y), to about 1e-23.
    Then ω = 2E/(1 + E) with the division's remainder recovered exactly.
    """
    dtype = x.dtype
    table_high, table_low = _exp_table(dtype)
    sign = np.where(x < 0, -1, 1).astype(dtype)
    double_magnitude = 2 * np.abs(x)
    steps = np.rint(double_magnitude * _TABLE_STEPS)
    y = steps / _TABLE_STEPS - double_magnitude
    y_low = -2 * sign * x_low
    t_high, t_low = table_high[steps.astype(np.intp)], table_low[steps.astype(np.intp)]
    # e^y = 1 + u + rest, u = y + y²/2 as a double-double (TwoProduct, Fast2Sum): the
    # rounding of y²/2 alone would be 3e-21 of E.
    square, square_err = two_product(y, y)
    half_square = square / 2
    u, u_err = fast_two_sum(y, half_square)
    series = np.full_like(y, _EXP_SERIES[-1])
    for coefficient in _EXP_SERIES[-2:0:-1]:
        series = series * y + coefficient
    rest = u_err + square_err / 2 + y * square * series
    # E = t·(1 + u + rest)·(1 + y_low): t_high·u exactly, the other products are below 1e-7 of E.
    product, product_err = two_product(t_high, u)
    e_high = t_high + product
    e_low = ((t_high - e_high) + product) + product_err + t_high * (rest + y_low * (1 + u)) + t_low * (1 + u)
    e_high, e_low = fast_two_sum(e_high, e_low)
    # ω = 2E/(1 + E): rounded, then the remainder 2E - ω·(1 + E) formed exactly (Sterbenz, TwoProduct).
    denominator = 1 + e_high
    denominator_low = ((1 - denominator) + e_high) + e_low
    omega = 2 * e_high / denominator
    product, product_err = two_product(omega, denominator)
    remainder = ((2 * e_high - product) - product_err) + 2 * e_low - omega * denominator_low
    omega_low = remainder / denominator
    scaled, scaled_err = two_product(omega, c)
    return -sign * scaled, -sign * (scaled_err + c * omega_low)
