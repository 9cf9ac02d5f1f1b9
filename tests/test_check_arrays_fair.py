"""Verdicts fair to every correct implementation a real kernel makes, and never to a wrong one:
bfloat16 graded as bfloat16 with or without ml_dtypes, flushed subnormals, sequential sums,
answers stored in a wider type, and a wrong answer hidden by a small factor."""

from __future__ import annotations

import sys

import numpy as np
import pytest

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
