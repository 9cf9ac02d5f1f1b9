"""The pictures' curves as numbers: the loss and its slope along one logit, and p over temperatures, against mpmath."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sce import softmax_cross_entropy
from sce.explain.curves import curve_points, logit_range, loss_along_logit, probabilities_over_temperature

mpmath.mp.dps = 50


def exact_loss_and_slope(logits, label, temperature, klass, value):
    moved = [mpmath.mpf(float(z)) for z in logits]
    moved[klass] = mpmath.mpf(float(value))
    scaled = [z / temperature for z in moved]
    lse = mpmath.log(mpmath.fsum(mpmath.exp(b) for b in scaled))
    p = mpmath.exp(scaled[klass] - lse)
    return lse - scaled[label], (p - (1 if klass == label else 0)) / temperature


@settings(max_examples=25)
@given(
    st.lists(st.floats(-30, 30), min_size=2, max_size=6),
    st.data(),
    st.sampled_from([0.5, 1.0, 3.0]),
)
def test_the_curve_is_the_loss_and_its_slope_with_the_other_logits_held(logits, data, temperature):
    label = data.draw(st.integers(0, len(logits) - 1))
    result = softmax_cross_entropy([logits], [label], temperature=temperature, reduction="none")
    curve = loss_along_logit(result, points=21)
    assert curve.klass == label
    assert curve.at == logits[label]
    low, high = curve.logits[0], curve.logits[-1]
    assert low <= logits[label] <= high
    for value, loss, slope in zip(curve.logits, curve.losses, curve.slopes):
        exact_loss, exact_slope = exact_loss_and_slope(logits, label, mpmath.mpf(temperature), label, value)
        assert loss == pytest.approx(float(exact_loss), rel=1e-12, abs=1e-300)
        assert slope == pytest.approx(float(exact_slope), rel=1e-12, abs=1e-15)
    # The tangent's point and slope are the result's own.
    assert curve.loss_at == result.losses[0] and curve.slope_at == result.gradient[0, label]


def test_the_range_holds_where_p_crosses_one_half():
    low, high = logit_range(np.array([2.0, 3.0, 4.0]), 1, 1.0)
    middle = float(mpmath.log(mpmath.e**2 + mpmath.e**4))  # z_1 where p_1 = 1/2
    assert low == pytest.approx(3.0 - 6.0) and high == pytest.approx(middle + 6.0)


def test_fewer_points_for_many_classes():
    assert curve_points(2) == 201 and curve_points(100_000) == 100 and curve_points(10**7) == 41


def test_probabilities_over_temperature_are_the_softmax_of_z_over_t():
    result = softmax_cross_entropy([[2.0, 3.0, 4.0]], [1], temperature=2.0)
    sweep = probabilities_over_temperature(result, (0, 2))
    assert sweep.at == 2.0 and sweep.classes == (0, 2)
    for temperature, (p0, p2) in zip(sweep.temperatures[::10], sweep.probabilities[::10]):
        t = mpmath.mpf(float(temperature))
        total = mpmath.fsum(mpmath.exp(z / t) for z in (2, 3, 4))
        assert p0 == pytest.approx(float(mpmath.exp(2 / t) / total), rel=1e-12, abs=1e-300)
        assert p2 == pytest.approx(float(mpmath.exp(4 / t) / total), rel=1e-12)
