"""The language-model options: soft-capping, z-loss, the off-target smoothing convention, and any layout.

Every number is held to the 60-digit reference (``reference.analytic``, which
writes the loss from the definitions: b = c·tanh(z/c)/T, λ·lse(b)² per counted
row, sech² computed as such), itself checked against mpmath's numerical
differentiation of ``reference.loss``; the Liger and flash-attention
conventions are written out by hand from their sources.
"""

from __future__ import annotations

import math
import warnings

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sce.loss import InvalidInput, LossOptions, LossWarning, row_blocks, softmax_cross_entropy
from sce.loss.row_blocks import flat_indices
from sce.loss.softcap import soft_capped

from . import reference
from .test_loss_accuracy import GROUPS, INF, TINY, WELL_CONDITIONED, group_inputs, inherent_bound, mismatch

LM_OPTIONS = [
    dict(softcap=30.0),
    dict(softcap=1.0),
    dict(softcap=1e6),
    dict(z_loss=1e-4),
    dict(z_loss=0.5),
    dict(softcap=5.0, z_loss=1e-2),
    dict(smoothing_style="off-target", label_smoothing=0.1),
    dict(smoothing_style="off-target", label_smoothing=1.0, softcap=3.0, z_loss=1e-3),
]


def check_result(result, exact, reduction: str) -> None:
    """test_accuracy's rules: 1e-14 relative; absolute 1e-300 below 1e-290; the inherent
    bound where the data make an entry a near-difference (κ > 2)."""
    failures = [
        f"losses[{n}]: {why}" for n, v in enumerate(result.losses) if (why := mismatch(abs(v), exact.losses[n]))
    ]
    if reduction != "none" and (why := mismatch(result.loss, exact.loss)):
        failures.append(f"loss: {why}")
    for n, row in enumerate(exact.gradient):
        for k, value in enumerate(row):
            c = float(result.gradient[n, k])
            if abs(value) >= TINY and exact.condition[n][k] > WELL_CONDITIONED and exact.denominator != 0:
                if not abs(mp.mpf(c) - value) <= inherent_bound(exact, n, k):
                    failures.append(
                        f"gradient[{n}, {k}] (κ = {mp.nstr(exact.condition[n][k], 3)}): {c!r}, exact {mp.nstr(value, 20)}"
                    )
            elif why := mismatch(c, value):
                failures.append(f"gradient[{n}, {k}]: {why}")
    assert not failures, "\n".join(failures)


