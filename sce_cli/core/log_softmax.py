"""The log-softmax, accurate to a few ulp even far from the maximum."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LogSoftmax:
    max_logit: np.ndarray
    argmax: np.ndarray
    shifted: np.ndarray
    exp_shifted: np.ndarray
    others_sum: np.ndarray
    exp_sum: np.ndarray
    log_probabilities: np.ndarray


def log_softmax(z: np.ndarray) -> LogSoftmax:
    """Row-wise log-softmax, accurate to a few ulp even far from the maximum.

    Three choices keep the last digits:

    * The shift by M = max z makes every exponent <= 0 (no overflow) and the
      largest term exactly 1.
    * The rounding error of z_j - M is recovered exactly with Knuth's TwoSum
      and applied as a factor (1 + err): without it a logit 600 below the
      maximum loses two digits in exp(z_j - M), because the rounding of the
      difference is multiplied by its size.
    * The term 1 of the maximum is kept out of the sum S of the others, and
      log Σ = log1p(S), so that a confident prediction keeps its tiny loss
      (logits [0, 40], label 1: 4.2e-18 where log(1 + S) rounds to 0).
    """
    rows = np.arange(z.shape[0])
    argmax = np.argmax(z, axis=1)
    max_logit = z[rows, argmax]
    neg_max = -max_logit[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = z + neg_max
        # TwoSum: shifted + err == z - M exactly (err is NaN or inf only where
        # the logit is -inf or the difference overflows; those terms are 0).
        virtual = shifted - z
        err = (z - (shifted - virtual)) + (neg_max - virtual)
    err = np.where(np.isfinite(err), err, 0).astype(z.dtype, copy=False)
    exp_shifted = np.exp(shifted) * (1 + err)
    exp_shifted[rows, argmax] = 0
    others_sum = exp_shifted.sum(axis=1)
    exp_shifted[rows, argmax] = 1
    exp_sum = 1 + others_sum
    log_probabilities = (shifted - np.log1p(others_sum)[:, None]) + err
    log_probabilities[rows, argmax] = -np.log1p(others_sum)
    return LogSoftmax(max_logit, argmax, shifted, exp_shifted, others_sum, exp_sum, log_probabilities)
