"""The gradient's errors over labels without smoothing, and the fused linear check's gradients
given with their operands' size (:func:`grade_sized`), by the compiled loop of ``_ulp_errors.c``.

numpy grades a block's gradient in some twenty memory-bound passes (the magnitude, its ulp
unit, the answer's and each baseline route's errors, their largest and sums of squares, the
histogram, the worst entries, and for a float32 claim the routes' gradients themselves); the C
loop makes them one, a chunk of a row at a time, with the same operations in the same order, so
that every number but the sums of squares is the same bits (tested against the numpy path).
``pip install`` builds it where a C compiler is at hand (setup.py); without one, for the half
types, or where anything is not finite, the numpy path grades the rows.

The arguments cross into C as structures whose fields are named on both sides (``Rows``,
``Answer``, ``Routes``, ``Scale``, ``Found``, ``Change`` in the C file), never as a long positional list.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: The worst entries a report shows (the C loop's WORST, checked when it loads).
WORST_SHOWN = 10
#: The C loop's MAX_BINS: room for the histogram's bins.
_MAX_BINS = 512
_SOURCE = Path(__file__).with_name("_ulp_errors.c")


@dataclass(frozen=True)
class RouteParts:
    """The float32 baseline's two routes before their gradients are formed (:mod:`.sparse_labels`):
    p = e / Σe and p = exp(log p), and the row coefficients of ((p·s) − c)·a, all float32."""

    exponentials: np.ndarray
    totals: np.ndarray
    """Σe per row (B)."""
    via_log: np.ndarray
    s: np.ndarray
    c: np.ndarray
    """c at each row's label, 0 for an ignored row (B)."""
    a: np.float32


_P, _I, _D, _C = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int


class _Routes(ctypes.Structure):
    _fields_ = [("kind", _C), ("is_double", _C), ("first", _P), ("second", _P)]
    _fields_ += [("total32", _P), ("s32", _P), ("c32", _P), ("a32", ctypes.c_float)]


class _Rows(ctypes.Structure):
    _fields_ = [("rows", _I), ("classes", _I), ("expected", _P), ("probabilities", _P)]
    _fields_ += [("s", _P), ("label", _P), ("c", _P), ("a", _D), ("weighted", _C), ("magnitude", _P)]


class _Answer(ctypes.Structure):
    _fields_ = [("values", _P), ("is_double", _C)]


class _Change(ctypes.Structure):
    _fields_ = [("factors", _P), ("patches", _I), ("patch_index", _P), ("patch_value", _P)]


class _Scale(ctypes.Structure):
    _fields_ = [("smallest", _D), ("ulp_scale", _D), ("zero_step", _I), ("quarters", _D * 3)]
    _fields_ += [("lowest_exponent", _I), ("last_bin", _I)]


class _Found(ctypes.Structure):
    _fields_ = [("counts", _I * _MAX_BINS), ("stats", _D * 7), ("worst_index", _I * WORST_SHOWN)]
    _fields_ += [("worst_error", _D * WORST_SHOWN), ("worst_count", _I)]


@cache
def library() -> ctypes.CDLL | None:
    """The compiled loop, or None where it was not built from the source beside this file."""
    if not _SOURCE.is_file():
        return None
    digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest().encode()
    for path in _candidates():
        try:
            found = ctypes.CDLL(str(path))
            found.sce_ulp_errors_digest.restype = ctypes.c_char_p
            if found.sce_ulp_errors_digest() != digest or found.sce_ulp_errors_worst() != WORST_SHOWN:
                continue  # built from another version of the source
            found.grade.restype = _C
            found.grade.argtypes = [ctypes.POINTER(t) for t in (_Rows, _Answer, _Routes, _Scale, _Found)]
            found.lane_sum_f32.restype = None
            found.lane_sum_f32.argtypes = [_I, _I, _P, _P]
            found.candidate_errors.restype = _C
            found.candidate_errors.argtypes = [_I, _I, _P, _C, _P, _P, _P, _D, _D, _P]
            found.changed_candidate_errors.restype = _C
            changed = [ctypes.POINTER(t) for t in (_Rows, _Answer, _Change)]
            found.changed_candidate_errors.argtypes = [*changed, _P, _D, _D, _P]
        except (OSError, AttributeError):
            continue
        return found
    return None


