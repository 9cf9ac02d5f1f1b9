"""A dump: logits, labels or targets, and the answer to grade (gradient, loss), from one
file of named arrays or from one file per array, each checked for its shape and type."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sce.errors import DataProblem, UsageProblem, option
from sce.io.arrays.formats import ArrayFile, open_arrays
from sce.io.arrays.tables import WHOLE_TABLE
from sce.loss.result import InvalidInput

#: The float types a tensor may be stored in, by numpy name.
FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")
ROLES = ("logits", "labels", "targets", "grad", "loss")


@dataclass(frozen=True)
class DumpRequest:
    """Where each array is: ``arrays`` (one file of named arrays) and/or one path per role;
    ``keys`` renames the arrays looked for (``--key-logits`` …)."""

    arrays: str | None = None
    paths: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ArrayDump:
    logits: np.ndarray
    """N×K, in the type stored (memory-mapped for .npy)."""
    labels: np.ndarray | None
    targets: np.ndarray | None
    grad: np.ndarray | None
    loss: np.ndarray | None
    where: dict[str, str]
    """Each role's "file: array 'name'", for messages."""
    sources: tuple[ArrayFile, ...] = field(default=(), repr=False, compare=False)
    """The files read, for :meth:`verify`."""

    def verify(self) -> None:
        """Raise a DataProblem where an array read without its format's check is damaged (a
        memory-mapped .npz member whose CRC-32 does not match): called once the rows are used,
        before a verdict or an output is given."""
        for source in self.sources:
            source.verify()

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.logits.shape[0]), int(self.logits.shape[1])


def float_name(dtype: np.dtype) -> str | None:
    """'float32', 'bfloat16'…, or None for a type that is not a float sce reads."""
    name = str(dtype)
    return name if name in FLOAT_NAMES else None


def read_dump(
    request: DumpRequest, ignore_index: int = -100, *, answer: bool = True, empty_part: bool = False
) -> ArrayDump:
    """Every array asked for, each checked; labels checked against the class count.

    ``answer=False`` reads the inputs alone (logits, labels or targets), for ``sce batch``:
    a gradient or loss in the file is then neither needed nor read. ``empty_part``: no rows
    is a part without rows of a larger input, not an error."""
    shared = None if request.arrays is None else open_arrays(request.arrays)
    sources: dict[str, tuple[ArrayFile, str]] = {}
    for role in ROLES if answer else ROLES[:3]:
        located = _locate(request, shared, role)
        if located is not None:
            sources[role] = located
    _check_roles(sources, shared, answer)  # before any data is read: a compressed member may be huge
    if shared is not None:
        _refuse_unread(shared, {key for source, key in sources.values() if source is shared}, answer)
    where = {role: f"{source.path}: array '{key}'" for role, (source, key) in sources.items()}
    found = {role: as_float_or_int(source.load(key), where[role], role) for role, (source, key) in sources.items()}
    logits = as_logits(found["logits"], where["logits"], empty_batch=answer or empty_part, empty_part=empty_part)
    rows, classes = logits.shape
    labels = None if "labels" not in found else as_labels(found["labels"], where["labels"], rows, classes, ignore_index)
    targets = None
    if "targets" in found:
        targets = as_matrix(found["targets"], where["targets"], rows, classes, "targets")
    grad = None if "grad" not in found else as_matrix(found["grad"], where["grad"], rows, classes, "gradient")
    loss = None if "loss" not in found else as_loss(found["loss"], where["loss"], rows)
    files = tuple({id(source): source for source, _ in sources.values()}.values())
    return ArrayDump(logits, labels, targets, grad, loss, where, files)


