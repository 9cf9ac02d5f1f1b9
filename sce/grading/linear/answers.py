"""The inputs and the answer of a fused linear cross-entropy check, as numpy arrays, checked."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sce.loss.linear_inputs import checked_grad_output, checked_linear_inputs
from sce.loss.linear_terms import LinearTerms, linear_terms
from sce.loss.result import InvalidInput
from sce.options import LossOptions

#: The float types an answer may be graded in.
ANSWER_TYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class LinearInputs:
    e: np.ndarray
    c: np.ndarray
    b: np.ndarray | None
    labels: np.ndarray
    terms: LinearTerms
    options: LossOptions
    grad_output: np.ndarray | float = 1.0
    leading: tuple[int, ...] = ()
    """The hidden states' axes before D as given ((N,), or (batch, sequence)); rows are their C order."""


@dataclass(frozen=True)
class LinearAnswer:
    """The outputs given (None where not), each with the type it is graded in."""

    loss: np.ndarray | None = None
    grad_hidden: np.ndarray | None = None
    grad_classifier: np.ndarray | None = None
    grad_bias: np.ndarray | None = None
    types: dict[str, np.dtype] = field(default_factory=dict)

    @property
    def given(self) -> list[str]:
        names = ("loss", "grad_hidden", "grad_classifier", "grad_bias")
        return [name for name in names if getattr(self, name) is not None]

    @property
    def type_names(self) -> dict[str, str]:
        return {name: dtype.name for name, dtype in self.types.items()}


def as_numpy(value: Any, name: str) -> np.ndarray:
    """A numpy array from numpy, a torch tensor (any device, requires_grad or not) or a list;
    bfloat16 as ml_dtypes' bfloat16, graded as itself."""
    if type(value).__module__.startswith("torch"):
        from sce.io.arrays.formats import tensor_to_numpy

        value = tensor_to_numpy(value, name)
    array = np.asarray(value)
    if array.dtype.kind == "V" and array.dtype.itemsize == 2:
        from sce.io.arrays.dump import bfloat16_dtype

        array = array.view(bfloat16_dtype())
    return array


def checked_inputs(
    hidden: Any, classifier: Any, labels: Any, bias: Any, options: LossOptions, grad_output: Any
) -> LinearInputs:
    e = as_numpy(hidden, "hidden")
    c = as_numpy(classifier, "classifier")
    b_given = None if bias is None else as_numpy(bias, "bias")
    e, given_labels, grad_output, leading = as_rows(e, as_numpy(labels, "labels"), grad_output, options.reduction)
    e, c, b, checked = checked_linear_inputs(e, c, given_labels, b_given, options.ignore_index)
    for name, array in (("hidden", e), ("classifier", c)):
        if _type_name(array) not in ANSWER_TYPES:
            raise InvalidInput(f"{name} has type {array.dtype}", field=name, hint=f"use {', '.join(ANSWER_TYPES)}")
    if c.dtype != e.dtype:
        raise InvalidInput(
            f"classifier has type {c.dtype} but hidden has {e.dtype}", field="classifier", hint="give both in one type"
        )
    upstream = checked_grad_output(grad_output, options.reduction, len(checked))
    terms = linear_terms(checked, len(c), options, upstream)
    return LinearInputs(e, c, b, checked, terms, options, upstream, leading)


def as_rows(
    hidden: np.ndarray, labels: np.ndarray, grad_output: Any, reduction: str
) -> tuple[np.ndarray, np.ndarray, Any, tuple[int, ...]]:
    """Hidden states with batch and sequence axes (B × T × D, as language models hold them) as rows
    in C order, with their labels and per-position upstream gradient alike; and the leading axes."""
    leading, hidden_shape = hidden.shape[:-1], hidden.shape
    if hidden.ndim > 2:
        hidden = hidden.reshape(math.prod(leading), hidden.shape[-1])  # not -1: D may be 0
        if labels.shape == leading:
            labels = labels.reshape(-1)
        grad_output = _rows_of(grad_output, leading, reduction)
    _require_label_shape(labels, hidden_shape)
    return hidden, labels, grad_output, leading


