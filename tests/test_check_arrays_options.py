"""sce check --arrays with the loss's options: the same-type baseline that sets the allowance
computes the loss the options ask for (softcap, z-loss, off-target smoothing), so that a wrong
answer fails and the options' slips are named; and PyTorch's own smoothed float32 gradient,
whose sum over the classes rounds as a vectorized kernel's, passes at a vocabulary's K.

Every expected answer here is computed in this file by a plain numpy implementation of the
formulas (PyTorch's semantics, written out), or by torch where it is installed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sce.grading import catalogue
from sce.grading.dump.check import check_dump
from sce.io.arrays import ArrayDump
from sce.options import LossOptions
from sce.testing import assert_cross_entropy_close

IGNORE = -100


def reference(
    z,
    labels=None,
    targets=None,
    *,
    weight=None,
    eps=0.0,
    style="uniform",
    temperature=1.0,
    cap=None,
    z_loss=0.0,
    reduction="mean",
    dtype=np.float64,
    cap_factor=True,
    z_divisor="counted rows",
):
    """The loss and its gradient by the textbook formulas in ``dtype``: a = c·tanh(z/c),
    b = a/T, p = softmax(b), target q (smoothed uniform: (1 − ε)·y + ε/K; off-target: 1 − ε on
    the label, ε/(K − 1) elsewhere), per class weights w: row loss −Σ w q log p + λ·lse², its
    gradient (p·Σ w q − w q)/T + 2λ·lse·p/T, times 1/cosh²(z/c). 'mean' divides the cross-entropy
    by the weight sum (targets: by N) and the z-loss by ``z_divisor`` ('counted rows', or the
    slips' 'weight sum' and 'nothing')."""
    kind = np.dtype(dtype)
    one = kind.type(1)
    z = np.asarray(z).astype(kind)
    n, k = z.shape
    w = np.ones(k, kind) if weight is None else np.asarray(weight, kind)
    factor = one
    a = z
    if cap is not None:
        ratio = z / kind.type(cap)
        a = kind.type(cap) * np.tanh(ratio)
        factor = one / np.cosh(ratio) ** 2 if cap_factor else one
    b = a / kind.type(temperature)
    top = b.max(axis=1, keepdims=True)
    e = np.exp(b - top)
    total = e.sum(axis=1, keepdims=True)
    p = e / total
    log_p = b - top - np.log(total)
    lse = (top + np.log(total))[:, 0]
    epsilon = kind.type(eps)
    if labels is not None:
        counted = labels != IGNORE
        y = np.zeros((n, k), kind)
        y[np.flatnonzero(counted), labels[counted]] = 1
        denominator = w[np.where(counted, labels, 0)][counted].sum()
    else:
        counted = np.ones(n, bool)
        y = np.asarray(targets).astype(kind)
        denominator = kind.type(n)
    if style == "off-target" and eps:
        q = (one - epsilon) * y + epsilon / kind.type(k - 1) * (one - y)
    else:
        q = (one - epsilon) * y + epsilon / kind.type(k)
    q = np.where(counted[:, None], q, 0).astype(kind)
    c = q * w
    row_ce = -(c * log_p).sum(axis=1)
    d_ce = p * c.sum(axis=1, keepdims=True) - c
    row_z = np.where(counted, kind.type(z_loss) * lse * lse, 0).astype(kind)
    d_z = np.where(counted[:, None], kind.type(2 * z_loss) * lse[:, None] * p, 0).astype(kind)
    if reduction == "mean":
        z_count = {"counted rows": counted.sum(), "weight sum": denominator, "nothing": 1}[z_divisor]
        gradient = d_ce / denominator + d_z / kind.type(z_count)
        loss = row_ce.sum() / denominator + row_z.sum() / kind.type(z_count)
    elif reduction == "sum":
        gradient, loss = d_ce + d_z, row_ce.sum() + row_z.sum()
    else:
        gradient, loss = d_ce + d_z, row_ce + row_z
    gradient = gradient / kind.type(temperature) * factor
    return np.asarray(gradient, kind), np.asarray(loss, kind)


def _options(eps=0.0, style="uniform", temperature=1.0, cap=None, z_loss=0.0, reduction="mean", weight=None):
    return LossOptions(
        reduction=reduction,
        label_smoothing=eps,
        smoothing_style=style,
        temperature=temperature,
        softcap=cap,
        z_loss=z_loss,
        weight=None if weight is None else tuple(float(x) for x in weight),
    )


def _reference_keywords(options):
    return {
        "weight": options.weight,
        "eps": options.label_smoothing,
        "style": options.smoothing_style,
        "temperature": options.temperature,
        "cap": options.softcap,
        "z_loss": options.z_loss,
        "reduction": options.reduction,
    }


def _data(rows=8, classes=50, scale=3.0, seed=0, ignored=0):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(rows, classes)) * scale).astype(np.float32)
    y = rng.integers(0, classes, rows)
    y[:ignored] = IGNORE
    return z, y


