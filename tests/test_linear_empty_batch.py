"""An empty batch (N = 0 rows): quick mode and shards give the full check's verdict, never an error
from their own insides. By hand: no rows, so a 'sum' or 'none' loss is 0 (or empty) and every gradient
is 0; a 'mean' is 0/0, NaN, as PyTorch returns it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sce.testing import check_linear_cross_entropy

F32 = np.float32


def _empty_problem(shards: bool):  # noqa: ANN202
    rng = np.random.default_rng(0)
    hidden = np.zeros((0, 4), F32)
    classifier = rng.standard_normal((6, 4)).astype(F32)
    bias = rng.standard_normal(6).astype(F32)
    outputs = {"grad_hidden": np.zeros_like(hidden), "grad_classifier": np.zeros_like(classifier),
               "grad_bias": np.zeros_like(bias)}  # fmt: skip
    if shards:
        split = {name: [outputs[name][:2], outputs[name][2:]] for name in ("grad_classifier", "grad_bias")}
        return hidden, [classifier[:2], classifier[2:]], [bias[:2], bias[2:]], {**outputs, **split}
    return hidden, classifier, bias, outputs


@pytest.mark.parametrize("shards", [False, True], ids=["whole", "shards"])
@pytest.mark.parametrize("mode", ["full", "quick"])
@pytest.mark.parametrize("reduction", ["sum", "none", "mean"])
def test_no_rows_are_graded_alike_in_every_mode(reduction: str, mode: str, shards: bool) -> None:
    hidden, classifier, bias, outputs = _empty_problem(shards)
    labels = np.zeros(0, np.int64)
    loss = {"sum": F32(0.0), "none": np.zeros(0, F32), "mean": F32(np.nan)}[reduction]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = check_linear_cross_entropy(
            hidden, classifier, labels, bias=bias, reduction=reduction, mode=mode, loss=loss, **outputs
        )
    assert report.passed, str(report)
    if reduction == "mean":
        wrong = check_linear_cross_entropy(hidden, classifier, labels, bias=bias, mode=mode, loss=F32(0.0))
        assert not wrong.passed, str(wrong)


def test_quick_mode_on_no_rows_does_not_raise_from_its_insides() -> None:
    # mode="quick" raised "ValueError: range() arg 3 must not be zero", naming no argument.
    hidden, classifier, _, outputs = _empty_problem(False)
    labels = np.zeros(0, np.int64)
    given = {"loss": F32(0.0), "grad_classifier": outputs["grad_classifier"]}
    assert check_linear_cross_entropy(hidden, classifier, labels, reduction="sum", **given).passed
    assert check_linear_cross_entropy(hidden, classifier, labels, reduction="sum", mode="quick", **given).passed


@pytest.mark.parametrize("shards", [False, True], ids=["whole", "shards"])
@pytest.mark.parametrize("leading", [(3,), (2, 3)], ids=["rows", "batch-and-sequence"])
def test_a_hidden_size_of_zero_is_graded_in_quick_mode(leading: tuple[int, ...], shards: bool) -> None:
    # D = 0: every logit is 0, so by hand each row's loss is log V and ∂L/∂E, ∂L/∂C have no columns.
    # grad_hidden of shape (…, 0) once raised "cannot reshape array of size 0 into shape (0)", naming nothing.
    hidden = np.ones((*leading, 0), F32)
    classifier = np.ones((4, 0), F32)
    labels = np.zeros(leading, np.int64)
    given = [classifier[:1], classifier[1:]] if shards else classifier
    outputs = {"loss": F32(np.log(4.0)), "grad_hidden": np.zeros_like(hidden)}
    report = check_linear_cross_entropy(hidden, given, labels, mode="quick", **outputs)
    assert report.passed, str(report)
    wrong = check_linear_cross_entropy(hidden, given, labels, mode="quick", loss=F32(np.log(5.0)))
    assert not wrong.passed, str(wrong)
