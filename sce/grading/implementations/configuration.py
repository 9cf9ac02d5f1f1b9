"""How ``sce test`` and :func:`sce.testing.check_implementation` are asked to grade a function: the
function's place, the loss's options and the run's settings, each checked with one clear message."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sce.grading.implementations.loading import FunctionSpec, UnusableImplementation, parse_spec
from sce.grading.implementations.report import Configuration, ImplementationReport
from sce.options import LossOptions

CONVENTIONS = ("batch", "row")
RETURNS = ("loss,grad", "grad", "loss", "stages")
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
    returns : {'loss,grad', 'grad', 'loss', 'stages'}, default 'loss,grad'
        What fn returns; "stages" is a dict of the derivation's intermediates by the names of
        ``sce check --stage`` (shifted, exp, sum_exp, probs, loss, dL_ds, ds_dz, grad), any of them.
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
        mistake it shows; ``report.verdict``: correct, not_robust (only cases of extreme range
        fail) or not_correct; ``report.passed`` for the first two.

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
    >>> report.verdict.value, report.passed
    ('not_robust', True)
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
