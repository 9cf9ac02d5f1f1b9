"""One vector of logits from an array file or from array bytes on stdin (``sce grad --logits-file``).

A 1-D array, or a 2-D array of one row: ``sce grad`` explains one row; a
batch belongs to ``sce check --arrays`` or ``sce batch``. A file of several
arrays gives its array ``logits``, or its only array.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from sce.errors import DataProblem, SceError
from sce.io.arrays.dump import as_float_or_int
from sce.io.arrays.formats import MAGIC_BYTES, open_arrays
from sce.io.arrays.tables import WHOLE_TABLE


def array_suffix(head: bytes) -> str | None:
    """The format whose first bytes ``head`` starts with (".npy", ".npz"…), or None for text."""
    return next((suffix for magic, suffix in MAGIC_BYTES if head.startswith(magic)), None)


def read_vector(path: str) -> list[float]:
    """The logits of one row, from an array file."""
    source = open_arrays(path)
    names = [name for name in source.names if name != WHOLE_TABLE]
    if "logits" in source.names:
        name = "logits"
    elif len(names) == 1 or (WHOLE_TABLE in source.names):
        name = WHOLE_TABLE if WHOLE_TABLE in source.names else names[0]
    elif not names:
        raise DataProblem(f"{path}: holds no arrays; save the logits in it")
    else:
        listed = ", ".join(f"'{n}'" for n in names)
        raise DataProblem(f"{path}: holds several arrays ({listed}) and none named 'logits'; save the logits alone")
    where = path if name == WHOLE_TABLE or len(source.names) == 1 else f"{path}: array '{name}'"
    shape = source.header_shape(name)
    if shape is not None and len([n for n in shape if n != 1]) > 1:
        _not_a_vector(where, shape)  # before reading what may be gigabytes
    array = as_float_or_int(source.load(name), where, "logits")  # bfloat16 saved by numpy is viewed as such
    if array.dtype == np.bool_:
        raise DataProblem(f"{where} has type bool; logits must be numbers")
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        _not_a_vector(where, tuple(array.shape))
    if array.size == 0:
        raise DataProblem(f"{where} is empty; give at least one logit")
    return [float(value) for value in np.asarray(array, dtype=np.float64)]


def _not_a_vector(where: str, shape: tuple[int, ...]) -> None:
    raise DataProblem(
        f"{where} has shape {shape}; sce grad takes one vector (K, or 1 × K); "
        "for a batch use sce check --arrays or sce batch"
    )


def read_vector_bytes(data: bytes, suffix: str, name: str = "stdin") -> list[float]:
    """The logits of one row from array bytes (stdin, a pipe), named ``name`` in every message."""
    handle, temporary = tempfile.mkstemp(suffix=suffix, prefix="sce-stdin-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        return read_vector(temporary)
    except SceError as error:
        raise type(error)(error.message.replace(temporary, name)) from None
    finally:
        os.unlink(temporary)
