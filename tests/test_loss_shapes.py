"""Shapes and the default reduction as PyTorch documents them for ``F.cross_entropy``.

PyTorch's documentation: input (C), (N, C) or (N, C, d1, …, dk); a class-index target (), (N) or
(N, d1, …, dk), a probability target shaped like the input; the output a scalar unless reduction
is 'none', then (), (N) or (N, d1, …, dk); the default reduction 'mean'. The gradient is shaped like
the input (autograd's). Values against the 60-digit reference of tests/reference.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from sce import LossOptions, softmax_cross_entropy

from . import reference
from .test_loss_accuracy import mismatch

RNG = np.random.default_rng(24)


def moved_rows(x: np.ndarray) -> np.ndarray:
    """(N, C, d1, …) as rows: the class axis last, one row per position (C order)."""
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def test_the_default_reduction_is_the_mean_as_pytorch():
    assert LossOptions().reduction == "mean"
    z, y = [[2.0, 3.0, 4.0], [1.0, -1.0, 0.5]], [1, 2]
    result = softmax_cross_entropy(z, y)
    exact = reference.analytic(z, y, reduction="mean")
    assert isinstance(result.loss, float) and mismatch(result.loss, exact.loss) is None
    for n in range(2):
        for k in range(3):
            assert mismatch(result.gradient[n, k], exact.gradient[n][k]) is None


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("spatial", [(4,), (2, 3), (1, 1, 2)])
def test_n_c_d_logits_give_pytorchs_shapes(reduction, spatial):
    x = RNG.normal(0, 3, (2, 5, *spatial))
    y = RNG.integers(0, 5, (2, *spatial))
    y.reshape(-1)[1] = -100
    result = softmax_cross_entropy(x, y, class_axis=1, reduction=reduction, weight=[1, 2, 0.5, 1, 3])
    assert result.gradient.shape == x.shape and result.probabilities.shape == x.shape
    assert result.losses.shape == y.shape
    if reduction == "none":
        assert isinstance(result.loss, np.ndarray) and result.loss.shape == y.shape
    else:
        assert isinstance(result.loss, float)
    exact = reference.analytic(moved_rows(x).tolist(), y.reshape(-1).tolist(), reduction=reduction,
                               weight=[1, 2, 0.5, 1, 3])  # fmt: skip
    rows = moved_rows(result.gradient)
    for n, row in enumerate(exact.gradient):
        for k, value in enumerate(row):
            assert mismatch(rows[n, k], value) is None, (n, k)
    for n, value in enumerate(exact.losses):
        assert mismatch(result.losses.reshape(-1)[n], value) is None
    if reduction != "none":
        assert mismatch(result.loss, exact.loss) is None


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_an_unbatched_vector_gives_a_0_d_loss(reduction):
    result = softmax_cross_entropy([2.0, 3.0, 4.0], 1, reduction=reduction)
    exact = reference.analytic([[2.0, 3.0, 4.0]], [1], reduction="none")
    assert result.gradient.shape == (3,) and result.probabilities.shape == (3,) and result.losses.shape == ()
    if reduction == "none":
        assert isinstance(result.loss, np.ndarray) and result.loss.shape == ()
    assert mismatch(float(result.loss), exact.losses[0]) is None
    for k in range(3):
        assert mismatch(result.gradient[k], exact.gradient[0][k]) is None


def test_probability_targets_keep_the_callers_layout():
    x = RNG.normal(0, 2, (3, 4, 2))
    q = RNG.random((3, 4, 2))
    q /= q.sum(axis=1, keepdims=True)
    result = softmax_cross_entropy(x, targets=q, class_axis=1, reduction="none")
    assert result.gradient.shape == x.shape and result.loss.shape == (3, 2)
    assert result.target.shape == x.shape and result.labels is None
    vector = softmax_cross_entropy([1.0, 2.0], targets=[0.25, 0.75], reduction="none")
    assert vector.loss.shape == () and vector.gradient.shape == (2,)
    exact = reference.analytic([[1.0, 2.0]], targets=[[0.25, 0.75]], reduction="none")
    assert mismatch(float(vector.loss), exact.losses[0]) is None


def test_every_array_of_a_layout_result_is_in_that_layout():
    x = RNG.normal(0, 2, (2, 3, 4))
    y = RNG.integers(0, 3, (2, 4))
    result = softmax_cross_entropy(x, y, class_axis=1, softcap=5.0, temperature=2.0, reduction="none")
    rows = result.as_rows
    assert rows.gradient.shape == (8, 3) and rows.layout is None
    for name in ("logits", "probabilities", "gradient", "target", "log_probabilities", "exp_shifted",
                 "shifted_logits", "scaled_logits", "capped_logits", "cap_derivative"):  # fmt: skip
        shaped = getattr(result, name)
        assert shaped.shape == x.shape, name
        np.testing.assert_array_equal(moved_rows(shaped), getattr(rows, name), strict=True)
    for name in ("losses", "counted", "argmax", "max_logit", "exp_sum", "labels", "log_sum_exp", "z_losses"):
        assert getattr(result, name).shape == y.shape, name
        np.testing.assert_array_equal(getattr(result, name).reshape(-1), getattr(rows, name), strict=True)
    assert result.num_rows == 8 and result.num_classes == 3
    assert result.label_of(5) == int(y.reshape(-1)[5])


def test_classes_on_the_last_axis_of_3_d_logits():
    x = RNG.normal(0, 2, (2, 4, 3))
    y = RNG.integers(0, 3, (2, 4))
    result = softmax_cross_entropy(x, y, reduction="none")
    assert result.gradient.shape == x.shape and result.loss.shape == y.shape
    rows = softmax_cross_entropy(x.reshape(-1, 3), y.reshape(-1), reduction="none")
    np.testing.assert_array_equal(result.gradient.reshape(-1, 3), rows.gradient, strict=True)
