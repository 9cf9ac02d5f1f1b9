"""sce's pytest plugin: the fixture ``sce_case``, one test item per hard case of a fused linear cross-entropy.

Installed with sce (a ``pytest11`` entry point), it is on in every pytest run:

    def test_my_kernel(sce_case):
        loss, grad_hidden, grad_classifier = my_kernel(
            sce_case.hidden, sce_case.classifier, sce_case.labels,
            grad_output=sce_case.grad_output, **sce_case.options,
        )
        sce_case.assert_close(loss=loss, grad_hidden=grad_hidden, grad_classifier=grad_classifier)

The test runs once per case of :mod:`sce.grading.linear.cases` (confident rows, ignored runs,
padding-only rows, extreme logits, a per-row upstream gradient; each in float32 and bfloat16).
The case past 2³¹ logits is marked ``sce_slow`` and deselected unless asked for: ``pytest
--sce-slow``, or ``-m sce_slow``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import numpy as np

    from sce.grading.linear.cases import CaseSpec, LinearCase

SLOW_MARKER = "sce_slow"


class SceCase:
    """One hard case: its inputs, in the type a kernel is run in, and the check of what the kernel returns.

    The arrays are the test's own copies, which a kernel may change in place; the check grades against
    the case's inputs as handed over (``.case``, read-only).

    Attributes
    ----------
    name, dtype : str
        The case ("confident rows", …) and its type ("float32" or "bfloat16", ml_dtypes' type).
    hidden, classifier, labels, bias : numpy arrays
        E (N×D), C (V×D), the N labels (``ignore_index`` where a row is not counted), b (V) or None.
    options : dict
        The loss's options the case is graded with (reduction, ignore_index, …): give them to the kernel.
    grad_output : float or numpy array
        The upstream gradient to give the kernel's backward: 1.0, or one per row where the reduction is 'none'.
    """

    def __init__(self, case: LinearCase) -> None:
        from sce.grading.linear.cases import kept_apart

        # The check grades against the case's own arrays, read-only, and the kernel is handed copies: a kernel
        # that works in place on its inputs (torch.from_numpy shares the buffer) must not move its reference.
        self.case, handed = kept_apart(case)
        self.name = case.name
        self.dtype = case.dtype
        self.hidden = handed.hidden
        self.classifier = handed.classifier
        self.labels = handed.labels
        self.bias = handed.bias
        self.options = handed.options
        self.grad_output = handed.grad_output

    def __repr__(self) -> str:
        n, d = self.hidden.shape
        return f"<sce_case {self.name!r}: {n} × {d} hidden, {len(self.classifier)} classes, {self.dtype}>"

    def check(
        self, *, loss: Any = None, grad_hidden: Any = None, grad_classifier: Any = None, grad_bias: Any = None
    ) -> Any:
        """The kernel's results graded on this case: :func:`sce.testing.check_linear_cross_entropy`'s Report."""
        from sce.testing import check_linear_cross_entropy

        answers = self._answers(loss, grad_hidden, grad_classifier, grad_bias)
        return check_linear_cross_entropy(*self._inputs(), **answers)

    def assert_close(
        self, *, loss: Any = None, grad_hidden: Any = None, grad_classifier: Any = None, grad_bias: Any = None
    ) -> Any:
        """As :meth:`check`, raising AssertionError (the verdict on its first line) unless it passes."""
        from sce.testing import assert_linear_cross_entropy_close

        answers = self._answers(loss, grad_hidden, grad_classifier, grad_bias)
        return assert_linear_cross_entropy_close(*self._inputs(), **answers)

    def _inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.case.hidden, self.case.classifier, self.case.labels

    def _answers(self, loss: Any, grad_hidden: Any, grad_classifier: Any, grad_bias: Any) -> dict[str, Any]:
        if loss is None and grad_hidden is None and grad_classifier is None and grad_bias is None:
            # A check of nothing would pass: a test that forgot to hand over its results must not.
            raise ValueError("sce_case: give the kernel's results: loss=, grad_hidden=, grad_classifier= or grad_bias=")
        return {
            "bias": self.case.bias,
            "loss": loss,
            "grad_hidden": grad_hidden,
            "grad_classifier": grad_classifier,
            "grad_bias": grad_bias,
            "mode": self.case.mode,
            "grad_output": self.case.grad_output,
            **self.case.options,
        }


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sce", "sce: fused linear cross-entropy cases")
    group.addoption(
        "--sce-slow",
        action="store_true",
        default=False,
        help=f"also run sce_case's cases marked {SLOW_MARKER} (past 2^31 logits: minutes, gigabytes)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{SLOW_MARKER}: an sce_case too large for every run (deselected unless --sce-slow or -m {SLOW_MARKER})",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sce_case" in metafunc.fixturenames:
        # Imported here, not when pytest loads the plugin: a run that never asks for sce_case pays nothing.
        from sce.grading.linear.cases import case_specs

        params = [
            pytest.param(spec, id=spec.id, marks=[getattr(pytest.mark, SLOW_MARKER)] if spec.slow else [])
            for spec in case_specs()
        ]
        metafunc.parametrize("sce_case", params, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--sce-slow") or SLOW_MARKER in (config.getoption("-m") or ""):
        return
    slow = [item for item in items if item.get_closest_marker(SLOW_MARKER) is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker(SLOW_MARKER) is None]


@pytest.fixture
def sce_case(request: pytest.FixtureRequest) -> SceCase:
    """A hard case for a fused linear cross-entropy kernel: ``.hidden``, ``.classifier``, ``.labels``,
    ``.bias``, ``.options``; ``.check(loss=…, grad_hidden=…, grad_classifier=…, grad_bias=…)`` returns
    sce's Report, ``.assert_close(…)`` raises with the verdict first; ``.grad_output`` is the upstream
    gradient to give the backward. One test per case (confident rows, ignored runs, padding-only rows,
    extreme logits, per-row upstream; float32 and bfloat16); past 2^31 logits only with --sce-slow."""
    spec: CaseSpec | None = getattr(request, "param", None)
    if spec is None:
        raise pytest.UsageError("sce_case is parametrised by sce's plugin; request it as a test's argument")
    try:
        return SceCase(spec.build())
    except ImportError as missing:
        raise pytest.skip.Exception(f"{spec.id}: {missing}") from None