def computed(logits, labels=None, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = softmax_cross_entropy(logits, labels, **options)
    kinds = {type(w.message).__name__ for w in caught}
    assert kinds <= {"LossWarning"}, [str(w.message) for w in caught]
    return result


# --- the reference itself, against numerical differentiation ----------------------

SMALL = [[2.0, 3.0, 4.0], [1.5, -0.5, 0.25], [-1.0, 2.0, 0.5], [0.0, 0.0, 3.0]]


@pytest.mark.parametrize(
    "kind,options",
    [
        ("labels", dict(softcap=2.5, z_loss=0.3, weight=[0.5, 2.0, 1.25], label_smoothing=0.2, temperature=0.7)),
        ("labels", dict(softcap=1.5, z_loss=0.1, smoothing_style="off-target", label_smoothing=0.3, ignore_index=2)),
        ("labels", dict(z_loss=0.2, weight=[0.0, 2.0, 1.0], reduction="sum", temperature=2.0)),
        ("targets", dict(softcap=2.0, z_loss=0.05, smoothing_style="off-target", label_smoothing=0.2)),
        ("targets", dict(softcap=4.0, z_loss=0.1, weight=[0.5, 2.0, 1.25], reduction="none", temperature=0.5)),
    ],
)
def test_the_reference_agrees_with_numerical_differentiation(kind, options):
    options = {"reduction": "mean", **options}
    inputs = (
        dict(labels=[1, 0, 2, 2])
        if kind == "labels"
        else dict(targets=[[0.1, 0.6, 0.3], [1, 0, 0], [0.2, 0.2, 0.6], [0, 0.5, 0.5]])
    )
    exact = reference.analytic(SMALL, **inputs, **options)
    slow = reference.loss(SMALL, **inputs, **options)
    slow_grad = reference.gradient(SMALL, **inputs, **options)
    mine = exact.loss if options["reduction"] == "none" else [exact.loss]
    for a, b in zip(mine, slow if options["reduction"] == "none" else [slow]):
        assert abs(a - b) <= mp.mpf(10) ** -40 * max(1, abs(b))
    for row_a, row_b in zip(exact.gradient, slow_grad):
        for a, b in zip(row_a, row_b):
            assert abs(a - b) <= mp.mpf(10) ** -25 * max(1, abs(b)), (a, b)


# --- the core against the reference, every option with every other -------------------


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("temperature", [1.0, 0.37, 1e3])
@pytest.mark.parametrize("weight_name", ["unweighted", "zeros", "spread"])
@pytest.mark.parametrize("lm", range(len(LM_OPTIONS)))
@pytest.mark.parametrize("group", ["K=2", "K=3", "K=4", "masked"])
def test_labels_with_every_option(group, lm, weight_name, temperature, reduction):
    k = len(GROUPS[group][0][0])
    logits, labels, _, weight = group_inputs(group, weight_name, k - 1)
    options = dict(weight=weight, temperature=temperature, reduction=reduction, ignore_index=k - 1, **LM_OPTIONS[lm])
    result = computed(logits, labels, **options)
    check_result(result, reference.analytic(logits, labels, **options), reduction)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("temperature", [1.0, 0.37])
@pytest.mark.parametrize("lm", range(len(LM_OPTIONS)))
@pytest.mark.parametrize("group", ["K=2", "K=3", "K=4", "masked"])
def test_probability_targets_with_every_option(group, lm, temperature, reduction):
    logits, _, targets, weight = group_inputs(group, "spread", -100)
    options = dict(weight=weight, temperature=temperature, reduction=reduction, **LM_OPTIONS[lm])
    result = computed(logits, targets=targets, **options)
    check_result(result, reference.analytic(logits, targets=targets, **options), reduction)


def test_z_loss_is_reported_apart_per_row_and_reduced():
    logits, labels = [[2.0, 3.0, 4.0], [1.5, -0.5, 0.25], [0.0, 0.0, 3.0]], [1, -100, 2]
    options = dict(z_loss=0.25, softcap=2.0, weight=[0.5, 2.0, 1.25], reduction="mean")
    result = computed(logits, labels, **options)
    exact = reference.analytic(logits, labels, **options)
    for n in range(3):
        assert mismatch(result.z_losses[n], exact.z_losses[n]) is None
        assert mismatch(result.log_sum_exp[n], exact.log_sum_exp[n]) is None
    assert result.z_losses[1] == 0  # ignored
    assert mismatch(result.z_loss, exact.z_loss) is None
    # 'mean': the z-loss over the 2 counted rows, the weighted CE over Σ w[y] = 2 + 1.25.
    assert result.z_loss_denominator == 2 and result.denominator == 3.25


# --- where it is hard -------------------------------------------------------------


@pytest.mark.parametrize("z", [25.0, 200.0, -300.0, 355.0])
def test_the_tanh_derivative_keeps_its_digits_far_out(z):
    # 1 - tanh²(z/c) = sech²: 1 minus a number near 1 would give 0 (or nothing right).
    result = computed([[z, 0.0]], [1], softcap=1.0, reduction="sum")
    exact = reference.analytic([[z, 0.0]], [1], softcap=1.0, reduction="sum")
    assert exact.gradient[0][0] != 0
    assert mismatch(result.gradient[0, 0], exact.gradient[0][0]) is None


@pytest.mark.parametrize("z", [[-40.0, -600.5, -0.25], [0.0, -40.0], [0.0, -745.0], [1e-10, 0.0, -3.0]])
def test_the_z_loss_gradient_where_lse_is_near_0(z):
    # A label of weight 0: the gradient is the z-loss's 2λ·lse·p alone; lse = log1p(e^-40) = 4e-18
    # would be 0 as log(1 + e^-40).
    label = len(z) - 1
    weight = [1.0] * (len(z) - 1) + [0.0]
    z = [z[0] + 40.0] + z[1:] if z[0] == -40.0 else z
    result = computed([z], [label], z_loss=1e-4, weight=weight, reduction="sum")
    exact = reference.analytic([z], [label], z_loss=1e-4, weight=weight, reduction="sum")
    failures = [mismatch(result.gradient[0, k], exact.gradient[0][k]) for k in range(len(z))]
    assert failures == [None] * len(z)
    assert mismatch(result.log_sum_exp[0], exact.log_sum_exp[0]) is None


# Soft-capped logits where |z/c| is of order 1 and c/T is large: each capped
# logit is about c, and an ulp of c over T would be 1e-13 of e^((a_j - a_m)/T) at
# c/T = 500, so the low parts there are formed to twice the digits. The rows
# spread the logits over ±c: near the cap, at it, beyond it (the series and the
# exp table's end), equal, tiny, masked.
STRONG_CAPS = [
    (
        500.0,
        1.0,
        [
            [450.0, 449.5, 300.0, 100.0, -75.0, -380.0, -500.0, 40.0, 0.5, 38.15],
            [500.0, 500.0, -499.0, 250.0, 1e-9, 76.65, 5e4, 4.9e4, -INF, 160.0],
            [-500.0, -450.0, -600.0, -700.0, -1000.0, -1200.0, -2500.0, -16000.0, -30.0, -510.0],
        ],
    ),
    (
        5000.0,
        1.0,
        [
            [5000.0, 4999.25, 4990.0, 4600.0, 5200.0, 5300.0, 4400.0, 3900.0, 5050.0, 4950.0],
            [-5000.0, -4999.0, -5100.0, -5400.0, -5600.0, -5500.0, -4700.0, -4650.0, -6000.0, -INF],
            [900.0, 1000.0, 1100.0, 800.0, 1250.0, 1300.0, 950.0, 990.0, 1010.0, 1200.0],
        ],
    ),
    (
        30.0,
        0.1,
        [
            [30.0, 29.0, 25.0, 10.0, -30.0, 45.0, 3.0, 31.0, 28.0, 44.0],
            [-30.0, -29.5, -33.0, -40.0, -45.0, -60.0, -28.0, -36.0, -200.0, -INF],
        ],
    ),
    (3e3, 0.5, [[3000.0, 2900.0, 2600.0, 3400.0, 3500.0, 2000.0, 1800.0, 4000.0, 3300.0, 1000.0]]),
]
STRONG_CAP_OPTIONS = [
    dict(),
    dict(z_loss=1e-4, weight=[0.5, 2.0, 1.25, 1.0, 0.75, 1.5, 1.0, 0.25, 3.0, 1.0], label_smoothing=0.1),
    dict(z_loss=1e-2, smoothing_style="off-target", label_smoothing=0.3),
]


@pytest.mark.parametrize("cap, temperature, logits", STRONG_CAPS)
@pytest.mark.parametrize("options", STRONG_CAP_OPTIONS)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_a_strong_cap_over_the_temperature_keeps_every_digit(cap, temperature, logits, options, reduction):
    labels = [n % 3 + 1 for n in range(len(logits))]
    options = dict(options, softcap=cap, temperature=temperature, reduction=reduction)
    result = computed(logits, labels, **options)
    exact = reference.analytic(logits, labels, **options)
    check_result(result, exact, reduction)
    for n, value in enumerate(exact.log_sum_exp):
        assert mismatch(result.log_sum_exp[n], value) is None, n


@pytest.mark.parametrize("cap, temperature, logits", STRONG_CAPS)
def test_a_strong_cap_with_probability_targets(cap, temperature, logits):
    # Mass on three classes only: elsewhere the gradient is (1 + 2λ·lse)·p_j/T·(1 - tanh²), all of p's digits.
    targets = [
        [{n + 1: 0.5, n + 2: 0.25, n + 3: 0.25}.get(j, 0.0) for j in range(len(row))] for n, row in enumerate(logits)
    ]
    options = dict(softcap=cap, temperature=temperature, z_loss=1e-3, reduction="none")
    result = computed(logits, targets=targets, **options)
    check_result(result, reference.analytic(logits, targets=targets, **options), "none")


@settings(max_examples=400, deadline=None)
@given(
    cap_exponent=st.floats(-1, 5),
    temperature_exponent=st.floats(-2, 1),
    spread=st.sampled_from([0.01, 0.3, 1.0, 3.0]),
    fractions=st.lists(st.floats(-2, 2), min_size=1, max_size=8),
    label=st.integers(0, 7),
)
def test_any_cap_and_temperature_keep_every_digit(cap_exponent, temperature_exponent, spread, fractions, label):
    # Logits spread over ±2c (or a fraction of c), caps 0.1 to 1e5, T 0.01 to 10: c/T up to 1e7.
    cap, temperature = 10.0**cap_exponent, 10.0**temperature_exponent
    logits = [[f * cap * spread for f in fractions]]
    labels = [label % len(fractions)]
    options = dict(softcap=cap, temperature=temperature, z_loss=1e-4, reduction="none")
    result = computed(logits, labels, **options)
    check_result(result, reference.analytic(logits, labels, **options), "none")


@pytest.mark.parametrize("x", [0.02, 0.1, 0.29, 0.3, 0.31, 0.9009, 1.0, 2.0, 7.5, 31.0])
def test_the_precise_parts_of_a_capped_logit_are_good_to_1e_22_of_the_cap(x):
    # Regression: the first version rounded y²/2 of e^y and was 3e-21 off (a few 1e-13
    # of the gradient at c/T = 1e8).
    cap = 100.0
    z = np.array([[x * cap, -x * cap, 1e-4]])
    capped = soft_capped(z, cap, temperature=1e-6)
    # Far out (x = 31) the plain low part, c·2e^(-62), is good enough as it is.
    assert capped.precise.tolist() == ([0, 1] if x < 10 else [])
    everywhere = flat_indices(np.zeros(1, np.intp), 3) + np.arange(3)
    lower = capped.lower_at(everywhere)
    for k, value in enumerate(z[0]):
        parts = mp.mpf(float(capped.high[0, k])) + mp.mpf(float(capped.low[0, k])) + mp.mpf(float(lower[k]))
        exact = cap * mp.tanh(mp.mpf(float(value)) / cap)
        assert abs(parts - exact) <= 1e-22 * cap, (k, mp.nstr(parts - exact, 5))


def test_a_weak_cap_is_the_plain_loss_to_the_last_digits():
    # c ≫ |z|: a = z + c·(tanh(z/c) - z/c), the correction formed by its series.
    z = [[0.0, -600.5], [1.0, 1.0 + 1e-12]]
    result = computed(z, [1, 0], softcap=1e6, reduction="none")
    check_result(result, reference.analytic(z, [1, 0], softcap=1e6, reduction="none"), "none")


# --- the conventions of the fused kernels, written out by hand ----------------------


def _log_softmax(b):
    m = b.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(b - m).sum(axis=-1, keepdims=True))
    return b - lse, lse[..., 0]


