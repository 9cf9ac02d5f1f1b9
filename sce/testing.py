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

import inspect
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sce.grading.implementations.loading import FunctionSpec, UnusableImplementation, parse_spec
from sce.grading.implementations.report import CaseResult, Configuration, ImplementationReport, Mistake
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.io.arrays.dump import ArrayDump

__all__ = [
    "assert_cross_entropy_close",
    "check_implementation",
    "assert_implementation_correct",
    "ImplementationReport",
    "CaseResult",
    "Mistake",
    "UnusableImplementation",
]

CONVENTIONS = ("batch", "row")
RETURNS = ("loss,grad", "grad", "loss")
REDUCTIONS = ("mean", "sum", "none")
FRAMEWORKS = ("numpy", "torch", "jax")
#: An hour per case: beyond that a timeout is no longer a time limit (and overflows the OS's timers).
MAX_TIMEOUT = 3600


def check_implementation(
    fn: Callable[..., Any] | str,
    *,
    convention: str = "batch",
    returns: str = "loss,grad",
    reduction: str = "mean",
    targets: bool = False,
    framework: str | None = None,
    seed: int = 0,
    timeout: float = 3.0,
    label_smoothing: float = 0.0,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    smoothing_style: str = "uniform",
) -> ImplementationReport:
    """Run ``fn`` over sce's battery of cases and grade each answer.

    ``fn`` runs in a child process, so that a hang or a crash in it cannot stop the caller.

    Parameters
    ----------
    fn : callable or str
        A function defined at the top level of a file or module, or "FILE.py:FUNCTION" or
        "package.module:FUNCTION".
    convention : {'batch', 'row'}, default 'batch'
        "batch" calls fn(logits N×K, labels N); "row" calls fn(logits K, label) once per row.
    returns : {'loss,grad', 'grad', 'loss'}, default 'loss,grad'
        What fn returns.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        How fn reduces the loss (batch convention only).
    targets : bool, default False
        fn takes probability targets instead of labels.
    framework : {'numpy', 'torch', 'jax'}, optional
        The arrays fn takes; None: from the imports of fn's file.
    seed : int, default 0
        Varies the random cases only.
    timeout : float, default 3.0
        Seconds each case may take.
    label_smoothing, temperature, softcap, z_loss, smoothing_style
        The options of the loss that ``fn`` computes (it is still called fn(logits, labels)):
        ε, T, c (logits c·tanh(z/c), Gemma 2), λ (each row adds λ·lse², divided by N with
        "mean") and "uniform" (PyTorch) or "off-target" (Megatron, t5x), as in
        :func:`sce.softmax_cross_entropy`. The exact answers, the allowance and the named
        mistakes all follow them.

    Returns
    -------
    ImplementationReport
        One :class:`CaseResult` per case (``report.cases``), each with its verdict and the
        mistake it shows; ``report.passed`` when every case passes.

    Raises
    ------
    UnusableImplementation
        A ValueError, when fn cannot be loaded or called as configured.
    ValueError
        For an option out of its range, naming the keyword.

    See Also
    --------
    assert_implementation_correct : the same, as an assertion for pytest.

    Examples
    --------
    An implementation that passes every case but one: its loss takes the log of a probability,
    which rounds to 0 when the label's logit is 1,000 below the largest:

    >>> import pathlib, tempfile
    >>> from sce.testing import check_implementation
    >>> homework = pathlib.Path(tempfile.mkdtemp(), "homework.py")
    >>> _ = homework.write_text('''
    ... import numpy as np
    ...
    ... def softmax_loss(logits, labels):
    ...     rows = np.arange(len(labels))
    ...     shifted = logits - logits.max(axis=1, keepdims=True)
    ...     p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    ...     loss = -np.log(p[rows, labels]).mean()
    ...     p[rows, labels] -= 1
    ...     return loss, p / len(labels)
    ... ''')
    >>> report = check_implementation(f"{homework}:softmax_loss")
    >>> report.passed
    False
    >>> [case.name for case in report.cases if not case.passed]
    ["the label's probability rounds to 0: [0, 1000], label 0"]
    """
    configuration = make_configuration(
        convention=convention,
        returns=returns,
        reduction=reduction,
        targets=targets,
        framework=framework,
        seed=seed,
        timeout=timeout,
        loss=loss_options(
            label_smoothing=label_smoothing,
            temperature=temperature,
            softcap=softcap,
            z_loss=z_loss,
            smoothing_style=smoothing_style,
        ),
    )
    from sce.grading.implementations.session import grade_implementation

    return grade_implementation(function_spec(fn), configuration)


