"""The log-softmax of z / T, accurate to a few ulp even far from the maximum."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sce.loss.exact_arithmetic import two_product
from sce.loss.row_blocks import flat, flat_indices

if TYPE_CHECKING:
    from sce.loss.softcap import Capped


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

    Parameters
    ----------
    z : numpy.ndarray
        A row-major block of logits (N×K), float32 or float64; with ``capped``, the high parts
        of the capped logits.
    max_logit : numpy.ndarray
        Each row's largest logit M (N).
    argmax : numpy.ndarray
        Each row's first maximal logit's class (N).
    temperature : float
        T > 0: the logits are divided by it after the shift.
    workspace : Workspace, optional
        Buffers for the N×K results, reused block after block (the results live in them until
        the next block).
    capped : Capped, optional
        The soft-capped logits' parts (:mod:`sce.loss.softcap`): the shift is then that of all
        their parts.
    exact_shift : bool
        Every z - M is known to be exact (:func:`shift_is_exact`): with T = 1 and no cap,
        TwoSum is skipped.

    Returns
    -------
    LogSoftmax
        The shifted logits and their rounding errors, the exponentials, S and log1p(S).

    Notes
    -----
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

    The shifted log-sum-exp and its error analysis are those of P. Blanchard, D. J. Higham and
    N. J. Higham, "Accurately computing the log-sum-exp and softmax functions", IMA Journal of
    Numerical Analysis 41 (2021); TwoSum is Knuth's (after Møller), TwoProduct Dekker's
    (:mod:`sce.loss.exact_arithmetic`).

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([[2.0, 3.0, 4.0]])
    >>> result = log_softmax(z, z.max(axis=1), z.argmax(axis=1))
    >>> [round(float(v), 4) for v in np.exp(result.log_probabilities()[0])]
    [0.09, 0.2447, 0.6652]
    >>> float(log_softmax(np.array([[0.0, 40.0]]), np.array([40.0]), np.array([1])).log_sum[0])
    4.248354255291589e-18
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
        # err exceeds 1 only where the exponent is beyond -1e16 (T = 1e-300): exp is 0 there, and a
        # negative factor would make it -0.0, a probability with a sign no softmax has.
        exp_shifted *= np.maximum(np.add(err, 1, out=scratch), 0, out=scratch)
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
            difference = capped.shift_low_parts(difference, err, at_max)
        if temperature != 1.0:
            t = z.dtype.type(temperature)
            quotient = difference / t
            product, product_err = two_product(quotient, t)
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
