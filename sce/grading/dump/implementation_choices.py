"""Known implementation choices a wrong-looking answer may be consistent with, and the option that grades it so.

An answer that fails as claimed may be right as computed: a float32 gradient
saved as float64 (every entry a float32 value, billions of float64 ulps off),
a float16 one saved as float32, or one sequential sum over a vocabulary's
classes. Each is tried only once the answer is wrong and no mistake fits it,
by grading it again that way; one that passes is said, with the option that
grades it so, and the verdict stays the one asked for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sce.errors import option
from sce.grading.dump.baseline import ulp_format
from sce.grading.dump.sequential_sums import sum_error_bound
from sce.grading.dump.verdict import MARGIN_ULPS, QuantityVerdict
from sce.io.arrays import ArrayDump
from sce.io.arrays.dump import bfloat16_dtype
from sce.io.arrays.mapped_rows import read_rows

#: The narrower types an answer stored in a type may have been computed in, widest first.
NARROWER = {
    "float64": ("float32", "bfloat16", "float16"),
    "float32": ("bfloat16", "float16"),
    "bfloat16": (),
    "float16": (),
}

Regrade = Callable[[str, str], bool]
"""Whether the dump, graded as (claimed type, sum order), is correct."""


def consistent_choices(
    dump: ArrayDump,
    claimed: str,
    sum_order: str,
    bounds: list[tuple[int, int]],
    regrade: Regrade,
    gradient: QuantityVerdict | None,
) -> list[str]:
    """What else the answer is consistent with (hints, options marked by :func:`sce.errors.option`).

    Parameters
    ----------
    dump : ArrayDump
        The answer that failed as claimed, with no named mistake.
    claimed, sum_order : str
        How it was graded.
    bounds : list of (int, int)
        The dump's blocks of rows, for reading it a block at a time.
    regrade : callable
        Grades the dump again as (type, sum order); True when correct.
    gradient : QuantityVerdict, optional
        The gradient's verdict as claimed (None without a gradient).

    Returns
    -------
    list of str
        At most one hint: the first choice, in the order narrower type, sequential sum, both, that
        makes the answer correct.
    """
    held: list[str] = []
    for kind in NARROWER[claimed]:
        if claimed == "float64" and kind != "float32" and "float32" not in held:
            break  # bfloat16's and float16's values are float32 values: none of theirs either
        if _holds(dump, kind, bounds):
            held.append(kind)
    tries: list[tuple[str, str]] = [(kind, sum_order) for kind in held]
    if gradient is not None and sum_order == "parallel":
        classes = dump.shape[1]
        for kind in (claimed, *held):
            if _sequential_sum_shows(classes, kind, gradient if kind == claimed else None):
                tries.append((kind, "sequential"))
    for kind, order in tries:
        if regrade(kind, order):
            return [_hint(claimed, kind, order != sum_order)]
    return []


def _hint(claimed: str, kind: str, sequential: bool) -> str:
    said = []
    if kind != claimed:
        said.append(f"every entry is a {kind} value, as a {kind} computation saved as {claimed} gives")
    if sequential:
        said.append("its rows are consistent with a sequential sum over the classes")
    flags = " ".join(
        ([option("claimed_dtype", kind)] if kind != claimed else [])
        + ([option("sum_order", "sequential")] if sequential else [])
    )
    return f"{'; '.join(said)}: graded with {flags}, the answer is correct"


def _sequential_sum_shows(classes: int, kind: str, gradient: QuantityVerdict | None) -> bool:
    """Whether a sequential sum could explain the gradient's errors in ``kind``: its factor can reach
    the margin of 8 ulps (a float32 sum of 9 classes can; a float16 answer's, summed in float32, not
    below 65,537 classes), and could bring the typical error within what is allowed (each entry
    moves by at most |δ|·2^(mantissa + 1) ulps: a doubled gradient is millions of ulps off), where
    ``gradient`` is its verdict in ``kind``."""
    mantissa, _ = ulp_format(kind)
    bound = sum_error_bound(classes, kind)
    reach = bound * 2.0 ** (mantissa + 1)
    if gradient is not None and gradient.rms_ulps > gradient.allowed_rms_ulps + reach:
        return False
    return bound >= MARGIN_ULPS * 2.0 ** -(mantissa + 1)


def _holds(dump: ArrayDump, kind: str, bounds: list[tuple[int, int]]) -> bool:
    """Whether every entry of the answer (gradient and loss) is a value of ``kind`` (NaN and ±inf too)."""
    try:
        dtype = bfloat16_dtype() if kind == "bfloat16" else np.dtype(kind)
    except ImportError:
        return False
    if dump.loss is not None and not _same(np.asarray(dump.loss), dtype):
        return False
    if dump.grad is None:
        return dump.loss is not None
    return all(_same(read_rows(dump.grad, start, stop), dtype) for start, stop in bounds)


def _same(values: np.ndarray, dtype: np.dtype) -> bool:
    wide = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        back = wide.astype(dtype).astype(np.float64)
    return bool(np.all((back == wide) | (np.isnan(back) & np.isnan(wide))))
