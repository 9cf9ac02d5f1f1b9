"""The error-free transformations of sce.loss.exact_arithmetic are exact: checked in rational
arithmetic (fractions.Fraction), for float64 and float32, over the range where nothing overflows
or underflows."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sce.loss.exact_arithmetic import fast_two_sum, split, two_product, two_sum


def floats(width: int, largest: float) -> st.SearchStrategy[float]:
    return st.floats(-largest, largest, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=width)


def magnitudes(width: int, smallest: float, largest: float) -> st.SearchStrategy[float]:
    """Floats whose size is in [smallest, largest], either sign (bounds: powers of two)."""
    positive = st.floats(smallest, largest, width=width)
    return positive | positive.map(lambda x: -x)


def exact(x: np.ndarray) -> Fraction:
    return Fraction(float(x))


@given(floats(64, 1e300), floats(64, 1e300))
def test_two_sum_error_is_the_exact_rounding_of_the_sum(a, b):
    total, error = two_sum(np.array([a]), np.array([b]))
    assert exact(total[0]) + exact(error[0]) == Fraction(a) + Fraction(b)
    assert total[0] == np.float64(a) + np.float64(b)


@given(floats(32, 2.0**100), floats(32, 2.0**100))
def test_two_sum_is_exact_in_float32(a, b):
    total, error = two_sum(np.array([a], np.float32), np.array([b], np.float32))
    assert total.dtype == np.float32
    assert exact(total[0]) + exact(error[0]) == Fraction(a) + Fraction(b)


@given(floats(64, 1e300), floats(64, 1e300))
def test_fast_two_sum_is_exact_with_the_larger_first(a, b):
    a, b = (a, b) if abs(a) >= abs(b) else (b, a)
    total, error = fast_two_sum(np.array([a]), np.array([b]))
    assert exact(total[0]) + exact(error[0]) == Fraction(a) + Fraction(b)


@given(magnitudes(64, 2.0**-400, 2.0**400))
def test_split_halves_add_up_and_their_products_are_exact(x):
    high, low = split(np.array([x]))
    assert exact(high[0]) + exact(low[0]) == Fraction(x)
    assert exact(high[0] * high[0]) == exact(high[0]) ** 2  # 26 bits each: the square fits in 53


@given(magnitudes(64, 2.0**-450, 2.0**450), magnitudes(64, 2.0**-450, 2.0**450))
def test_two_product_error_is_the_exact_rounding_of_the_product(a, b):
    product, error = two_product(np.array([a]), np.float64(b))
    assert exact(product[0]) + exact(error[0]) == Fraction(a) * Fraction(b)


@given(magnitudes(32, 2.0**-40, 2.0**40), magnitudes(32, 2.0**-40, 2.0**40))
def test_two_product_is_exact_in_float32(a, b):
    product, error = two_product(np.array([a], np.float32), np.float32(b))
    assert product.dtype == np.float32
    assert exact(product[0]) + exact(error[0]) == Fraction(a) * Fraction(b)
