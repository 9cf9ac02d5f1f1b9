"""Verdicts fair to every correct implementation a real kernel makes, and never to a wrong one:
bfloat16 graded as bfloat16 with or without ml_dtypes, flushed subnormals, sequential sums,
answers stored in a wider type, and a wrong answer hidden by a small factor."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sce.errors import worded
from sce.grading.dump.check import check_dump
from sce.io.arrays import ArrayDump
from tests.test_check_arrays_options import IGNORE, _data, _grade, _options, _reference_keywords, reference

# bfloat16, read by its bits.


def _bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """bfloat16's bits of float32 values, rounded to nearest even by hand (its top 16 bits)."""
    bits = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


@pytest.fixture
def without_ml_dtypes(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes raises ImportError


def test_bfloat16_bits_widen_to_their_exact_float32_values_without_ml_dtypes(without_ml_dtypes):
    from sce.io.arrays.dump import bfloat16_from_bits

    bits = np.array([0x3F80, 0xC040, 0x0001, 0x7F80, 0x8000], np.uint16)  # 1, -3, 2^-133, inf, -0.0
    widened = bfloat16_from_bits(bits.view("V2"), "z.npy", "logits")
    assert widened.dtype == np.float32
    assert widened.tolist() == [1.0, -3.0, 2.0**-133, np.inf, -0.0]
    assert np.signbit(widened[-1])


def test_regression_a_bfloat16_gradient_without_ml_dtypes_is_refused_in_one_line_not_graded_as_float32(
    sce, tmp_path, without_ml_dtypes
):
    """A bfloat16 tensor was widened to float32 without ml_dtypes and graded as float32, so a
    framework's own bfloat16 gradient was "not correct for float32"."""
    z, y = _data(rows=4, classes=10)
    grad, _ = reference(z, y)
    np.save(tmp_path / "logits.npy", z)
    np.save(tmp_path / "labels.npy", y)
    np.save(tmp_path / "grad.npy", _bfloat16_bits(grad).view("V2"))
    result = sce(
        "check",
        "--logits",
        tmp_path / "logits.npy",
        "--labels",
        tmp_path / "labels.npy",
        "--grad",
        tmp_path / "grad.npy",
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"sce: error: {tmp_path / 'grad.npy'}: array 'grad' is bfloat16 (2-byte values), graded as bfloat16, which needs ml_dtypes: "
        "pip install 'sce[bfloat16]'\n"
    )


def test_regression_dtype_bfloat16_without_ml_dtypes_says_which_extra_to_install(without_ml_dtypes):
    """``dtype="bfloat16"`` raised a bare ModuleNotFoundError."""
    from sce.testing import assert_cross_entropy_close

    z, y = _data(rows=2, classes=5)
    grad, _ = reference(z, y)
    with pytest.raises(
        ImportError, match=r"bfloat16 is graded as bfloat16, which needs ml_dtypes: pip install 'sce\[bfloat16\]'"
    ):
        assert_cross_entropy_close(z, y, grad.astype(np.float32), dtype="bfloat16")


def test_bfloat16_logits_without_ml_dtypes_are_read_for_a_float32_answer(sce, tmp_path, without_ml_dtypes):
    z, y = _data(rows=4, classes=10)
    z = (_bfloat16_bits(z).astype(np.uint32) << 16).view(np.float32)  # the logits bfloat16 holds
    grad, _ = reference(z, y, dtype=np.float32)
    np.save(tmp_path / "logits.npy", _bfloat16_bits(z).view("V2"))
    np.save(tmp_path / "labels.npy", y)
    np.save(tmp_path / "grad.npy", grad)
    result = sce(
        "check",
        "--logits",
        tmp_path / "logits.npy",
        "--labels",
        tmp_path / "labels.npy",
        "--grad",
        tmp_path / "grad.npy",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("verdict: correct for float32\n")


def test_pytorch_own_bfloat16_gradient_is_graded_as_bfloat16():
    torch = pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    from sce.testing import assert_cross_entropy_close

    torch.manual_seed(3)
    z = (torch.randn(8, 300) * 3).to(torch.bfloat16).requires_grad_(True)
    y = torch.randint(0, 300, (8,))
    loss = torch.nn.functional.cross_entropy(z, y)
    loss.backward()
    assert_cross_entropy_close(z.detach(), y, z.grad, loss.detach())
    with pytest.raises(AssertionError, match="not correct for bfloat16"):
        assert_cross_entropy_close(z.detach(), y, -z.grad, loss.detach())


def test_regression_a_torch_bfloat16_gradient_without_ml_dtypes_is_not_graded_as_float32(without_ml_dtypes):
    torch = pytest.importorskip("torch")
    from sce.io.arrays.formats import tensor_to_numpy
    from sce.testing import assert_cross_entropy_close

    z = torch.tensor([[2.0, 3.0, 4.0]], dtype=torch.bfloat16)
    bits = tensor_to_numpy(z)
    assert bits.dtype == np.dtype("V2")
    assert bits.view(np.uint16).tolist() == [[0x4000, 0x4040, 0x4080]]  # 2, 3 and 4's top 16 bits
    grad = torch.tensor([[0.09, -0.76, 0.67]], dtype=torch.bfloat16)
    with pytest.raises(ImportError, match=r"needs ml_dtypes: pip install 'sce\[bfloat16\]'"):
        assert_cross_entropy_close(z, torch.tensor([1]), grad)


# A wrong answer hidden by a small factor.


def test_regression_a_negated_float16_gradient_under_a_softcap_and_z_loss_fails():
    """Measured in ulps of its uncapped size, the gradient here is ~3.6 ulps large (the cap's
    factor 1 − tanh²(z/c) is 0.0037), and the margin of 8 ulps let its negation pass, and an
    all-zero or doubled answer with it."""
    z, y = np.array([[-17.45, -30.31]], np.float16), np.array([1])
    options = _options(cap=5.0, z_loss=1.0, reduction="mean")
    exact, _ = reference(z, y, **_reference_keywords(options))
    right = exact.astype(np.float16)
    assert _grade(z, y, right, None, options, "float16").correct
    for wrong in (-right, np.zeros_like(right), 2 * right):
        check = _grade(z, y, wrong, None, options, "float16")
        assert check.judgeable and not check.correct, wrong


def test_regression_a_negated_float16_gradient_below_an_ulp_of_its_uncapped_size_fails():
    """Here the gradient is 0.77 ulp of its uncapped size (the factor is 9.5e-4): 0 is what a
    kernel forming 1 − tanh² from a rounded tanh may return, but no kernel flips its sign."""
    z, y = np.array([[-20.855974, -25.245354]], np.float16), np.array([1])
    options = _options(cap=5.0, z_loss=1.0, temperature=0.5, reduction="mean")
    exact, _ = reference(z, y, **_reference_keywords(options))
    right = exact.astype(np.float16)
    assert _grade(z, y, right, None, options, "float16").correct
    assert _grade(z, y, np.zeros_like(right), None, options, "float16").correct
    check = _grade(z, y, -right, None, options, "float16")
    assert not check.correct
    assert check.quantities[0].sign_flips == 2


def test_pytorch_own_float16_softcapped_gradient_passes():
    torch = pytest.importorskip("torch")
    for seed in range(40):
        rng = np.random.default_rng(seed)
        rows, classes = int(rng.integers(1, 5)), int(rng.integers(2, 40))
        z = (rng.normal(size=(rows, classes)) * rng.choice([3.0, 20.0, 40.0])).astype(np.float16)
        y = rng.integers(0, classes, rows)
        cap, z_loss = float(rng.choice([5.0, 30.0])), float(rng.choice([0.0, 1e-4, 1.0]))
        logits = torch.tensor(z, requires_grad=True)
        capped = (cap * torch.tanh(logits / cap)).float()  # half tanh and its backward, as autocast leaves them
        lse = torch.logsumexp(capped, 1)
        loss = torch.nn.functional.cross_entropy(capped, torch.tensor(y)) + z_loss * (lse**2).mean()
        loss.backward()
        grad = logits.grad.numpy()
        if np.isfinite(grad).all():
            assert _grade(z, y, grad, None, _options(cap=cap, z_loss=z_loss), "float16").correct, seed


# Subnormal results flushed to zero, as fast-math kernels return them.


def _flushed(values: np.ndarray) -> np.ndarray:
    """Every subnormal entry of ``values`` (in their own type) replaced by zero."""
    tiny = _smallest_normal(values.dtype)
    return np.where(np.abs(values.astype(np.float32)) < tiny, 0, values).astype(values.dtype)


def _smallest_normal(dtype) -> float:
    return 2.0**-14 if np.dtype(dtype) == np.float16 else 2.0**-126  # float16; float32 and bfloat16


def test_regression_a_float32_gradient_with_its_subnormals_flushed_to_zero_passes():
    """A fast-math kernel's float32 gradient, its subnormal entries 0, was millions of ulp off
    (counted in ulps of 2^-149) for differences below 1.2e-38."""
    z, y = _data(rows=8, classes=50, scale=30.0, seed=1)
    options = _options(reduction="mean")
    exact, _ = reference(z, y, **_reference_keywords(options))
    right = exact.astype(np.float32)
    flushed = _flushed(right)
    assert np.count_nonzero(flushed != right) > 20  # the case has subnormal entries
    check = _grade(z, y, flushed, None, options)
    assert check.correct, check.quantities[0].max_ulps
    assert check.quantities[0].max_ulps < 1
    assert not _grade(z, y, -flushed, None, options).correct
    summed = _grade(z, y, _flushed((exact * np.count_nonzero(y != IGNORE)).astype(np.float32)), None, options)
    assert not summed.correct and any("sum" in name for name in summed.mistakes), summed.mistakes


@pytest.mark.parametrize("claimed", ["float16", "bfloat16"])
def test_a_half_gradient_with_its_subnormals_flushed_to_zero_passes(claimed):
    kind = np.dtype(np.float16) if claimed == "float16" else np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    scale = 4.0 if claimed == "float16" else 30.0
    z, y = _data(rows=8, classes=50, scale=scale, seed=2)
    z = z.astype(kind).astype(np.float32)
    options = _options(reduction="mean")
    exact, loss = reference(z, y, **_reference_keywords(options))
    right = exact.astype(kind)
    flushed = _flushed(right)
    assert np.count_nonzero(flushed.astype(np.float32) != right.astype(np.float32)) > 5
    assert _grade(z.astype(kind), y, flushed, None, options, claimed).correct
    assert not _grade(z.astype(kind), y, (-flushed.astype(np.float32)).astype(kind), None, options, claimed).correct


def test_a_zero_where_the_exact_value_is_a_normal_number_still_fails():
    """Only a flushed subnormal is excused: a tiny normal value answered as 0, or a subnormal
    value answered as a wrong subnormal, keeps its error."""
    z = np.array([[0.0, -40.0, -90.0, -110.0]], np.float32)  # p ≈ 4e-18, 8e-40 (subnormal), 1.7e-48
    y = np.array([0])
    options = _options(reduction="sum")
    exact, _ = reference(z, y, **_reference_keywords(options))
    right = exact.astype(np.float32)
    assert _grade(z, y, right, None, options).correct
    assert _grade(z, y, _flushed(right), None, options).correct
    zeroed = right.copy()
    zeroed[0, 1] = 0  # 4.2e-18 is a normal float32
    assert not _grade(z, y, zeroed, None, options).correct
    wrong_subnormal = right.copy()
    wrong_subnormal[0, 2] = np.float32(1e-39)  # for 8.2e-40: 1.3e5 ulp of 2^-149
    assert not _grade(z, y, wrong_subnormal, None, options).correct


# One sequential sum over the classes: a textbook loop, one thread per row.


def _sequential_sum(e: np.ndarray) -> np.ndarray:
    """Each row's sum added one entry after another in e's type (numpy's cumsum is sequential)."""
    return np.cumsum(e, axis=1, dtype=e.dtype)[:, -1:]


def kernel(z, y, options, dtype=np.float32, sequential=False):
    """A straightforward kernel in ``dtype`` (half types in float32, rounded at the end, as
    frameworks compute them): the reference's formulas, its exponentials summed sequentially or
    (numpy's) pairwise."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _kernel(z, y, options, np.dtype(dtype), sequential)


def _kernel(z, y, options, kind, sequential):
    work = np.dtype(np.float32) if kind.itemsize == 2 else kind
    one = work.type(1)
    z = np.asarray(z).astype(work)
    n, k = z.shape
    w = np.ones(k, work) if options.weight is None else np.asarray(options.weight, work)
    factor, a = one, z
    if options.softcap is not None:
        ratio = z / work.type(options.softcap)
        a = work.type(options.softcap) * np.tanh(ratio)
        factor = one / np.cosh(ratio) ** 2
    b = a / work.type(options.temperature)
    top = b.max(axis=1, keepdims=True)
    e = np.exp(b - top)
    total = _sequential_sum(e) if sequential else e.sum(axis=1, keepdims=True)
    p = e / total
    lse = (top + np.log(total))[:, 0]
    counted = y != IGNORE
    onehot = np.zeros((n, k), work)
    onehot[np.flatnonzero(counted), y[counted]] = 1
    eps = work.type(options.label_smoothing)
    if options.smoothing_style == "off-target" and options.label_smoothing:
        q = (one - eps) * onehot + eps / work.type(k - 1) * (one - onehot)
    else:
        q = (one - eps) * onehot + eps / work.type(k)
    c = np.where(counted[:, None], q, 0).astype(work) * w
    d_ce = p * c.sum(axis=1, keepdims=True) - c
    d_z = np.where(counted[:, None], work.type(2 * options.z_loss) * lse[:, None] * p, 0).astype(work)
    if options.reduction == "mean":
        gradient = d_ce / w[np.where(counted, y, 0)][counted].sum() + d_z / work.type(counted.sum())
    else:
        gradient = d_ce + d_z
    return (gradient / work.type(options.temperature) * factor).astype(kind)


def test_regression_a_float32_gradient_from_one_sequential_sum_at_128000_classes_is_named_then_passes(sce, tmp_path):
    """A float32 gradient from one running sum over K = 128,000 classes (~2,000 ulp typical error,
    where PyTorch's lanes are ~50 off) failed with no explanation. It is named, and passes with
    --sum-order sequential; a gradient with a wrong factor still fails that way."""
    z, y = _data(rows=4, classes=128_000, seed=6)
    options = _options()
    grad = kernel(z, y, options, sequential=True)
    np.savez(tmp_path / "dump.npz", logits=z, labels=y, grad=grad)
    plain = sce("check", "--arrays", tmp_path / "dump.npz")
    assert plain.exit_code == 1
    assert (
        "hint: its rows are consistent with a sequential sum over the classes: graded with --sum-order sequential, "
        "the answer is correct\nverdict: not correct for float32\n"
    ) in plain.stdout
    sequential = sce("check", "--arrays", tmp_path / "dump.npz", "--sum-order", "sequential")
    assert sequential.exit_code == 0, sequential.stdout
    assert (
        "each row's probabilities may share one factor 1 + δ, |δ| up to 4× a running sum's over the row's own terms "
        "(≤ 0.00" in sequential.stdout
    )
    assert (
        " here); the errors below are each row's without it\n" in sequential.stdout
    )
    assert sequential.stdout.endswith(
        "verdict: correct for float32, consistent with a sequential sum over the classes\n"
    )
    exact, _ = reference(z, y)
    bound = 127_999 * 2.0**-24
    too_far = exact + 2 * bound * kernel(z, y, _options(reduction="mean")).astype(np.float64) * (exact > 0)
    for wrong in (-grad, grad * 4, too_far.astype(np.float32)):
        check = check_dump(ArrayDump(z, y, None, wrong, None, {}), options, "float32", sum_order="sequential")
        assert not check.correct


def test_sum_order_goes_with_arrays_only(sce):
    result = sce("check", "2", "3", "4", "--label", "1", "--grad", "0.09,-0.76,0.67", "--sum-order", "sequential")
    assert result.exit_code == 2
    assert result.stderr == "sce: error: --sum-order goes with --arrays FILE or --logits FILE\n"


def test_an_unknown_sum_order_is_refused_by_assert_cross_entropy_close():
    from sce.testing import assert_cross_entropy_close

    z, y = _data(rows=2, classes=5)
    with pytest.raises(ValueError, match="sum_order='random': give one of parallel, sequential"):
        assert_cross_entropy_close(z, y, reference(z, y)[0], sum_order="random")


# An answer stored in a wider type than it was computed in.


def test_regression_a_float32_gradient_stored_as_float64_names_claimed_dtype_float32(sce, tmp_path):
    """Every entry a float32 value, billions of float64 ulps off, and no word of --claimed-dtype."""
    z, y = _data(rows=8, classes=300, seed=4)
    grad = kernel(z, y, _options()).astype(np.float64)
    np.savez(tmp_path / "dump.npz", logits=z, labels=y, grad=grad)
    result = sce("check", "--arrays", tmp_path / "dump.npz")
    assert result.exit_code == 1
    assert result.stdout.endswith(
        "hint: every entry is a float32 value, as a float32 computation saved as float64 gives: graded with "
        "--claimed-dtype float32, the answer is correct\nverdict: not correct for float64\n"
    )
    assert sce("check", "--arrays", tmp_path / "dump.npz", "--claimed-dtype", "float32").exit_code == 0
    from sce.testing import assert_cross_entropy_close

    with pytest.raises(AssertionError, match=r"graded with dtype='float32', the answer is correct"):
        assert_cross_entropy_close(z, y, grad)


def test_a_wrong_float32_gradient_stored_as_float64_gets_no_hint():
    z, y = _data(rows=8, classes=300, seed=4)
    grad = (kernel(z, y, _options()) * np.float32(1 + 2000 * 2.0**-23)).astype(np.float64)
    check = _grade(z, y, grad, None, _options(), "float64")
    assert not check.correct and check.hints == []


@pytest.mark.parametrize("stored", ["float32", "float64"])
def test_a_float16_gradient_stored_wider_names_claimed_dtype_float16(stored):
    z, y = _data(rows=8, classes=300, seed=4)
    grad = kernel(z, y, _options(), np.float16).astype(stored)
    check = _grade(z, y, grad, None, _options(), stored)
    assert not check.correct
    assert [worded(hint) for hint in check.hints] == [
        f"every entry is a float16 value, as a float16 computation saved as {stored} gives: graded with "
        "claimed_dtype='float16', the answer is correct"
    ]


# The class: answers made as real kernels make them pass; plainly wrong ones fail.


@st.composite
def _kernel_cases(draw):
    rows, classes = draw(st.integers(1, 10)), draw(st.integers(2, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    z = (rng.normal(size=(rows, classes)) * draw(st.sampled_from([0.3, 3.0, 30.0, 80.0]))).astype(np.float32)
    y = rng.integers(0, classes, rows)
    y[1:][rng.random(rows - 1) < draw(st.sampled_from([0.0, 0.3]))] = IGNORE  # row 0 counted
    options = _options(
        eps=draw(st.sampled_from([0.0, 0.1])),
        style=draw(st.sampled_from(["uniform", "off-target"])),
        temperature=draw(st.sampled_from([1.0, 0.5, 2.0])),
        cap=draw(st.sampled_from([None, 5.0, 30.0])),
        z_loss=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
        weight=rng.uniform(0.2, 3.0, classes) if draw(st.booleans()) else None,
    )
    claimed = draw(st.sampled_from(["float32", "float16", "bfloat16"]))
    made = draw(st.sampled_from(["pairwise", "sequential", "flushed", "sequential and flushed"]))
    return z, y, options, claimed, made


def _half(claimed):
    if claimed == "bfloat16":
        return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    return np.dtype(claimed)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_kernel_cases())
def test_kernels_answers_pass_and_negated_unscaled_or_shifted_ones_fail(case):
    """A kernel's answer in the claimed type (pairwise or sequential sums, subnormals flushed or
    not) passes, graded with its sum order; its negation, the gradient missing the mean's 1/D, and
    the gradient for labels off by one fail."""
    z, y, options, claimed, made = case
    kind = _half(claimed)
    z = z.astype(kind)
    sequential = made.startswith("sequential")
    order = "sequential" if sequential else "parallel"
    grad = kernel(z, y, options, kind, sequential)
    assume(np.isfinite(grad.astype(np.float32)).all())
    if made.endswith("flushed"):
        grad = np.where(np.abs(grad.astype(np.float32)) < _smallest_normal(kind), 0, grad).astype(kind)

    def graded(answer):
        return check_dump(ArrayDump(z, y, None, answer, None, {}), options, claimed, sum_order=order)

    def correct(answer):
        return graded(answer).correct

    right = graded(grad)
    assume(right.judgeable)  # not where the type cannot tell (bfloat16 logits of 80 over T = 0.5): said so, exit 2
    assert right.correct
    # bfloat16's shift z/T − max, rounded, is a quarter off at 60 (p 28 % off): 4 × that worst error is allowed at
    # every entry, the label's too, which is the limit of a worst-entry allowance; the class holds below it.
    assume(claimed != "bfloat16" or np.abs(z.astype(np.float32)).max() / options.temperature < 60)
    exact, _ = reference(z.astype(np.float32), y, **_reference_keywords(options))
    if np.abs(exact).max() < 1e-2:
        return  # a gradient that is all but zero
    assert not correct((-grad.astype(np.float32)).astype(kind))
    shifted = np.where(y != IGNORE, (y + 1) % z.shape[1], y)

    def plainly_different(labels, wrong_options):
        """As far from the truth as the gradient's own size, as the negation and an all-zero answer are:
        a bfloat16 computation that rounds z − max to bfloat16 is itself 28 % off at logits of 60."""
        other, _ = reference(z.astype(np.float32), labels, **_reference_keywords(wrong_options))
        return np.abs(other - exact).max() >= np.abs(exact).max()

    if plainly_different(shifted, options):
        assert not correct(kernel(z, shifted, options, kind, sequential))
    if options.reduction == "mean" and plainly_different(y, options.replace(reduction="sum")):
        assert not correct(kernel(z, y, options.replace(reduction="sum"), kind, sequential))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_a_sequential_sums_loss_passes_with_its_gradient_and_a_wrong_loss_does_not(reduction):
    """lse carries the row's factor too (log of the sum): the loss moves by −δ·s, δ the gradient's."""
    z, y = _data(rows=4, classes=128_000, seed=6)
    options = _options(reduction=reduction)
    grad = kernel(z, y, options, sequential=True)
    top = z.max(axis=1, keepdims=True)
    total = _sequential_sum(np.exp(z - top))[:, 0]
    rows = (np.log(total) + top[:, 0] - z[np.arange(len(y)), y]).astype(np.float32)
    loss = rows if reduction == "none" else np.float32(rows.mean())

    def correct(answer_loss, order):
        dump = ArrayDump(z, y, None, grad, np.asarray(answer_loss), {})
        return check_dump(dump, options, "float32", sum_order=order).correct

    assert not correct(loss, "parallel")
    assert correct(loss, "sequential")
    assert not correct((loss * np.float32(1 + 1000 * 2.0**-23)).astype(np.float32), "sequential")


def test_regression_a_bfloat16_gradient_for_the_next_label_under_a_softcap_fails():
    """40 % off (0.107 for 0.077) was 3.9 ulps of the uncapped size, within a margin of half the
    values' size; a correct kernel's factor 1 − tanh² is within an ulp of 1 of the truth."""
    bfloat16 = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    z, y = np.array([[10.367526, 24.648544]], np.float32).astype(bfloat16), np.array([0])
    options = _options(cap=5.0, z_loss=1.0, temperature=2.0)
    assert _grade(z, y, kernel(z, y, options, bfloat16), None, options, "bfloat16").correct
    assert not _grade(z, y, kernel(z, np.array([1]), options, bfloat16), None, options, "bfloat16").correct


def test_the_json_verdict_carries_the_sum_order_and_the_hint(sce, tmp_path):
    import json

    z, y = _data(rows=8, classes=300, seed=4)
    np.savez(tmp_path / "dump.npz", logits=z, labels=y, grad=kernel(z, y, _options()).astype(np.float64))
    document = json.loads(sce("check", "--arrays", tmp_path / "dump.npz", "-f", "json").stdout)
    assert document["sum_order"] == "parallel" and document["correct"] is False
    assert document["hints"] == [
        "every entry is a float32 value, as a float32 computation saved as float64 gives: graded with "
        "--claimed-dtype float32, the answer is correct"
    ]
    assert document["quantities"][0]["sign_flips"] == 0
    again = json.loads(
        sce(
            "check",
            "--arrays",
            tmp_path / "dump.npz",
            "-f",
            "json",
            "--claimed-dtype",
            "float32",
            "--sum-order",
            "sequential",
        ).stdout
    )
    assert again["sum_order"] == "sequential" and again["correct"] is True and again["hints"] == []


def test_pytorch_own_gradient_with_denormals_flushed_passes():
    torch = pytest.importorskip("torch")
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        torch.manual_seed(5)
        z = (torch.randn(16, 200) * 30).requires_grad_(True)
        y = torch.randint(0, 200, (16,))
        loss = torch.nn.functional.cross_entropy(z, y)
        loss.backward()
    finally:
        torch.set_flush_denormal(False)
    grad = z.grad.numpy()
    exact, _ = reference(z.detach().numpy(), y.numpy())
    flushed = (grad == 0) & (exact != 0) & (np.abs(exact) < 2.0**-126)
    assert flushed.sum() > 10  # the kernel did flush
    check = _grade(z.detach().numpy(), y.numpy(), grad, loss.detach().numpy(), _options())
    assert check.correct, [(q.name, q.max_ulps, q.allowed_ulps) for q in check.quantities]


def _nearest_bfloat16(values: np.ndarray) -> np.ndarray:
    """Round to the nearest bfloat16 (ties to even), kept in float32."""
    return (_bfloat16_bits(values).astype(np.uint32) << 16).view(np.float32)


def _wide_half_rows(seed: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bfloat16 logits of a wide range (z·scale), labels, and the mean's gradient in float64 from
    numpy's own softmax (a relative error near 1e-16, far below bfloat16's 2^-9)."""
    rng = np.random.default_rng(seed)
    logits = _nearest_bfloat16((rng.normal(size=(16, 50)) * scale).astype(np.float32))
    labels = rng.integers(0, 50, 16)
    wide = logits.astype(np.float64)
    p = np.exp(wide - wide.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(16), labels] -= 1
    return logits, labels, p / 16


def test_a_bfloat16_gradient_half_its_size_is_not_correct(tmp_path, sce):
    """Logits of a range near 180 in bfloat16: rounding a logit or a log-probability moves e^z by
    percents, so a straightforward bfloat16 computation is typically a tenth of the values off, and
    4× that allowed a gradient divided by 2N, or half again too large, at every entry."""
    pytest.importorskip("ml_dtypes")
    logits, labels, gradient = _wide_half_rows(7, 30.0)
    for factor in (0.5, 1.5):
        path = tmp_path / f"times_{factor}.npz"
        np.savez(path, logits=logits, labels=labels, grad=_nearest_bfloat16(gradient * factor))
        result = sce("check", "--arrays", path, "--claimed-dtype", "bfloat16")
        assert result.exit_code != 0, (factor, result.stdout)
        assert "verdict: correct" not in result.stdout
    right = tmp_path / "right.npz"
    np.savez(right, logits=logits, labels=labels, grad=_nearest_bfloat16(gradient))
    assert sce("check", "--arrays", right, "--claimed-dtype", "bfloat16").exit_code == 0


@pytest.mark.parametrize("scale", [8.0, 30.0, 60.0])
@pytest.mark.parametrize("claimed", ["bfloat16", "float16"])
def test_a_half_type_gradient_scaled_by_half_or_one_and_a_half_fails_where_pytorchs_passes(scale, claimed):
    torch = pytest.importorskip("torch")
    kind = np.dtype(pytest.importorskip("ml_dtypes").bfloat16) if claimed == "bfloat16" else np.dtype(np.float16)
    for seed in range(3):
        logits, labels, gradient = _wide_half_rows(seed, scale)
        z = torch.tensor(logits).to(getattr(torch, claimed)).requires_grad_(True)
        torch.nn.functional.cross_entropy(z, torch.tensor(labels)).backward()
        stored = logits.astype(kind)
        pytorch = _grade(stored, labels, z.grad.float().numpy().astype(kind), None, _options(), claimed)
        assert pytorch.correct, (claimed, scale, seed)
        for factor in (0.5, 1.5):
            check = _grade(stored, labels, (gradient * factor).astype(kind), None, _options(), claimed)
            assert not check.correct, (claimed, scale, seed, factor)


def test_a_softmax_summed_over_too_few_classes_is_not_excused_as_a_sequential_sum(tmp_path, sce):
    """A loop that stops 500 classes early leaves every probability 0.3 % too large: some 170 times
    what one sequential float32 sum over these 128,000 classes gives (about 2e-5). (K − 1)·u is the
    worst case of a sequential sum, not a licence for any δ within it."""
    rng = np.random.default_rng(11)
    rows, classes, left_out = 4, 128_000, 500
    logits = (rng.normal(size=(rows, classes)) * 2).astype(np.float32)
    labels = rng.integers(0, 1000, rows)
    wide = logits.astype(np.float64)
    exps = np.exp(wide - wide.max(axis=1, keepdims=True))
    gradient = exps / exps[:, : classes - left_out].sum(axis=1, keepdims=True)
    gradient[np.arange(rows), labels] -= 1
    path = tmp_path / "short_sum.npz"
    np.savez(path, logits=logits, labels=labels, grad=(gradient / rows).astype(np.float32))
    plain = sce("check", "--arrays", path)
    assert plain.exit_code == 1
    assert "--sum-order sequential" not in plain.stdout, plain.stdout
    sequential = sce("check", "--arrays", path, "--sum-order", "sequential")
    assert sequential.exit_code == 1, sequential.stdout


def _running_sums(e: np.ndarray, order: str, rng: np.random.Generator) -> np.ndarray:
    """Each row's sum of e, added one term after another in e's type, in the given order."""
    if order == "largest first":
        e = -np.sort(-e, axis=1)
    elif order == "smallest first":
        e = np.sort(e, axis=1)
    elif order == "backwards":
        e = e[:, ::-1]
    elif order == "shuffled":
        e = e[:, rng.permutation(e.shape[1])]
    elif order == "two lanes":
        lanes = np.cumsum(e.reshape(len(e), -1, 2), axis=1, dtype=e.dtype)[:, -1]
        return lanes.sum(axis=1, keepdims=True, dtype=e.dtype)
    return _sequential_sum(e)


@pytest.mark.parametrize("order", ["forwards", "backwards", "shuffled", "largest first", "smallest first", "two lanes"])
@pytest.mark.parametrize("logits", ["normal", "one above equal others", "three values"])
def test_a_running_sum_in_any_order_passes_as_a_sequential_sum(order, logits):
    """Equal terms round the same way at every step (the bias that reaches (K − 1)·u's order); the
    bound on δ follows the row's own terms, so every order of a running sum passes."""
    rng = np.random.default_rng(3)
    rows, classes = 4, 32_000
    z = {
        "normal": rng.normal(size=(rows, classes)) * 2,
        "one above equal others": np.where(np.arange(classes) == 7, 9.0, 0.3) + np.zeros((rows, 1)),
        "three values": rng.choice([0.0, 0.7, 2.3], size=(rows, classes)),
    }[logits].astype(np.float32)
    y = rng.integers(0, classes, rows)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / _running_sums(e, order, rng)
    p[np.arange(rows), y] -= np.float32(1)
    grad = (p / np.float32(rows)).astype(np.float32)
    check = check_dump(ArrayDump(z, y, None, grad, None, {}), _options(), "float32", sum_order="sequential")
    assert check.correct, [(q.max_ulps, q.rms_ulps) for q in check.quantities]


def _right_float32_dump(path):
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(8, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 8)
    wide = logits.astype(np.float64)
    p = np.exp(wide - wide.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(8), labels] -= 1
    np.savez(path, logits=logits, labels=labels, grad=(p / 8).astype(np.float32))
    return logits, labels, p / 8


def test_a_claimed_type_wider_than_the_stored_one_is_not_a_wrong_answer(tmp_path, sce):
    """float32 arrays claimed as computed in float64 cannot hold float64's digits, so the claim
    cannot judge them: one line, status 2. They were "not correct for float64" (status 1) with a
    hint that they were "saved as float64", which they were not."""
    path = tmp_path / "right32.npz"
    _right_float32_dump(path)
    assert sce("check", "--arrays", path).exit_code == 0
    result = sce("check", "--arrays", path, "--claimed-dtype", "float64")
    assert result.exit_code == 2, (result.exit_code, result.stdout[-400:])
    assert result.stdout == ""
    assert result.stderr == (
        "sce: error: --claimed-dtype: float64 for a gradient stored as float32, which cannot hold every float64 "
        "value: give the type it was computed in (float32, bfloat16, float16)\n"
    )
    for narrower in ("float32", "bfloat16", "float16"):
        assert sce("check", "--arrays", path, "--claimed-dtype", narrower).exit_code in (0, 1), narrower


def test_a_claim_the_stored_loss_or_a_half_type_cannot_hold_is_refused(tmp_path, sce):
    """float16 holds no bfloat16 beyond 65,504 and bfloat16 not float16's digits: neither holds the
    other's values. A float32 loss beside a float64 gradient cannot hold float64's either."""
    logits, labels, gradient = _right_float32_dump(tmp_path / "unused.npz")
    np.savez(tmp_path / "half.npz", logits=logits, labels=labels, grad=gradient.astype(np.float16))
    result = sce("check", "--arrays", tmp_path / "half.npz", "--claimed-dtype", "bfloat16")
    assert result.exit_code == 2
    assert "bfloat16 for a gradient stored as float16" in result.stderr
    np.savez(tmp_path / "mixed.npz", logits=logits, labels=labels, grad=gradient, loss=np.float32(1.0))
    result = sce("check", "--arrays", tmp_path / "mixed.npz")
    assert result.exit_code == 2
    assert "float64 for a loss stored as float32" in result.stderr


def test_sce_testing_refuses_a_dtype_wider_than_the_answers_by_its_keyword(tmp_path):
    from sce.testing import assert_cross_entropy_close

    logits, labels, gradient = _right_float32_dump(tmp_path / "right32.npz")
    assert_cross_entropy_close(logits, labels, gradient.astype(np.float32))
    with pytest.raises(ValueError, match=r"^dtype: float64 for a gradient stored as float32, which cannot hold"):
        assert_cross_entropy_close(logits, labels, gradient.astype(np.float32), dtype="float64")


def test_a_bfloat16_gradient_with_minus_one_at_the_predicted_class_is_not_correct():
    """Logits of a range near 180 in bfloat16: −1 at the argmax instead of the label moves two
    entries a row by their whole size, where a correct kernel is within an ulp or two. The
    worst-entry allowance, 4× a bfloat16 computation's worst (some 90 ulp, at the smallest
    probabilities, whose log rounds by a quarter), is more than every entry is of itself; each
    entry is also held to what rounding can cost there."""
    pytest.importorskip("ml_dtypes")
    logits, labels, _ = _wide_half_rows(1, 30.0)
    wide = logits.astype(np.float64)
    p = np.exp(wide - wide.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(16), wide.argmax(axis=1)] -= 1
    kind = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    check = _grade(logits.astype(kind), labels, (p / 16).astype(kind), None, _options(), "bfloat16")
    assert not check.correct
    assert check.quantities[0].beyond_rounding >= 16


@pytest.mark.parametrize("claimed", ["bfloat16", "float16"])
def test_pytorchs_half_type_gradients_with_options_stay_within_each_entrys_rounding(claimed):
    """PyTorch's own gradients (temperature, softcap, smoothing, wide logits): no entry is further
    off than rounding can make it, so the per-entry bound fails no right answer."""
    torch = pytest.importorskip("torch")
    kind = np.dtype(pytest.importorskip("ml_dtypes").bfloat16) if claimed == "bfloat16" else np.dtype(np.float16)
    rng = np.random.default_rng(12)
    for scale, temperature, cap, eps in ((3, 1.0, None, 0.0), (30, 0.5, 20.0, 0.1), (10, 2.0, None, 0.1)):
        z = torch.tensor((rng.normal(size=(8, 300)) * scale).astype(np.float32)).to(getattr(torch, claimed))
        z.requires_grad_(True)
        y = torch.tensor(rng.integers(0, 300, 8))
        a = z if cap is None else cap * torch.tanh(z / cap)
        torch.nn.functional.cross_entropy(a / temperature, y, label_smoothing=eps).backward()
        options = _options(eps=eps, temperature=temperature, cap=cap)
        stored = z.detach().float().numpy().astype(kind)
        check = _grade(stored, y.numpy(), z.grad.float().numpy().astype(kind), None, options, claimed)
        assert check.quantities[0].beyond_rounding == 0, (scale, temperature, cap, eps)
        assert check.correct or not check.judgeable, (scale, temperature, cap, eps)


def _confident_dump(path, dtype, loss=None, label_entry=None):
    """Four rows (0, 100, 50), label 1: each p_c is 1 − 2e-22, the exact mean loss 1.93e-22 (mpmath), never negative."""
    import mpmath

    mpmath.mp.dps = 50
    exps = [mpmath.exp(z) for z in (0, 100, 50)]
    exact = [float((e / sum(exps) - (k == 1)) / 4) for k, e in enumerate(exps)]
    arrays = {"logits": np.array([[0, 100, 50]] * 4, dtype), "labels": np.array([1] * 4, np.int64)}
    if label_entry is not None:
        exact[1] = label_entry
    arrays["grad"] = np.array([exact] * 4, dtype)
    if loss is not None:
        arrays["loss"] = np.array(loss, dtype)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("dtype", "loss"), [("float32", -2e-7), ("float64", -3e-16)])
def test_a_negative_loss_in_a_dump_is_not_correct_and_is_named_as_one(sce, tmp_path, dtype, loss):
    # The loss is held to ulps of the numbers it is formed from (about 1 here), where -2e-7 and -3e-16 are
    # an ulp or two; but no kernel that computes lse − z_c rounds below 0 (lse ≥ max z ≥ z_c).
    result = sce("check", "--arrays", _confident_dump(tmp_path / "dump.npz", dtype, loss), "--reduction", "mean")
    assert result.exit_code == 1, result.output
    assert f"verdict: not correct for {dtype}" in result.stdout
    assert "loss: 1 of 1 entries of the opposite sign to the exact value's, which no rounding explains" in result.stdout
    # Its entries are all within the allowance: the mistakes that give numbers would all fit, and none explains it.
    assert result.stdout.count("mistake: ") == 1
    assert "mistake: a negative loss: −log s ≥ 0 for every probability s ≤ 1" in result.stdout


def test_a_loss_of_0_and_a_label_entry_of_0_for_a_confident_row_are_correct(sce, tmp_path):
    # What float32 computes for these rows: p_c rounds to 1, so p_c − 1 and −log p_c are 0, never of the other sign.
    dump = _confident_dump(tmp_path / "dump.npz", "float32", 0.0, 0.0)
    result = sce("check", "--arrays", dump, "--reduction", "mean")
    assert result.exit_code == 0, result.output


def test_negative_row_losses_in_a_dump_are_not_correct(sce, tmp_path):
    dump = tmp_path / "rows.npz"
    np.savez(
        dump,
        logits=np.array([[0.0, 100.0, 50.0]] * 3),
        labels=np.array([1, 1, 1]),
        loss=np.array([1.9287498479639178e-22, -3e-16, 0.0]),
    )
    result = sce("check", "--arrays", dump, "--reduction", "none")
    assert result.exit_code == 1, result.output
    assert "loss: 1 of 3 entries of the opposite sign" in result.stdout


@pytest.mark.parametrize("claimed", ["float64", "float32"])
def test_a_positive_gradient_at_the_label_in_a_dump_is_not_correct(sce, tmp_path, claimed):
    # Rows (0, 40), label 1, mean over 2 rows: the label's entry is (s₁ − 1)/2 = −2.1e-18 (mpmath), and
    # s₁ ≤ 1 however it is rounded. Given as +2.1e-18 (the exact value negated) or as +1e-16 (float64's
    # p − 1 of +1e-16, halved) it is within 0.03 or 0.9 ulp of the 1 it is formed from, and still wrong.
    entry = 4.248354255291589e-18 / 2
    for label_entry in (entry, 1e-16 / 2):
        dump = tmp_path / "dump.npz"
        grad = np.array([[entry, label_entry]] * 2, dtype=claimed)
        np.savez(dump, logits=np.array([[0.0, 40.0]] * 2), labels=np.array([1, 1]), grad=grad)
        result = sce("check", "--arrays", dump, "--reduction", "mean", "--claimed-dtype", claimed)
        assert result.exit_code == 1, result.output
        assert (
            "gradient: 2 of 4 entries of the opposite sign to the exact value's, which no rounding explains "
            "(p − 1 ≤ 0 at the label and p ≥ 0 elsewhere, however p is rounded)"
        ) in result.stdout
        assert "mistake: " not in result.stdout  # every what-if is as near the truth as the answer


def test_a_negative_gradient_entry_off_the_label_is_not_correct_and_float64s_own_is():
    # Off the label each entry is p_k·(factors ≥ 0): never negative, however small.
    from sce import softmax_cross_entropy
    from sce.options import LossOptions

    z, labels = np.array([[0.0, 40.0, 1.0]]), np.array([1])
    options = LossOptions(reduction="mean", temperature=0.5, weight=(1.0, 2.0, 0.5))
    right = softmax_cross_entropy(z, labels, options=options).gradient
    assert check_dump(ArrayDump(z, labels, None, right, None, {}), options, "float64").correct
    wrong = right.copy()
    wrong[0, 0] = -wrong[0, 0]
    found = check_dump(ArrayDump(z, labels, None, wrong, None, {}), options, "float64")
    assert not found.correct and found.quantities[0].sign_flips == 1


@settings(deadline=None, max_examples=40)
@given(
    st.integers(1, 6),
    st.integers(2, 9),
    st.integers(0, 2**32 - 1),
    st.sampled_from([1.0, 20.0, 60.0]),
    st.sampled_from(["mean", "sum", "none"]),
)
def test_no_grader_passes_a_label_entry_of_the_wrong_sign_and_every_grader_passes_the_truth(n, k, seed, scale, reduction):
    # However confident the row (a gap of 60 puts p − 1 at −1e-26, a fraction of an ulp of the 1 it is
    # formed from), the label's entry negated is wrong in a dump and typed alike; the exact answer is right.
    from sce import softmax_cross_entropy
    from sce.grading.answers import check_answer
    from sce.options import LossOptions

    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    labels = rng.integers(0, k, n)
    options = LossOptions(reduction=reduction)
    right = softmax_cross_entropy(z, labels, options=options)
    assert check_dump(ArrayDump(z, labels, None, right.gradient, None, {}), options, "float64").correct
    flipped = right.gradient.copy()
    flipped[np.arange(n), labels] *= -1
    assume(bool((flipped[np.arange(n), labels] > 0).any()))
    assert not check_dump(ArrayDump(z, labels, None, flipped, None, {}), options, "float64").correct
    row = softmax_cross_entropy(z[:1], labels[:1], options=options)
    typed = [repr(float(v)) for v in row.gradient[0]]
    assert all(check.passed for check in check_answer(row, {"gradient": typed}))
    if row.gradient[0, labels[0]] < 0:
        typed[labels[0]] = repr(-float(row.gradient[0, labels[0]]))
        assert not any(check.passed for check in check_answer(row, {"gradient": typed}))
