"""Quick mode's statement (the line a user reads to know what was checked) and its ``to_dict()`` name
the outputs given, and only those: nothing is said to be compared or projected that was not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sce.testing import check_linear_cross_entropy
from tests.linear_kernels import kernel, make_case

OUTPUTS = ("loss", "grad_hidden", "grad_classifier", "grad_bias")
SUBSETS = [subset for size in range(1, 5) for subset in itertools.combinations(OUTPUTS, size)]


@pytest.mark.parametrize("given", SUBSETS, ids=lambda subset: "+".join(subset))
def test_quick_modes_statement_names_only_the_outputs_given(given: tuple[str, ...]) -> None:
    case = make_case(np.float32, seed=2)
    outputs = {name: value for name, value in kernel(case).items() if name in given}
    report = check_linear_cross_entropy(
        case.hidden, case.classifier, case.labels, bias=case.bias, mode="quick", **outputs
    )
    assert report.passed, str(report)
    assert report.quick is not None
    statement = report.quick["statement"]
    assert statement.startswith("quick check (seed 0): ")
    for name in ("grad_hidden", "grad_classifier", "grad_bias"):
        assert (name in statement) == (name in given), statement
    assert ("the loss" in statement) == ("loss" in given), statement
    projected = [name for name in ("grad_hidden", "grad_classifier") if name in given]
    assert ("projections" in statement) == bool(projected), statement
    assert sorted(report.quick["sampled_rows"]) == sorted(projected)
    assert (report.quick["projections"] > 0) == bool(projected)
    assert bool(report.quick["miss_probability"]) == bool(projected)
    assert statement in str(report)


def test_quick_mode_with_only_the_loss_says_it_compared_the_loss_alone() -> None:
    # The statement once read "the loss and grad_bias compared whole, and 4 rows of grad_hidden and 6 of
    # grad_classifier; every row through 4 random projections, …" with only the loss given and no bias.
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((4, 4)).astype(np.float32)
    classifier = (rng.standard_normal((6, 4)) / 4).astype(np.float32)
    labels = rng.integers(0, 6, 4)
    z = hidden.astype(np.float64) @ classifier.T.astype(np.float64)  # float32 products are exact in float64
    top = z.max(axis=1)
    loss = np.mean(top + np.log(np.exp(z - top[:, None]).sum(axis=1)) - z[np.arange(4), labels])
    report = check_linear_cross_entropy(hidden, classifier, labels, loss=np.float32(loss), mode="quick")
    assert report.passed, str(report)
    assert report.quick is not None
    assert report.quick["statement"] == "quick check (seed 0): the loss compared whole"


@pytest.mark.parametrize("given", [("loss",), ("grad_classifier",), ("loss", "grad_bias")], ids="+".join)
def test_a_failed_quick_check_without_grad_hidden_names_no_rows_of_it_as_compared(given: tuple[str, ...]) -> None:
    # The sentence on naming once read "names one only where the sampled rows of grad_hidden fit it" with no
    # grad_hidden given: rows that were never compared.
    case = make_case(np.float32, seed=2)
    outputs = {name: value * 2 for name, value in kernel(case).items() if name in given}  # every output doubled
    report = check_linear_cross_entropy(
        case.hidden, case.classifier, case.labels, bias=case.bias, mode="quick", **outputs
    )
    assert not report.passed and report.quick is not None
    assert report.quick["naming"] == (
        "no mistake named: quick mode names one only from sampled rows of grad_hidden, which was not given "
        "(the full check tries every output)"
    )
    assert report.quick["statement"].endswith(report.quick["naming"])
