"""The language-model options' arithmetic: the log-sum-exp, the z-loss and the
scaling that soft-capping and the z-loss bring to the gradient."""

from __future__ import annotations

import warnings

import numpy as np

from sce.loss.exact_arithmetic import two_product, two_sum
from sce.loss.exact_sum import ExactSum, exact_ratio
from sce.loss.result import LossWarning
from sce.options import LossOptions


def log_sum_exp(
    high_max: np.ndarray,
    low_max: np.ndarray | None,
    temperature: np.floating,
    log_sum: np.ndarray,
    lower_max: np.ndarray | None = None,
) -> np.ndarray:
    """lse(b) = M_b + log1p(S) per row, M_b = (high + low + lower)/T of the maximum, kept as a
    double-length number until the sum: lse near 0 keeps the digits of log1p(S) (N)."""
    m = high_max if low_max is None else high_max + low_max
    m_low = np.zeros_like(m) if low_max is None else (high_max - m) + low_max
    if lower_max is not None:
        m_low = m_low + lower_max
    if temperature != 1.0:
        quotient = m / temperature
        product, product_err = two_product(quotient, temperature)
        m_low = ((m - product) - product_err + m_low) / temperature
        m_low = np.where(np.isfinite(m_low), m_low, 0)  # the split of a huge quotient overflows: no correction
        m = quotient
    total, err = two_sum(m, log_sum)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(total), total + (err + m_low), total)


def z_losses_of(lse: np.ndarray, counted: np.ndarray, z_loss: float, dtype: np.dtype) -> np.ndarray:
    """λ·lse² for each counted row, 0 for the others (N)."""
    if z_loss == 0:
        return np.zeros_like(lse)
    values = dtype.type(z_loss) * np.square(lse)
    infinite = np.flatnonzero(counted & np.isinf(values))
    if infinite.size:
        warnings.warn(
            LossWarning(
                f"the z-loss λ·lse² overflows {dtype.name} (lse = {float(lse[infinite[0]]):.4g}): it is inf",
                tuple(infinite.tolist()),
            ),
            stacklevel=5,
        )
    return np.where(counted, values, 0).astype(dtype) + 0.0


def reduced_z_loss(z_losses: np.ndarray, reduction: str, denominator: float) -> float:
    """The z-loss reduced: summed, or divided by the number of counted rows (NaN where there are none)."""
    # Summed exactly and rounded once (sce.loss.exact_sum): the same bits however the rows are grouped.
    return exact_ratio([(ExactSum.of(z_losses), 1.0 if reduction == "sum" else denominator)], z_losses.dtype)


class LanguageModelScale:
    """A block's gradient with a z-loss or soft-capping: the cross-entropy's ∂/∂b over its
    denominator, plus 2λ·lse·p over the z-loss's, times 1/T, times 1 - tanh²(z/c)."""

    def __init__(self, options: LossOptions, denominator: float, z_denominator: float, temperature: np.floating):
        dtype = temperature.dtype
        mean = options.reduction == "mean"
        self.temperature = temperature
        self.zero_ce = mean and denominator == 0
        self.denominator = dtype.type(denominator) if mean and denominator != 0 else None
        self.z_loss = dtype.type(options.z_loss)
        self.z_factor = dtype.type(0 if mean and z_denominator == 0 else 2 * options.z_loss)
        self.z_denominator = dtype.type(z_denominator) if mean and z_denominator != 0 else dtype.type(1)

    def apply(
        self,
        gradient: np.ndarray,
        probabilities: np.ndarray,
        lse: np.ndarray,
        counted: np.ndarray,
        derivative: np.ndarray | None,
    ) -> None:
        with np.errstate(all="ignore"):
            if self.zero_ce:
                gradient[...] = 0
            elif self.denominator is not None:
                np.divide(gradient, self.denominator, out=gradient)
            if self.z_factor != 0:
                coefficient = np.where(counted, self.z_factor * lse / self.z_denominator, 0).astype(lse.dtype)
                gradient += coefficient[:, None] * probabilities
            if self.temperature != 1.0:
                np.divide(gradient, self.temperature, out=gradient)
            if derivative is not None:
                # Where 1 - tanh²(z/c) underflows to 0 the true entry is 0 (e^(-2|z|/c) beside any
                # finite factor), not the inf·0 = NaN that an overflowed factor would make it.
                np.multiply(gradient, derivative, out=gradient, where=derivative != 0)
                gradient[derivative == 0] = 0
            gradient += 0.0
