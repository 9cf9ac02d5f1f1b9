"""The log-softmax of z / T, accurate to a few ulp even far from the maximum."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LogSoftmax:
    """One block of rows on the way to the log-softmax; N×K arrays are the block's."""

    argmax: np.ndarray
    """The first maximal logit's class (N)."""
    shifted: np.ndarray
    """(z - M) / T, rounded (N×K), M = max_j z_j of the logits as given."""
    err: np.ndarray
    """Its rounding error: shifted + err = (z - M) / T to first order (N×K)."""
    exp_shifted: np.ndarray
    """exp((z - M) / T), with the rounding of the shift and the division compensated (N×K)."""
    others_sum: np.ndarray
    """S = Σ_{j ≠ argmax} exp((z_j - M) / T) (N)."""
    exp_sum: np.ndarray
    """1 + S (N)."""
    log_sum: np.ndarray
    """log(1 + S) = log1p(S) (N)."""

    @property
    def complement_of_max(self) -> np.ndarray:
        """1 - p_max = S / (1 + S), without the cancellation of 1 - p_max (N)."""
        return self.others_sum / self.exp_sum

    def log_probabilities(self) -> np.ndarray:
        """log softmax(z / T) (N×K)."""
        return log_probabilities(self.shifted, self.err, self.argmax, self.log_sum)

    def log_probabilities_at(self, classes: np.ndarray) -> np.ndarray:
        """log softmax(z / T) at one class per row (N): the same numbers as :meth:`log_probabilities`."""
        rows = np.arange(len(classes))
        at = (self.shifted[rows, classes] - self.log_sum) + self.err[rows, classes]
        return np.where(classes == self.argmax, -self.log_sum, at)


def log_softmax(z: np.ndarray, max_logit: np.ndarray, argmax: np.ndarray, temperature: float = 1.0) -> LogSoftmax:
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
    whole (for row-major z).
    """
    shifted, err = shift_and_scale(z, max_logit, temperature)
    exp_shifted = exp_shifted_of(shifted, err, argmax, zero_at_max=True)
    others_sum = exp_shifted.sum(axis=1)
    exp_shifted[np.arange(len(argmax)), argmax] = 1
    return LogSoftmax(argmax, shifted, err, exp_shifted, others_sum, 1 + others_sum, np.log1p(others_sum))


def exp_shifted_of(shifted: np.ndarray, err: np.ndarray, argmax: np.ndarray, zero_at_max: bool = False) -> np.ndarray:
    """exp(shifted)·(1 + err), exactly 1 at the argmax (or 0, to sum the others) (N×K)."""
    exp_shifted = np.exp(shifted) * (1 + err)
    exp_shifted[np.arange(len(argmax)), argmax] = 0 if zero_at_max else 1
    return exp_shifted


def log_probabilities(shifted: np.ndarray, err: np.ndarray, argmax: np.ndarray, log_sum: np.ndarray) -> np.ndarray:
    """(shifted - log(1 + S)) + err, exactly -log(1 + S) at the argmax (N×K)."""
    result = (shifted - log_sum[:, None]) + err
    result[np.arange(len(argmax)), argmax] = -log_sum
    return result


def shift_and_scale(z: np.ndarray, max_logit: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(z - M) / T rounded, and the error e with rounded + e = (z - M) / T to first order."""
    neg_max = -max_logit[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        difference = z + neg_max
        # TwoSum: difference + err == z - M exactly (NaN or inf only where the
        # logit is -inf or the difference overflows; those terms are 0).
        virtual = difference - z
        err = (z - (difference - virtual)) + (neg_max - virtual)
        if temperature != 1.0:
            t = z.dtype.type(temperature)
            quotient = difference / t
            product, product_err = _two_product(quotient, t)
            # difference - product is exact (Sterbenz: they agree to the last
            # bits), so the remainder of the division is known exactly.
            err = ((difference - product) - product_err + err) / t
            difference = quotient
    err = np.where(np.isfinite(err) & np.isfinite(difference), err, 0).astype(z.dtype, copy=False)
    return difference, err


def _two_product(a: np.ndarray, b: np.floating) -> tuple[np.ndarray, np.ndarray]:
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
