"""The inputs and the answer of a fused linear cross-entropy check, as numpy arrays, checked."""

from __future__ import annotations

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
    given_labels = as_numpy(labels, "labels")
    leading = e.shape[:-1]
    if e.ndim > 2:  # (batch, sequence, D) as language models hold them: rows in C order
        e = e.reshape(-1, e.shape[-1])
        if given_labels.shape == leading:
            given_labels = given_labels.reshape(-1)
        grad_output = _rows_of(grad_output, leading, options.reduction)
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
    for name, value in given.items():
        if value is None:
            continue
        if name == "grad_bias" and inputs.b is None:
            raise InvalidInput("grad_bias is given but bias is not", field="grad_bias", hint="give bias too")
        array = as_numpy(value, name)
        if not hasattr(value, "dtype"):
            # A Python number or list has no type of its own: graded as the kernel's float32 (or
            # float64 for float64 inputs), never as float64 by default (loss.item() is a float).
            array = np.asarray(value, dtype=np.float64 if inputs.e.dtype == np.float64 else np.float32)
        if array.shape not in shapes[name]:
            want = " or ".join(str(s) for s in shapes[name])
            raise InvalidInput(f"{name} has shape {array.shape}, not {want}", field=name)
        if _type_name(array) not in ANSWER_TYPES:
            raise InvalidInput(f"{name} has type {array.dtype}", field=name, hint=f"use {', '.join(ANSWER_TYPES)}")
        if name == "loss":
            array = array.reshape(()) if reduced else array.reshape(-1)
        arrays[name] = array.reshape(-1, d) if name == "grad_hidden" else array
    return LinearAnswer(**arrays, types={name: a.dtype for name, a in arrays.items()})


def _type_name(array: np.ndarray) -> str:
    return array.dtype.name
