"""Checking the core's inputs: every problem an :class:`InvalidInput` that says where."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from sce.errors import option
from sce.loss.layout import Layout
from sce.loss.result import InvalidInput
from sce.number_text import count_of
from sce.options import FLOAT_TYPES, REDUCTIONS, SMOOTHING_STYLES, FloatType, LossOptions

#: How far a row of probability targets may sum from 1 before it is rejected (targets given in a
#: narrower float type may be further off: :func:`target_sum_tolerance`).
TARGET_SUM_TOLERANCE = 1e-6

#: Unit roundoff of the narrower float types targets may be given in (bfloat16: ml_dtypes').
_NARROW_UNITS = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def target_sum_tolerance(given_type: np.dtype, n_classes: int) -> float:
    """How far a row of targets given as ``given_type`` may sum from 1.

    Targets computed in float32 (a softmax over a vocabulary, saved by a framework) do not sum
    to 1 within 1e-6: over 256,000 classes PyTorch's float32 softmax sums to 1 + 1.1e-6. Given
    in a narrower type, a row may be off by the rounding of each stored value (2u of the type)
    plus what a float32 sum over K terms typically leaves (4·√K·u of float32): 1.2e-4 for
    float32 at K = 256,000. float64 and typed targets keep 1e-6."""
    unit = _NARROW_UNITS.get(given_type.name)
    if unit is None:
        return TARGET_SUM_TOLERANCE
    return max(TARGET_SUM_TOLERANCE, 2 * unit + 4 * float(np.sqrt(n_classes)) * 2.0**-24)


def float_type_name(dtype: Any) -> FloatType:
    """ "float64" or "float32" for anything numpy reads as those types."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in FLOAT_TYPES:
        raise InvalidInput(f"unsupported dtype {dtype!r}", field="dtype", hint="use float64 or float32")
    return cast(FloatType, name)