def _check_roles(found: dict[str, tuple[ArrayFile, str]], shared: ArrayFile | None, answer: bool) -> None:
    """The usage errors: which arrays are missing or given both ways."""
    if "logits" not in found and shared is not None:
        raise DataProblem(
            f"{shared.path}: no array 'logits' (it holds {_listing(shared)}); name it with {option('key_logits')}"
        )
    if "logits" not in found:
        raise UsageProblem(
            f"no logits: give {option('arrays')} FILE (with an array 'logits') or {option('logits_path')} FILE"
        )
    if "labels" in found and "targets" in found and found["labels"][0] is found["targets"][0]:
        source = found["labels"][0]
        raise DataProblem(
            f"{source.path}: holds both '{found['labels'][1]}' and '{found['targets'][1]}'; "
            "a dump has labels or probability targets, not both: save it with one of them"
        )
    if ("labels" in found) == ("targets" in found):
        held = "" if shared is None or "labels" in found else f" ({shared.path} holds {_listing(shared)})"
        raise UsageProblem(
            f"give the labels (an array 'labels', or {option('labels_path')} FILE) or probability targets ('targets'), "
            f"one of them{held}"
            if "labels" not in found
            else "give labels or targets, not both"
        )
    if answer and "grad" not in found and "loss" not in found:
        raise UsageProblem(
            "nothing to check: the answer to grade is an array 'grad' and/or 'loss' "
            f"(or {option('grad_path')}/{option('loss_path')})"
        )


#: Arrays named as one of the loss's options, and the option that gives it instead.
OPTION_ARRAYS = {
    "weight": option("weight"),
    "weights": option("weight"),
    "ignore_index": option("ignore_index"),
    "label_smoothing": option("label_smoothing"),
    "smoothing": option("label_smoothing"),
    "smoothing_style": option("smoothing_style"),
    "softcap": option("softcap"),
    "z_loss": option("z_loss"),
    "temperature": option("temperature"),
    "reduction": option("reduction"),
}
#: Arrays a dump of logits may not hold unread: each would change the verdict (or the scores), were it
#: read; the upstream gradient first. Any other (sce batch's probabilities, say) is left as the file's own.
MEANINGFUL = ("grad_output", *OPTION_ARRAYS)


def _refuse_unread(shared: ArrayFile, read: set[str], answer: bool) -> None:
    """An array of the dump that would change the verdict (or, in ``sce batch``, the scores) but that is
    not read (an upstream gradient, class weights, an option) is refused in one line rather than left out
    without a word. Scored, not graded, a dump's upstream gradient means nothing and is left alone."""
    meaningful = MEANINGFUL if answer else MEANINGFUL[1:]  # all but 'grad_output'
    unread = [name for name in shared.names if name in meaningful and name not in read]
    if not unread:
        return
    if unread[0] == "grad_output":
        raise DataProblem(
            f"{shared.path}: array 'grad_output' is not read: a dump of logits is graded as the gradient of the loss "
            "itself (an upstream gradient of 1); divide each row of 'grad' by its upstream gradient, and leave "
            "'grad_output' out"
        )
    raise DataProblem(
        f"{shared.path}: array '{unread[0]}' is not read: the loss's options are given as options; give it as "
        f"{OPTION_ARRAYS[unread[0]]}, and leave the array out"
    )


def placed_in_dump(problem: InvalidInput, where: dict[str, str], first_row: int) -> DataProblem:
    """The core's words for a bad input in rows from ``first_row`` on, placed in the dump as
    the readers place theirs: the file and array, then the row of the whole dump, and the class."""
    place = where.get(problem.field, problem.field)
    row = "" if problem.row is None else f": row {first_row + problem.row}"
    column = "" if problem.column is None else f", class {problem.column}"
    hint = f"; {problem.marked_hint}" if problem.marked_hint else ""
    return DataProblem(f"{place}{row}{column}: {problem.problem}{hint}")


