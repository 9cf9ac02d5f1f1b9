"""One block's errors in ulps, measured and summarised: what a verdict keeps of each block.

A block's gradient (or row losses) is compared with the exact result in ulps of the claimed type,
and so is each route of the baseline (a straightforward correct computation in that type) and an
all-zero answer. Only a small summary is kept (:class:`BlockErrors`: the histogram's counts, the
worst entries, Σ e²), so that blocks can be graded apart, in threads, and merged in order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sce.grading.dump import sparse_labels, ulp_kernel
from sce.grading.dump.baseline import ulp_format, ulp_unit, ulps, ulps_if_finite
from sce.grading.dump.entry_conditioning import beyond_rounding
from sce.grading.dump.histogram import EDGES, LOWEST_EXPONENT, QUARTERS, bin_counts
from sce.grading.dump.kernel_mistakes import Block

#: The worst entries a report shows (as many as the compiled loop keeps).
WORST_SHOWN = ulp_kernel.WORST_SHOWN
_NUMPY_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


@dataclass
class Entry:
    row: int
    column: int | None
    expected: float
    given: float
    ulps: float


def added_by_route(sums: tuple[float, ...], more: tuple[float, ...]) -> tuple[float, ...]:
    """Two blocks' sums, route by route (a route missing from one adds nothing).

    Examples
    --------
    >>> added_by_route((1.0, 2.0), (3.0,))
    (4.0, 2.0)
    """
    longer, shorter = (sums, more) if len(sums) >= len(more) else (more, sums)
    return tuple(a + (shorter[i] if i < len(shorter) else 0.0) for i, a in enumerate(longer))


@dataclass(frozen=True)
class RouteErrors:
    """What the allowance needs of a baseline's errors on a block."""

    worst: float
    """The worst finite error of any route."""
    squares: tuple[float, ...]
    """Σ e² of each route's finite errors (kept apart: the whole dump's largest is taken)."""
    zero_squares: float = 0.0
    """Σ e² of an all-zero answer on the block: the values' own size, in ulps."""

    @staticmethod
    def of_routes(routes: Iterable[RouteErrors], zero_squares: float = 0.0) -> RouteErrors:
        """Several routes' errors as one: the worst of all, each route's Σ e² kept apart."""
        found = list(routes)
        return RouteErrors(max(r.worst for r in found), tuple(sq for r in found for sq in r.squares), zero_squares)


def sum_of_squares(errors: np.ndarray) -> float:
    """Σ e² over the finite errors: one pass where all are finite. By einsum's own loop, not
    BLAS's dot: OpenBLAS wakes a thread per core for it, and with both cores grading blocks
    they wait on each other (a dump of 1,024 × 128,000 took 3.2 s instead of 1.6 on a busy
    machine)."""
    flat = np.ascontiguousarray(errors, dtype=np.float64).ravel()
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.einsum("i,i->", flat, flat))
        if math.isfinite(total):
            return total
        finite = flat[np.isfinite(flat)]
        return float(np.einsum("i,i->", finite, finite))


@dataclass
class BlockErrors:
    """What a verdict keeps of one block's errors: small, so that blocks can be graded apart."""

    entries: int
    counts: np.ndarray
    max_ulps: float
    baseline_ulps: float
    worst: list[Entry]
    squares: float = 0.0
    baseline_squares: tuple[float, ...] = ()
    zero_squares: float = 0.0
    sign_flips: int = 0
    """Entries of the opposite sign to the exact value's where no rounding explains it (:func:`sign_flips`)."""
    beyond_rounding: int = 0
    """Entries further off than a half-type kernel's rounding at that entry allows (:mod:`.entry_conditioning`)."""


def summarize(
    errors: np.ndarray, baseline: RouteErrors, expected: np.ndarray, given: np.ndarray, start: int
) -> BlockErrors:
    """What a verdict keeps of one block's errors.

    Parameters
    ----------
    errors : numpy.ndarray
        The answer's errors in ulps (N×K for a gradient, N for row losses); NaN and ±inf
        count as not finite.
    baseline : RouteErrors
        The straightforward computation's errors on the same block.
    expected, given : numpy.ndarray
        The exact values and the answer's, shaped as ``errors`` (for the worst entries).
    start : int
        The block's first row in the dump.

    Returns
    -------
    BlockErrors
        The histogram's counts (the last bin: not finite), the worst error, the
        :data:`WORST_SHOWN` worst entries (ties to the earliest), Σ e² of the finite errors,
        and the baseline's figures.
    """
    counts = np.zeros(len(EDGES) + 1, dtype=np.int64)
    if not errors.size:
        return BlockErrors(0, counts, 0.0, baseline.worst, [], 0.0, baseline.squares, baseline.zero_squares)
    worst = float(errors.max())
    if not math.isfinite(worst):
        errors = np.nan_to_num(errors, nan=np.inf, posinf=np.inf)
        finite = np.isfinite(errors)
        counts[-1] += int((~finite).sum())
        counts += bin_counts(errors[finite])
        squares = sum_of_squares(errors[finite])
        worst = math.inf
    else:
        counts += bin_counts(errors.ravel())
        squares = sum_of_squares(errors)
    entries = _worst_entries(errors, counts, expected, given, start)
    return BlockErrors(
        errors.size, counts, worst, baseline.worst, entries, squares, baseline.squares, baseline.zero_squares
    )


