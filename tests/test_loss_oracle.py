"""The core against independent references: mpmath at 50 digits and hand-derived values."""

from __future__ import annotations

import itertools
import warnings

import mpmath as mp
import numpy as np
import pytest

from sce import loss as core
from sce.loss import InvalidInput, LossWarning, softmax_cross_entropy

from . import reference

# A few units in the last place of float64: the accuracy promised.
ULPS_BOUND = 4e-15


def relative_error(computed: float, exact) -> float:
    """Relative error, or absolute error where the exact value is below float64's normal range."""
    exact = mp.mpf(exact)
    if abs(exact) < 1e-290:
        return 0.0 if abs(computed - float(exact)) < 1e-300 else float("inf")
    return float(abs((mp.mpf(float(computed)) - exact) / exact))


# --- the seeds' example, by hand ------------------------------------------------


def test_seed_example_matches_the_posts_to_their_three_digits():
    # A hand-worked example published for students: p = [0.090, 0.245, 0.665], L = -log(0.245) = 1.406,
    # gradient [0.090, -0.775 (typo for -0.755), 0.665].
    result = softmax_cross_entropy([2, 3, 4], 1)
    np.testing.assert_allclose(result.probabilities, [0.090, 0.245, 0.665], atol=5e-4)
    np.testing.assert_allclose(result.gradient, [0.090, -0.755, 0.665], atol=5e-4)
    assert abs(result.gradient[1] - -0.775) > 0.01  # the post's typo is not the answer


def test_seed_example_closed_form():
    # p_i = e^{z_i} / (e^2 + e^3 + e^4); L = log(e^2 + e^3 + e^4) - 3.
    total = mp.e**2 + mp.e**3 + mp.e**4
    exact_p = [mp.e**2 / total, mp.e**3 / total, mp.e**4 / total]
    result = softmax_cross_entropy([2.0, 3.0, 4.0], 1)
    for k in range(3):
        assert relative_error(result.probabilities[k], exact_p[k]) < ULPS_BOUND
    assert relative_error(result.losses, mp.log(total) - 3) < ULPS_BOUND
    assert relative_error(result.gradient[1], exact_p[1] - 1) < ULPS_BOUND
    # To six digits, by hand: -0.755272 and 1.407606.
    assert round(float(result.gradient[1]), 6) == -0.755272
    assert round(float(result.losses), 6) == 1.407606


def test_confident_prediction_keeps_its_tiny_loss():
    # log(1 + e^-40) = 4.248354255291589e-18, where frameworks return 0.
    result = softmax_cross_entropy([0.0, 40.0], 1)
    assert result.losses == 4.248354255291589e-18
    assert relative_error(result.losses, mp.log1p(mp.exp(-40))) < ULPS_BOUND
    assert result.gradient[0] == pytest.approx(4.248354255291589e-18, rel=1e-15)
    assert result.gradient[1] == -result.gradient[0]


# --- accuracy on hostile inputs against 50 digits --------------------------------


def hostile_rows() -> list[tuple[str, np.ndarray, int]]:
    rng = np.random.default_rng(20261122)
    cases = []
    for i in range(40):
        k = int(rng.integers(2, 40))
        families = {
            "moderate": rng.normal(0, 3, k),
            "spread 300": rng.normal(0, 300, k),
            "huge ±1e300": 1e300 * rng.uniform(-1, 1, k),
            "differences 1e-12": 1 + rng.normal(0, 1e-12, k),
            "offset 1e6": rng.normal(0, 1000, k) + 1e6,
            "tiny": rng.normal(0, 1, k) * 1e-200,
        }
        for name, z in families.items():
            label = int(np.argmax(z)) if i % 2 == 0 else int(rng.integers(k))
            cases.append((f"{name}-{i}", z, label))
    cases.append(("600 below the max", np.array([0.0, -600.123456789, -599.987654321]), 0))
    cases.append(("two classes 1e-12 apart", np.array([1.0, 1.0 + 1e-12]), 0))
    return cases


@pytest.mark.parametrize("name,z,label", hostile_rows(), ids=[c[0] for c in hostile_rows()])
def test_loss_and_gradient_within_a_few_ulps_of_50_digits(name, z, label):
    result = softmax_cross_entropy(z, label)
    exact_log_p = reference.log_softmax(z)
    assert relative_error(result.losses, -exact_log_p[label]) < ULPS_BOUND
    exact_p = [mp.exp(v) for v in exact_log_p]
    for k, p in enumerate(exact_p):
        exact_grad = -mp.fsum(q for j, q in enumerate(exact_p) if j != k) if k == label else p
        assert relative_error(result.gradient[k], exact_grad) < ULPS_BOUND, k


