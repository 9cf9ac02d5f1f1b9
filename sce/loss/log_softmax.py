"""The log-softmax of z / T, accurate to a few ulp even far from the maximum."""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np


@dataclass(frozen=True)
class LogSoftmax:
    """One block of rows on the way to the log-softmax; N×K arrays are the block's."""

    argmax: np.ndarray
    """The first maximal logit's class (N)."""
    shifted: np.ndarray
    """(z - M) / T, rounded (N×K), M = max_j z_j of the logits as given."""
    err: np.ndarray | None
    """Its rounding error: shifted + err = (z - M) / T to first order (N×K); None where the
    shift is exact (:func:`shift_is_exact`)."""
    exp_shifted: np.ndarray
    """exp((z - M) / T), with the rounding of the shift and the division compensated (N×K)."""
    others_sum: np.ndarray
    """S = Σ_{j ≠ argmax} exp((z_j - M) / T) (N)."""
    exp_sum: np.ndarray
    """1 + S (N)."""
    log_sum: np.ndarray
    """log(1 + S) = log1p(S) (N)."""
    at_max: np.ndarray
    """Each row's argmax as an index into the flattened block (N)."""

    @property
    def complement_of_max(self) -> np.ndarray:
        """1 - p_max = S / (1 + S), without the cancellation of 1 - p_max (N)."""
        return self.others_sum / self.exp_sum

    def log_probabilities(self) -> np.ndarray:
        """log softmax(z / T) (N×K)."""
        return log_probabilities(self.shifted, self.err, self.argmax, self.log_sum)

    def log_probabilities_at(self, classes: np.ndarray) -> np.ndarray:
        """log softmax(z / T) at one class per row (N): the same numbers as :meth:`log_probabilities`."""
        at = flat_indices(classes, self.shifted.shape[1])
        at_class = flat(self.shifted).take(at) - self.log_sum
        if self.err is not None:
            at_class += flat(self.err).take(at)
        return np.where(classes == self.argmax, -self.log_sum, at_class)


class Workspace:
    """Four N×K buffers reused block after block, so that a block's intermediates stay in
    the cache instead of being allocated (and their pages faulted in) afresh."""

    def __init__(self, rows: int, n_classes: int, dtype: np.dtype) -> None:
        self.buffers = [np.empty((rows, n_classes), dtype) for _ in range(4)]

    def for_rows(self, rows: int) -> list[np.ndarray]:
        return [buffer[:rows] for buffer in self.buffers]


def log_softmax(
    z: np.ndarray,
    max_logit: np.ndarray,
    argmax: np.ndarray,
    temperature: float = 1.0,
    workspace: Workspace | None = None,
    capped: Capped | None = None,
    exact_shift: bool = False,
) -> LogSoftmax:
    """Row-wise log-softmax of z / T, accurate to a few ulp even far from the maximum.

    ``argmax`` is each row's first maximal logit and ``max_logit`` that logit.
    Four choices keep the last digits:

    * The shift comes before the scaling: (z - M) / T, never z / T - M / T,
      so a small T cannot overflow what the result does not need (z / T
      overflows for T = 1e-310 where every (z_j - M) / T of interest is
      -inf or 0), and the largest term is exactly e^0 = 1.
    * The rounding error of z_j - M is recovered exactly with Knuth's TwoSum,
      and that of the division by T with Dekker's TwoProduct, and both are
      applied as a factor (1 + err): without it a logit 600 below the
      maximum loses two digits in exp((z_j - M) / T), because the rounding
      of the exponent is multiplied by its size.
    * The term 1 of the maximum is kept out of the sum S of the others, and
      log Σ = log1p(S), so that a confident prediction keeps its tiny loss
      (logits [0, 40], label 1: 4.2e-18 where log(1 + S) rounds to 0).
    * Where an exponent overflows (-inf) its term is 0 and its correction is
      dropped rather than turned into NaN.

    Every step is row by row: a block of rows gives the same bits as the
    whole (for row-major z). With a ``workspace`` the N×K results live in its
    buffers, until the next block.

    ``capped``: where the logits are soft-capped, z is the high part of the
    capped logits (:class:`Capped`), so that the shift is that of all their parts.
    ``exact_shift``: every z - M is known to be exact (:func:`shift_is_exact`), so
    that TwoSum would find no error; with T = 1 and no cap it is not looked for.
    """
    difference, virtual, rounding, exp = workspace.for_rows(len(z)) if workspace else (None, None, None, None)
    at_max = flat_indices(argmax, z.shape[1])
    shifted: np.ndarray
    err: np.ndarray | None
    if exact_shift and temperature == 1.0 and capped is None:
        shifted, err = np.add(z, -max_logit[:, None], out=difference), None
    else:
        shifted, err = shift_and_scale(z, max_logit, temperature, (difference, virtual, rounding), capped, at_max)
    exp_shifted = exp_shifted_of(shifted, err, at_max, zero_at_max=True, out=exp, scratch=virtual)
    others_sum = exp_shifted.sum(axis=1)
    flat(exp_shifted)[at_max] = 1
    return LogSoftmax(argmax, shifted, err, exp_shifted, others_sum, 1 + others_sum, np.log1p(others_sum), at_max)