def test_liger_convention():
    # Liger-Kernel, src/liger_kernel/ops/cross_entropy.py (liger_cross_entropy_kernel):
    #   loss_i = w[y]·(lse - b_y)·(1 - ε) + ε/K·Σ_j w_j (lse - b_j) ... (smooth_loss)  [weighted, not ignored]
    #   z_loss_i = lse_square_scale · lse²
    #   reduction 'mean': Σ loss_i / Σ_{not ignored} w[y]  +  Σ z_loss_i / n_non_ignore
    #   softcap: b = softcap·tanh(z/softcap) before the softmax.
    rng = np.random.default_rng(3)
    z = rng.normal(0, 4, (6, 5))
    y = np.array([0, 3, 4, -100, 1, 2])
    w = np.array([0.5, 2.0, 1.0, 0.25, 3.0])
    eps, lam, cap = 0.1, 1e-3, 3.0
    b = cap * np.tanh(z / cap)
    log_p, lse = _log_softmax(b)
    keep = y != -100
    yk = np.where(keep, y, 0)
    nll = -w[yk] * log_p[np.arange(6), yk]
    smooth = -(w * log_p).sum(axis=1)
    ce = ((1 - eps) * nll + eps / 5 * smooth)[keep].sum() / w[yk][keep].sum()
    zl = (lam * lse**2)[keep].sum() / keep.sum()
    result = computed(z, y, weight=w, label_smoothing=eps, z_loss=lam, softcap=cap, reduction="mean")
    assert math.isclose(result.loss, ce + zl, rel_tol=1e-12)
    assert math.isclose(result.z_loss, zl, rel_tol=1e-12)


