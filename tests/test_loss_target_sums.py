"""Probability targets given in float32 (or a half type) sum to 1 only within that type's
rounding: a framework's float32 softmax over 256,000 classes sums to 1 + 1.1e-6, beyond the
1e-6 that typed or float64 targets are held to. Regression: such a dump was refused by
`sce check --arrays`, `sce batch` and the Python API as "targets sum to 1.000001081, not 1".

The allowed distance, 2u of the stored type plus 4·√K·u of float32, is worked out here by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sce.grading.dump.check import check_dump
from sce.io.arrays import ArrayDump
from sce.loss import InvalidInput, softmax_cross_entropy
from sce.loss.validation import target_sum_tolerance
from sce.options import LossOptions

U32 = 2.0**-24


def _float32_softmax(rows: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and a float32 softmax of other logits, as a framework computes it: its sum over
    the classes in AVX2's 8 lanes, each in order (numpy's pairwise sum is ten times closer)."""
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(rows, classes)) * 3).astype(np.float32)
    other = (rng.normal(size=(rows, classes)) * 2).astype(np.float32)
    e = np.exp(other - other.max(axis=1, keepdims=True))
    running = np.zeros((rows, 8), np.float32)
    for start in range(0, classes, 8):
        running = (running + e[:, start : start + 8]).astype(np.float32)
    return logits, (e / running.sum(axis=1, keepdims=True, dtype=np.float32)).astype(np.float32)


def _uniform_off_by(classes: int, off: float, dtype=np.float32) -> np.ndarray:
    """One row of 1/K in ``dtype``, its first entry raised so that the row sums to 1 + ~off."""
    row = np.full(classes, 1 / classes, dtype=dtype)
    row[0] = dtype(row[0].astype(np.float64) + off)
    return row[None, :]


@pytest.mark.parametrize(
    ("dtype", "classes", "expected"),
    [
        (np.float32, 256_000, 2 * U32 + 4 * 256_000**0.5 * U32),  # 1.2e-4
        (np.float32, 10, 1e-6),  # 2u + 4·√10·u = 8.7e-7: the floor
        (np.float16, 1_000, 2 * 2.0**-11 + 4 * 1_000**0.5 * U32),
        (np.float64, 256_000, 1e-6),
        (np.int64, 3, 1e-6),
    ],
)
def test_the_tolerance_by_stored_type(dtype, classes, expected):
    assert target_sum_tolerance(np.dtype(dtype), classes) == pytest.approx(expected, rel=1e-12)


def test_bfloat16_targets_get_their_own_rounding():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    assert target_sum_tolerance(np.dtype(ml_dtypes.bfloat16), 100) == pytest.approx(2 * 2.0**-8 + 40 * U32)


def test_regression_float32_targets_off_by_float32_rounding_are_taken():
    targets = _uniform_off_by(1_000, 5e-6)
    assert 1e-6 < abs(targets.astype(np.float64).sum() - 1) < target_sum_tolerance(np.dtype(np.float32), 1_000)
    result = softmax_cross_entropy(np.zeros((1, 1_000)), targets=targets)
    assert np.isfinite(result.losses).all()
    # The same numbers typed (float64) are held to 1e-6.
    with pytest.raises(InvalidInput, match=r"targets sum to 1\.00000\d+, not 1.*within 1e-06\)$"):
        softmax_cross_entropy(np.zeros((1, 1_000)), targets=targets.astype(np.float64))


def test_float32_targets_beyond_their_rounding_are_refused_with_the_type_named():
    with pytest.raises(InvalidInput, match=r"targets sum to 1\.001\d*, not 1.*within 7\.7e-06 for float32 targets\)"):
        softmax_cross_entropy(np.zeros((1, 1_000)), targets=_uniform_off_by(1_000, 1e-3))


def test_regression_a_float32_vocabulary_softmax_as_targets_checks():
    """The case found: PyTorch-like float32 softmax targets at K = 256,000, and a correct
    float32 gradient; a wrong one is graded and its mistakes looked for, not refused."""
    logits, targets = _float32_softmax(4, 256_000)
    assert np.abs(targets.astype(np.float64).sum(axis=1) - 1).max() > 1e-6  # the float32 sum's rounding
    exact = softmax_cross_entropy(logits.astype(np.float64), targets=targets, reduction="mean")
    grad = exact.gradient.astype(np.float32)
    options = LossOptions(reduction="mean")
    assert check_dump(ArrayDump(logits, None, targets, grad, None, {}), options, "float32").correct
    wrong = check_dump(ArrayDump(logits, None, targets, grad * np.float32(3), None, {}), options, "float32")
    assert not wrong.correct


def test_regression_sce_batch_takes_float32_targets_within_their_rounding(tmp_path, sce):
    targets = np.repeat(_uniform_off_by(1_000, 5e-6), 2, axis=0)
    logits = np.zeros((2, 1_000), np.float32)
    np.savez(tmp_path / "dump.npz", logits=logits, targets=targets)
    out = tmp_path / "out.npz"
    result = sce("batch", str(tmp_path / "dump.npz"), "-o", str(out), "--quiet")
    assert result.exit_code == 0, result.stderr
    with np.load(out) as written:
        assert np.isfinite(written["loss"]).all()
