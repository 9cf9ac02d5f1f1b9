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

    ``convention``: "batch" calls fn(logits N×K, labels N); "row" calls fn(logits K, label)
    once per row. ``returns``: "loss,grad", "grad" or "loss". ``reduction`` (batch only):
    "mean", "sum" or "none". ``targets``: fn takes probability targets instead of labels.
    ``framework``: "numpy", "torch" or "jax" (None: from the imports of fn's file).
    ``timeout``: seconds each case may take.

    The options of the loss that ``fn`` computes (it is still called fn(logits, labels)):
    ``label_smoothing`` ε, ``temperature`` T, ``softcap`` c (logits c·tanh(z/c), Gemma 2),
    ``z_loss`` λ (each row adds λ·lse², divided by N with "mean") and ``smoothing_style``
    ("uniform", as PyTorch, or "off-target", as Megatron and t5x), as in
    :func:`sce.loss.softmax_cross_entropy`. The exact answers, the allowance and the
    named mistakes all follow them.

    Raises UnusableImplementation (a ValueError) when fn cannot be loaded or called as configured.
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
    text unless every case passes (or the function cannot be used)."""
    try:
        report = check_implementation(fn, **options)
    except UnusableImplementation as problem:
        raise AssertionError(f"sce test: {problem}") from None
    if not report.passed:
        from sce.render.implementation_report import report_text

        raise AssertionError("\n" + report_text(report))
    return report


def loss_options(**options: Any) -> LossOptions:
    """The loss's options, checked as the core checks them; ValueError names the keyword."""
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
    """Where the child process finds ``fn``: its file and its name there."""
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
    """Assert that ``grad`` (and ``loss``) are as accurate as their float type allows; see
    ``sce check --arrays``. Integer ``labels_or_targets`` are labels, floats shaped like the
    logits are probability targets. Any layout ``softmax_cross_entropy`` takes: N×K, PyTorch's
    (N, K, d1, …) with ``class_axis=1``, or one vector of K with a scalar label. ``dtype`` is
    the type the answer was computed in (default: ``grad``'s own). ``options``: weight,
    label_smoothing, ignore_index, reduction (default 'mean', as PyTorch), temperature, softcap,
    z_loss, smoothing_style. Torch and JAX arrays are converted through numpy. Raises
    AssertionError with the report, ValueError for arrays that do not fit together."""
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