def test_flash_attention_convention():
    # flash-attention, flash_attn/ops/triton/cross_entropy.py (cross_entropy_fwd_kernel), no weights:
    #   loss = lse - b_y  (smoothing: loss = (lse - b_y)·... - ε·(Σ_j b_j/K - lse)), + lse_square_scale·lse²
    #   grad = (p·(1 + 2·lse_square_scale·lse) - q) / n_non_ignore,  'mean' over the not-ignored rows
    rng = np.random.default_rng(4)
    z = rng.normal(0, 3, (5, 7))
    y = np.array([2, -100, 6, 0, 3])
    eps, lam = 0.2, 1e-2
    log_p, lse = _log_softmax(z)
    keep = y != -100
    yk = np.where(keep, y, 0)
    smooth = -log_p.mean(axis=1)
    row = (1 - eps) * -log_p[np.arange(5), yk] + eps * smooth + lam * lse**2
    loss = row[keep].sum() / keep.sum()
    p = np.exp(log_p)
    q = (1 - eps) * np.eye(7)[yk] + eps / 7
    grad = (p * (1 + 2 * lam * lse)[:, None] - q) / keep.sum() * keep[:, None]
    result = computed(z, y, label_smoothing=eps, z_loss=lam, reduction="mean")
    assert math.isclose(result.loss, loss, rel_tol=1e-12)
    np.testing.assert_allclose(result.gradient, grad, rtol=1e-11, atol=1e-16)