def _locate(request: DumpRequest, shared: ArrayFile | None, role: str) -> tuple[ArrayFile, str] | None:
    key = request.keys.get(role, role)
    path = request.paths.get(role)
    if path is not None:
        if shared is not None and key in shared.names:
            raise UsageProblem(
                f"{role} given twice: array '{key}' in {shared.path} and the file {path}; give one of them"
            )
        source = open_arrays(path)
        if key in source.names:
            return source, key
        if role in request.keys:  # a name asked for is never replaced by a guess
            listed = ", ".join(f"'{n}'" for n in source.names if n != WHOLE_TABLE) or "none"
            raise DataProblem(f"{path}: no array '{key}' (it holds {listed}); fix {option('key_' + role)}")
        plain = [name for name in source.names if name != WHOLE_TABLE]
        if WHOLE_TABLE in source.names:
            return source, WHOLE_TABLE
        if len(plain) == 1:
            return source, plain[0]
        listed = ", ".join(f"'{n}'" for n in plain) or "none"
        raise DataProblem(f"{path}: no array '{key}' (it holds {listed}); name it with {option('key_' + role)}")
    if shared is None or key not in shared.names:
        if shared is not None and role in request.keys:
            listed = ", ".join(f"'{n}'" for n in shared.names if n != WHOLE_TABLE) or "none"
            raise DataProblem(f"{shared.path}: no array '{key}' (it holds {listed})")
        return None
    return shared, key


def _listing(source: ArrayFile) -> str:
    return ", ".join(f"'{n}'" for n in source.names if n != WHOLE_TABLE) or "no arrays"


def as_float_or_int(array: np.ndarray, where: str, role: str) -> np.ndarray:
    """The array in this machine's byte order, bfloat16 saved by numpy viewed as such; a type that
    is neither integer nor float is bad data named at ``where`` for its ``role``."""
    if not array.dtype.isnative:
        # Big-endian numbers (np.save of '>f4'): read into this machine's order, at the cost of a copy.
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype.kind == "V" and array.dtype.itemsize == 2:
        # numpy writes ml_dtypes' bfloat16 as 2-byte raw values ('|V2'); a torch bfloat16 tensor is read as its bits.
        return bfloat16_from_bits(array, where, role)
    if array.dtype.kind in "iu" or float_name(array.dtype) is not None or array.dtype == np.bool_:
        return array
    if role == "labels":
        raise DataProblem(f"{where} has type {array.dtype}; labels are class indices: save them as integers")
    raise DataProblem(f"{where} has type {array.dtype}; {role} must be numbers ({', '.join(FLOAT_NAMES)})")


#: What grading bfloat16 needs, said where it is missing.
BFLOAT16_EXTRA = "graded as bfloat16, which needs ml_dtypes: pip install 'sce[bfloat16]'"


def bfloat16_dtype() -> np.dtype:
    """ml_dtypes' bfloat16, or an ImportError that says which extra to install."""
    try:
        import ml_dtypes
    except ImportError:
        raise ImportError(f"bfloat16 is {BFLOAT16_EXTRA}", name="ml_dtypes") from None
    return np.dtype(ml_dtypes.bfloat16)