def _worst_entries(
    errors: np.ndarray, counts: np.ndarray, expected: np.ndarray, given: np.ndarray, start: int
) -> list[Entry]:
    """The block's WORST_SHOWN largest errors, ties to the earliest entry. The bins say which
    edge they all lie above: one comparison finds them, and only they are sorted."""
    flat = errors.ravel()
    from_top = np.cumsum(counts[::-1])
    first_bin = len(counts) - 1 - int(np.searchsorted(from_top, min(WORST_SHOWN, flat.size)))
    floor = math.inf if first_bin == len(EDGES) else float(EDGES[first_bin])
    candidates = np.flatnonzero(flat >= floor) if first_bin > 0 else np.arange(flat.size)
    if candidates.size > WORST_SHOWN:
        kth = np.partition(flat[candidates], candidates.size - WORST_SHOWN)[candidates.size - WORST_SHOWN]
        above = candidates[flat[candidates] > kth]
        ties = candidates[flat[candidates] == kth][: WORST_SHOWN - above.size]
        candidates = np.concatenate([above, ties])
    found = []
    for index in sorted(candidates.tolist(), key=lambda i: (-flat[i], i)):
        position = np.unravel_index(index, errors.shape)
        column = int(position[1]) if errors.ndim == 2 else None
        row = start + int(position[0]) if errors.ndim else 0
        found.append(Entry(row, column, float(expected[position]), float(given[position]), float(flat[index])))
    return found


def merged_in_order(parts: list[BlockErrors]) -> BlockErrors:
    """Consecutive slices' summaries as the summary of the rows they make up together
    (the worst entries' ties go to the earliest slice)."""
    if len(parts) == 1:
        return parts[0]
    worst = sorted([entry for part in parts for entry in part.worst], key=lambda e: -e.ulps)[:WORST_SHOWN]
    return BlockErrors(
        sum(part.entries for part in parts),
        np.sum([part.counts for part in parts], axis=0),
        max(part.max_ulps for part in parts),
        max(part.baseline_ulps for part in parts),
        worst,
        sum(part.squares for part in parts),
        functools.reduce(added_by_route, (part.baseline_squares for part in parts), ()),
        sum(part.zero_squares for part in parts),
        sum(part.sign_flips for part in parts),
        sum(part.beyond_rounding for part in parts),
    )


def _errors(given: np.ndarray, expected: np.ndarray, unit: np.ndarray, magnitude: np.ndarray, dtype: str) -> np.ndarray:
    fast = ulps_if_finite(given, expected, unit)
    return fast if fast is not None else ulps(given, expected, magnitude, dtype)


def _route_errors(
    route: np.ndarray, expected: np.ndarray, unit: np.ndarray, magnitude: np.ndarray, dtype: str
) -> RouteErrors:
    """The worst and Σ e² of _errors(...) of a baseline route, one pass cheaper: the largest
    |d| is max(max d, −min d), read without writing |d| (where d is finite; else as _errors does)."""
    difference = np.subtract(route.astype(np.float64) if route.dtype not in _NUMPY_FLOATS else route, expected)
    with np.errstate(invalid="ignore", over="ignore"):
        difference /= unit
    worst = max(float(difference.max(initial=0.0)), -float(difference.min(initial=0.0)))
    if math.isfinite(worst):
        return RouteErrors(worst + 0.0, (sum_of_squares(difference),))  # + 0.0: not −0.0
    return finite_errors(_errors(route, expected, unit, magnitude, dtype))


def _finite_worst(errors: np.ndarray) -> float:
    """The worst finite error: where the straightforward computation overflows (inf, NaN) it sets
    no allowance (an infinite allowance would pass any answer)."""
    worst = float(errors.max(initial=0.0))
    if math.isfinite(worst):
        return worst
    usable = errors[np.isfinite(errors)]
    return float(usable.max()) if usable.size else 0.0


