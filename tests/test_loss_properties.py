"""Properties every result must have, on inputs hypothesis chooses."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sce.loss import softmax_cross_entropy

EPS = np.finfo(np.float64).eps

moderate = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
wide = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def rows_and_label(draw, elements=wide, max_classes=12):
    k = draw(st.integers(1, max_classes))
    z = draw(arrays(np.float64, k, elements=elements))
    return z, draw(st.integers(0, k - 1))


@st.composite
def soft_targets(draw, k):
    raw = draw(arrays(np.float64, k, elements=st.floats(0, 1)))
    assume(raw.sum() > 0.1)
    return raw / raw.sum()


@given(rows_and_label())
def test_probabilities_sum_to_one(case):
    z, label = case
    p = softmax_cross_entropy(z, label).probabilities
    assert (p >= 0).all()
    assert abs(p.sum() - 1) <= 4 * len(z) * EPS


@given(rows_and_label())
def test_hard_label_gradient_rows_sum_to_zero(case):
    z, label = case
    g = softmax_cross_entropy(z, label).gradient
    assert abs(g.sum()) <= 4 * len(z) * EPS * np.abs(g).max()


@given(rows_and_label(), st.integers(-1000, 1000))
def test_adding_a_constant_to_all_logits_changes_nothing(case, shift):
    z, label = case
    z = np.round(z, 3)  # keep z + shift exact
    before = softmax_cross_entropy(z, label)
    after = softmax_cross_entropy(z + shift, label)
    np.testing.assert_allclose(after.probabilities, before.probabilities, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(after.losses, before.losses, rtol=1e-9, atol=1e-12)


def central_difference(loss_of, z: np.ndarray, k: int) -> float:
    step = 1e-5 * max(1.0, abs(z[k]))
    up, down = z.copy(), z.copy()
    up[k] += step
    down[k] -= step
    return (loss_of(up) - loss_of(down)) / (up[k] - down[k])


@settings(deadline=None)
@given(rows_and_label(moderate, max_classes=6), st.floats(0, 1), st.floats(0.25, 4))
def test_gradient_agrees_with_central_differences(case, smoothing, temperature):
    z, label = case

    def loss_of(x):
        return softmax_cross_entropy(
            x, label, label_smoothing=smoothing, temperature=temperature
        ).losses[()]

    analytic = softmax_cross_entropy(
        z, label, label_smoothing=smoothing, temperature=temperature
    ).gradient
    for k in range(len(z)):
        numeric = central_difference(loss_of, z, k)
        assert abs(numeric - analytic[k]) <= 1e-6 * max(1.0, abs(analytic[k]))


@settings(deadline=None)
@given(st.integers(2, 6).flatmap(lambda k: st.tuples(arrays(np.float64, k, elements=moderate), soft_targets(k))))
def test_soft_target_gradient_agrees_with_central_differences(case):
    z, y = case

    def loss_of(x):
        return softmax_cross_entropy(x, targets=y).losses[()]

    analytic = softmax_cross_entropy(z, targets=y).gradient
    for k in range(len(z)):
        assert abs(central_difference(loss_of, z, k) - analytic[k]) <= 1e-6


@given(st.data())
def test_mean_is_the_sum_divided_by_the_weight_sum(data):
    n, k = data.draw(st.integers(1, 5)), data.draw(st.integers(2, 5))
    z = data.draw(arrays(np.float64, (n, k), elements=moderate))
    labels = data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    weight = data.draw(arrays(np.float64, k, elements=st.floats(0.1, 3)))
    total = softmax_cross_entropy(z, labels, weight=weight, reduction="sum")
    mean = softmax_cross_entropy(z, labels, weight=weight, reduction="mean")
    weight_sum = weight[labels].sum()
    np.testing.assert_allclose(mean.loss, total.loss / weight_sum, rtol=1e-13)
    np.testing.assert_allclose(mean.gradient, total.gradient / weight_sum, rtol=1e-13, atol=1e-300)


@settings(max_examples=200, deadline=None)
@given(
    rows_and_label(),
    st.sampled_from([1e-300, 1e-200, 1e-20, 0.3, 1.0, 7.0, 1e200]),
    st.sampled_from([None, 1e-3, 5.0, 30.0]),
    st.sampled_from(["float64", "float32"]),
)
def test_no_probability_is_negative_zero(case, temperature, softcap, dtype):
    """exp((z - M)/T)·(1 + err) with an enormous err (T = 1e-300) gave -0.0: no softmax has a sign but +."""
    import warnings

    logits, label = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = softmax_cross_entropy(
            logits, label, temperature=temperature, softcap=softcap, dtype=dtype, reduction="none"
        )
    probabilities = result.probabilities
    assert not np.signbit(probabilities[~np.isnan(probabilities)]).any(), probabilities
