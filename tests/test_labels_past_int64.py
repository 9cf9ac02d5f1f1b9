"""Unsigned labels past a 64-bit signed integer are refused by their own value: cast to int64 they would wrap,
2⁶⁴ − 100 into −100 (an ignored row) and 2⁶³ + 1 into a negative label."""

from __future__ import annotations

import numpy as np
import pytest

from sce.testing import check_linear_cross_entropy


def test_a_uint64_label_past_int64_is_not_read_as_ignore_index() -> None:
    # np.uint64(2**64 - 100) wraps to -100: the row is silently ignored and the check passes.
    from sce.loss.result import InvalidInput

    e = np.ones((2, 3), np.float32)
    c = np.ones((4, 3), np.float32)
    y = np.array([2**64 - 100, 0], np.uint64)
    with pytest.raises(InvalidInput, match="18446744073709551516"):
        check_linear_cross_entropy(e, c, y, loss=np.float32(np.log(4)))


def test_a_uint64_label_past_int64_is_named_by_its_own_value() -> None:
    # "label -9223372036854775807 is negative" for a label of 2**63 + 1, "label -1 is negative" for 2**64 − 1.
    from sce.loss.result import InvalidInput

    e = np.ones((2, 3), np.float32)
    c = np.ones((4, 3), np.float32)
    with pytest.raises(InvalidInput) as refused:
        check_linear_cross_entropy(e, c, np.array([2**63 + 1, 0], np.uint64), loss=np.float32(np.log(4)))
    assert "9223372036854775809" in str(refused.value) and "negative" not in str(refused.value)


def test_a_uint64_label_past_int64_in_a_dump_of_logits_is_refused_not_ignored(tmp_path, sce) -> None:
    # The same wrap in sce.softmax_cross_entropy and `sce check --arrays`: "verdict: correct", exit 0,
    # the row of label 18446744073709551516 graded as ignored (-100).
    path = tmp_path / "u64.npz"
    labels = np.array([2**64 - 100, 0], np.uint64)
    np.savez(path, logits=np.zeros((2, 4), np.float32), labels=labels, loss=np.float32(np.log(4)))
    run = sce("check", "--arrays", path)
    assert run.exit_code == 1, run.stdout[-300:]
    assert "18446744073709551516" in run.stderr