def test_ten_thousand_classes_within_a_few_ulps():
    rng = np.random.default_rng(7)
    z = rng.normal(0, 5, 10_000)
    label = 1234
    result = softmax_cross_entropy(z, label)
    exact_log_p = reference.log_softmax(z)
    assert relative_error(result.losses, -exact_log_p[label]) < ULPS_BOUND
    for k in (0, label, int(np.argmax(z)), 9999):
        exact_p = mp.exp(exact_log_p[k])
        exact_grad = exact_p - 1 if k == label else exact_p
        assert relative_error(result.gradient[k], exact_grad) < ULPS_BOUND


def test_gradient_at_a_confident_label_does_not_cancel():
    # p_c - 1 in float64 would be exactly -1 + 1 = 0 here; the true value is -e^-50.
    result = softmax_cross_entropy([0.0, 50.0], 1)
    assert relative_error(-result.gradient[1], mp.exp(-50) / (1 + mp.exp(-50))) < ULPS_BOUND
    assert result.gradient.sum() == 0.0


# --- PyTorch's semantics, option by option, against the reference -------------------

LOGITS = [[2.0, 3.0, 4.0], [1.5, -0.5, 0.25], [-1.0, 2.0, 0.5], [0.0, 0.0, 3.0]]
LABELS = [1, 0, -100, 2]
SOFT = [[0.1, 0.6, 0.3], [1.0, 0.0, 0.0], [0.2, 0.2, 0.6], [0.0, 0.5, 0.5]]
WEIGHTS = [None, [0.5, 2.0, 1.25]]
SMOOTHING = [0.0, 0.2]
TEMPERATURES = [1.0, 2.5]
REDUCTIONS = ["none", "mean", "sum"]
GRID = list(itertools.product(WEIGHTS, SMOOTHING, TEMPERATURES, REDUCTIONS))