#: Significand bits of float32 and float64.
_FLOAT32_DIGITS, _FLOAT64_DIGITS = 24, 53


def shift_is_exact(stored: np.ndarray) -> bool:
    """Whether every z_j - M of these float32 logits (M a logit of z_j's row) is exact in float64.

    A normal float32 x is an integer times 2^(e - 23), e = floor(log2 |x|). So z_j - M
    is an integer multiple of 2^(e_min - 23), e_min the smallest exponent among the
    logits, and below 2^(e_max + 2) in size: it has at most e_max - e_min + 25 bits, and
    float64 holds 53: a spread of 28 octaves is exact (|z| from 1e-7 to 13, the logits
    of one scale), and skips TwoSum's five passes. A zero, a subnormal, a masked -inf
    or a NaN sends the block the usual way.
    """
    if stored.dtype != np.float32 or not stored.size:
        return False
    magnitude = np.abs(stored)
    smallest, largest = float(magnitude.min()), float(magnitude.max())
    if not (smallest >= float(np.finfo(np.float32).smallest_normal) and math.isfinite(largest)):
        return False
    spread = math.frexp(largest)[1] - math.frexp(smallest)[1]
    return spread + 2 + _FLOAT32_DIGITS - 1 <= _FLOAT64_DIGITS


def flat_indices(classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Where each row's class sits in the flattened (row-major) block."""
    return np.arange(0, len(classes) * n_classes, n_classes) + classes


def flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of a row-major array: indexing it with :func:`flat_indices` reads and writes ``a``."""
    if not a.flags.c_contiguous:
        raise ValueError("a flat view needs a row-major array")
    return a.reshape(-1)


def exp_shifted_of(
    shifted: np.ndarray,
    err: np.ndarray | None,
    at_max: np.ndarray,
    zero_at_max: bool = False,
    out: np.ndarray | None = None,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """exp(shifted)·(1 + err), exactly 1 at the argmax (or 0, to sum the others) (N×K).

    ``at_max``: the argmax as :func:`flat_indices`; ``out`` and ``scratch``: buffers to use.
    """
    exp_shifted = np.exp(shifted, out=out)
    if err is not None:
        exp_shifted *= np.add(err, 1, out=scratch)
    flat(exp_shifted)[at_max] = 0 if zero_at_max else 1
    return exp_shifted


def log_probabilities(
    shifted: np.ndarray, err: np.ndarray | None, argmax: np.ndarray, log_sum: np.ndarray
) -> np.ndarray:
    """(shifted - log(1 + S)) + err, exactly -log(1 + S) at the argmax (N×K)."""
    result = shifted - log_sum[:, None]
    if err is not None:
        result += err
    flat(result)[flat_indices(argmax, shifted.shape[1])] = -log_sum
    return result


def shift_and_scale(
    z: np.ndarray,
    max_logit: np.ndarray,
    temperature: float,
    buffers: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None] = (None, None, None),
    capped: Capped | None = None,
    at_max: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(z - M) / T rounded, and the error e with rounded + e = (z - M) / T to first order.

    ``buffers``: where to put the difference, a scratch term and the error (None: new arrays).
    ``capped``: soft-capped logits (z their exact high part, M that of the row's
    argmax, at the flat indices ``at_max``): the shift is then that of
    high + low + lower, the rounding of each partial difference kept in e.
    """
    neg_max = -max_logit[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.add(z, neg_max, out=buffers[0])
        # TwoSum: difference + err == z - M exactly (NaN or inf only where the
        # logit is -inf or the difference overflows; those terms are 0).
        virtual = np.subtract(difference, z, out=buffers[1])
        # err = (z - (difference - virtual)) + (neg_max - virtual), in place.
        err = np.subtract(difference, virtual, out=buffers[2])
        np.subtract(z, err, out=err)
        np.add(err, np.subtract(neg_max, virtual, out=virtual), out=err)
        if capped is not None and at_max is not None:
            difference = _add_capped_low_parts(difference, err, capped, at_max)
        if temperature != 1.0:
            t = z.dtype.type(temperature)
            quotient = difference / t
            product, product_err = _two_product(quotient, t)
            # difference - product is exact (Sterbenz: they agree to the last
            # bits), so the remainder of the division is known exactly.
            err = ((difference - product) - product_err + err) / t
            difference = quotient
        # Sums are finite exactly when no entry is NaN or ±inf (unless they
        # overflow, which only sends finite rows the long way).
        # (With T = 1 a non-finite difference always makes err NaN.)
        all_finite = np.isfinite(err.sum()) and (temperature == 1.0 or np.isfinite(difference.sum()))
    if not all_finite:
        err = np.where(np.isfinite(err) & np.isfinite(difference), err, 0).astype(z.dtype, copy=False)
    return difference, err


def _add_capped_low_parts(difference: np.ndarray, err: np.ndarray, capped: Capped, at_max: np.ndarray) -> np.ndarray:
    """difference + (low - low_max) + (lower - lower_max), the roundings added to ``err`` (in place)."""
    low_max = flat(capped.low).take(at_max)
    # Both TwoSums: a low part is as large as c (|z/c| of order 1), and the
    # rounding of a difference of two of them would be an ulp of c, over T.
    low_difference = capped.low - low_max[:, None]
    virtual = low_difference - capped.low
    err += (capped.low - (low_difference - virtual)) + (-low_max[:, None] - virtual)
    if capped.precise.size:
        flat(err)[capped.precise] += capped.lower
        err -= capped.lower_at(at_max)[:, None]  # the max's lower part, in every entry of its row
    total = difference + low_difference
    virtual = total - difference
    err += (difference - (total - virtual)) + (low_difference - virtual)
    return total


def _two_product(a: np.ndarray, b: np.floating | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's TwoProduct: a·b = product + error exactly (numpy has no fma)."""
    product = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(np.asarray(b))
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    return product, error


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp's split of x into a high half and a low half (each fits half the mantissa)."""
    factor = x.dtype.type(134217729.0 if x.dtype == np.float64 else 4097.0)  # 2^27 + 1, 2^12 + 1
    scaled = factor * x
    high = scaled - (scaled - x)
    return high, x - high


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


def soft_capped(z: np.ndarray, cap: float, temperature: float = 1.0) -> Capped:
    """c·tanh(z/c) for each logit of a row-major block, as :class:`Capped`.

    x = z/c is kept as x + x_lo (TwoProduct gives the division's remainder).
    Small |x|: tanh(x + x_lo) = x + x³·P(x²) + x_lo·(1 - x²), so
    a = z + c·(x³·P(x²) - x_lo·x²). Larger |x|: tanh|x| = 1 - ω with
    ω = 2E/(1 + E), E = exp(-2|x|)·(1 - 2·x_lo·sign x), so a = ±c ∓ c·ω, and
    ω keeps its digits however near 1 tanh is. A masked logit (-inf) becomes -c.
    Where c/T makes a few ulp of the low part matter (:func:`_needing_precision`),
    ω is formed in double-double arithmetic instead (:func:`_precise_tail`).
    """
    c = z.dtype.type(cap)
    with np.errstate(all="ignore"):
        x = z / c
        product, product_err = _two_product(x, c)
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
    square, square_err = _two_product(y, y)
    half_square = square / 2
    u = y + half_square
    u_err = (y - u) + half_square
    series = np.full_like(y, _EXP_SERIES[-1])
    for coefficient in _EXP_SERIES[-2:0:-1]:
        series = series * y + coefficient
    rest = u_err + square_err / 2 + y * square * series
    # E = t·(1 + u + rest)·(1 + y_low): t_high·u exactly, the other products are below 1e-7 of E.
    product, product_err = _two_product(t_high, u)
    e_high = t_high + product
    e_low = ((t_high - e_high) + product) + product_err + t_high * (rest + y_low * (1 + u)) + t_low * (1 + u)
    e_high, e_low = e_high + e_low, (e_high - (e_high + e_low)) + e_low
    # ω = 2E/(1 + E): rounded, then the remainder 2E - ω·(1 + E) formed exactly (Sterbenz, TwoProduct).
    denominator = 1 + e_high
    denominator_low = ((1 - denominator) + e_high) + e_low
    omega = 2 * e_high / denominator
    product, product_err = _two_product(omega, denominator)
    remainder = ((2 * e_high - product) - product_err) + 2 * e_low - omega * denominator_low
    omega_low = remainder / denominator
    scaled, scaled_err = _two_product(omega, c)
    return -sign * scaled, -sign * (scaled_err + c * omega_low)
