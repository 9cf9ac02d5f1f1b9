"""Grade an implementation of the softmax cross-entropy loss and gradient from Python or pytest.

    from sce.testing import assert_implementation_correct
    from homework import softmax_loss

    def test_softmax_loss():
        assert_implementation_correct(softmax_loss)

The function runs in a child process (importing its file again there), so that
a hang or a crash in it cannot stop the caller: it must be defined at the top
level of a file or module. ``fn`` may also be a string, "FILE.py:FUNCTION" or
"package.module:FUNCTION".
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sce.grading.dump.report import CrossEntropyReport
from sce.grading.implementations.configuration import check_implementation, loss_options
from sce.grading.implementations.loading import UnusableImplementation
from sce.grading.implementations.report import CaseResult, ImplementationReport, Mistake
from sce.grading.linear.report import Report
from sce.grading.verdicts import Verdict
from sce.loss.validation import refuse_shared_memory
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.io.arrays.dump import ArrayDump

__all__ = [
    "assert_cross_entropy_close",
    "check_cross_entropy",
    "CrossEntropyReport",
    "assert_linear_cross_entropy_close",
    "check_linear_cross_entropy",
    "Report",
    "check_implementation",
    "loss_options",
    "assert_implementation_correct",
    "ImplementationReport",
    "CaseResult",
    "Mistake",
    "Verdict",
    "UnusableImplementation",
]


def assert_implementation_correct(
    fn: Callable[..., Any] | str, *, strict: bool = False, **options: Any
) -> ImplementationReport:
    """Like :func:`check_implementation`, but raise AssertionError with the report as
    text unless the verdict is "correct" or "not_robust" (or the function cannot be used).

    Parameters
    ----------
    fn : callable or str
        As for :func:`check_implementation`.
    strict : bool, default False
        Raise for "not_robust" too: a function that fails only on logits of extreme range
        (overflow, −log 0, underflow).
    **options
        Its keywords (convention, returns, reduction, the loss's options, …).

    Returns
    -------
    ImplementationReport
        The report, when it passes; ``report.verdict.value`` is "correct" or "not_robust",
        the strings of ``sce test --format json``.

    Raises
    ------
    AssertionError
        Its message's first line is the verdict in one line (or why fn cannot be used), the
        report as text follows.

    Examples
    --------
    In a test file, beside the implementation::

        from homework import softmax_loss
        from sce.testing import assert_implementation_correct

        def test_softmax_loss():
            assert_implementation_correct(softmax_loss)
    """
    try:
        report = check_implementation(fn, **options)
    except UnusableImplementation as problem:
        raise AssertionError(f"sce test: {problem}") from None
    if not report.passed or (strict and report.verdict is not Verdict.correct):
        from sce.render.implementation_report import report_text

        raise AssertionError(f"{report.summary}\n\n{report_text(report)}")
    return report


def check_cross_entropy(
    logits: Any,
    labels_or_targets: Any,
    grad: Any,
    loss: Any = None,
    *,
    dtype: str | None = None,
    class_axis: int = -1,
    sum_order: str = "parallel",
    **options: Any,
) -> CrossEntropyReport:
    """Grade ``grad`` (and ``loss``) by their float type, without raising for a wrong answer.

    The verdict of ``sce check --arrays``: the answer's errors, in units in the last place of its
    type, against the exact gradient, allowed what a straightforward computation in the same type
    makes on the same logits.

    Parameters
    ----------
    logits : array_like
        Any layout ``softmax_cross_entropy`` takes: N×K, PyTorch's (N, K, d1, …) with
        ``class_axis=1``, or one vector of K with a scalar label. Torch and JAX arrays are
        converted through numpy.
    labels_or_targets : array_like
        Integers are labels; floats shaped like the logits are probability targets.
    grad : array_like
        The gradient to grade, shaped like the logits.
    loss : array_like, optional
        The loss to grade too.
    dtype : str, optional
        The type the answer was computed in (default: ``grad``'s own).
    class_axis : int, default -1
        The axis of the classes.
    sum_order : {"parallel", "sequential"}
        How the answer summed each row's exponentials: "parallel" (in lanes or pairs, as
        frameworks do), or "sequential" (one running sum over the classes): each row's
        probabilities may then share one factor 1 + δ, up to 4× what running sums over the
        row's own terms give (plus their rounding's spread), never more than (K − 1)·u.
    **options
        weight, label_smoothing, ignore_index, reduction (default 'mean', as PyTorch),
        temperature, softcap, z_loss, smoothing_style.

    Returns
    -------
    CrossEntropyReport
        ``passed``, ``verdict`` ("correct", "not_correct" or "cannot_be_judged"), ``worst_ulp``,
        ``mistake`` (the catalogue's name, or None), ``summary`` (the verdict in one line) and
        ``to_dict()``.

    Raises
    ------
    ValueError
        For arrays that do not fit together, or an option the loss does not take.

    See Also
    --------
    assert_cross_entropy_close : the same check, raising AssertionError unless it passes.

    Examples
    --------
    >>> import numpy as np
    >>> from sce.testing import check_cross_entropy
    >>> z = np.array([[2.0, 3.0, 4.0]], dtype=np.float32)
    >>> p = np.exp(z - z.max(axis=1, keepdims=True))
    >>> p /= p.sum(axis=1, keepdims=True)
    >>> report = check_cross_entropy(z, np.array([1]), p)  # the probabilities: −1 missing
    >>> report.passed, report.verdict, report.mistake
    (False, 'not_correct', '−1 missing: these are the probabilities')
    """
    from sce.errors import SceError, worded
    from sce.grading.dump.check import check_dump
    from sce.grading.dump.sequential_sums import SUM_ORDERS
    from sce.io.arrays.dump import FLOAT_NAMES, bfloat16_dtype, float_name

    unknown = sorted(set(options) - set(_ASSERT_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option {unknown[0]!r}; the options are {', '.join(_ASSERT_OPTIONS)}")
    if dtype is not None and dtype not in FLOAT_NAMES:
        raise ValueError(f"dtype={dtype!r}: give one of {', '.join(FLOAT_NAMES)}")
    if sum_order not in SUM_ORDERS:
        raise ValueError(f"sum_order={sum_order!r}: give one of {', '.join(SUM_ORDERS)}")
    options.setdefault("reduction", "mean")
    if options.get("weight") is not None:
        options["weight"] = tuple(float(w) for w in _as_numpy(options["weight"], "weight"))
    arrays = {name: _as_numpy(value, name) for name, value in (("logits", logits), ("grad", grad), ("loss", loss))}
    answer_type = float_name(arrays["grad"].dtype) if dtype is None else dtype
    if answer_type == "bfloat16":
        bfloat16_dtype()  # graded as bfloat16, never widened: an ImportError naming the extra where it is missing
    try:
        chosen = _checked_options(options)
        refuse_shared_memory({"grad": grad, "loss": loss}, {"logits": logits, "labels_or_targets": labels_or_targets})
        given = _as_numpy(labels_or_targets, "targets")
        dump = _dump_in_rows(arrays, given, loss is not None, class_axis, chosen.ignore_index)
        found = check_dump(dump, chosen, answer_type or "float64", sum_order=sum_order)
    except SceError as problem:
        raise ValueError(problem.worded({"claimed_dtype": "dtype"})) from None
    # A hint names the keyword that grades the answer so: dtype=, as this function calls it.
    keywords = {f"claimed_dtype={name!r}": f"dtype={name!r}" for name in FLOAT_NAMES}
    keywords["sum_order='sequential'"] = "sum_order='sequential'"
    found.hints = [worded(hint, keywords) for hint in found.hints]
    return CrossEntropyReport(found)


def assert_cross_entropy_close(
    logits: Any,
    labels_or_targets: Any,
    grad: Any,
    loss: Any = None,
    *,
    dtype: str | None = None,
    class_axis: int = -1,
    sum_order: str = "parallel",
    **options: Any,
) -> CrossEntropyReport:
    """Assert that ``grad`` (and ``loss``) are as accurate as their float type allows.

    :func:`check_cross_entropy`, raising unless the answer is correct.

    Parameters
    ----------
    logits, labels_or_targets, grad, loss, dtype, class_axis, sum_order, **options
        As for :func:`check_cross_entropy`.

    Returns
    -------
    CrossEntropyReport
        The report, when the answer passes.

    Raises
    ------
    AssertionError
        When the answer is not as accurate as its type allows (or its type cannot tell): the
        message's first line is the verdict in one line, the report follows.
    ValueError
        For arrays that do not fit together.

    See Also
    --------
    sce.softmax_cross_entropy : the exact loss and gradient.

    Examples
    --------
    A float32 gradient computed the plain way passes; one entry off by 0.01 does not:

    >>> import numpy as np
    >>> from sce.testing import assert_cross_entropy_close
    >>> z = np.array([[2.0, 3.0, 4.0]], dtype=np.float32)
    >>> p = np.exp(z - z.max(axis=1, keepdims=True))
    >>> p /= p.sum(axis=1, keepdims=True)
    >>> grad = p - np.eye(3, dtype=np.float32)[[1]]
    >>> assert_cross_entropy_close(z, np.array([1]), grad).verdict
    'correct'
    >>> grad[0, 1] += np.float32(0.01)
    >>> try:
    ...     assert_cross_entropy_close(z, np.array([1]), grad)
    ... except AssertionError as report:
    ...     print(str(report).splitlines()[0])
    not correct for float32: gradient worst error 83,886 ulp, up to 16 allowed (1 of 3 entries beyond)
    """
    report = check_cross_entropy(
        logits, labels_or_targets, grad, loss, dtype=dtype, class_axis=class_axis, sum_order=sum_order, **options
    )
    if not report.passed:
        from rich.console import Console

        from sce.render.dtype_check import print_dtype_check

        # The text written, not rich's record of it: the tables are written around rich (plain lines).
        text = io.StringIO()
        print_dtype_check(Console(width=120, file=text, color_system=None), report.check)
        raise AssertionError(f"{report.summary}\n\n{text.getvalue()}")
    return report


_ASSERT_OPTIONS = (
    "weight",
    "label_smoothing",
    "ignore_index",
    "reduction",
    "temperature",
    "softcap",
    "z_loss",
    "smoothing_style",
)


def _checked_options(options: dict[str, Any]) -> LossOptions:
    """The options, checked before the arrays: ignore_index=10.5 is named, not truncated to 10."""
    from sce.errors import option_problem
    from sce.loss.result import InvalidInput
    from sce.loss.validation import validated_options

    try:
        chosen = LossOptions(**options)
        validated_options(chosen)
    except InvalidInput as problem:
        raise option_problem(problem) from None
    except (TypeError, ValueError) as problem:
        raise ValueError(str(problem)) from None
    return chosen


def _dump_in_rows(
    arrays: dict[str, np.ndarray], given: np.ndarray, has_loss: bool, class_axis: int, ignore_index: int
) -> ArrayDump:
    """The arrays as rows × classes (the class axis last, the others flattened), each checked as
    ``sce check --arrays`` checks a dump's (the same messages, naming the argument)."""
    from sce.io.arrays.dump import ArrayDump, as_labels, as_logits, as_loss, as_matrix

    z = arrays["logits"]
    if z.ndim == 0:
        raise ValueError("logits: a single number; give a vector of K logits or an N × K array")
    axis = class_axis % z.ndim if -z.ndim <= class_axis < z.ndim else None
    if axis is None:
        raise ValueError(f"class_axis={class_axis}: the logits have {z.ndim} axes")

    def rows(array: np.ndarray) -> np.ndarray:
        return np.moveaxis(array, axis, -1).reshape(-1, array.shape[axis]) if array.ndim == z.ndim else array

    logits = as_logits(rows(z), "logits", empty_batch=True)
    n, k = logits.shape
    is_labels = given.dtype.kind in "iu"
    if not is_labels and given.ndim != z.ndim:
        raise ValueError(
            f"labels_or_targets has type {given.dtype}: labels are class indices (give them as integers); "
            "probability targets have the logits' shape"
        )
    labels = as_labels(given.reshape(-1), "labels", n, k, int(ignore_index)) if is_labels else None
    targets = None if is_labels else as_matrix(rows(given), "targets", n, k, "targets")
    grad = as_matrix(rows(arrays["grad"]), "grad", n, k, "gradient")
    loss = as_loss(arrays["loss"].reshape(-1) if arrays["loss"].ndim > 1 else arrays["loss"], "loss", n)
    return ArrayDump(logits, labels, targets, grad, loss if has_loss else None, {})


def _as_numpy(value: Any, role: str) -> np.ndarray:
    """numpy, torch or JAX arrays, as numpy arrays; bfloat16 as ml_dtypes' type, or from its bits
    (:func:`sce.io.arrays.dump.bfloat16_from_bits`: the answer needs ml_dtypes, said in one line)."""
    if value is None:
        return np.zeros(())
    if type(value).__module__.startswith("torch"):
        from sce.io.arrays.formats import tensor_to_numpy

        value = tensor_to_numpy(value)
    array = np.asarray(value)
    if array.dtype.kind == "V" and array.dtype.itemsize == 2:
        from sce.io.arrays.dump import bfloat16_dtype, bfloat16_from_bits

        if role in ("grad", "loss"):
            return array.view(bfloat16_dtype())
        return bfloat16_from_bits(array, role, role)
    return array


def check_linear_cross_entropy(
    hidden: Any,
    classifier: Any,
    labels: Any,
    *,
    bias: Any = None,
    loss: Any = None,
    grad_hidden: Any = None,
    grad_classifier: Any = None,
    grad_bias: Any = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing_style: str = "uniform",
    softcap: float | None = None,
    z_loss: float = 0.0,
    weight: Any = None,
    profile: str = "pytorch",
    mode: str = "full",
    grad_output: Any = 1.0,
    seed: int | None = None,
) -> Report:
    """Grade a fused linear cross-entropy kernel's loss and gradients, entry by entry.

    The kernel computed ``F.cross_entropy(hidden @ classifier.T + bias, labels, …)`` (with
    PyTorch's options, and the soft cap, z-loss and smoothing style of language-model losses)
    and its gradients ∂L/∂E, ∂L/∂C, ∂L/∂b. Each output given is compared with the exact result
    (computed in float64 blocks, never all the logits at once), its errors in ulps of its own
    type, and allowed what a same-type kernel errs on the same inputs under ``profile``.

    Parameters
    ----------
    hidden, classifier, labels : array_like
        E (N×D, or (batch, sequence, D): its rows in C order), C (V×D) and a label per row
        (shaped like E's leading axes): numpy arrays or torch tensors (any device,
        ``requires_grad`` or not); bfloat16 is graded as bfloat16 (through ml_dtypes).
    bias : array_like, optional
        b (V).
    loss, grad_hidden, grad_classifier, grad_bias : array_like, optional
        The kernel's outputs to grade (any that are given): a number for 'mean' and 'sum', one
        per row for 'none'; shaped like hidden, V×D, V.
    reduction, ignore_index, label_smoothing, smoothing_style, softcap, z_loss, weight
        The loss's options, as :func:`sce.softmax_cross_entropy` takes them.
    profile : {"pytorch", "liger", "cce", "torchtune", "megatron", "loop"}
        Which family's legitimate differences are allowed (where it rounds to the input's type;
        cut cross-entropy's skipped gradient blocks; "loop": one running sum per result, allowed
        its worst case as quick mode allows).
    mode : {"full", "quick"}
        "full": every entry. "quick": the loss and ∂L/∂b whole, a seeded sample of rows of
        ∂L/∂E and ∂L/∂C whole, every row through random projections (the report states the
        chance that an error of a given size went unseen).
    grad_output : array_like or float, default 1.0
        The upstream gradient the kernel's backward was given: one number, or one per row for
        'none' (a test that passes different ones per row catches a kernel that scales every
        row by the first).
    seed : int, optional
        Quick mode only: the seed of the sampled rows and projections (default 0, so that a run
        repeats itself; the report names it). Vary it to look at other rows.

    Returns
    -------
    Report
        ``passed``, ``verdict`` ("correct" or "not_correct"), ``worst_ulp``, ``mistake`` (a
        catalogue name, or None), ``profile``, ``mode``, each output's errors, ``to_dict()``.
        A wrong answer is reported, never raised.

    Raises
    ------
    ValueError
        For inputs that do not fit together, naming the argument: an unknown profile, hidden's
        D not classifier's, labels not N or out of range, an output of the wrong shape or of a
        type no kernel on these inputs returns (a float64 or list gradient for float32 inputs),
        or no output at all.

    Examples
    --------
    A float32 kernel written with numpy passes; one whose ∂L/∂E is doubled does not:

    >>> import numpy as np
    >>> from sce.testing import check_linear_cross_entropy
    >>> rng = np.random.default_rng(0)
    >>> E = rng.standard_normal((4, 8)).astype(np.float32)
    >>> C = rng.standard_normal((10, 8)).astype(np.float32)
    >>> y = np.array([1, 2, 3, 4])
    >>> z = E @ C.T
    >>> p = np.exp(z - z.max(axis=1, keepdims=True))
    >>> p /= p.sum(axis=1, keepdims=True)
    >>> G = (p - np.eye(10, dtype=np.float32)[y]) / np.float32(4)
    >>> report = check_linear_cross_entropy(E, C, y, grad_hidden=G @ C, grad_classifier=G.T @ E)
    >>> report.passed, report.verdict
    (True, 'correct')
    >>> check_linear_cross_entropy(E, C, y, grad_hidden=2 * (G @ C)).verdict
    'not_correct'
    """
    from sce.grading.linear.grade import check_linear

    outputs = {"loss": loss, "grad_hidden": grad_hidden, "grad_classifier": grad_classifier, "grad_bias": grad_bias}
    options = {
        "reduction": reduction,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "smoothing_style": smoothing_style,
        "softcap": softcap,
        "z_loss": z_loss,
        "weight": weight,
    }
    return check_linear(
        hidden, classifier, labels, bias=bias, outputs=outputs, options=options, profile=profile, mode=mode,
        grad_output=grad_output, seed=seed,
    )  # fmt: skip


def assert_linear_cross_entropy_close(hidden: Any, classifier: Any, labels: Any, **keywords: Any) -> Report:
    """As :func:`check_linear_cross_entropy`, but raise AssertionError unless the verdict is
    "correct"; the message's first line is the verdict in one line, the report follows.

    Returns
    -------
    Report
        The report, when the answer passes.

    Raises
    ------
    AssertionError
        The verdict (first line), each output's errors, and the mistake's fix where one is named.
    ValueError
        As :func:`check_linear_cross_entropy`.

    Examples
    --------
    >>> import numpy as np
    >>> from sce.testing import assert_linear_cross_entropy_close
    >>> E = np.ones((2, 3), dtype=np.float32)
    >>> C = np.eye(4, 3, dtype=np.float32)
    >>> try:
    ...     assert_linear_cross_entropy_close(E, C, [0, 1], loss=np.float32(0.0))
    ... except AssertionError as failure:
    ...     print(str(failure).splitlines()[0])
    not correct (loss 5.09e+06 ulp > 9.51 allowed; profile pytorch)
    """
    report = check_linear_cross_entropy(hidden, classifier, labels, **keywords)
    if not report.passed:
        raise AssertionError(str(report))
    return report