def weight_tuple(weight: ArrayLike | None) -> tuple[float, ...] | None:
    """Class weights as the options hold them: a tuple of floats, or None."""
    if weight is None:
        return None
    try:
        array = np.asarray(weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput("weights must be numbers", field="weight") from None
    if array.ndim != 1:
        raise InvalidInput("weight must be a vector, one number per class", field="weight")
    return tuple(float(w) for w in array)


def validated_options(options: LossOptions) -> tuple[np.dtype, np.ndarray | None]:
    """Check every option; return the float type and the class weights (None for all 1)."""
    dtype = np.dtype(float_type_name(options.dtype))
    if options.reduction not in REDUCTIONS:
        raise InvalidInput(f"unknown reduction {options.reduction!r}", field="reduction", hint="use none, mean or sum")
    _check_label_smoothing(options.label_smoothing)
    _check_temperature(options.temperature)
    _check_softcap(options.softcap)
    _check_z_loss(options.z_loss)
    if options.smoothing_style not in SMOOTHING_STYLES:
        raise InvalidInput(
            f"unknown smoothing style {options.smoothing_style!r}",
            field="smoothing_style",
            hint="use uniform (PyTorch: ε/K on every class) or off-target (Megatron, t5x: ε/(K−1) off the label)",
        )
    checked_ignore_index(options.ignore_index)
    return dtype, _checked_weights(options.weight, dtype)


def checked_ignore_index(value: object) -> int:
    """The ignore index as an int, or an :class:`InvalidInput` naming it (before any label is judged by it).

    Examples
    --------
    >>> checked_ignore_index(-100)
    -100
    >>> checked_ignore_index(10.5)
    Traceback (most recent call last):
    ...
    sce.loss.result.InvalidInput: ignore_index 10.5 is not an integer (ignore_index)
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInput(f"ignore_index {value!r} is not an integer", field="ignore_index")
    if not -(2**63) <= int(value) < 2**63:
        # Labels are int64 (PyTorch's too): such an index could never match one, and would overflow numpy.
        raise InvalidInput(
            f"{value} is beyond int64",
            field="ignore_index",
            hint="labels are int64: use an index such as -100 (the default)",
        )
    return int(value)


def _check_label_smoothing(value: float) -> None:
    # PyTorch silently treats a negative ε as 0; a typo deserves an error instead.
    if not 0.0 <= float(value) <= 1.0:
        raise InvalidInput(
            f"label smoothing {value!r} is outside [0, 1]",
            field="label_smoothing",
            hint="use a value from 0 (none) to 1",
        )


def _check_temperature(value: float) -> None:
    if not (float(value) > 0 and np.isfinite(float(value))):
        raise InvalidInput(
            f"temperature {value!r} is not a positive finite number",
            field="temperature",
            hint="use T > 0 (1 leaves the logits as they are)",
        )


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _check_softcap(value: float | None) -> None:
    if value is None:
        return
    number = _number(value)
    if number is None or not (number > 0 and np.isfinite(number)):
        raise InvalidInput(
            f"softcap {value!r} is not a positive finite number",
            field="softcap",
            hint="use c > 0 (the logits become c·tanh(z/c)), or leave it out for no cap",
        )


def _check_z_loss(value: float) -> None:
    number = _number(value)
    if number is None or not (number >= 0 and np.isfinite(number)):
        raise InvalidInput(
            f"z-loss {value!r} is not a non-negative finite number",
            field="z_loss",
            hint="use λ >= 0 (0: no z-loss; PaLM uses 1e-4)",
        )


def _checked_weights(weight: tuple[float, ...] | None, dtype: np.dtype) -> np.ndarray | None:
    if weight is None:
        return None
    weights = np.asarray(weight_tuple(weight), dtype=np.float64)
    for column, value in enumerate(weights):
        if not np.isfinite(value) or value < 0:
            raise InvalidInput(
                f"weight {float(value):g} is not a non-negative finite number",
                field="weight",
                column=column,
                hint="class weights must be >= 0",
            )
        if value > np.finfo(dtype).max:
            raise InvalidInput(
                f"weight {float(value):g} is beyond {dtype.name}'s range ({float(np.finfo(dtype).max):.2g})",
                field="weight",
                column=column,
                hint="class weights must fit the type computed in; scale them down or compute in float64",
            )
    return weights.astype(dtype)


def class_weights(weights: np.ndarray | None, n_classes: int, dtype: np.dtype) -> np.ndarray:
    """The K class weights: as given (after a check of their number), or all 1."""
    if weights is None:
        return np.ones(n_classes, dtype)
    if weights.shape != (n_classes,):
        raise InvalidInput(
            f"{count_of(weights.size, 'weight')} for {count_of(n_classes, 'class', 'classes')}",
            field="weight",
            hint=f"give one weight per class ({n_classes})",
        )
    return weights


def _check_range(z: np.ndarray, dtype: np.dtype) -> None:
    """A finite logit that the float type cannot hold (1e308 in float32) is an error, not inf."""
    if z.dtype.kind != "f" or np.finfo(z.dtype).max <= np.finfo(dtype).max:
        return
    with np.errstate(invalid="ignore"):
        too_large = np.isfinite(z) & (np.abs(z) > np.finfo(dtype).max)
    if too_large.any():
        position = tuple(int(i) for i in np.argwhere(np.atleast_2d(too_large))[0])
        row, column = (0, position[0]) if z.ndim == 1 else position[:2]
        raise InvalidInput(
            f"logit {float(np.atleast_2d(z)[row, column]):g} is beyond {dtype.name}'s range "
            f"(±{float(np.finfo(dtype).max):.3g})",
            field="logits",
            row=row,
            column=column,
            hint=f"compute in float64 ({option('dtype', 'float64')})",
        )


def checked_logits_and_argmax(logits: ArrayLike, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The logits as an N×K row-major array of ``dtype``, each row's first maximal logit's class, and that logit.

    One pass finds both: argmax returns a row's first NaN if it has one, and
    its +inf, or a -inf when every logit is -inf, so a row whose maximum is
    finite is valid; only where one is not does :func:`checked_logits` look
    for the first problem to report.
    """
    z = _logit_array(logits, dtype)
    argmax = np.argmax(z, axis=1)
    max_logit = z.reshape(-1).take(np.arange(0, z.size, z.shape[1]) + argmax)
    if not np.isfinite(max_logit).all():
        checked_logits(z, dtype)
        raise AssertionError("a row without a finite maximum passed the check")  # pragma: no cover
    return z, argmax, max_logit


def checked_logits(logits: ArrayLike, dtype: np.dtype) -> np.ndarray:
    z = _logit_array(logits, dtype)
    bad = np.isnan(z) | (z == np.inf)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise InvalidInput(
            f"logit {float(z[row, column]):g} is not allowed",
            field="logits",
            row=row,
            column=column,
            hint="logits must be finite numbers or -inf (a masked class)",
        )
    all_masked = np.all(z == -np.inf, axis=1)
    if all_masked.any():
        raise InvalidInput(
            "every logit in the row is -inf, so the softmax is undefined",
            field="logits",
            row=int(np.flatnonzero(all_masked)[0]),
            hint="leave at least one class finite",
        )
    return z


def _logit_array(logits: ArrayLike, dtype: np.dtype) -> np.ndarray:
    z = np.asarray(logits)
    if z.dtype.kind not in "biuf":
        raise InvalidInput("logits must be numbers", field="logits")
    _check_range(z, dtype)
    # Row-major whatever the caller's layout: a row's sums then always add in
    # the same (pairwise) order, so the same logits give the same bits.
    z = np.asarray(z, dtype=dtype, order="C")
    if z.ndim == 1:
        z = z[None, :]
    if z.ndim != 2:
        raise InvalidInput(f"logits must be N×K, not {z.ndim}-dimensional", field="logits")
    if z.shape[1] == 0:
        raise InvalidInput("no logits", field="logits", hint="give at least one class")
    return z


def checked_labels(labels: ArrayLike, n_rows: int, n_classes: int, ignore_index: int) -> np.ndarray:
    checked_ignore_index(ignore_index)
    label_arr = np.asarray(labels)
    if label_arr.ndim == 0:
        label_arr = label_arr[None]
    if label_arr.shape != (n_rows,):
        raise InvalidInput(f"{count_of(label_arr.size, 'label')} for {count_of(n_rows, 'row')}", field="labels")
    if label_arr.dtype.kind == "b":
        # PyTorch refuses bool targets: True and False are no class indices, whatever they would count as
        raise InvalidInput(
            "labels are booleans, not class indices", field="labels", hint="give 0-based integer class indices"
        )
    if label_arr.dtype.kind == "f":
        fractional = label_arr != np.round(label_arr)
        if fractional.any() or not np.isfinite(label_arr).all():
            row = int(np.flatnonzero(fractional | ~np.isfinite(label_arr))[0])
            raise InvalidInput(
                f"label {float(label_arr[row]):g} is not an integer",
                field="labels",
                row=row,
                hint="labels are 0-based class indices",
            )
    elif label_arr.dtype.kind not in "iu":
        # numpy keeps integers beyond 64 bits as Python objects.
        values = label_arr.tolist()
        huge = next((i for i, v in enumerate(values) if isinstance(v, int) and not -(2**63) <= v < 2**63), None)
        if huge is not None:
            raise InvalidInput(
                f"label {label_arr[huge]} is too large for a class index (beyond a 64-bit integer)",
                field="labels",
                row=huge,
                hint="labels are 0-based class indices",
            )
        raise InvalidInput("labels must be integers", field="labels")
    if label_arr.dtype.kind == "u" and label_arr.size and label_arr.max() > np.iinfo(np.int64).max:
        # Cast to int64, 2⁶⁴ − 100 would read as −100 (an ignored row) and 2⁶³ + 1 as a negative label.
        row = int(np.flatnonzero(label_arr > np.iinfo(np.int64).max)[0])
        raise InvalidInput(
            f"label {int(label_arr[row])} is out of range for {count_of(n_classes, 'class', 'classes')}",
            field="labels", row=row, hint=f"labels are 0-based: use 0 to {n_classes - 1}",
        )  # fmt: skip
    label_arr = label_arr.astype(np.int64)
    bad = ((label_arr < 0) | (label_arr >= n_classes)) & (label_arr != ignore_index)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        classes = count_of(n_classes, "class", "classes")
        problem = "is negative" if label_arr[row] < 0 else f"is out of range for {classes}"
        raise InvalidInput(
            f"label {label_arr[row]} {problem}",
            field="labels",
            row=row,
            hint=f"labels are 0-based: use 0 to {n_classes - 1} (or {ignore_index} to ignore the row)",
        )
    return label_arr


def checked_targets(targets: ArrayLike, n_rows: int, n_classes: int, dtype: np.dtype) -> np.ndarray:
    given = np.asarray(targets)
    tolerance = target_sum_tolerance(given.dtype, n_classes)
    y = given.astype(np.float64, copy=False)
    if y.ndim == 1:
        y = y[None, :]
    if y.shape != (n_rows, n_classes):
        raise InvalidInput(
            f"targets have {count_of(y.shape[-1], 'entry', 'entries')} per row "
            f"for {count_of(n_classes, 'class', 'classes')}",
            field="targets",
            hint=f"give one probability per class ({n_classes})",
        )
    bad = ~np.isfinite(y) | (y < 0)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise InvalidInput(
            f"target {float(y[row, column]):g} is not a probability",
            field="targets",
            row=row,
            column=column,
            hint="target entries must be >= 0 and sum to 1",
        )
    sums = y.sum(axis=1)
    off = np.abs(sums - 1) > tolerance
    if off.any():
        row = int(np.flatnonzero(off)[0])
        kind = "" if tolerance == TARGET_SUM_TOLERANCE else f" for {given.dtype.name} targets"
        raise InvalidInput(
            f"targets sum to {sums[row]:.10g}, not 1",
            field="targets",
            row=row,
            hint=f"make them sum to 1 (within {tolerance:.2g}{kind})",
        )
    return np.array(y, dtype=dtype, order="C")  # a copy: the result never aliases the caller's targets


def as_rows(
    logits: ArrayLike, labels: ArrayLike | None, targets: ArrayLike | None, class_axis: int
) -> tuple[ArrayLike, ArrayLike | None, ArrayLike | None, Layout | None]:
    """Logits with the classes on any axis as N×K rows (labels as N, targets as N×K), and the layout to return."""
    if isinstance(class_axis, bool) or not isinstance(class_axis, (int, np.integer)):
        raise InvalidInput(f"class_axis {class_axis!r} is not an integer", field="class_axis")
    z = np.asarray(logits)
    if z.ndim == 0:
        raise InvalidInput("logits must be an array, not one number", field="logits", hint="give at least one class")
    if z.ndim == 1:
        if class_axis not in (-1, 0, 1):
            raise InvalidInput(f"class_axis {class_axis} for a vector of logits", field="class_axis", hint="use -1")
        return logits, labels, targets, Layout(z.shape, 0)
    if not -z.ndim <= class_axis < z.ndim:
        raise InvalidInput(
            f"class_axis {class_axis} is out of range for {z.ndim}-dimensional logits",
            field="class_axis",
            hint=f"use -1 (classes last) or 0 to {z.ndim - 1}",
        )
    axis = int(class_axis) % z.ndim
    if z.ndim == 2 and axis == 1:
        return logits, labels, targets, None  # already rows
    moved = np.moveaxis(z, axis, -1)
    labels, targets = labels_and_targets_as_rows(z.shape, axis, moved.shape, labels, targets)
    return moved.reshape(-1, moved.shape[-1]), labels, targets, Layout(z.shape, axis)


def labels_and_targets_as_rows(
    shape: tuple[int, ...],
    axis: int,
    moved: tuple[int, ...],
    labels: ArrayLike | None,
    targets: ArrayLike | None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The labels as N and the targets as N×K rows of logits of ``shape`` with the classes on ``axis``
    (``moved``: that shape with the class axis last), each checked against the logits' shape first."""
    label_rows = target_rows = None
    if labels is not None:
        label_arr = np.asarray(labels)
        if label_arr.shape != moved[:-1]:
            raise InvalidInput(
                f"labels of shape {label_arr.shape} for logits of shape {shape} with the classes on axis {axis}",
                field="labels",
                hint=f"give labels of shape {moved[:-1]} (the logits' without the class axis)",
            )
        label_rows = label_arr.reshape(-1)
    if targets is not None:
        target_arr = np.asarray(targets)
        if target_arr.shape != shape:
            raise InvalidInput(
                f"targets of shape {target_arr.shape} for logits of shape {shape}",
                field="targets",
                hint="give targets shaped like the logits",
            )
        target_rows = np.moveaxis(target_arr, axis, -1).reshape(-1, moved[-1])
    return label_rows, target_rows


def refuse_shared_memory(outputs: dict[str, object], inputs: dict[str, object]) -> None:
    """Raise :class:`InvalidInput` where an output to grade lies in the memory of an input: an in-place
    kernel wrote its result over what it was given (a fused backward writes ∂L/∂z over the logits), so
    the input is no longer what the kernel read, and a check would grade the answer against itself.
    numpy arrays only (a classifier and its gradient may come as lists of shards).

    Examples
    --------
    >>> z = np.zeros((2, 3))
    >>> refuse_shared_memory({"grad": z.copy()}, {"logits": z})
    >>> refuse_shared_memory({"grad": z[:, :2]}, {"logits": z})
    Traceback (most recent call last):
    ...
    sce.loss.result.InvalidInput: grad shares its memory with logits: the kernel wrote it over its input (grad); \
give the kernel a copy of logits (or keep one to check against)
    """

    def arrays(value: object) -> list[np.ndarray]:
        parts = value if isinstance(value, (list, tuple)) else [value]
        return [part for part in parts if isinstance(part, np.ndarray)]

    for name, output in outputs.items():
        for input_name, given in inputs.items():
            if any(np.may_share_memory(mine, theirs) for mine in arrays(output) for theirs in arrays(given)):
                raise InvalidInput(
                    f"{name} shares its memory with {input_name}: the kernel wrote it over its input",
                    field=name,
                    hint=f"give the kernel a copy of {input_name} (or keep one to check against)",
                )