def _grade(z, y, grad, loss, options, claimed="float32", targets=None):
    dump = ArrayDump(z, None if targets is not None else y, targets, grad, loss, {})
    return check_dump(dump, options, claimed)


# Hostile answers, each once passed as "correct for float32".


def _hostile_cases():
    z, y = _data()
    capped = _options(cap=30.0)
    g, loss = reference(z, y, **_reference_keywords(capped))
    yield "cap_zeros", z, y, np.zeros((8, 50), np.float32), np.float32(loss), capped
    z_lossed = _options(z_loss=1.0)
    g, loss = reference(z, y, **_reference_keywords(z_lossed))
    yield "zl_negated_doubled", z, y, (-g).astype(np.float32), np.float32(2 * loss), z_lossed
    off_target = _options(eps=0.1, style="off-target")
    g, loss = reference(z, y, **_reference_keywords(_options(eps=0.1)))  # the uniform convention's answer
    yield "style_wrong", z, y, g.astype(np.float32), np.float32(loss), off_target


@pytest.mark.parametrize("name", ["cap_zeros", "zl_negated_doubled", "style_wrong"])
def test_regression_hostile_answers_with_options_are_not_correct(name):
    case = {c[0]: c[1:] for c in _hostile_cases()}[name]
    z, y, grad, loss, options = case
    check = _grade(z, y, grad, loss, options)
    assert not check.correct
    if name == "style_wrong":
        assert any(m.startswith(catalogue.OTHER_SMOOTHING_STYLE.name) for m in check.mistakes)


def test_regression_hostile_answers_fail_on_the_command_line(tmp_path, sce):
    flags = {
        "cap_zeros": ["--softcap", "30"],
        "zl_negated_doubled": ["--z-loss", "1"],
        "style_wrong": ["--smoothing", "0.1", "--smoothing-style", "off-target"],
    }
    for name, z, y, grad, loss, _ in _hostile_cases():
        path = tmp_path / f"{name}.npz"
        np.savez(path, logits=z, labels=y, grad=grad, loss=loss)
        result = sce("check", "--arrays", str(path), "--reduction", "mean", *flags[name])
        assert result.exit_code == 1, (name, result.output)
        assert "verdict: not correct for float32" in result.output


def test_regression_assert_close_refuses_zeros_with_a_softcap():
    z, y = _data()
    with pytest.raises(AssertionError):
        assert_cross_entropy_close(z, y, np.zeros((8, 50), np.float32), reduction="mean", softcap=30.0)
    grad, loss = reference(z, y, cap=30.0, dtype=np.float32)
    assert_cross_entropy_close(z, y, grad, loss, reduction="mean", softcap=30.0)


def test_regression_torch_style_wrong_answers_with_large_logits_fail():
    """The tester's torch dumps: logits ~ N(0, 20²), softcap 30 and z-loss 1e-4; gradients ×2,
    ×(−1), zeros and a loss ×1.5 all passed."""
    z, y = _data(rows=16, classes=100, scale=20.0, seed=3)
    options = _options(cap=30.0, z_loss=1e-4)
    grad, loss = reference(z, y, **_reference_keywords(options), dtype=np.float32)
    assert _grade(z, y, grad, loss, options).correct
    for wrong_grad, wrong_loss in [(2 * grad, loss), (-grad, loss), (0 * grad, loss), (grad, np.float32(1.5 * loss))]:
        assert not _grade(z, y, wrong_grad, wrong_loss, options).correct


# Correct answers computed straightforwardly in the claimed type pass, whatever the options.

