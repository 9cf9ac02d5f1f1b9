"""Quick mode (and the check on shards, which allows a correct kernel's worst case as quick mode does)
allows a loss reduced over N rows what a sequential float32 sum of the rows' losses may be off by:
Higham's bound, (N − 1)·u₃₂ of Σ|ℓᵢ|. Expected values: float64 numpy on float32 inputs, and the
kernel's sum formed by numpy's float32 cumulative sum (one addition after another)."""

from __future__ import annotations

import numpy as np
import pytest

from sce.testing import check_linear_cross_entropy

F32 = np.float32
N, D, V = 200_000, 4, 8


def _problem(seed: int):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((N, D)).astype(F32)
    classifier = (rng.standard_normal((V, D)) / 2).astype(F32)
    return hidden, classifier, rng.integers(0, V, N)


def _row_losses(hidden, classifier, labels, dtype) -> np.ndarray:  # noqa: ANN001
    """Each row's cross-entropy, its logits and log-sum-exp formed in ``dtype``."""
    z = hidden.astype(dtype) @ classifier.astype(dtype).T
    top = z.max(axis=1, keepdims=True)
    lse = (top + np.log(np.exp(z - top).sum(axis=1, keepdims=True)))[:, 0]
    return lse - z[np.arange(len(labels)), labels]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_loss_summed_row_by_row_in_float32_passes_quick_mode_and_shards(seed: int, reduction: str) -> None:
    hidden, classifier, labels = _problem(seed)
    losses = _row_losses(hidden, classifier, labels, F32)
    total = np.cumsum(losses, dtype=F32)[-1]  # total += loss_i, in float32
    loss = total / F32(N) if reduction == "mean" else total
    exact = _row_losses(hidden, classifier, labels, np.float64).sum() / (N if reduction == "mean" else 1)
    size = np.abs(losses.astype(np.float64)).sum() / (N if reduction == "mean" else 1)
    assert abs(float(loss) - exact) <= (N + 2) * 2.0**-24 * size  # Higham's bound, and the premise
    quick = check_linear_cross_entropy(hidden, classifier, labels, loss=loss, reduction=reduction, mode="quick")
    assert quick.passed, str(quick)
    shards = check_linear_cross_entropy(hidden, [classifier[:3], classifier[3:]], labels, loss=loss,
                                        reduction=reduction)  # fmt: skip
    assert shards.passed, str(shards)
    wrong = loss * F32(1.1)  # a mean over N/1.1 rows, or a term counted one time in ten twice
    for classifier_given, mode in ((classifier, "quick"), ([classifier[:3], classifier[3:]], "full")):
        report = check_linear_cross_entropy(hidden, classifier_given, labels, loss=wrong, reduction=reduction,
                                            mode=mode)  # fmt: skip
        assert not report.passed, str(report)


def test_quick_mode_passes_a_loss_summed_row_by_row_in_float32() -> None:
    # Seed 0 once failed: "loss 35.2 ulp > 14.1 allowed", the allowance leaving out the sum over the rows,
    # while the full check passed it.
    hidden, classifier, labels = _problem(0)
    losses = _row_losses(hidden, classifier, labels, F32)
    loss = np.cumsum(losses, dtype=F32)[-1] / F32(N)
    assert check_linear_cross_entropy(hidden, classifier, labels, loss=loss).passed
    quick = check_linear_cross_entropy(hidden, classifier, labels, loss=loss, mode="quick")
    assert quick.passed, str(quick)