def test_megatron_off_target_smoothing():
    # Megatron-LM, cross_entropy.py (VocabParallelCrossEntropy, label_smoothing):
    #   smoothing = ε·K/(K - 1); loss = (1 - smoothing)·nll + smoothing·mean_j(-log p_j)
    #   i.e. 1 - ε on the label and ε/(K - 1) on each other class.
    rng = np.random.default_rng(5)
    z = rng.normal(0, 2, (4, 6))
    y = np.array([1, 5, 0, 2])
    eps, k = 0.1, 6
    log_p, _ = _log_softmax(z)
    smoothing = eps * k / (k - 1)
    loss = (1 - smoothing) * -log_p[np.arange(4), y] + smoothing * -log_p.mean(axis=1)
    result = computed(z, y, label_smoothing=eps, smoothing_style="off-target")
    np.testing.assert_allclose(result.losses, loss, rtol=1e-12)
    assert np.allclose(result.target.sum(axis=1), 1) and math.isclose(result.target[0, 0], eps / 5)


def test_off_target_smoothing_with_one_class_leaves_the_target():
    result = computed([[3.0]], [0], label_smoothing=0.3, smoothing_style="off-target")
    assert result.target[0, 0] == 1.0 and result.losses[0] == 0.0 and result.gradient[0, 0] == 0.0


# --- layouts ----------------------------------------------------------------------


def test_pytorch_layout_n_c_d1_d2():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 2, (2, 4, 3, 5))  # (N, C, d1, d2)
    y = rng.integers(0, 4, (2, 3, 5))
    options = dict(softcap=2.0, z_loss=0.01, reduction="none")
    result = computed(x, y, class_axis=1, **options)
    shaped = result.shaped
    assert shaped.gradient.shape == x.shape and shaped.losses.shape == y.shape
    for n, i, j in [(0, 0, 0), (1, 2, 4), (0, 1, 3)]:
        row = computed(x[n, :, i, j][None], [y[n, i, j]], **options)
        assert shaped.losses[n, i, j] == row.losses[0]
        np.testing.assert_array_equal(shaped.gradient[n, :, i, j], row.gradient[0])
    mean = computed(x, y, class_axis=1, softcap=2.0, z_loss=0.01, reduction="mean")
    rows = computed(np.moveaxis(x, 1, -1).reshape(-1, 4), y.reshape(-1), softcap=2.0, z_loss=0.01, reduction="mean")
    assert mean.loss == rows.loss


def test_n_c_with_class_axis_1_and_n_k_with_minus_1_are_the_same():
    z = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
    a, b = computed(z, [2, 0], class_axis=1), computed(z, [2, 0], class_axis=-1)
    np.testing.assert_array_equal(a.gradient, b.gradient)
    assert a.shaped.gradient.shape == (2, 3) and a.gradient[0].shape == (3,)


def test_a_vector_with_a_scalar_label_gives_a_0_d_loss_as_pytorch():
    # PyTorch's unbatched input: logits (C,) and a 0-d target give a 0-d loss with 'none'.
    result = computed([1.0, 2.0, 3.0], 2, reduction="none", z_loss=0.1)
    exact = reference.analytic([[1.0, 2.0, 3.0]], [2], reduction="none", z_loss=0.1)
    assert isinstance(result.loss, np.ndarray) and result.loss.shape == () and result.losses.shape == ()
    assert result.gradient.shape == (3,) and result.probabilities.shape == (3,)
    assert mismatch(float(result.loss), exact.losses[0]) is None
    assert result.as_rows.gradient.shape == (1, 3)