def finite_errors(errors: np.ndarray, zero_errors: np.ndarray | None = None) -> RouteErrors:
    """A route's errors as the allowance needs them: the worst finite one and Σ e², and Σ e² of
    an all-zero answer's ``zero_errors`` (0 where not given)."""
    zero = 0.0 if zero_errors is None else sum_of_squares(zero_errors)
    return RouteErrors(_finite_worst(errors), (sum_of_squares(errors),), zero)


def grade_gradient(
    block: Block, magnitude: np.ndarray, routes: tuple[np.ndarray, ...], given: np.ndarray, dtype: str
) -> BlockErrors:
    """A block's gradient graded by numpy: the answer's errors, and the baseline's ``routes``' and
    an all-zero answer's, in ulps of ``dtype`` at each entry's ``magnitude``.

    Parameters
    ----------
    block : Block
        The block's rows and their exact result.
    magnitude : numpy.ndarray
        The size of the operands of each entry (N×K): its ulp is the unit of its error.
    routes : tuple of numpy.ndarray
        The baseline's gradients, one per way of computing it straightforwardly.
    given : numpy.ndarray
        The answer's gradient on the block (N×K).
    dtype : str
        The claimed type: "float16", "bfloat16", "float32" or "float64".

    Returns
    -------
    BlockErrors
        The block's summary (:func:`summarize`).
    """
    unit = ulp_unit(magnitude, dtype)
    expected = block.exact.gradient
    base = RouteErrors.of_routes(
        (_route_errors(route, expected, unit, magnitude, dtype) for route in routes), _zero_squares(expected, unit)
    )
    errors = _errors(given, expected, unit, magnitude, dtype)
    found = summarize(errors, base, expected, given, block.start)
    found.beyond_rounding = beyond_rounding(errors, block, dtype)
    if block.exact.options.softcap is not None:
        found.sign_flips = sign_flips(given, expected, unit, routes, block.exact.cap_derivative)
    return found


def sign_flips(
    given: np.ndarray, expected: np.ndarray, unit: np.ndarray, routes: tuple[np.ndarray, ...], factor: np.ndarray
) -> int:
    """Entries of the opposite sign to the exact value's, where every correct kernel gets the sign right.

    Under a softcap each entry is ∂L/∂a times the factor 1 − tanh²(z/c) ≥ 0, and its error is
    counted in ulps of ∂L/∂a's operands (frameworks form the factor from tanh's result, to within
    an ulp of 1): a small factor leaves the entry a few ulps large, where a negated gradient is
    within the allowance. But no rounding makes the factor negative, so a kernel's entry has
    ∂L/∂a's sign wherever ∂L/∂a is larger than its own error, allowed as the verdict allows it
    (4 × the baseline's + 8 ulps, before the factor): |exact| > 4·|baseline − exact| + 8·ulp·factor.

    Examples
    --------
    >>> exact, unit = np.array([[-0.0168, 0.0168]]), np.full((1, 2), 2.0**-5)
    >>> factor, route = np.full((1, 2), 9.5e-4), np.array([[-0.01679, 0.01681]])
    >>> sign_flips(-exact, exact, unit, (route,), factor), sign_flips(0 * exact, exact, unit, (route,), factor)
    (2, 0)
    """
    with np.errstate(all="ignore"):
        values = np.asarray(given, dtype=np.float64)
        opposite = values * expected < 0
        if not opposite.any():
            return 0
        route_error = np.max([np.abs(np.asarray(route, dtype=np.float64) - expected) for route in routes], axis=0)
        certain = np.abs(expected) > 4 * route_error + 8 * unit * factor
    return int(np.count_nonzero(opposite & certain))


def grade_gradient_compiled(
    block: Block,
    coef: sparse_labels.LabelCoefficients,
    base: sparse_labels.LabelBaseline,
    given: np.ndarray,
    dtype: str,
) -> BlockErrors | None:
    """grade_gradient(...) by the compiled loop (:mod:`.ulp_kernel`): the same bins, largest
    errors and worst entries; None where it does not apply or something is not finite."""
    expected = block.exact.gradient
    if not (expected.size and dtype in ("float32", "float64")):
        return None
    routes = base.parts or base.gradients
    if not ulp_kernel.grades(given, routes, dtype):
        return None
    classes = expected.shape[1]
    rows = label_rows(block, coef)
    step = _zero_step(expected)
    found = ulp_kernel.grade(
        rows, given, routes, ulp_format(dtype), step, (QUARTERS[1:], LOWEST_EXPONENT, len(EDGES) - 1)
    )
    if found is None:
        return None
    stats = found.stats.tolist()
    two = isinstance(routes, ulp_kernel.RouteParts) or len(routes) > 1
    route_worst = max(stats[2], stats[4]) if two else stats[2]
    worst = []
    for index, error in zip(found.worst_index.tolist(), found.worst_error.tolist()):
        row, column = divmod(index, classes)
        worst.append(Entry(block.start + row, column, float(expected[row, column]), float(given[row, column]), error))
    zero_squares = stats[6] * (expected.size / len(range(0, expected.size, step)))
    squares = (stats[3], stats[5]) if two else (stats[3],)
    return BlockErrors(expected.size, found.counts, stats[0], route_worst + 0.0, worst, stats[1], squares, zero_squares)