def assert_implementation_correct(fn: Callable[..., Any] | str, **options: Any) -> ImplementationReport:
    """Like :func:`check_implementation`, but raise AssertionError with the report as
    text unless every case passes (or the function cannot be used).

    Parameters
    ----------
    fn : callable or str
        As for :func:`check_implementation`.
    **options
        Its keywords (convention, returns, reduction, the loss's options, …).

    Returns
    -------
    ImplementationReport
        The report, when every case passes.

    Raises
    ------
    AssertionError
        With the report as text (or why fn cannot be used).

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
    if not report.passed:
        from sce.render.implementation_report import report_text

        raise AssertionError("\n" + report_text(report))
    return report


def loss_options(**options: Any) -> LossOptions:
    """The loss's options, checked as the loss checks them.

    Parameters
    ----------
    **options
        The fields of :class:`~sce.options.LossOptions`, as keywords.

    Returns
    -------
    LossOptions

    Raises
    ------
    ValueError
        Naming the keyword, its value, what is wrong and how to fix it.

    Examples
    --------
    >>> from sce.testing import loss_options
    >>> loss_options(label_smoothing=0.1).label_smoothing
    0.1
    >>> try:
    ...     loss_options(temperature=0)
    ... except ValueError as error:
    ...     print(error)
    temperature=0: temperature 0 is not a positive finite number; use T > 0 (1 leaves the logits as they are)
    """
    from sce.loss import InvalidInput
    from sce.loss.validation import validated_options

    chosen = LossOptions(**options)
    try:
        validated_options(chosen)
    except InvalidInput as problem:
        raise ValueError(f"{problem.field}={getattr(chosen, problem.field)!r}: {problem.problem}"
                         + (f"; {problem.hint}" if problem.hint else "")) from None  # fmt: skip
    return chosen


def make_configuration(
    *,
    convention: str,
    returns: str,
    reduction: str,
    targets: bool,
    framework: str | None,
    seed: int,
    timeout: float,
    loss: LossOptions | None = None,
) -> Configuration:
    for name, value, allowed in (
        ("convention", convention, CONVENTIONS),
        ("returns", returns, RETURNS),
        ("reduction", reduction, REDUCTIONS),
    ):
        if value not in allowed:
            raise ValueError(f"{name}={value!r}: use one of {', '.join(map(repr, allowed))}")
    if framework is not None and framework not in FRAMEWORKS:
        raise ValueError(f"framework={framework!r}: use one of {', '.join(map(repr, FRAMEWORKS))}, or None")
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise ValueError(f"timeout={timeout!r}: give the seconds each case may take, e.g. 3 (at most {MAX_TIMEOUT})")
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"seed={seed!r}: give a whole number >= 0")
    return Configuration(
        convention, returns, reduction, bool(targets), framework, int(seed), float(timeout), loss or LossOptions()
    )


def function_spec(fn: Callable[..., Any] | str) -> FunctionSpec:
    """Where the child process finds ``fn``: its file and its name there.

    Parameters
    ----------
    fn : callable or str
        A function defined at the top level of a file or module, or "FILE.py:FUNCTION" or
        "package.module:FUNCTION".

    Returns
    -------
    FunctionSpec

    Raises
    ------
    UnusableImplementation
        For a lambda, a nested function, or anything that is not a function.
    """
    if isinstance(fn, str):
        return parse_spec(fn)
    if not callable(fn):
        raise UnusableImplementation(f"{fn!r} is not a function")
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not name or "<" in name:
        raise UnusableImplementation(
            f"{name or fn!r} is not defined at the top level of a file, so the child process that runs it "
            "cannot import it; define it with def at the top level (lambdas and nested functions cannot be tested)"
        )
    try:
        path = inspect.getsourcefile(fn)
    except TypeError:
        path = None
    if path and Path(path).is_file():
        return FunctionSpec(f"{Path(path).name}:{name}", name, path=str(Path(path).resolve()))
    module = getattr(fn, "__module__", None)
    if module and module != "__main__":
        return FunctionSpec(f"{module}:{name}", name, module=module)
    raise UnusableImplementation(f"{name}: cannot find the file it is defined in")


def assert_cross_entropy_close(
    logits: Any,
    labels_or_targets: Any,
    grad: Any,
    loss: Any = None,
    *,
    dtype: str | None = None,
    class_axis: int = -1,
    **options: Any,
) -> None:
    """Assert that ``grad`` (and ``loss``) are as accurate as their float type allows.

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
    **options
        weight, label_smoothing, ignore_index, reduction (default 'mean', as PyTorch),
        temperature, softcap, z_loss, smoothing_style.

    Raises
    ------
    AssertionError
        With the report, when the answer is not as accurate as its type allows.
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
    >>> assert_cross_entropy_close(z, np.array([1]), grad)
    >>> grad[0, 1] += np.float32(0.01)
    >>> try:
    ...     assert_cross_entropy_close(z, np.array([1]), grad)
    ... except AssertionError as report:
    ...     print(str(report).splitlines()[-1])
    verdict: not correct for float32
    """
    from sce.errors import SceError
    from sce.grading.dump.check import check_dump
    from sce.io.arrays.dump import FLOAT_NAMES, float_name

    unknown = sorted(set(options) - set(_ASSERT_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option {unknown[0]!r}; the options are {', '.join(_ASSERT_OPTIONS)}")
    if dtype is not None and dtype not in FLOAT_NAMES:
        raise ValueError(f"dtype={dtype!r}: give one of {', '.join(FLOAT_NAMES)}")
    options.setdefault("reduction", "mean")
    if options.get("weight") is not None:
        options["weight"] = tuple(float(w) for w in _as_numpy(options["weight"]))
    arrays = {name: _as_numpy(value) for name, value in (("logits", logits), ("grad", grad), ("loss", loss))}
    answer_type = float_name(arrays["grad"].dtype) if dtype is None else dtype
    try:
        dump = _dump_in_rows(arrays, _as_numpy(labels_or_targets), loss is not None, class_axis, options)
        found = check_dump(dump, _loss_options(options), answer_type or "float64")
    except SceError as problem:
        raise ValueError(str(problem)) from None
    if not found.correct:
        from rich.console import Console

        from sce.render.dtype_check import print_dtype_check

        # The text written, not rich's record of it: the tables are written around rich (plain lines).
        report = io.StringIO()
        print_dtype_check(Console(width=120, file=report, color_system=None), found)
        raise AssertionError("\n" + report.getvalue())


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


def _loss_options(options: dict[str, Any]) -> LossOptions:
    try:
        return LossOptions(**options)
    except (TypeError, ValueError) as problem:
        raise ValueError(str(problem)) from None


def _dump_in_rows(
    arrays: dict[str, np.ndarray], given: np.ndarray, has_loss: bool, class_axis: int, options: dict[str, Any]
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
    ignore = int(options.get("ignore_index", -100))
    labels = as_labels(given.reshape(-1), "labels", n, k, ignore) if is_labels else None
    targets = None if is_labels else as_matrix(rows(given), "targets", n, k, "targets")
    grad = as_matrix(rows(arrays["grad"]), "grad", n, k, "gradient")
    loss = as_loss(arrays["loss"].reshape(-1) if arrays["loss"].ndim > 1 else arrays["loss"], "loss", n)
    return ArrayDump(logits, labels, targets, grad, loss if has_loss else None, {})


def _as_numpy(value: Any) -> np.ndarray:
    """numpy, torch (bfloat16 through ml_dtypes) or JAX arrays, as numpy arrays."""
    if value is None:
        return np.zeros(())
    if type(value).__module__.startswith("torch"):
        from sce.io.arrays.formats import tensor_to_numpy

        return tensor_to_numpy(value)
    return np.asarray(value)