def test_probability_targets_in_the_pytorch_layout():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 4, 2))
    q = rng.random((3, 4, 2))
    q /= q.sum(axis=1, keepdims=True)
    result = computed(x, targets=q, class_axis=1, reduction="sum")
    rows = computed(np.moveaxis(x, 1, -1).reshape(-1, 4), targets=np.moveaxis(q, 1, -1).reshape(-1, 4), reduction="sum")
    np.testing.assert_array_equal(result.shaped.gradient, np.moveaxis(rows.gradient.reshape(3, 2, 4), -1, 1))


@pytest.mark.parametrize("reduction,expected", [("mean", "nan"), ("sum", 0.0), ("none", "empty")])
def test_an_empty_batch_is_what_pytorch_gives(reduction, expected):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = softmax_cross_entropy(np.zeros((0, 5)), np.zeros(0, dtype=int), reduction=reduction)
    if expected == "nan":
        assert math.isnan(result.loss)
        assert [type(w.message) for w in caught] == [LossWarning]
    elif expected == "empty":
        assert result.loss.shape == (0,) and result.gradient.shape == (0, 5) and not caught
    else:
        assert result.loss == 0.0 and not caught


def test_labels_of_the_wrong_shape_for_the_layout():
    with pytest.raises(InvalidInput, match=r"labels of shape \(2, 3\) for logits of shape \(2, 4, 5\)"):
        softmax_cross_entropy(np.zeros((2, 4, 5)), np.zeros((2, 3), dtype=int), class_axis=1)


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(softcap=0.0), "softcap 0.0 is not a positive finite number"),
        (dict(softcap=-1.0), "softcap -1.0 is not a positive finite number"),
        (dict(softcap=float("inf")), "softcap inf is not a positive finite number"),
        (dict(z_loss=-1.0), "z-loss -1.0 is not a non-negative finite number"),
        (dict(z_loss=float("nan")), "z-loss nan is not a non-negative finite number"),
        (dict(smoothing_style="megatron"), "unknown smoothing style 'megatron'"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(InvalidInput, match=message):
        softmax_cross_entropy([[1.0, 2.0]], [0], **options)


def test_options_object_carries_the_new_fields():
    options = LossOptions(softcap=30.0, z_loss=1e-4, smoothing_style="off-target", label_smoothing=0.1)
    a = softmax_cross_entropy([[1.0, 2.0, 3.0]], [0], options=options)
    b = softmax_cross_entropy(
        [[1.0, 2.0, 3.0]], [0], softcap=30.0, z_loss=1e-4, smoothing_style="off-target", label_smoothing=0.1
    )
    np.testing.assert_array_equal(a.gradient, b.gradient)


def test_z_loss_overflow_is_warned_about_in_one_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = softmax_cross_entropy([[1e300, 0.0]], [0], z_loss=1.0, reduction="none")
    assert math.isinf(result.losses[0])
    assert [str(w.message).split(":")[0] for w in caught] == ["the z-loss λ·lse² overflows float64 (lse = 1e+300)"]


# --- blocks: the new options give the same bits in blocks of one row ----------------


@pytest.mark.parametrize("kind", ["labels", "targets"])
def test_new_options_in_blocks_of_one_row_give_the_same_bits(kind, monkeypatch):
    rng = np.random.default_rng(8)
    z = rng.normal(0, 5, (7, 6))
    z[2, 3] = -INF
    labels = rng.integers(0, 6, 7)
    labels[4] = -100
    q = rng.random((7, 6))
    q /= q.sum(axis=1, keepdims=True)
    inputs = dict(labels=labels) if kind == "labels" else dict(targets=q)
    options = dict(
        softcap=4.0,
        z_loss=1e-2,
        label_smoothing=0.1,
        smoothing_style="off-target",
        weight=rng.random(6),
        temperature=0.8,
        reduction="mean",
    )
    whole = computed(z, **inputs, **options)
    monkeypatch.setattr(row_blocks, "block_rows", lambda n_classes, itemsize: 1)
    one = computed(z, **inputs, **options)
    for name in (
        "losses",
        "gradient",
        "probabilities",
        "log_sum_exp",
        "z_losses",
        "log_probabilities",
        "scaled_logits",
        "target",
    ):
        np.testing.assert_array_equal(getattr(one, name), getattr(whole, name), err_msg=name, strict=True)
    assert one.loss == whole.loss
