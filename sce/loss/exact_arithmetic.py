"""Error-free transformations: a sum or a product of two floats as a rounded value and its exact error.

The core keeps the digits of differences of nearly equal numbers with these (the shift z - M,
the division by T, the soft cap's tail, the weight sum of 'mean'). numpy has no fused
multiply-add, so the product's error comes from Veltkamp's splitting, as Dekker wrote it.
"""

from __future__ import annotations

import numpy as np


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rounded sum of ``a`` and ``b`` and its rounding error, so that a + b = total + error exactly.

    Parameters
    ----------
    a, b : numpy.ndarray
        Floating-point arrays of one type (they broadcast).

    Returns
    -------
    total : numpy.ndarray
        ``a + b``, rounded.
    error : numpy.ndarray
        The rounding error of ``total``: ``a + b == total + error`` in exact arithmetic, wherever
        nothing overflows.

    Notes
    -----
    Knuth's TwoSum (The Art of Computer Programming, vol. 2, 4.2.2, after Møller 1965): six
    operations, whatever the order of magnitude of ``a`` and ``b``.

    Examples
    --------
    >>> import numpy as np
    >>> total, error = two_sum(np.array([1.0]), np.array([1e-17]))
    >>> float(total[0]), float(error[0])
    (1.0, 1e-17)
    """
    total = a + b
    virtual = total - a
    error = (a - (total - virtual)) + (b - virtual)
    return total, error


def fast_two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`two_sum` in three operations, where |a| >= |b| (or ``a`` is 0) everywhere.

    Parameters
    ----------
    a, b : numpy.ndarray
        Floating-point arrays of one type, ``a`` the larger in magnitude.

    Returns
    -------
    total : numpy.ndarray
        ``a + b``, rounded.
    error : numpy.ndarray
        Its rounding error: ``a + b == total + error`` exactly.

    Notes
    -----
    Dekker's Fast2Sum (T. J. Dekker, A floating-point technique for extending the available
    precision, Numer. Math. 18, 1971).

    Examples
    --------
    >>> import numpy as np
    >>> total, error = fast_two_sum(np.array([2.0**53]), np.array([1.0]))
    >>> float(total[0]), float(error[0])
    (9007199254740992.0, 1.0)
    """
    total = a + b
    return total, (a - total) + b


def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as high + low exactly, each with at most half the significand's bits.

    Parameters
    ----------
    x : numpy.ndarray
        A float32 or float64 array (beyond about 1e300 in float64 the scaling overflows).

    Returns
    -------
    high, low : numpy.ndarray
        ``high + low == x``; the product of two halves is exact.

    Notes
    -----
    Veltkamp's splitting, as in Dekker (1971): ``high = c·x - (c·x - x)`` with c = 2^s + 1,
    s = 27 for float64 and 12 for float32.

    Examples
    --------
    >>> import numpy as np
    >>> high, low = split(np.array([1.0 + 2.0**-40]))
    >>> float(high[0]), float(low[0]) == 2.0**-40
    (1.0, True)
    """
    factor = x.dtype.type(134217729.0 if x.dtype == np.float64 else 4097.0)  # 2^27 + 1, 2^12 + 1
    scaled = factor * x
    high = scaled - (scaled - x)
    return high, x - high


def two_product(a: np.ndarray, b: np.floating | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rounded product of ``a`` and ``b`` and its rounding error: a·b = product + error exactly.

    Parameters
    ----------
    a : numpy.ndarray
        A float32 or float64 array.
    b : numpy.floating or numpy.ndarray
        A factor of the same type (a scalar or an array that broadcasts).

    Returns
    -------
    product : numpy.ndarray
        ``a * b``, rounded.
    error : numpy.ndarray
        Its rounding error, exact unless a split overflows (``a`` or ``b`` beyond about 1e300) or
        the error underflows.

    Notes
    -----
    Dekker's TwoProduct (T. J. Dekker, A floating-point technique for extending the available
    precision, Numer. Math. 18, 1971), over Veltkamp's :func:`split`: numpy has no fused
    multiply-add to take the error in one operation.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0 + 2.0**-30])
    >>> product, error = two_product(x, x[0])
    >>> float(error[0]) == 2.0**-60
    True
    """
    product = a * b
    a_high, a_low = split(a)
    b_high, b_low = split(np.asarray(b))
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    return product, error