OPTION_SETS = [
    {"cap": 30.0},
    {"cap": 5.0},
    {"z_loss": 1e-4},
    {"z_loss": 1.0},
    {"eps": 0.1, "style": "off-target"},
    {"eps": 0.1},
    {"temperature": 0.7, "cap": 30.0, "z_loss": 1e-4},
    {"eps": 0.2, "style": "off-target", "z_loss": 1e-2, "cap": 10.0, "temperature": 1.5},
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("settings", OPTION_SETS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_straightforward_float32_answers_pass_with_every_option(settings, weighted, reduction):
    z, y = _data(rows=12, classes=40, scale=20.0 if "cap" in settings else 3.0, seed=5, ignored=2)
    weight = np.random.default_rng(1).uniform(0.2, 3.0, 40) if weighted else None
    options = _options(reduction=reduction, weight=weight, **settings)
    grad, loss = reference(z, y, **_reference_keywords(options), dtype=np.float32)
    check = _grade(z, y, grad, loss, options)
    assert check.correct, [(q.name, q.max_ulps, q.allowed_ulps) for q in check.quantities]


@pytest.mark.parametrize("settings", OPTION_SETS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_straightforward_float16_answers_pass_with_every_option(settings):
    """A half-type kernel: float32 arithmetic, each result rounded to float16."""
    z, y = _data(rows=12, classes=40, scale=20.0 if "cap" in settings else 3.0, seed=6, ignored=1)
    z = z.astype(np.float16)
    options = _options(**settings)
    grad, loss = reference(z, y, **_reference_keywords(options), dtype=np.float32)
    check = _grade(z, y, grad.astype(np.float16), np.float16(loss), options, claimed="float16")
    assert check.correct, [(q.name, q.max_ulps, q.allowed_ulps) for q in check.quantities]


@pytest.mark.parametrize("style", ["uniform", "off-target"])
def test_straightforward_answers_with_targets_pass_and_the_other_style_is_named(style):
    rng = np.random.default_rng(7)
    z = (rng.normal(size=(10, 30)) * 3).astype(np.float32)
    t = rng.dirichlet(np.ones(30) * 0.3, size=10)
    options = _options(eps=0.1, style=style, z_loss=1e-3, reduction="sum")
    grad, loss = reference(z, targets=t, **_reference_keywords(options), dtype=np.float32)
    assert _grade(z, None, grad, loss, options, targets=t).correct
    other = "uniform" if style == "off-target" else "off-target"
    grad, loss = reference(z, targets=t, **_reference_keywords(options.replace(smoothing_style=other)))
    check = _grade(z, None, grad.astype(np.float32), np.float32(loss), options, targets=t)
    assert not check.correct
    assert any(m.startswith(catalogue.OTHER_SMOOTHING_STYLE.name) for m in check.mistakes)


# Each option's slip fails and is named.

SLIPS = [
    ("softcap left out", {"cap": 30.0}, {"cap": None}, catalogue.SOFTCAP_LEFT_OUT.name),
    (
        "tanh derivative left out",
        {"cap": 30.0},
        {"cap": 30.0, "cap_factor": False},
        catalogue.TANH_DERIVATIVE_LEFT_OUT.name,
    ),
    ("z-loss left out", {"z_loss": 1e-2}, {"z_loss": 0.0}, catalogue.Z_LOSS_LEFT_OUT.name),
    ("z-loss summed", {"z_loss": 1e-2}, {"z_divisor": "nothing"}, catalogue.Z_LOSS_SUMMED.name),
    (
        "z-loss by weight sum",
        {"z_loss": 1e-2, "weighted": True},
        {"z_divisor": "weight sum"},
        catalogue.Z_LOSS_BY_WEIGHT_SUM.name,
    ),
    (
        "other smoothing style",
        {"eps": 0.1, "style": "off-target"},
        {"style": "uniform"},
        catalogue.OTHER_SMOOTHING_STYLE.name,
    ),
    (
        "other smoothing style (uniform asked)",
        {"eps": 0.1},
        {"style": "off-target"},
        catalogue.OTHER_SMOOTHING_STYLE.name,
    ),
]


@pytest.mark.parametrize(("name", "settings", "slip", "words"), SLIPS, ids=[s[0] for s in SLIPS])
def test_each_options_slip_fails_and_is_named(name, settings, slip, words):
    settings = dict(settings)
    weighted = settings.pop("weighted", False)
    z, y = _data(rows=16, classes=40, scale=20.0 if "cap" in settings else 3.0, seed=11, ignored=3)
    weight = np.random.default_rng(2).uniform(0.2, 3.0, 40) if weighted else None
    options = _options(weight=weight, **settings)
    keywords = {**_reference_keywords(options), **slip}
    grad, loss = reference(z, y, **keywords)
    check = _grade(z, y, grad.astype(np.float32), np.float32(loss), options)
    assert not check.correct
    assert any(words in mistake for mistake in check.mistakes), check.mistakes


def test_a_mean_z_loss_with_weights_divides_the_loss_by_the_counted_rows():
    """The reduced loss's exact value: cross-entropy over the weight sum, z-loss over the
    counted rows (not both over the weight sum)."""
    z, y = _data(rows=10, classes=20, seed=4, ignored=2)
    weight = np.random.default_rng(3).uniform(0.2, 3.0, 20)
    options = _options(z_loss=0.5, weight=weight)
    grad, loss = reference(z, y, **_reference_keywords(options), dtype=np.float32)
    assert _grade(z, y, grad, loss, options).correct
    _, by_weights = reference(z, y, **_reference_keywords(options), z_divisor="weight sum")
    assert not _grade(z, y, grad, np.float32(by_weights), options).correct


# PyTorch's smoothed float32 backward.


def torch_like_smoothed_gradient(z, y, eps, reduction, lanes=16):
    """PyTorch's route, emulated in float32: the incoming gradient of log-softmax is −ε/K·a on
    every class plus −(1 − ε)·a at the label (a = 1, or 1/counted rows for 'mean'); its backward
    is g − exp(log p)·Σ g, the sum taken by a vectorized loop: ``lanes`` running sums over the
    classes in order, then added."""
    f32 = np.float32
    n, k = z.shape
    counted = y != IGNORE
    scale = f32(1) if reduction == "sum" else f32(1) / f32(counted.sum())
    incoming = np.where(counted[:, None], np.full((n, k), -(f32(eps) / f32(k)) * scale, f32), f32(0)).astype(f32)
    rows = np.flatnonzero(counted)
    incoming[rows, y[counted]] += -(f32(1) - f32(eps)) * scale
    running = np.zeros((n, lanes), f32)
    padded = np.zeros((n, -(-k // lanes) * lanes), f32)
    padded[:, :k] = incoming
    for start in range(0, padded.shape[1], lanes):
        running = (running + padded[:, start : start + lanes]).astype(f32)
    summed = running.sum(axis=1, dtype=f32)[:, None]
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = (shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))).astype(f32)
    return (incoming - np.exp(log_p) * summed).astype(f32)


def _vocabulary_case(classes=32_000):
    z, y = _data(rows=8, classes=classes, scale=3.0, seed=1)
    y[0] = IGNORE
    return z, y


@pytest.mark.parametrize("lanes", [8, 16])
def test_regression_pytorch_smoothed_float32_gradient_passes_at_a_vocabularys_classes(lanes):
    z, y = _vocabulary_case()
    grad = torch_like_smoothed_gradient(z, y, 0.1, "sum", lanes)
    options = _options(eps=0.1, reduction="sum")
    check = _grade(z, y, grad, None, options)
    (verdict,) = check.quantities
    assert verdict.max_ulps > 300  # the sum over 32,000 classes costs hundreds of ulps…
    assert check.correct  # …and a kernel that sums as PyTorch does is right


def test_a_gradient_beyond_the_smoothed_allowance_still_fails():
    z, y = _vocabulary_case()
    options = _options(eps=0.1, reduction="sum")
    right, _ = reference(z, y, **_reference_keywords(options))
    (verdict,) = _grade(z, y, right.astype(np.float32), None, options).quantities
    allowed = verdict.allowed_ulps
    assert allowed < 10_000
    # Every entry off by 2 × the allowance, in ulps of 1 (the size of s·p's operands at most).
    wrong = (right + np.sign(right) * 2 * allowed * 2.0**-23 * np.abs(right).clip(2.0**-10)).astype(np.float32)
    assert not _grade(z, y, wrong, None, options).correct


def test_a_smoothed_gradient_1000_ulp_off_fails_where_the_sum_over_classes_is_short():
    """At K = 1,000 the sum over the classes costs a few ulps: 1,000 ulp off fails."""
    z, y = _vocabulary_case(classes=1_000)
    options = _options(eps=0.1, reduction="sum")
    grad = torch_like_smoothed_gradient(z, y, 0.1, "sum")
    assert _grade(z, y, grad, None, options).correct
    right, _ = reference(z, y, **_reference_keywords(options))
    ulp_of_one = 2.0**-23
    wrong = grad.astype(np.float64)
    wrong[1, :] += 1000 * ulp_of_one * np.maximum(np.abs(right[1, :]), 2.0**-3)
    check = _grade(z, y, wrong.astype(np.float32), None, options)
    assert not check.correct


def test_pytorch_itself_smoothed_float32_gradient_passes():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    for reduction in ("sum", "mean"):
        torch.manual_seed(1)
        z = (torch.randn(8, 32_000) * 3).requires_grad_(True)
        y = torch.randint(0, 32_000, (8,))
        y[0] = IGNORE
        loss = functional.cross_entropy(z, y, reduction=reduction, label_smoothing=0.1)
        loss.backward()
        check = _grade(
            z.detach().numpy(), y.numpy(), z.grad.numpy(), loss.detach().numpy(), _options(0.1, reduction=reduction)
        )
        assert check.correct, reduction


def torch_like_gradient(z, y, lanes):
    """PyTorch's float32 gradient of the 'mean' loss over labels, emulated: log-softmax with
    Σ e^(z − max) summed by a vectorized loop (``lanes`` running sums over the classes in order,
    then added), then nll's incoming −1/D at the label and log-softmax's backward g − exp(log p)·Σg."""
    f32 = np.float32
    n, k = z.shape
    shifted = (z - z.max(axis=1, keepdims=True)).astype(f32)
    padded = np.zeros((n, -(-k // lanes) * lanes), f32)
    padded[:, :k] = np.exp(shifted)
    running = np.zeros((n, lanes), f32)
    for start in range(0, padded.shape[1], lanes):
        running = (running + padded[:, start : start + lanes]).astype(f32)
    log_p = (shifted - np.log(running.sum(axis=1, dtype=f32))[:, None]).astype(f32)
    counted = y != IGNORE
    scale = f32(1) / f32(counted.sum())
    incoming = np.zeros((n, k), f32)
    incoming[np.flatnonzero(counted), y[counted]] = -scale
    summed = np.where(counted, -scale, f32(0)).astype(f32)[:, None]
    return (incoming - np.exp(log_p) * summed).astype(f32)


@pytest.mark.parametrize("lanes", [8, 16])
def test_regression_pytorch_float32_gradient_passes_at_a_256000_class_vocabulary(lanes):
    """PyTorch's float32 gradient at Gemma's K = 256,000 was ~200 ulp off (AVX-512's 16 lanes;
    ~500 with AVX2's 8), where numpy's pairwise sum is a few ulps off, and it failed: the sum of
    a vocabulary's exponentials in lanes is the error of every probability in the row."""
    z, y = _data(rows=4, classes=256_000, seed=5, ignored=1)
    check = _grade(z, y, torch_like_gradient(z, y, lanes), None, _options())
    (verdict,) = check.quantities
    assert verdict.max_ulps > 100  # the lanes' error, far beyond a pairwise sum's…
    assert check.correct  # …and yet the answer of a correct kernel


def test_a_gradient_1000_ulp_off_fails_at_128000_classes():
    z, y = _data(rows=4, classes=128_000, seed=6, ignored=1)
    right, _ = reference(z, y)
    assert _grade(z, y, right.astype(np.float32), None, _options()).correct
    wrong = (right * (1 + 1000 * 2.0**-23)).astype(np.float32)  # 1,000 to 2,000 ulp off
    check = _grade(z, y, wrong, None, _options())
    (verdict,) = check.quantities
    assert verdict.allowed_ulps < 1000
    assert not check.correct


def test_pytorch_itself_float32_gradient_passes_at_a_vocabularys_classes():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    for classes, reduction in ((128_000, "mean"), (256_000, "none")):
        torch.manual_seed(2)
        z = (torch.randn(4, classes) * 3).requires_grad_(True)
        y = torch.randint(0, classes, (4,))
        y[0] = IGNORE
        loss = functional.cross_entropy(z, y, reduction=reduction)
        loss.sum().backward()
        check = _grade(
            z.detach().numpy(), y.numpy(), z.grad.numpy(), loss.detach().numpy(), _options(reduction=reduction)
        )
        assert check.correct, (classes, [(q.name, q.max_ulps, q.allowed_ulps) for q in check.quantities])


# Bigger picture: any options, a straightforward float32 answer passes and its negation fails.


@st.composite
def _cases(draw):
    rows, classes = draw(st.integers(1, 12)), draw(st.integers(2, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    z = (rng.normal(size=(rows, classes)) * draw(st.sampled_from([0.3, 3.0, 20.0]))).astype(np.float32)
    y = rng.integers(0, classes, rows)
    y[1:][rng.random(rows - 1) < draw(st.sampled_from([0.0, 0.3]))] = IGNORE  # row 0 counted: 'mean' has a D
    options = _options(
        eps=draw(st.sampled_from([0.0, 0.1, 0.3])),
        style=draw(st.sampled_from(["uniform", "off-target"])),
        temperature=draw(st.sampled_from([1.0, 0.5, 2.0])),
        cap=draw(st.sampled_from([None, 5.0, 30.0])),
        z_loss=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
        weight=rng.uniform(0.2, 3.0, classes) if draw(st.booleans()) else None,
    )
    return z, y, options, draw(st.sampled_from(["float32", "float16"]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_any_options_straightforward_answer_passes_and_its_negation_fails(case):
    """float32 arithmetic, the answer (and, for float16, the logits) rounded to the claimed type."""
    z, y, options, claimed = case
    kind = np.dtype(claimed)
    z = z.astype(kind)
    grad, loss = reference(z, y, **_reference_keywords(options), dtype=np.float32)
    with np.errstate(over="ignore"):
        grad, loss = grad.astype(kind), loss.astype(kind)
    assume(np.isfinite(grad).all() and np.isfinite(loss).all())  # a z-loss of 1 beyond float16's range
    check = _grade(z, y, grad, loss, options, claimed)
    assert check.correct, [(q.name, q.max_ulps, q.allowed_ulps) for q in check.quantities]
    exact, _ = reference(z, y, **_reference_keywords(options))
    if np.abs(exact).max() > 1e-2:  # a gradient that is not all but zero
        assert not _grade(z, y, -grad, loss, options, claimed).correct


@pytest.mark.parametrize("name", ["cap_zeros", "zl_negated_doubled", "style_wrong"])
def test_regression_hostile_answers_fail_through_assert_cross_entropy_close(name):
    z, y, grad, loss, options = {c[0]: c[1:] for c in _hostile_cases()}[name]
    keywords = {
        "softcap": options.softcap,
        "z_loss": options.z_loss,
        "label_smoothing": options.label_smoothing,
        "smoothing_style": options.smoothing_style,
    }
    with pytest.raises(AssertionError):
        assert_cross_entropy_close(z, y, grad, loss, reduction="mean", **keywords)
    right, right_loss = reference(z, y, **_reference_keywords(options), dtype=np.float32)
    assert_cross_entropy_close(z, y, right, right_loss, reduction="mean", **keywords)


# A softcap's factor as frameworks form it: 1 − tanh², from tanh's rounded result.


def test_regression_the_cap_factor_as_autograd_forms_it_passes_at_large_logits():
    """PyTorch's autograd of c·tanh(z/c) multiplies by 1 − y·y, y = tanh(z/c) rounded: where
    |z/c| is large that loses its digits relative to the factor (13,676 ulp of the factored
    size at logits ~ N(0, 40²)), but not relative to 1, which is where it is counted."""
    z, y = _data(rows=64, classes=300, scale=40.0, seed=8)
    options = _options(cap=30.0, z_loss=1e-4)
    f32 = np.float32
    tanh = np.tanh(z / f32(30.0))
    grad_capped, loss = reference(z, y, **_reference_keywords(options), cap_factor=False, dtype=np.float32)
    grad = (grad_capped * (f32(1) - tanh * tanh)).astype(f32)
    assert _grade(z, y, grad, loss, options).correct
    assert not _grade(z, y, np.zeros_like(grad), loss, options).correct
    assert not _grade(z, y, grad_capped, loss, options).correct  # the factor left out


def test_pytorch_itself_softcapped_float32_gradient_passes():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    torch.manual_seed(0)
    z = (torch.randn(64, 1000) * 40).requires_grad_(True)
    y = torch.randint(0, 1000, (64,))
    capped = 30.0 * torch.tanh(z / 30.0)
    loss = functional.cross_entropy(capped, y) + 1e-4 * (torch.logsumexp(capped, 1) ** 2).mean()
    loss.backward()
    logits, grad = z.detach().numpy(), z.grad.numpy()
    options = _options(cap=30.0, z_loss=1e-4)
    assert _grade(logits, y.numpy(), grad, loss.detach().numpy(), options).correct
    assert not _grade(logits, y.numpy(), -grad, loss.detach().numpy(), options).correct


# Fair verdicts for half types, and the typical error.


def _bfloat16():
    return pytest.importorskip("ml_dtypes").bfloat16


def _bf16_case(rows=1024, classes=32, seed=17):
    bf16 = _bfloat16()
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(rows, classes)) * 3).astype(bf16)
    y = rng.integers(0, classes, rows)
    y[::10] = IGNORE
    return z, y


def test_regression_a_bfloat16_mean_loss_of_zero_or_twice_the_truth_fails():
    """The baseline summed 1,024 row losses in bfloat16 itself (~150 ulp off), so 4× that was
    allowed: a mean loss of 0, twice or half the truth passed. Frameworks sum half types in float32."""
    bf16 = _bfloat16()
    z, y = _bf16_case()
    grad, loss = reference(z.astype(np.float64), y)  # exact, rounded once to bfloat16 below
    options = _options()
    assert _grade(z, y, grad.astype(bf16), np.array(loss, dtype=bf16), options, "bfloat16").correct
    for wrong in (0.0, 2 * loss, loss / 2):
        assert not _grade(z, y, grad.astype(bf16), np.array(wrong, dtype=bf16), options, "bfloat16").correct, wrong


def test_regression_a_bfloat16_gradient_scaled_by_a_half_fails():
    """A bfloat16 entry 20 below its row's maximum loses ~6 % to the shift's rounding, so the
    baseline's worst is ~30 ulp and 152 were allowed at every entry: a gradient scaled by 0.5
    passed. Its typical error (root-mean-square) is ~100 ulp where the baseline's is ~5."""
    bf16 = _bfloat16()
    z, y = _bf16_case(rows=64, classes=1000, seed=2)
    y[::10] = 0
    straightforward, _ = reference(z.astype(np.float32), y, dtype=np.float32)  # computed in float32
    options = _options()
    right = _grade(z, y, straightforward.astype(bf16), None, options, "bfloat16")
    assert right.correct
    for factor in (0.5, 0.75, 1.5):
        check = _grade(z, y, (straightforward * np.float32(factor)).astype(bf16), None, options, "bfloat16")
        (verdict,) = check.quantities
        assert verdict.wrong == 0  # each entry is within 4 × the baseline's worst…
        assert verdict.typical_beyond and not check.correct  # …but not typically


def test_the_typical_error_is_reported_in_text_and_json(tmp_path, sce):
    z, y = _data(rows=8, classes=50)
    grad, _ = reference(z, y)
    np.savez(tmp_path / "d.npz", logits=z, labels=y, grad=(grad * 1.001).astype(np.float32))
    result = sce("check", "--arrays", str(tmp_path / "d.npz"), "--reduction", "mean")
    assert result.exit_code == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("gradient: typical"))
    assert line.startswith("gradient: typical (root-mean-square) error ")
    assert line.endswith("is allowed; beyond")
    result = sce("check", "--arrays", str(tmp_path / "d.npz"), "--reduction", "mean", "--format", "json")
    (quantity,) = __import__("json").loads(result.stdout)["quantities"]
    assert quantity["typical_beyond"] is True and quantity["correct"] is False
    # 1.001 × the gradient: every entry 0.1 % off, 8,400 to 16,800 ulp of float32.
    assert 8_000 < quantity["rms_error_ulps"] < 17_000
    assert quantity["rms_error_ulps"] > quantity["allowed_rms_ulps"]


@pytest.mark.parametrize(("dtype", "lanes"), [(np.float32, 16), (np.float64, 8)])
@pytest.mark.parametrize(("rows", "classes"), [(3, 1_000), (2, 128_000), (1, 7)])
def test_a_lane_sum_keeps_a_vector_registers_lanes(dtype, lanes, rows, classes):
    """64 bytes of lanes (AVX-512): 16 float32 or 8 float64 running sums, each in order. With
    16 float64 lanes PyTorch's own float64 gradient (AVX2: 4 lanes) failed at K = 128,000."""
    from sce.grading.dump.baseline import lane_sum

    rng = np.random.default_rng(4)
    values = rng.random((rows, classes)).astype(dtype)
    running = np.zeros((rows, lanes), dtype)
    padded = np.zeros((rows, -(-classes // lanes) * lanes), dtype)
    padded[:, :classes] = values
    for start in range(0, padded.shape[1], lanes):
        running = (running + padded[:, start : start + lanes]).astype(dtype)
    expected = running.sum(axis=1, keepdims=True, dtype=dtype)
    assert np.array_equal(lane_sum(values, np.dtype(dtype)), expected)


def test_regression_where_the_type_cannot_hold_the_answer_the_verdict_says_so(tmp_path, sce):
    """float16 logits near 1,000 at T = 0.05: z/T ≈ 20,000, where float16's ulp is 16, so a
    straightforward float16 computation has no digit right. 4× its error was allowed at every
    entry: an all-zero gradient was "correct for float16" (and PyTorch's own loss failed)."""
    rng = np.random.default_rng(8)
    z = (rng.normal(size=(16, 2000)) * 3 + 1000).astype(np.float16)
    y = rng.integers(0, 2000, 16)
    np.savez(tmp_path / "d.npz", logits=z, labels=y, grad=np.zeros_like(z))
    result = sce("check", "--arrays", str(tmp_path / "d.npz"), "--temperature", "0.05")
    assert result.exit_code == 2
    last = result.stdout.splitlines()[-1]
    assert last.startswith("verdict: cannot be judged in float16: a straightforward float16 computation of these ")
    assert last.endswith(
        " ulp off, and what that allows would pass an answer half or 1.5 times the truth; grade it in a wider type"
    )
    check = _grade(z, y, np.zeros_like(z), None, _options(temperature=0.05), "float16")
    assert not check.judgeable and not check.correct
    # The same logits graded as float32 (an answer computed in float32) are judged.
    grad, _ = reference(z.astype(np.float64), y, temperature=0.05)
    assert _grade(z, y, grad.astype(np.float32), None, _options(temperature=0.05), "float32").correct


@pytest.mark.parametrize("offset", [600, 2400])
def test_regression_an_all_zero_float16_gradient_is_never_correct(tmp_path, offset):
    """The review's case: float16 logits near 600 at T = 0.3, where the shift's rounding costs a
    straightforward float16 computation ~100 ulp typically: 4× that let zeros pass ("correct
    for float16", exit 0). A quantity is judged only where what is allowed stays below half the
    values' own size (a halved answer fails); here it does not, and the verdict says so."""
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(64, 50)) * 3 + offset).astype(np.float16)
    y = rng.integers(0, 50, 64)
    check = _grade(z, y, np.zeros_like(z), None, _options(temperature=0.3), "float16")
    assert not check.correct and not check.judgeable
    (verdict,) = check.quantities
    assert verdict.allowed_rms_ulps >= verdict.zero_rms_ulps / 2  # the allowance would pass a halved answer


def test_a_wrong_loss_the_type_can_judge_is_wrong_even_beside_a_gradient_it_cannot():
    """'Cannot be judged' is per quantity: a wrong quantity that can be judged makes the
    verdict 'not correct' (exit 1), whatever the others."""
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(64, 50)) * 3 + 600).astype(np.float16)
    y = rng.integers(0, 50, 64)
    grad, loss = reference(z.astype(np.float64), y, temperature=0.3)
    good = _grade(z, y, grad.astype(np.float16), np.float16(loss), _options(temperature=0.3), "float16")
    gradient, reduced = good.quantities
    assert not gradient.judgeable and reduced.judgeable and reduced.correct
    bad = _grade(z, y, grad.astype(np.float16), np.float16(2 * loss), _options(temperature=0.3), "float16")
    assert bad.wrong and not bad.correct


@pytest.mark.parametrize("suffix", [".npy", ".txt"])
def test_weights_of_a_vocabulary_are_read_from_a_file(tmp_path, suffix, sce):
    """-w W1,W2,… at K = 32,000 is 200 KB, past the shell's 128 KiB limit on one argument:
    a weighted dump of a vocabulary could not be graded from the command line."""
    z, y = _data(rows=4, classes=32_000, seed=1)
    weight = np.random.default_rng(2).uniform(0.2, 2.0, 32_000)
    grad, _ = reference(z, y, weight=weight)
    np.savez(tmp_path / "d.npz", logits=z, labels=y, grad=grad.astype(np.float32))
    if suffix == ".npy":
        np.save(tmp_path / "w.npy", weight)
    else:
        (tmp_path / "w.txt").write_text("\n".join(repr(float(w)) for w in weight))
    args = ["check", "--arrays", str(tmp_path / "d.npz"), "--reduction", "mean"]
    result = sce(*args, "-w", f"@{tmp_path / ('w' + suffix)}")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert sce(*args).exit_code == 1  # the same answer, graded without its weights


def test_a_weight_file_that_is_not_numbers_names_its_line(tmp_path, sce):
    (tmp_path / "w.txt").write_text("1 2\n3 x\n")
    result = sce("grad", "1", "2", "3", "4", "-l", "0", "-w", f"@{tmp_path / 'w.txt'}")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: --weight: line 2: 'x' is not a number; the file holds numbers only\n",
    )


def test_regression_a_float16_sum_beyond_its_range_is_rightly_inf():
    """A float16 sum loss of ~80,000 rounds to inf in float16 (its largest is 65,504, and
    anything from 65,520 on rounds up): PyTorch's inf was judged wrong, with 'a straightforward
    computation's worst is 0'. An inf where the sum fits is still wrong."""
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(10_000, 50)) * 3).astype(np.float16)
    y = rng.integers(0, 50, 10_000)
    grad, loss = reference(z.astype(np.float64), y, reduction="sum")
    assert loss > 65_520
    options = _options(reduction="sum")
    assert _grade(z, y, grad.astype(np.float16), np.float16(np.inf), options, "float16").correct
    assert not _grade(z, y, grad.astype(np.float16), np.float16(-np.inf), options, "float16").correct
    fits = _grade(z[:10], y[:10], grad[:10].astype(np.float16), np.float16(np.inf), options, "float16")
    assert not fits.correct


def _near_600(labels=None):
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(4096, 50)) * 3 + 600).astype(np.float16)
    y = rng.integers(0, 50, 4096) if labels is None else np.full(4096, labels)
    grad, _ = reference(z.astype(np.float64), y, temperature=0.3)
    return z, y, grad


@pytest.mark.parametrize("answer", ["nan", "times 1000", "sign flipped"])
def test_regression_a_plainly_wrong_answer_is_wrong_even_where_the_type_cannot_judge(answer):
    """The second review: an all-NaN gradient, one 1,000× too large and one with its sign
    flipped were "cannot be judged" (exit 2): further from the truth than zeros, they are wrong."""
    z, y, grad = _near_600()
    given = {"nan": np.full_like(grad, np.nan), "times 1000": grad * 1000, "sign flipped": -grad}[answer]
    check = _grade(z, y, given.astype(np.float16), None, _options(temperature=0.3), "float16")
    assert check.wrong and not check.correct


def test_regression_whether_the_type_can_judge_does_not_depend_on_where_the_labels_sit():
    """The zero answer's size was sampled every 50th entry of a 50-class block: column 0 only,
    the labels' column when every label is 0, so that the verdict changed with the labels."""
    verdicts = set()
    for labels in (None, 0):
        z, y, _ = _near_600(labels)
        check = _grade(z, y, np.zeros_like(z), None, _options(temperature=0.3), "float16")
        verdicts.add((check.correct, check.judgeable, check.wrong))
    assert len(verdicts) == 1  # the same verdict for both layouts…
    (verdict,) = verdicts
    assert verdict[0] is False  # …and the zeros are not correct


def test_a_tiny_loss_off_by_less_than_an_ulp_of_one_is_not_plainly_wrong():
    """A confident row's loss (4e-13) is measured in ulps of 1: a float32 answer of 1e-7 is within
    an ulp there, though further from the truth than 0 is."""
    z = np.array([[40.0, 10.0]], np.float32)
    y = np.array([0])
    grad, loss = reference(z.astype(np.float64), y)
    assert 0 < loss < 1e-12
    check = _grade(z, y, grad.astype(np.float32), np.float32(1e-7), _options(), "float32")
    assert check.correct, [(q.name, q.rms_ulps, q.zero_rms_ulps, q.allowed_rms_ulps) for q in check.quantities]
    assert not check.wrong  # correct and wrong at once, before: the mistakes were looked for
