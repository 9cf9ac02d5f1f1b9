"""The inputs of a linear layer's cross-entropy, checked: every problem an :class:`InvalidInput`
naming the argument (hidden, classifier, bias, labels, grad_output)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sce.loss.result import InvalidInput
from sce.loss.validation import checked_labels

#: The bytes of one float64 block read while checking.
_BLOCK_BYTES = 1 << 25


def checked_linear_inputs(
    hidden: ArrayLike, classifier: ArrayLike, labels: ArrayLike, bias: ArrayLike | None, ignore_index: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """E (N×D), C (V×D), b (V, float64) and the labels (N, int64), checked: shapes that agree,
    finite values, labels in range; an :class:`InvalidInput` naming the argument otherwise."""
    e = _float_matrix(hidden, "hidden")
    c = _float_matrix(classifier, "classifier")
    if e.shape[1] != c.shape[1]:
        raise InvalidInput(
            f"hidden has D = {e.shape[1]} columns but classifier has D = {c.shape[1]}",
            field="classifier",
            hint="classifier is V×D, one row per class, D the hidden states' width",
        )
    if c.shape[0] == 0:
        raise InvalidInput("classifier has no classes (V = 0)", field="classifier")
    b = None
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64)
        if b.shape != (c.shape[0],):
            raise InvalidInput(f"bias has shape {b.shape}, not ({c.shape[0]},): one per class", field="bias")
        if not np.isfinite(b).all():
            raise InvalidInput("bias has a value that is not finite", field="bias", column=_first_bad(b))
    return e, c, b, checked_labels(labels, e.shape[0], c.shape[0], ignore_index)


def _float_matrix(value: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2:
        raise InvalidInput(f"{name} has {array.ndim} axes; give a matrix (rows × D)", field=name)
    if array.dtype.kind not in "fV" and array.dtype.name != "bfloat16":
        raise InvalidInput(f"{name} has type {array.dtype}; give floating-point numbers", field=name)
    step = max(1, _BLOCK_BYTES // (8 * max(1, array.shape[1])))
    for start in range(0, len(array), step):
        block = np.asarray(array[start : start + step], np.float64)
        if not np.isfinite(block).all():
            row, column = np.argwhere(~np.isfinite(block))[0]
            raise InvalidInput(
                f"{name} has a value that is not finite ({block[row, column]})",
                field=name,
                row=int(start + row),
                column=int(column),
                column_word="column",  # of the hidden size D, not a class
            )
    return array


def _first_bad(values: np.ndarray) -> int:
    return int(np.flatnonzero(~np.isfinite(values))[0])


def checked_grad_output(grad_output: ArrayLike | float, reduction: str, n_rows: int) -> np.ndarray | float:
    """The upstream gradient: one finite number, or one per row for 'none'."""
    upstream = np.asarray(grad_output, dtype=np.float64)
    if upstream.ndim and not (reduction == "none" and upstream.shape == (n_rows,)):
        raise InvalidInput(
            f"grad_output has shape {upstream.shape}; give one number"
            + (f", or one per row ({n_rows})" if reduction == "none" else f" for reduction {reduction!r}"),
            field="grad_output",
        )
    if not np.isfinite(upstream).all():
        raise InvalidInput("grad_output is not finite", field="grad_output")
    return upstream if upstream.ndim else float(upstream)