def grade_sized_compiled(
    start: int, expected: np.ndarray, magnitude: np.ndarray, given: np.ndarray, base: np.ndarray, dtype: str
) -> BlockErrors | None:
    """A block graded in ulps of ``dtype`` at max(``magnitude``, |expected|) against one route
    ``base``, by the compiled loop: what :func:`summarize` gives of the same errors (but for the
    order the squares are summed in); None where the loop does not apply or something is not finite."""
    if not (expected.ndim == 2 and expected.size and dtype in ("float32", "float64")):
        return None
    if not ulp_kernel.grades(given, (base,), dtype) or magnitude.shape != expected.shape:
        return None
    classes = expected.shape[1]
    found = ulp_kernel.grade_sized(
        expected, magnitude, given, base, ulp_format(dtype), (QUARTERS[1:], LOWEST_EXPONENT, len(EDGES) - 1)
    )
    if found is None:
        return None
    stats = found.stats.tolist()
    worst = []
    for index, error in zip(found.worst_index.tolist(), found.worst_error.tolist()):
        row, column = divmod(index, classes)
        worst.append(Entry(start + row, column, float(expected[row, column]), float(given[row, column]), error))
    return BlockErrors(expected.size, found.counts, stats[0], stats[2] + 0.0, worst, stats[1], (stats[3],), stats[6])


def label_rows(block: Block, coef: sparse_labels.LabelCoefficients) -> ulp_kernel.Rows:
    """What the compiled loop needs of a block's rows: its exact result and coefficients."""
    expected = block.exact.gradient
    classes = expected.shape[1]
    counted = np.flatnonzero(coef.counted)
    label = np.full(len(expected), -1, np.int64)
    label[counted] = coef.at - counted * classes
    weighted = not coef.unweighted
    return ulp_kernel.Rows(expected, block.exact.probabilities, coef.s, label, coef.row_c(), coef.a, weighted)


#: Entries of a block whose size sets a zero answer's Σ e²: it only decides whether the type can
#: judge at all (against 8× the baseline's), so a sample serves, at a 64th of a full pass's cost.
ZERO_SAMPLE = 1 << 12


def _zero_squares(expected: np.ndarray, unit: np.ndarray) -> float:
    """Σ (expected/unit)², the errors of an all-zero answer, from evenly spaced entries: a step
    prime to the row's length, so that the sample goes through every column (a step of K would
    read one class only, the label's column for labels all 0)."""
    step = _zero_step(expected)
    sample = expected.reshape(-1)[::step]
    with np.errstate(invalid="ignore", over="ignore"):
        return sum_of_squares(np.divide(sample, unit.reshape(-1)[::step])) * (expected.size / sample.size)


def _zero_step(expected: np.ndarray) -> int:
    """The step between the entries that sample an all-zero answer (see _zero_squares)."""
    step = max(1, expected.size // ZERO_SAMPLE)
    while expected.ndim == 2 and step > 1 and math.gcd(step, expected.shape[1]) != 1:
        step += 1
    return step


def grade_row_losses(
    expected: np.ndarray,
    magnitude: np.ndarray,
    route: np.ndarray,
    given: np.ndarray,
    dtype: str,
    start: int,
    answer_expected: np.ndarray | None = None,
) -> BlockErrors:
    """A block's row losses graded as :func:`grade_gradient` grades a gradient (one route);
    ``answer_expected``: what the answer is compared with, where not ``expected`` (a sequential
    sum's shifted losses, while the baseline, summed otherwise, keeps the exact ones)."""
    zero = ulps(np.zeros_like(expected), expected, magnitude, dtype)
    base = finite_errors(ulps(route, expected, magnitude, dtype), zero)
    target = expected if answer_expected is None else answer_expected
    return summarize(ulps(given, target, magnitude, dtype), base, target, given, start)
