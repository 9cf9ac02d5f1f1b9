"""Errors in ulps binned by quarter-octaves, 2^(k/4) ulps: the histogram every verdict counts.

The edges are built so that each is exactly twice the one four below it; an error's bin is then
read from its exponent and mantissa (:func:`bins`), and a large array's from a table indexed by
the top bits of each error (:func:`bin_counts`). The counts are exact, so a verdict's count of
wrong entries does not depend on how the rows are cut into blocks.
"""

from __future__ import annotations

from functools import cache

import numpy as np

#: Quarter-octaves 2^(k/4) below each power of two, built so that each edge is exactly twice the one
#: four below it: the bin of an error is then read from its exponent and mantissa (see bins).
QUARTERS = np.array([1.0, 2.0**0.25, 2.0**0.5, 2.0**0.75])
#: Bin edges in ulps: 0, then 2^(k/4) from 2^-10 to 2^60.
EDGES = np.concatenate([[0.0], (2.0 ** np.arange(-10, 60)[:, None] * QUARTERS).ravel(), [2.0**60]])
#: The exponent of the first edge after 0 (2^-10 ulps).
LOWEST_EXPONENT = -10

#: The bits of a float64 kept in a bin key: its exponent and the top 8 bits of its mantissa.
_KEY_SHIFT = 44
#: Errors per call from which the bins are looked up (a block of a large dump has 2^18).
_LOOKED_UP_FROM = 1 << 16


@cache
def _bins_by_key() -> np.ndarray:
    """Each key's bin, or len(EDGES) + 1 ("look closer") for the three keys per octave that
    a quarter-octave edge cuts in two."""
    low = np.arange(1 << (63 - _KEY_SHIFT), dtype=np.int64) << _KEY_SHIFT
    high = low | np.int64((1 << _KEY_SHIFT) - 1)
    first, last = bins(low.view(np.float64)), bins(high.view(np.float64))
    return np.where(first == last, first, len(EDGES) + 1)


def bin_counts(errors: np.ndarray) -> np.ndarray:
    """Counts per bin of finite non-negative errors, as ``bincount(bins(errors))``.

    Parameters
    ----------
    errors : numpy.ndarray
        Finite, non-negative errors in ulps (1-D).

    Returns
    -------
    numpy.ndarray
        ``len(EDGES) + 1`` counts (int64): bin i holds the errors in [EDGES[i], EDGES[i+1]).

    Notes
    -----
    Each error's bin is looked up in a table indexed by its exponent and the top 8 bits of its
    mantissa; only the errors near an edge (about 1 in 100) are binned one by one. Arrays under
    2^16 errors are binned by :func:`bins` alone: the table takes ~50 ms to build.

    Examples
    --------
    >>> import numpy as np
    >>> counts = bin_counts(np.array([0.0, 1.0, 1.1, 3.0]))
    >>> [(float(EDGES[i]), int(n)) for i, n in enumerate(counts) if n]
    [(0.0, 1), (1.0, 2), (2.8284271247461903, 1)]
    """
    if errors.size < _LOOKED_UP_FROM:
        return np.bincount(bins(errors), minlength=len(EDGES) + 1)
    keys = np.right_shift(np.ascontiguousarray(errors, dtype=np.float64).view(np.int64), _KEY_SHIFT)
    table = _bins_by_key()
    binned = table.take(keys, out=keys)
    counts = np.bincount(binned, minlength=len(EDGES) + 2)
    near_edge = counts[-1]
    counts = counts[:-1]
    if near_edge:
        counts += np.bincount(bins(errors[binned == len(EDGES) + 1]), minlength=len(counts))
    return counts


def bins(errors: np.ndarray) -> np.ndarray:
    """Each finite error's bin: ``searchsorted(EDGES, e, 'right') - 1``.

    Parameters
    ----------
    errors : numpy.ndarray
        Finite, non-negative errors in ulps (any shape).

    Returns
    -------
    numpy.ndarray
        Each error's bin index (int64), from 0 to ``len(EDGES) - 1``.

    Notes
    -----
    Read from the error's exponent and mantissa: four times cheaper than a search, and exact
    because every octave's edges are the same quarter powers :data:`QUARTERS` times a power of two.

    Examples
    --------
    >>> import numpy as np
    >>> float(EDGES[bins(np.array([3.0]))[0]])  # 3 ulps lie in [2^1.5, 2^1.75)
    2.8284271247461903
    """
    bits = np.ascontiguousarray(errors, dtype=np.float64).view(np.int64)
    exponent = (bits >> 52) - 1023  # 0 and subnormals give −1023: bin 0
    mantissa = ((bits & np.int64((1 << 52) - 1)) | np.int64(1023 << 52)).view(np.float64)
    quarter = (mantissa >= QUARTERS[1]).view(np.int8) + (mantissa >= QUARTERS[2]).view(np.int8)
    quarter += (mantissa >= QUARTERS[3]).view(np.int8)
    index = 4 * (exponent - LOWEST_EXPONENT) + 1 + quarter
    return np.clip(index, 0, len(EDGES) - 1)