def bfloat16_from_bits(bits: np.ndarray, where: str, role: str) -> np.ndarray:
    """bfloat16 values from their 16 bits (any 2-byte type): as ml_dtypes' bfloat16 where it is
    installed; otherwise logits, labels and targets widened to float32 exactly (a bfloat16 is the
    top half of a float32), and an answer refused in one line, since it is graded as bfloat16.

    Examples
    --------
    >>> bits = np.array([0x3F80, 0xC040], dtype=np.uint16)  # 1.0 and -3.0
    >>> [float(v) for v in bfloat16_from_bits(bits, "z", "logits")]
    [1.0, -3.0]
    """
    try:
        return bits.view(bfloat16_dtype())
    except ImportError:
        if role in ("grad", "loss"):
            raise UsageProblem(f"{where} is bfloat16 (2-byte values), {BFLOAT16_EXTRA}") from None
    return (bits.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def _require_float(array: np.ndarray, where: str, what: str) -> None:
    if float_name(array.dtype) is None:
        raise DataProblem(f"{where} has type {array.dtype}; {what} must be floats ({', '.join(FLOAT_NAMES)})")


def as_logits(array: np.ndarray, where: str, empty_batch: bool = False, empty_part: bool = False) -> np.ndarray:
    """The logits as N × K floats (a vector is one row). ``empty_batch``: N = 0 is a batch
    (graded as PyTorch computes it: 0 for 'sum', NaN for 'mean'); K = 0 never is, but in an
    ``empty_part`` of N = 0 (a table's empty list column has no class count to give)."""
    _require_float(array, where, "logits")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        flat = "; for classes on axis 1 (N × K × …) save np.moveaxis(x, 1, -1).reshape(-1, K)"
        layout = flat if array.ndim > 2 else ""
        raise DataProblem(f"{where} has shape {tuple(array.shape)}; logits must be N × K (rows × classes){layout}")
    if empty_part and array.shape[0] == 0:
        return array
    if (array.shape[0] == 0 and not empty_batch) or array.shape[1] == 0:
        raise DataProblem(f"{where} is empty (shape {tuple(array.shape)}); give at least one row of one class")
    return array


def as_matrix(array: np.ndarray, where: str, rows: int, classes: int, what: str) -> np.ndarray:
    """An N × K float array beside the logits (``what``: targets or the gradient)."""
    _require_float(array, where, what)
    if array.ndim == 1 and rows == 1:
        array = array.reshape(1, -1)
    if array.shape != (rows, classes):
        raise DataProblem(
            f"{where} has shape {tuple(array.shape)} but the logits are {rows} × {classes}; "
            f"give one {what} entry per logit"
        )
    return array


def as_labels(array: np.ndarray, where: str, rows: int, classes: int | None, ignore_index: int) -> np.ndarray:
    """One class index per row as int64, each in 0 … K - 1 or ``ignore_index`` (unchecked where
    ``classes`` is None: the caller checks them once it knows K)."""
    if array.dtype.kind not in "iu":
        hint = f" (probabilities N × K are targets: pass them as {option('targets_path')})" if array.ndim == 2 else ""
        raise DataProblem(f"{where} has type {array.dtype}; labels are class indices: save them as integers{hint}")
    if array.ndim == 0:
        array = array.reshape(1)
    if array.shape != (rows,):
        raise DataProblem(
            f"{where} has shape {tuple(array.shape)} but the logits have {rows} rows; give one label per row"
        )
    if array.dtype.kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
        row = int(np.flatnonzero(array > np.iinfo(np.int64).max)[0])
        # Cast to int64 it would wrap: 2⁶⁴ − 100 read as −100, an ignored row.
        raise DataProblem(f"{where}: row {row}: label {int(array[row])} is beyond a 64-bit signed integer; "
                          "labels are 0-based class indices")  # fmt: skip
    labels = np.asarray(array, dtype=np.int64)
    if classes is None:
        return labels
    bad = np.flatnonzero(((labels < 0) | (labels >= classes)) & (labels != ignore_index))
    if len(bad):
        row = int(bad[0])
        more = f" (and {len(bad) - 1:,} more rows)" if len(bad) > 1 else ""
        raise DataProblem(
            f"{where}: row {row}: label {labels[row]} is out of range for {classes} classes{more}; "
            f"labels are 0-based: use 0 to {classes - 1} (or {ignore_index} to ignore the row)"
            + _wrapped(array.dtype, int(labels[row]), ignore_index)
        )
    return labels


def _wrapped(dtype: np.dtype, label: int, ignore_index: int) -> str:
    """A hint where an unsigned type has turned the ignore index into a large number (-100 → 156 in uint8)."""
    if dtype.kind != "u" or ignore_index >= 0 or label != ignore_index % (1 << (8 * dtype.itemsize)):
        return ""
    return f"; {dtype} cannot hold {ignore_index} (it became {label}): save the labels as a signed type such as int64"


def as_loss(array: np.ndarray, where: str, rows: int) -> np.ndarray:
    """The loss: one per row (N), or one reduced value (a 0-d array)."""
    _require_float(array, where, "the loss")
    if array.shape == (rows,) and rows > 1:
        return array
    if array.size == 1 and array.ndim <= 1:
        return array.reshape(())
    if array.shape != (rows,):
        raise DataProblem(
            f"{where} has shape {tuple(array.shape)}; give one loss (reduction mean or sum) or one per row ({rows})"
        )
    return array
