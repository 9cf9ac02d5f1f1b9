"""Sums that no grouping or order of their terms can change: every term added exactly, and
the total rounded once, when it is read.

A float64 sum rounded as it goes depends on how its terms are grouped: the same file summed
in blocks of another size, or in another order, ends in other last digits. Here each finite
term is an integer multiple of 2⁻¹¹²⁶ (float64's smallest subnormal is 2⁻¹⁰⁷⁴ and its
significand has 53 bits), so their sum is held as one Python integer of that unit: adding
blocks, or merging the partial sums of several workers, is integer addition, which is exact,
associative and commutative. Reading it rounds once (:meth:`ExactSum.value`,
:func:`exact_ratio`).

The terms are turned into that integer with numpy, not one by one: Rump, Ogita and Oishi's
error-free extraction splits every term into a part on a common grid, whose float64 sum is
exact, and a remainder, at most a few times over (each pass takes about 53 - log2(n) bits
of every term; a file of losses between 1e-20 and 100 takes three). Only those few exact
partial sums meet Python's integers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

#: Every finite float64 is an integer times 2^-UNIT_EXPONENT.
UNIT_EXPONENT = 1126
_CHUNK = 1 << 14  # terms at a time: the extraction's few passes stay in the cache


@dataclass(frozen=True)
class ExactSum:
    """The exact sum of float terms, with its infinities and NaNs counted apart.

    Add two with ``+`` (exact, associative and commutative: partial sums of blocks, or of a
    cluster's partitions, merge in any grouping to the same value).

    Examples
    --------
    >>> import numpy as np
    >>> terms = np.array([1e16, 1.0, -1e16])
    >>> float(terms.sum()), ExactSum.of(terms).value()
    (0.0, 1.0)
    >>> halves = ExactSum.of(terms[:2]) + ExactSum.of(terms[2:])
    >>> halves == ExactSum.of(terms[::-1])
    True
    """

    scaled: int = 0
    """The finite terms' sum times 2^UNIT_EXPONENT, exactly."""
    positive_infinities: int = 0
    negative_infinities: int = 0
    nans: int = 0

    @classmethod
    def of(cls, terms: np.ndarray) -> ExactSum:
        """The exact sum of an array's entries (float64, float32 or float16; any shape)."""
        values = np.asarray(terms, dtype=np.float64).ravel()
        positive = negative = nans = 0
        finite = np.isfinite(values)
        if not finite.all():
            nans = int(np.isnan(values).sum())
            positive = int((values == np.inf).sum())
            negative = int((values == -np.inf).sum())
            values = values[finite]
        scaled = sum((_scaled_sum(values[at : at + _CHUNK]) for at in range(0, len(values), _CHUNK)), 0)
        return cls(scaled, positive, negative, nans)

    def __add__(self, other: ExactSum) -> ExactSum:
        return ExactSum(
            self.scaled + other.scaled,
            self.positive_infinities + other.positive_infinities,
            self.negative_infinities + other.negative_infinities,
            self.nans + other.nans,
        )

    def __sub__(self, other: ExactSum) -> ExactSum:
        return ExactSum(
            self.scaled - other.scaled,
            self.positive_infinities + other.negative_infinities,
            self.negative_infinities + other.positive_infinities,
            self.nans + other.nans,
        )

    def special(self) -> float | None:
        """NaN or ±inf where a term is one (inf - inf is NaN, as IEEE adds), else None."""
        if self.nans or (self.positive_infinities and self.negative_infinities):
            return float("nan")
        if self.positive_infinities:
            return float("inf")
        if self.negative_infinities:
            return float("-inf")
        return None

    def exact(self) -> Fraction:
        """The finite terms' sum as a fraction (exact)."""
        return Fraction(self.scaled, 1 << UNIT_EXPONENT)

    def value(self, dtype: type[np.floating] | np.dtype = np.float64) -> float:
        """The sum rounded once to ``dtype`` (to nearest, ties to even), as a Python float;
        ±inf beyond its range."""
        return exact_ratio([(self, 1.0)], dtype)


def exact_ratio(parts: Sequence[tuple[ExactSum, float]], dtype: type[np.floating] | np.dtype = np.float64) -> float:
    """Σ sumᵢ / denominatorᵢ, rounded once to ``dtype``, as a Python float.

    A part whose denominator is 0 is NaN (a mean of nothing); so is the whole then.

    Examples
    --------
    >>> import numpy as np
    >>> tenth = ExactSum.of(np.array([0.1] * 10))
    >>> exact_ratio([(tenth, 10.0)]), sum([0.1] * 10) / 10  # once, and at every addition
    (0.1, 0.09999999999999999)
    """
    total = Fraction(0)
    specials = []
    for exact_sum, denominator in parts:
        special = exact_sum.special()
        if denominator == 0 or np.isnan(denominator):
            specials.append(float("nan"))
        elif special is not None:
            specials.append(special / denominator)
        elif not np.isfinite(denominator):
            continue  # a finite sum over an infinite denominator adds 0
        else:
            total += exact_sum.exact() / Fraction(denominator)
    if specials:
        with np.errstate(invalid="ignore"):
            return float(sum(specials, 0.0))
    return rounded_once(total, np.dtype(dtype))


def rounded_once(exact: Fraction, dtype: np.dtype) -> float:
    """``exact`` rounded to nearest (ties to even) in ``dtype``: float64 by Python's own
    correctly rounded division of integers, a narrower type from it without double rounding."""
    try:
        nearest = exact.numerator / exact.denominator
    except OverflowError:
        return float("inf") if exact > 0 else float("-inf")
    if dtype == np.float64:
        return nearest
    with np.errstate(over="ignore"):
        narrow = dtype.type(nearest)
    if float(narrow) == nearest or not np.isfinite(narrow):
        return float(narrow)
    # nearest was rounded already: where it lies exactly halfway between two values of dtype,
    # the tie was decided on the rounded value; decide it on the exact one instead.
    other = np.nextafter(narrow, dtype.type(np.inf if float(narrow) < nearest else -np.inf))
    if (float(narrow) + float(other)) / 2 != nearest or exact == Fraction(nearest):
        return float(narrow)
    below, above = sorted((float(narrow), float(other)))
    return above if exact > Fraction(nearest) else below


def _scaled_sum(values: np.ndarray) -> int:
    """Σ values · 2^UNIT_EXPONENT, exactly, for finite float64 values."""
    # 2^spread ≥ n + 1: n terms below 2^-spread·σ have an exact float sum once extracted.
    spread = len(values).bit_length()
    total, rest = 0, values
    while rest.size:
        top = max(float(rest.max()), -float(rest.min()))
        if top == 0:
            break
        if top >= 2.0 ** (1020 - spread):  # σ would overflow: these few, one by one
            huge = np.abs(rest) >= 2.0 ** (1020 - spread)
            total += sum(_scaled(value) for value in rest[huge].tolist())
            rest = rest[~huge]
            continue
        # Rump, Ogita and Oishi's ExtractVector (Accurate floating-point summation, part I,
        # SIAM J. Sci. Comput. 31, 2008): with σ = 2^k ≥ 2^spread·max|x|, each (σ + x) - σ is
        # x rounded to a multiple of 2^(k-53), and their sum is exact in any order; what is
        # left of each x is exact too, and 2^(53-spread) times smaller than the largest term.
        sigma = math.ldexp(1.0, math.frexp(top)[1] + spread)
        extracted = (sigma + rest) - sigma
        rest = rest - extracted
        total += _scaled(float(extracted.sum()))
        left = np.count_nonzero(rest)
        if left < len(rest) // 2:  # most terms are used up: go on with the others alone
            rest = rest[rest != 0]
    return total


def _scaled(value: float) -> int:
    """One finite float times 2^UNIT_EXPONENT, an integer."""
    numerator, denominator = value.as_integer_ratio()
    return numerator << (UNIT_EXPONENT + 1 - denominator.bit_length())
