"""The fused check at the edges of its blocks and of float32's range: a few rows over a large vocabulary are
graded in blocks of classes, not of as many classes as a block has rows; operands' sizes past float32's range
never make an ulp infinite (and so every answer exact); logits so large that float64's own sums err by whole ulps
of float32 do not excuse a wrong answer. Expected values from float64 numpy on float32 inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sce.testing import check_linear_cross_entropy

from .linear_kernels import exact_mean_outputs, random_inputs

F32 = np.float32


def test_few_rows_do_not_cut_the_classifiers_gradient_into_blocks_of_as_many_classes(monkeypatch):
    # 4 rows × 4 hidden × 1,000,000 classes (a few tokens at a large vocabulary) would take minutes to check: were the
    # blocks of ∂L/∂C handed to the grading as many classes at a time as a block of rows holds rows (4), a
    # quarter of a million blocks would each be graded with its own Python overhead. Counted here, not timed.
    import sce.grading.linear.check as full_check

    blocks = []
    streamed = full_check.stream_gradients

    def counting(e, c, b, terms, rows_done, classes_done, **keywords):
        def counted(classes, values, magnitude):
            blocks.append(classes.stop - classes.start)
            classes_done(classes, values, magnitude)

        return streamed(e, c, b, terms, rows_done, counted if classes_done else None, **keywords)

    monkeypatch.setattr(full_check, "stream_gradients", counting)
    hidden, classifier, labels = random_inputs(4, 4, 20_000)
    _, _, grad_classifier = exact_mean_outputs(hidden, classifier, labels)
    report = check_linear_cross_entropy(hidden, classifier, labels, grad_classifier=grad_classifier.astype(F32))
    assert report.passed
    assert sum(blocks) == 20_000
    assert len(blocks) <= 16, f"{len(blocks)} blocks of {blocks[0]} classes"


def test_a_zero_gradient_does_not_pass_under_a_z_loss_past_float32s_range():
    # z_loss=1e40 is accepted (a finite λ ≥ 0): the operands' size overflows float32, and an infinite ulp would pass
    # any ∂L/∂E, zeros included, with numpy's overflow warnings. Either the option is refused, or a wrong answer fails.
    hidden, classifier, labels = random_inputs(8, 4, 6)
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        try:
            report = check_linear_cross_entropy(
                hidden, classifier, labels, z_loss=1e40, grad_hidden=np.zeros_like(hidden)
            )
        except ValueError as refused:
            assert "z_loss" in str(refused)
            return
    assert not report.passed, str(report)
    assert not leaked, [str(warning.message) for warning in leaked]


def test_a_zero_loss_does_not_pass_where_the_logits_are_large():
    # Logits of about 10^14 (hidden and classifier entries of about 10^7): the exact loss is about 10^14, a float32
    # kernel's within an ulp of it (the baseline's error is 0.1 ulp). The float64 reference's own bound is 1.2e7 ulp of
    # float32 there: added to the allowance it would pass a loss of 0; the entries are recomputed exactly instead.
    hidden, classifier, labels = random_inputs(8, 4, 6)
    hidden, classifier = (hidden * F32(1e7)), (classifier * F32(1e7))
    loss, _, _ = exact_mean_outputs(hidden, classifier, labels)
    assert loss > 1e13
    right = check_linear_cross_entropy(hidden, classifier, labels, loss=F32(loss))
    assert right.passed
    wrong = check_linear_cross_entropy(hidden, classifier, labels, loss=F32(0.0))
    assert not wrong.passed, str(wrong)


def test_zero_gradients_do_not_pass_where_the_logits_are_huge():
    # Logits of about 10^16: with the reference's bound in the allowance (1.19e+09 ulp against a baseline within
    # 0.5), every output 0 would be "correct".
    hidden, classifier, labels = random_inputs(8, 4, 6)
    hidden, classifier = (hidden * F32(1e8)), (classifier * F32(1e8))
    report = check_linear_cross_entropy(
        hidden, classifier, labels, grad_hidden=np.zeros_like(hidden), grad_classifier=np.zeros_like(classifier)
    )
    assert not report.passed, str(report)


def test_a_hidden_size_of_zero_is_checked_by_classes_too(monkeypatch):
    # D = 0: every logit is the bias, ∂L/∂E and ∂L/∂C are empty, ∂L/∂b is softmax(b) − onehot per row. Where the
    # classes are taken a block at a time, the block's size was divided by D.
    import importlib

    monkeypatch.setattr(importlib.import_module("sce.loss.linear_cross_entropy"), "CLASSIFIER_BYTES", 0)
    rng = np.random.default_rng(3)
    n, v = 5, 7
    bias = rng.standard_normal(v).astype(F32)
    labels = rng.integers(0, v, n)
    p = np.exp(bias.astype(np.float64) - bias.max())
    p /= p.sum()
    grad_bias = n * p
    np.subtract.at(grad_bias, labels, 1.0)
    grad_bias /= n
    report = check_linear_cross_entropy(
        np.zeros((n, 0), F32), np.zeros((v, 0), F32), labels, bias=bias,
        grad_classifier=np.zeros((v, 0), F32), grad_bias=grad_bias.astype(F32),
    )  # fmt: skip
    assert report.passed, str(report)


@pytest.mark.parametrize("name", ["hidden", "classifier"])
def test_a_non_finite_input_is_placed_by_its_column_not_a_class(name) -> None:
    # Not "classifier has a value that is not finite (nan) (classifier, row 6, class 2)": row 6 is the class,
    # 2 a column of the hidden size; `sce check --arrays` says "row 1, column 4" for the same thing.
    from sce.loss.result import InvalidInput

    arrays = {"hidden": np.ones((3, 5), np.float32), "classifier": np.ones((7, 5), np.float32)}
    arrays[name][1, 4] = np.nan
    with pytest.raises(InvalidInput) as refused:
        check_linear_cross_entropy(arrays["hidden"], arrays["classifier"], np.zeros(3, int), loss=np.float32(1))
    assert "class 4" not in str(refused.value), str(refused.value)