def assert_matches_reference(result, reference_kwargs, rel=1e-13):
    expected_loss = reference.loss(LOGITS, **reference_kwargs)
    if reference_kwargs["reduction"] == "none":
        for computed, exact in zip(result.loss, expected_loss):
            assert float(computed) == pytest.approx(float(exact), rel=rel, abs=1e-15)
    else:
        assert result.loss == pytest.approx(float(expected_loss), rel=rel)
    expected_grad = reference.gradient(LOGITS, **reference_kwargs)
    np.testing.assert_allclose(
        result.gradient, np.array(expected_grad, dtype=float), rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize("weight,smoothing,temperature,reduction", GRID)
def test_class_index_targets_follow_pytorch(weight, smoothing, temperature, reduction):
    options = dict(
        weight=weight, label_smoothing=smoothing, temperature=temperature, reduction=reduction
    )
    result = softmax_cross_entropy(LOGITS, LABELS, **options)
    assert_matches_reference(result, dict(labels=LABELS, **options))


@pytest.mark.parametrize("weight,smoothing,temperature,reduction", GRID)
def test_probability_targets_follow_pytorch(weight, smoothing, temperature, reduction):
    options = dict(
        weight=weight, label_smoothing=smoothing, temperature=temperature, reduction=reduction
    )
    result = softmax_cross_entropy(LOGITS, targets=SOFT, **options)
    assert_matches_reference(result, dict(targets=SOFT, **options))


def test_mean_divides_by_the_weight_sum_of_counted_rows():
    # By hand: rows 0 and 1 count with weights w[1] = 2 and w[0] = 0.5; row 2 is ignored.
    weight = [0.5, 2.0, 1.25]
    result = softmax_cross_entropy(LOGITS[:3], LABELS[:3], weight=weight, reduction="mean")
    nll0 = -float(reference.log_softmax(LOGITS[0])[1])
    nll1 = -float(reference.log_softmax(LOGITS[1])[0])
    assert result.denominator == 2.5
    assert result.loss == pytest.approx((2.0 * nll0 + 0.5 * nll1) / 2.5, rel=1e-14)


def test_probability_targets_mean_divides_by_rows_not_weights():
    weight = [0.5, 2.0, 1.25]
    result = softmax_cross_entropy(LOGITS, targets=SOFT, weight=weight, reduction="mean")
    assert result.denominator == 4
    assert result.loss == pytest.approx(result.losses.sum() / 4, rel=1e-15)


def test_pytorch_values_recorded_from_torch_2_13():
    # Values printed by torch 2.13.0 (CPU, float64) for F.cross_entropy on
    # these inputs; an outside source for the semantics, not our own output.
    z = [[2.0, 3.0, 4.0], [1.5, -0.5, 0.25]]
    assert softmax_cross_entropy(z, [1, 0], reduction="mean").loss == pytest.approx(
        TORCH_MEAN, rel=1e-15
    )
    smoothed = softmax_cross_entropy(
        z, [1, 0], weight=[0.5, 2.0, 1.25], label_smoothing=0.2, reduction="mean"
    )
    assert smoothed.loss == pytest.approx(TORCH_SMOOTHED_WEIGHTED_MEAN, rel=1e-15)
    np.testing.assert_allclose(smoothed.gradient, TORCH_SMOOTHED_WEIGHTED_GRAD, rtol=1e-14)


TORCH_MEAN = 0.8797789141235911
TORCH_SMOOTHED_WEIGHTED_MEAN = 1.2614692316109033
TORCH_SMOOTHED_WEIGHTED_GRAD = [
    [0.05328929081274819, -0.5122342647527831, 0.4589449739400348],
    [0.009528300432327887, -0.02858570233454783, 0.01905740190221991],
]


# --- defined results where frameworks give NaN -------------------------------------


def test_masked_class_without_target_mass_contributes_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = softmax_cross_entropy([[1.0, -np.inf, 3.0]], targets=[[0.5, 0.0, 0.5]])
    exact = reference.loss([[1.0, 3.0]], targets=[[0.5, 0.5]], reduction="none")[0]
    assert result.losses[0] == pytest.approx(float(exact), rel=1e-15)
    assert result.probabilities[0, 1] == 0
    assert result.gradient[0, 1] == 0
    assert np.isfinite(result.gradient).all()


def test_masked_label_gives_infinite_loss_with_a_warning():
    with pytest.warns(LossWarning, match="infinite"):
        result = softmax_cross_entropy([1.0, -np.inf, 3.0], 1)
    assert result.losses == np.inf
    assert result.gradient[1] == -1.0


def test_all_rows_ignored_with_mean_is_nan_with_a_warning():
    with pytest.warns(LossWarning, match="divides by 0"):
        result = softmax_cross_entropy([[1.0, 2.0], [3.0, 4.0]], [-100, -100], reduction="mean")
    assert np.isnan(result.loss)
    assert (result.gradient == 0).all()


@pytest.mark.parametrize(
    "logits,field,row,column",
    [
        ([[1.0, np.nan]], "logits", 0, 1),
        ([[1.0, 2.0], [np.inf, 0.0]], "logits", 1, 0),
        ([[1.0, 2.0], [-np.inf, -np.inf]], "logits", 1, None),
    ],
)
def test_bad_logits_are_errors_naming_their_position(logits, field, row, column):
    with pytest.raises(InvalidInput) as caught:
        softmax_cross_entropy(logits, [0] * len(logits))
    assert (caught.value.field, caught.value.row, caught.value.column) == (field, row, column)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(labels=[3]), "labels"),
        (dict(labels=[-1]), "labels"),
        (dict(labels=[1.5]), "labels"),
        (dict(targets=[[0.5, 0.6, 0.0]]), "targets"),
        (dict(targets=[[1.0, 0.0]]), "targets"),
        (dict(targets=[[-0.5, 1.5, 0.0]]), "targets"),
        (dict(labels=[1], label_smoothing=-0.1), "label_smoothing"),
        (dict(labels=[1], label_smoothing=1.5), "label_smoothing"),
        (dict(labels=[1], weight=[1, 2]), "weight"),
        (dict(labels=[1], weight=[1, -2, 3]), "weight"),
        (dict(labels=[1], temperature=0), "temperature"),
        (dict(labels=[1], reduction="avg"), "reduction"),
        (dict(labels=[1], dtype=np.float16), "dtype"),
        (dict(), "labels"),
        (dict(labels=[1], targets=[[0, 1, 0]]), "labels"),
    ],
)
def test_bad_options_are_errors_naming_the_input(kwargs, field):
    labels = kwargs.pop("labels", None)
    with pytest.raises(InvalidInput) as caught:
        softmax_cross_entropy([[2.0, 3.0, 4.0]], labels, **kwargs)
    assert caught.value.field == field


def test_float32_computes_in_float32():
    result = softmax_cross_entropy([2, 3, 4], 1, dtype=np.float32)
    assert result.probabilities.dtype == np.float32
    assert result.gradient.dtype == np.float32
    np.testing.assert_allclose(result.gradient, [0.0900306, -0.7552715, 0.6652410], rtol=1e-6)


def test_public_api_is_exported_from_the_package():
    import sce

    assert sce.softmax_cross_entropy is core.softmax_cross_entropy
