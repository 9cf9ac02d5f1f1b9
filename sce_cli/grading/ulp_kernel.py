"""The gradient's errors over labels without smoothing, by the compiled loop of ``_ulp_errors.c``.

numpy grades a block's gradient in some twenty memory-bound passes (the magnitude, its ulp
unit, the answer's and each baseline route's errors, their largest and sums of squares, the
histogram, the worst entries, and for a float32 claim the routes' gradients themselves); the C
loop makes them one, a chunk of a row at a time, with the same operations in the same order, so
that every number but the sums of squares is the same bits (tested against the numpy path).
``pip install`` builds it where a C compiler is at hand; without one, for the half types, or
where anything is not finite, the numpy path grades the rows.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_WORST = 10
#: The stats the C loop returns: the answer's largest error and Σe², each route's largest |d|
#: and Σd², and the sampled Σ(x/u)² of an all-zero answer.
_STATS = 7


@dataclass(frozen=True)
class RouteParts:
    """The float32 baseline's two routes before their gradients are formed (:mod:`.label_block`):
    p = e / Σe and p = exp(log p), and the row coefficients of ((p·s) − c)·a, all float32."""

    exponentials: np.ndarray
    totals: np.ndarray
    """Σe per row (B)."""
    via_log: np.ndarray
    s: np.ndarray
    c: np.ndarray
    """c at each row's label, 0 for an ignored row (B)."""
    a: np.float32


class _Routes(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int),
        ("is_double", ctypes.c_int),
        ("first", ctypes.c_void_p),
        ("second", ctypes.c_void_p),
        ("row_total", ctypes.c_void_p),
        ("row_s", ctypes.c_void_p),
        ("row_c", ctypes.c_void_p),
        ("a", ctypes.c_float),
    ]


_P = ctypes.c_void_p
_I = ctypes.c_int64
_D = ctypes.c_double
_C = ctypes.c_int
_GRADE: list[Any] = [_I, _I, _P, _P, _P, _C, ctypes.POINTER(_Routes), _P, _P, _P, _D, _C, _D, _D, _I, _P, _I, _I]
_GRADE += [_P] * 5


#: The calling convention this module speaks (sce_ulp_errors_abi in the C file).
_ABI = 1


@cache
def library() -> ctypes.CDLL | None:
    """The compiled loop, or None where it was not built."""
    for path in _candidates():
        try:
            found = ctypes.CDLL(str(path))
            if found.sce_ulp_errors_abi() != _ABI:
                continue
        except (OSError, AttributeError):
            continue
        found.grade.restype = ctypes.c_int
        found.grade.argtypes = _GRADE
        found.lane_sum_f32.restype = None
        found.lane_sum_f32.argtypes = [_I, _I, _P, _P]
        return found
    return None


def _candidates() -> list[Path]:
    """Where the library may be: beside this file (an install, or a build in place), then where
    an installed sce keeps it (tests run from a checkout import the checkout's sources)."""
    names = [f"_ulp_errors{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    folders = [Path(__file__).parent] + [Path(entry or ".") / "sce_cli" / "grading" for entry in sys.path]
    return [folder / name for folder in folders for name in names if (folder / name).is_file()]


def grades(given: np.ndarray, routes: tuple[np.ndarray, ...] | RouteParts, dtype: str) -> bool:
    """Whether the loop can grade this: a float32 or float64 claim and answer, one or two routes."""
    if library() is None or dtype not in ("float32", "float64") or given.dtype not in _FLOATS:
        return False
    if isinstance(routes, RouteParts):
        return dtype == "float32"
    return 1 <= len(routes) <= 2 and all(r.dtype in _FLOATS and r.dtype == routes[0].dtype for r in routes)


def lane_sum_f32(values: np.ndarray) -> np.ndarray | None:
    """:func:`.dtype_baseline.lane_sum` of float32 rows (B×1), or None without the loop."""
    found = library()
    if found is None or values.dtype != np.float32 or values.ndim != 2:
        return None
    values = np.ascontiguousarray(values)
    out = np.empty((values.shape[0], 1), np.float32)
    found.lane_sum_f32(values.shape[0], values.shape[1], values.ctypes.data, out.ctypes.data)
    return out


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
    """Bin counts, the stats (see _STATS) and the worst entries of one slice of rows; None where
    something is not finite (the numpy path knows NaN and inf).

    ``unit_format``: the claimed type's mantissa bits and lowest exponent; ``histogram``: the
    quarter-octaves, the lowest exponent and the last bin of its edges."""
    found = library()
    assert found is not None
    count, classes = rows.expected.shape
    keep = [np.ascontiguousarray(rows.expected), np.ascontiguousarray(rows.probabilities), np.ascontiguousarray(given)]
    keep += [np.ascontiguousarray(rows.s, np.float64), np.ascontiguousarray(rows.label, np.int64)]
    keep += [np.ascontiguousarray(rows.c, np.float64), np.ascontiguousarray(histogram[0], np.float64)]
    spec, kept = _routes(routes)
    mantissa, min_exponent = unit_format
    result = Found(np.zeros(histogram[2] + 2, np.int64), np.zeros(_STATS), np.zeros(_WORST, np.int64), np.zeros(_WORST))
    shown = np.zeros(1, np.int64)
    status = found.grade(
        count,
        classes,
        *(array.ctypes.data for array in keep[:3]),
        int(given.dtype == np.float64),
        ctypes.byref(spec),
        *(array.ctypes.data for array in keep[3:6]),
        rows.a,
        int(rows.weighted),
        2.0**min_exponent,
        2.0**-mantissa,
        zero_step,
        keep[6].ctypes.data,
        histogram[1],
        histogram[2],
        result.counts.ctypes.data,
        result.stats.ctypes.data,
        result.worst_index.ctypes.data,
        result.worst_error.ctypes.data,
        shown.ctypes.data,
    )
    del kept  # the arrays whose addresses the call read
    if status:
        return None
    n = int(shown[0])
    return Found(result.counts, result.stats, result.worst_index[:n], result.worst_error[:n])


def _routes(routes: tuple[np.ndarray, ...] | RouteParts) -> tuple[_Routes, list[np.ndarray]]:
    """The C description of the routes, and the arrays it points into (to be kept alive)."""
    if isinstance(routes, RouteParts):
        arrays = [
            np.ascontiguousarray(a, np.float32)
            for a in (routes.exponentials, routes.via_log, routes.totals, routes.s, routes.c)
        ]
        addresses = [a.ctypes.data for a in arrays]
        return _Routes(1, 0, *addresses, float(routes.a)), arrays
    arrays = [np.ascontiguousarray(route) for route in routes]
    second = arrays[1].ctypes.data if len(arrays) > 1 else None
    return _Routes(0, int(arrays[0].dtype == np.float64), arrays[0].ctypes.data, second, None, None, None, 0.0), arrays
