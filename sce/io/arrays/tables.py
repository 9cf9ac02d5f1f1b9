"""Parquet and Arrow IPC through polars: each column an array, list columns as rows of classes.

A 2-D array is stored either as one list (or fixed-size array) column, or as
one column per class: columns ``grad_0, grad_1, …`` are also the array
``grad``, and a table of plain number columns is also the array ``*`` (the
whole table, one column per class), which is what a file given for one array
(``--logits logits.parquet``) holds.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from sce.errors import DataProblem
from sce.number_text import count_of

#: The name of the whole table as one array (one column per class).
WHOLE_TABLE = "*"


def _read_table(path: str) -> Any:
    """Parquet, or Arrow IPC: the file format (ARROW1 … ARROW1) or the stream format (what Arrow
    writes to a pipe or socket: no footer, a continuation marker first). By its bytes, whatever
    its name says."""
    import polars as pl

    with open(path, "rb") as handle:
        head = handle.read(6)
    if head.startswith(b"PAR1"):
        return pl.read_parquet(path)
    return pl.read_ipc(path) if head == b"ARROW1" else pl.read_ipc_stream(path)


def table_arrays(path: str) -> dict[str, np.ndarray]:
    """The arrays of a Parquet or Arrow file by name: each column, each group of numbered columns
    (``grad_0, grad_1, …`` as ``grad``) and, for a table of one type, the whole table as ``*``.
    A file that cannot be opened raises the OSError, for the caller to word."""
    try:
        frame = _read_table(path)
    except OSError:
        raise  # not opened at all: the caller words it as every format's
    except Exception as error:  # polars raises its own kinds for damaged files; all mean "not readable"
        problem = " ".join(str(error).split())[:200]
        raise DataProblem(f"{path}: not a readable Parquet or Arrow file ({problem})") from None
    arrays = {name: _column(path, frame[name]) for name in frame.columns}
    groups: dict[str, list[tuple[int, str]]] = {}
    for name in frame.columns:
        match = re.fullmatch(r"(.+?)_?(\d+)", name)
        if match and arrays[name].ndim == 1:
            groups.setdefault(match.group(1), []).append((int(match.group(2)), name))
    for prefix, numbered in groups.items():
        if prefix in arrays and arrays[prefix].ndim == 2 and numbered:
            raise DataProblem(
                f"{path}: array '{prefix}' is both a column of lists and columns {numbered[0][1]}…; keep one of them"
            )
        if prefix not in arrays and len(numbered) > 1:
            arrays[prefix] = _stacked(path, prefix, [arrays[name] for name in _class_order(path, prefix, numbered)])
    scalar = [n for n in frame.columns if arrays[n].ndim == 1]
    # Only a table of one type is one array: logits_0 … logits_K-1 beside an integer
    # column 'labels' are the arrays 'logits' and 'labels', not a mixed whole.
    if len(scalar) == len(frame.columns) > 1 and len({arrays[n].dtype for n in scalar}) == 1:
        arrays[WHOLE_TABLE] = _stacked(path, "the table", [arrays[n] for n in scalar])
    return arrays


def _class_order(path: str, prefix: str, numbered: list[tuple[int, str]]) -> list[str]:
    """The columns prefix_0 … prefix_{K-1} by their number, wherever they stand in the file
    (a file whose columns were sorted by name has prefix_10 before prefix_2)."""
    numbered = sorted(numbered)
    numbers = [number for number, _ in numbered]
    if numbers != list(range(len(numbers))):
        missing = sorted(set(range(len(numbers))) - set(numbers))
        problem = f"class {missing[0]} has no column" if missing else "a class has two columns"
        raise DataProblem(
            f"{path}: array '{prefix}': its columns are numbered {_ranges(numbers)}, where {problem}; "
            f"number the class columns 0 to K-1 ({prefix}_0, {prefix}_1, …)"
        )
    return [name for _, name in numbered]


def _ranges(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:6]))
    return shown + (f", … ({len(numbers)} columns)" if len(numbers) > 6 else "")


def _stacked(path: str, what: str, columns: list[np.ndarray]) -> np.ndarray:
    dtypes = {column.dtype for column in columns}
    if len(dtypes) > 1:
        kinds = ", ".join(sorted(str(d) for d in dtypes))
        raise DataProblem(f"{path}: array '{what}': its class columns mix types ({kinds}); give them one type")
    return np.stack(columns, axis=1)


def _column(path: str, series: object) -> np.ndarray:
    import polars as pl

    assert isinstance(series, pl.Series)
    name = series.name
    if series.null_count():
        row = int(series.is_null().arg_true()[0])
        raise DataProblem(f"{path}: array '{name}': row {row} is empty (null); every row needs a value")
    if isinstance(series.dtype, pl.List):
        lengths = series.list.len()
        if lengths.n_unique() > 1:
            first = int(lengths[0])
            row = int((lengths != first).arg_true()[0])
            raise DataProblem(
                f"{path}: array '{name}': row {row} has {count_of(int(lengths[row]), 'entry', 'entries')} "
                f"where row 0 has {first}; "
                "every row needs one per class"
            )
        # explode: one entry per value (polars' list.eval(...any()) gives lists, not one bool per row)
        if int(lengths[0] if len(series) else 0) and series.explode().null_count():
            raise DataProblem(f"{path}: array '{name}' has a null entry; every entry needs a value")
        series = series.list.to_array(int(lengths[0]) if len(series) else 0)
    values = series.to_numpy()
    if values.dtype == object:
        raise DataProblem(f"{path}: array '{name}' holds {series.dtype}, not numbers")
    return values