def _candidates() -> list[Path]:
    """Where the library may be: beside this file (an install, or a build in place), then where
    an installed sce keeps it (tests run from a checkout import the checkout's sources)."""
    names = [f"_ulp_errors{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    folders = [Path(__file__).parent] + [Path(entry or ".") / "sce" / "grading" / "dump" for entry in sys.path]
    return [folder / name for folder in folders for name in names if (folder / name).is_file()]


def grades(given: np.ndarray, routes: tuple[np.ndarray, ...] | RouteParts, dtype: str) -> bool:
    """Whether the loop can grade this: a float32 or float64 claim and answer, one or two routes."""
    if library() is None or dtype not in ("float32", "float64") or given.dtype not in _FLOATS:
        return False
    if isinstance(routes, RouteParts):
        return dtype == "float32"
    return 1 <= len(routes) <= 2 and all(r.dtype in _FLOATS and r.dtype == routes[0].dtype for r in routes)


def lane_sum_width() -> int | None:
    """The lanes of the compiled lane sum (float32), or None without the loop."""
    found = library()
    return None if found is None else int(found.sce_ulp_errors_lanes())


def lane_sum_f32(values: np.ndarray) -> np.ndarray | None:
    """:func:`.dtype_baseline.lane_sum` of float32 rows (B×1) in lane_sum_width() lanes, or None
    without the loop."""
    found = library()
    if found is None or values.dtype != np.float32 or values.ndim != 2:
        return None
    values = np.ascontiguousarray(values)
    out = np.empty((values.shape[0], 1), np.float32)
    found.lane_sum_f32(values.shape[0], values.shape[1], values.ctypes.data, out.ctypes.data)
    return out


def candidate_errors(
    given: np.ndarray,
    other: np.ndarray,
    magnitude: np.ndarray,
    unit_format: tuple[int, int],
    flushed_below: np.ndarray | None = None,
) -> tuple[float, float] | None:
    """The largest of |given − other| in ulps at max(magnitude, |other|) and their Σe², by the
    compiled loop, a given 0 taken as other where |other| is below its row's ``flushed_below``
    (:func:`.flushed.excused`); None without the loop, for a type it does not read, or where
    anything is not finite. ``unit_format``: the claimed type's mantissa bits and lowest exponent."""
    found = library()
    if found is None or given.dtype not in _FLOATS or given.shape != other.shape or not other.size:
        return None
    kept = [np.ascontiguousarray(given), np.ascontiguousarray(other, np.float64)]
    kept.append(np.ascontiguousarray(np.broadcast_to(magnitude, other.shape), np.float64))
    classes = other.shape[-1] if other.ndim == 2 else other.size
    if flushed_below is not None:
        kept.append(np.ascontiguousarray(np.broadcast_to(flushed_below, (len(other), 1)), np.float64))
    mantissa, min_exponent = unit_format
    out = np.zeros(2)
    status = found.candidate_errors(
        other.size,
        classes,
        kept[0].ctypes.data,
        int(kept[0].dtype == np.float64),
        kept[1].ctypes.data,
        kept[2].ctypes.data,
        kept[3].ctypes.data if flushed_below is not None else None,
        2.0**min_exponent,
        2.0**-mantissa,
        out.ctypes.data,
    )
    del kept  # alive until here: the call read them by address
    return None if status else (float(out[0]), float(out[1]))


def changed_candidate_errors(
    rows: Rows,
    given: np.ndarray,
    change: tuple[np.ndarray, np.ndarray, np.ndarray],
    unit_format: tuple[int, int],
    flushed_below: np.ndarray | None = None,
) -> tuple[float, float] | None:
    """:func:`candidate_errors` of a what-if given as the exact gradient ``rows.expected`` changed:
    ``change`` is each row's factor (B) and some entries set to values of their own (flat indices,
    increasing, and their values); the magnitudes are ``rows``' a·max(s·p, c). Neither the what-if
    nor the magnitudes are formed as arrays. None where :func:`candidate_errors` gives None."""
    found = library()
    if found is None or given.dtype not in _FLOATS or given.shape != rows.expected.shape or not given.size:
        return None
    kept = [np.ascontiguousarray(a, np.float64) for a in (rows.expected, rows.probabilities, rows.s, rows.c)]
    kept += [np.ascontiguousarray(rows.label, np.int64), np.ascontiguousarray(given)]
    factors, index, values = change
    kept += [np.ascontiguousarray(factors, np.float64), np.ascontiguousarray(index, np.int64)]
    kept += [np.ascontiguousarray(values, np.float64)]
    if flushed_below is not None:
        kept.append(np.ascontiguousarray(np.broadcast_to(flushed_below, (len(given), 1)), np.float64))
    expected, probabilities, s, c, label, answer = kept[:6]
    count, classes = expected.shape
    c_rows = _Rows(count, classes, *(a.ctypes.data for a in (expected, probabilities, s, label, c)))
    c_rows.a, c_rows.weighted = rows.a, int(rows.weighted)
    c_answer = _Answer(answer.ctypes.data, int(answer.dtype == np.float64))
    c_change = _Change(kept[6].ctypes.data, len(kept[7]), kept[7].ctypes.data, kept[8].ctypes.data)
    mantissa, min_exponent = unit_format
    out = np.zeros(2)
    bounds = kept[9].ctypes.data if flushed_below is not None else None
    status = found.changed_candidate_errors(
        c_rows, c_answer, c_change, bounds, 2.0**min_exponent, 2.0**-mantissa, out.ctypes.data
    )
    del kept  # alive until here: the call read them by address
    return None if status else (float(out[0]), float(out[1]))


@dataclass(frozen=True)
class Rows:
    """What the loop needs of a slice's rows: the exact result and each row's coefficients."""

    expected: np.ndarray
    probabilities: np.ndarray
    s: np.ndarray
    label: np.ndarray
    """Each row's label column, -1 for an ignored row."""
    c: np.ndarray
    """c at the label, 0 for an ignored row."""
    a: float
    weighted: bool


@dataclass(frozen=True)
class Found:
    counts: np.ndarray
    stats: np.ndarray
    """The answer's largest error and Σe², each route's largest |d| and Σd², and the sampled
    Σ(x/u)² of an all-zero answer."""
    worst_index: np.ndarray
    """The worst entries' flat indices in the slice, worst first (ties: the earliest first)."""
    worst_error: np.ndarray


def grade(
    rows: Rows,
    given: np.ndarray,
    routes: tuple[np.ndarray, ...] | RouteParts,
    unit_format: tuple[int, int],
    zero_step: int,
    histogram: tuple[np.ndarray, int, int],
) -> Found | None:
    """Bin counts, the stats and the worst entries of one slice of rows; None where something is
    not finite (the numpy path knows NaN and inf).

    ``unit_format``: the claimed type's mantissa bits and lowest exponent; ``histogram``: the
    quarter-octaves, the lowest exponent and the last bin of its edges."""
    found = library()
    assert found is not None
    kept = [np.ascontiguousarray(a, np.float64) for a in (rows.expected, rows.probabilities, rows.s, rows.c)]
    kept += [np.ascontiguousarray(rows.label, np.int64), np.ascontiguousarray(given)]
    expected, probabilities, s, c, label, answer = kept
    count, classes = expected.shape
    c_rows = _Rows(count, classes, *(a.ctypes.data for a in (expected, probabilities, s, label, c)))
    c_rows.a, c_rows.weighted = rows.a, int(rows.weighted)
    c_answer = _Answer(answer.ctypes.data, int(answer.dtype == np.float64))
    c_routes, route_arrays = _routes(routes)
    mantissa, min_exponent = unit_format
    quarters, lowest, last = histogram
    c_scale = _Scale(2.0**min_exponent, 2.0**-mantissa, zero_step, (_D * 3)(*quarters.tolist()), lowest, last)
    result = _Found()
    status = found.grade(c_rows, c_answer, c_routes, c_scale, result)
    del kept, route_arrays  # alive until here: the call read them by address
    return None if status else _found(result, last)


def grade_sized(
    expected: np.ndarray,
    magnitude: np.ndarray,
    given: np.ndarray,
    base: np.ndarray,
    unit_format: tuple[int, int],
    histogram: tuple[np.ndarray, int, int],
) -> Found | None:
    """:func:`grade` of a block whose operands' size is given (float32, as ``expected``): each
    entry's unit that of max(size, |expected|), one route (``base``), an all-zero answer's errors
    over every entry; None where something is not finite."""
    found = library()
    assert found is not None
    kept: list[np.ndarray] = [np.ascontiguousarray(expected, np.float64), np.ascontiguousarray(magnitude, np.float32)]
    kept += [np.ascontiguousarray(given), np.ascontiguousarray(base)]
    count, classes = kept[0].shape
    c_rows = _Rows(count, classes, kept[0].ctypes.data, None, None, None, None, 0.0, 0, kept[1].ctypes.data)
    c_answer = _Answer(kept[2].ctypes.data, int(kept[2].dtype == np.float64))
    c_routes = _Routes(0, int(kept[3].dtype == np.float64), kept[3].ctypes.data, None)
    mantissa, min_exponent = unit_format
    quarters, lowest, last = histogram
    c_scale = _Scale(2.0**min_exponent, 2.0**-mantissa, 1, (_D * 3)(*quarters.tolist()), lowest, last)
    result = _Found()
    status = found.grade(c_rows, c_answer, c_routes, c_scale, result)
    del kept  # alive until here: the call read them by address
    return None if status else _found(result, last)


def _found(result: _Found, last: int) -> Found:
    """The loop's result as arrays: the bins up to ``last`` and the not-finite one, the worst shown."""
    shown = int(result.worst_count)
    return Found(
        np.array(result.counts[: last + 2], np.int64),
        np.array(result.stats[:]),
        np.array(result.worst_index[:shown], np.int64),
        np.array(result.worst_error[:shown]),
    )


def _routes(routes: tuple[np.ndarray, ...] | RouteParts) -> tuple[_Routes, list[np.ndarray]]:
    """The C description of the routes, and the arrays it points into (to be kept alive)."""
    if isinstance(routes, RouteParts):
        arrays = [
            np.ascontiguousarray(a, np.float32)
            for a in (routes.exponentials, routes.via_log, routes.totals, routes.s, routes.c)
        ]
        return _Routes(1, 0, *(a.ctypes.data for a in arrays), float(routes.a)), arrays
    arrays = [np.ascontiguousarray(route) for route in routes]
    second = arrays[1].ctypes.data if len(arrays) > 1 else None
    return _Routes(0, int(arrays[0].dtype == np.float64), arrays[0].ctypes.data, second), arrays
