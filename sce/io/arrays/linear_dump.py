"""A dump of a fused linear cross-entropy: hidden states, a classifier, labels, perhaps a bias, and the answer
to grade (the loss, the gradients of the hidden states, the classifier and the bias), from one file of named
arrays (any format :func:`~sce.io.arrays.formats.open_arrays` reads), each checked for its shape and type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sce.errors import DataProblem, UsageProblem
from sce.io.arrays.dump import FLOAT_NAMES, OPTION_ARRAYS, as_float_or_int, as_labels, as_loss, float_name
from sce.io.arrays.formats import ArrayFile, open_arrays
from sce.io.arrays.tables import WHOLE_TABLE
from sce.number_text import count_of

#: The inputs, then the answers, by their array names in a dump.
INPUTS = ("hidden", "classifier", "labels", "bias")
ANSWERS = ("loss", "grad_hidden", "grad_classifier", "grad_bias")
#: The upstream gradient the kernel's backward was given (∂ of what follows the loss): 1 unless the dump holds it.
UPSTREAM = "grad_output"
#: Every array a dump of hidden states may hold: any other is refused, never left out without a word.
KNOWN = (*INPUTS, UPSTREAM, *ANSWERS)
#: What each array is, in a message.
MEANING = {
    "hidden": "the hidden states E, N × D",
    "classifier": "the classifier C, V × D",
    "labels": "one class index per row, N",
    "bias": "the bias b, V",
}


@dataclass(frozen=True)
class LinearDump:
    """The arrays of a dump of hidden states, each as stored (bfloat16 as ml_dtypes' type)."""

    hidden: np.ndarray
    classifier: np.ndarray
    labels: np.ndarray
    bias: np.ndarray | None
    answers: dict[str, np.ndarray]
    """The answer's arrays found: "loss", "grad_hidden", "grad_classifier", "grad_bias"."""
    where: dict[str, str] = field(default_factory=dict)
    """Each array's "file: array 'name'", for messages."""
    grad_output: np.ndarray | None = None
    """The upstream gradient the backward was given: one number (a 0-d array) or one per row; None for 1."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """N, D and V."""
        return int(self.hidden.shape[0]), int(self.hidden.shape[1]), int(self.classifier.shape[0])


def holds_hidden_states(source: ArrayFile) -> bool:
    """Whether a file of arrays is a linear layer's dump: it has hidden states or a classifier, and no logits."""
    names = set(source.names)
    return "logits" not in names and bool(names & {"hidden", "classifier"})


def read_linear_dump(path: str, ignore_index: int = -100, *, shard: bool = False) -> LinearDump:
    """Every array of the dump, each checked against the others; labels against the class count V.

    Raises
    ------
    sce.errors.DataProblem
        An array missing, of a type that is not a number, or of a shape that does not fit the others;
        a label out of range. Each in one line that names the file, the array and the fix.
    sce.errors.UsageProblem
        No answer to grade.

    ``shard``: the dump holds one rank's shard of the classes, so the labels' range is left to the
    caller, who knows the vocabulary all the ranks hold together.
    """
    source = open_arrays(path)
    listed = ", ".join(f"'{n}'" for n in source.names if n != WHOLE_TABLE) or "no arrays"
    for role in INPUTS[:3]:
        if role not in source.names:
            raise DataProblem(
                f"{path}: no array '{role}' ({MEANING[role]}); a dump of hidden states holds 'hidden', 'classifier' "
                f"and 'labels' (it holds {listed})"
            )
    if not any(name in source.names for name in ANSWERS):
        raise UsageProblem(
            f"{path}: nothing to check: the answer to grade is an array 'loss', 'grad_hidden', 'grad_classifier' "
            f"and/or 'grad_bias' (it holds {listed})"
        )
    _refuse_unknown(source, path)
    where = {name: f"{path}: array '{name}'" for name in KNOWN if name in source.names}
    found = {name: as_float_or_int(source.load(name), where[name], _role(name)) for name in where}
    # Memory-mapped .npz members are read without zipfile's CRC-32 check: a damaged file is a data error
    # here, before any grading, not an answer judged wrong (or, in quick mode, right) on bytes the disk changed.
    source.verify()
    _flatten_leading_axes(found)
    hidden = _matrix(found["hidden"], where["hidden"], "hidden")
    classifier = _matrix(found["classifier"], where["classifier"], "classifier")
    (rows, width), classes = hidden.shape, classifier.shape[0]
    if classifier.shape[1] != width:
        raise DataProblem(
            f"{where['classifier']} has shape {classifier.shape} but 'hidden' is {rows} × {width}: "
            f"the classifier must be V × {width}, one row of the hidden size D per class"
        )
    if found["labels"].dtype.kind in "iu" and (found["labels"].ndim > 1 or found["labels"].size != rows):
        raise DataProblem(
            f"{where['labels']} has shape {tuple(found['labels'].shape)} but 'hidden' has "
            f"{count_of(rows, 'row')}; give one label per row"
        )
    labels = as_labels(found["labels"], where["labels"], rows, None if shard else classes, ignore_index)
    expected = {"bias": (classes,), "grad_hidden": hidden.shape, "grad_classifier": classifier.shape}
    expected["grad_bias"] = (classes,)
    if "grad_bias" in found and "bias" not in found:
        raise DataProblem(f"{where['grad_bias']}: a gradient of the bias, but the dump has no array 'bias'")
    for name, shape in expected.items():
        if name in found:
            _require(found[name], where[name], shape, name)
    answers = {name: found[name] for name in ANSWERS[1:] if name in found}
    if "loss" in found:
        answers["loss"] = as_loss(found["loss"], where["loss"], rows)
    upstream = None if UPSTREAM not in found else _upstream(found[UPSTREAM], where[UPSTREAM], rows)
    return LinearDump(hidden, classifier, labels, found.get("bias"), answers, where, upstream)


def _refuse_unknown(source: ArrayFile, path: str) -> None:
    """An array the check would not read (a typo of a name, class weights, an option) is refused in one
    line: left out without a word, it would be graded as though the kernel never had it."""
    unknown = [name for name in source.names if name not in KNOWN and name != WHOLE_TABLE]
    if not unknown:
        return
    known = ", ".join(f"'{name}'" for name in KNOWN)
    raise DataProblem(
        f"{path}: array '{unknown[0]}' is not one a dump of hidden states holds ({known}); rename it, or leave it "
        f"out of the dump{_as_option(unknown[0])}"
    )


def _as_option(name: str) -> str:
    """Where an array is named as one of the loss's options: how to give that option instead (a dump of
    hidden states is graded without a temperature, which is refused as an option too)."""
    flag = OPTION_ARRAYS.get(name) if name != "temperature" else None
    return "" if flag is None else f" and give it as {flag}"


def _upstream(array: np.ndarray, where: str, rows: int) -> np.ndarray:
    """The upstream gradient: one number, or one per row (with the hidden states' leading axes flattened)."""
    _float(array, where, UPSTREAM)
    if array.size == 1 and array.ndim <= 1:
        return array.reshape(())
    if array.shape != (rows,):
        raise DataProblem(
            f"{where} has shape {tuple(array.shape)}; give the upstream gradient as one number, or one per row "
            f"({rows}) for reduction none"
        )
    return array


def _flatten_leading_axes(found: dict[str, np.ndarray]) -> None:
    """Hidden states with batch and sequence axes (B × T × D) as rows (B·T × D), as the kernels see
    them; their labels, gradient and per-row loss alike, where they have the same leading axes."""
    hidden = found["hidden"]
    if hidden.ndim <= 2 or 0 in hidden.shape:
        return
    leading = hidden.shape[:-1]
    found["hidden"] = hidden.reshape(-1, hidden.shape[-1])
    for name in ("labels", "grad_hidden", "loss", UPSTREAM):
        array = found.get(name)
        if array is not None and array.shape[: len(leading)] == leading and array.ndim <= len(leading) + 1:
            found[name] = array.reshape(-1, *array.shape[len(leading):])


def _role(name: str) -> str:
    """The role :func:`as_float_or_int` words a type problem as (an answer is graded, so never widened)."""
    if name == "labels":
        return "labels"
    return "grad" if name in ANSWERS else name


def _matrix(array: np.ndarray, where: str, name: str) -> np.ndarray:
    _float(array, where, name)
    if array.ndim != 2 or 0 in array.shape:
        raise DataProblem(f"{where} has shape {tuple(array.shape)}; give {MEANING[name]}, at least 1 × 1")
    return array


def _require(array: np.ndarray, where: str, shape: tuple[int, ...], name: str) -> None:
    _float(array, where, name)
    if array.shape != shape:
        beside = {"bias": "the classifier's V", "grad_bias": "the classifier's V"}.get(name, f"'{name[5:]}'")
        sizes = " × ".join(str(n) for n in shape)
        raise DataProblem(f"{where} has shape {tuple(array.shape)}; give {sizes}, the shape of {beside}")


def _float(array: np.ndarray, where: str, name: str) -> None:
    if float_name(array.dtype) is None:
        raise DataProblem(f"{where} has type {array.dtype}; {name} must be floats ({', '.join(FLOAT_NAMES)})")