def _require_label_shape(labels: np.ndarray, hidden_shape: tuple[int, ...]) -> None:
    """Labels of one axis (one per row), or already flattened from the hidden states' leading axes;
    any other shape named beside the hidden states' (their count alone may agree by chance)."""
    if labels.ndim <= 1:
        return
    leading = hidden_shape[:-1]
    rows = f"({leading[0]},)" if len(leading) == 1 else f"{leading} (or {int(np.prod(leading))} in rows' order)"
    raise InvalidInput(
        f"labels have shape {labels.shape} but hidden has {hidden_shape}",
        field="labels",
        hint=f"give one label per row of hidden: shape {rows}",
    )


def _rows_of(grad_output: Any, leading: tuple[int, ...], reduction: str) -> Any:
    """A per-position upstream gradient shaped like the leading axes, as one per row."""
    upstream = np.asarray(grad_output)
    return upstream.reshape(-1) if reduction == "none" and upstream.shape == leading else grad_output


def checked_answer(inputs: LinearInputs, given: dict[str, Any]) -> LinearAnswer:
    """Each output given, of the shape it must have and a float type; a ValueError naming it otherwise."""
    n, d = inputs.e.shape
    v = len(inputs.c)
    reduced = inputs.options.reduction != "none"
    leading = inputs.leading or (n,)
    shapes = {"loss": [(), (1,)] if reduced else [leading], "grad_hidden": [(*leading, d)],
              "grad_classifier": [(v, d)], "grad_bias": [(v,)]}  # fmt: skip
    arrays: dict[str, np.ndarray] = {}
    if all(value is None for value in given.values()):
        # A check of nothing would say "correct": a test that forgot to hand over its results must not pass.
        raise InvalidInput(
            "nothing to check: no output given", field="outputs",
            hint="give the kernel's results: loss=, grad_hidden=, grad_classifier= or grad_bias=",
        )  # fmt: skip
    for name, value in given.items():
        if value is None:
            continue
        if name == "grad_bias" and inputs.b is None:
            raise InvalidInput("grad_bias is given but bias is not", field="grad_bias", hint="give bias too")
        array = _typed(value, name, inputs.e.dtype)
        if array.shape not in shapes[name]:
            want = " or ".join(str(s) for s in shapes[name])
            raise InvalidInput(f"{name} has shape {array.shape}, not {want}", field=name)
        if _type_name(array) not in ANSWER_TYPES:
            raise InvalidInput(f"{name} has type {array.dtype}", field=name, hint=f"use {', '.join(ANSWER_TYPES)}")
        _require_kernel_type(array, name, inputs.e.dtype)
        if name == "loss":
            array = array.reshape(()) if reduced else array.reshape(-1)
        arrays[name] = array.reshape(len(inputs.e), d) if name == "grad_hidden" else array
    return LinearAnswer(**arrays, types={name: a.dtype for name, a in arrays.items()})


def _typed(value: Any, name: str, given: np.dtype) -> np.ndarray:
    """An output as an array of its own type. A Python number (loss.item()) has none: it is graded
    as the kernel's float32 (float64 for float64 inputs). A gradient without a type is refused: a
    list of floats cannot say which type's digits it holds."""
    array = as_numpy(value, name)
    if hasattr(value, "dtype"):
        return array
    if name != "loss" or array.ndim:
        raise InvalidInput(
            f"{name} is a {type(value).__name__}, which has no float type",
            field=name,
            hint=f"give it as an array of the type the kernel computed it in ({_kernel_types(given)[0]})",
        )
    return np.asarray(value, dtype=np.float64 if given == np.float64 else np.float32)


def _kernel_types(given: np.dtype) -> tuple[str, ...]:
    """The types a kernel given inputs of ``given`` returns its outputs in: that type, or float32
    for a half type (a float32 loss, or float32 buffers that gradients accumulate in)."""
    return (given.name,) if given.itemsize >= 4 else (given.name, "float32")


def _require_kernel_type(array: np.ndarray, name: str, given: np.dtype) -> None:
    """Refuse an output in a type no kernel on these inputs returns: a float32 result copied to
    float64 would be graded in float64's ulps, against digits it never had."""
    allowed = _kernel_types(given)
    if _type_name(array) not in allowed:
        raise InvalidInput(
            f"{name} is {_type_name(array)} but hidden and classifier are {given.name}",
            field=name,
            hint=f"give it in the type the kernel computed it in ({' or '.join(allowed)})",
        )


def _type_name(array: np.ndarray) -> str:
    return array.dtype.name
