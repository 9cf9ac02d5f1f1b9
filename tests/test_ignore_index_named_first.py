"""An ignore_index that is not an integer is named as the option's problem, before any label is judged by it.

PyTorch refuses it the same way (``F.cross_entropy(z, y, ignore_index=10.5)``: "argument 'ignore_index' must be
int, not float"); a label it was meant to ignore must never be blamed for it, nor the value truncated to 10."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sce.loss import linear_cross_entropy, softmax_cross_entropy
from sce.testing import check_cross_entropy, check_linear_cross_entropy

F32 = np.float32


def inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    hidden, classifier = rng.standard_normal((8, 4)).astype(F32), rng.standard_normal((6, 4)).astype(F32)
    labels = rng.integers(0, 6, 8)
    labels[1] = -100  # the row the index was meant to ignore: out of range for any other index
    return hidden, classifier, labels, hidden.astype(np.float64) @ classifier.astype(np.float64).T


def _softmax(ignore_index: Any) -> object:
    _, _, labels, logits = inputs()
    return softmax_cross_entropy(logits, labels, ignore_index=ignore_index)


def _linear(ignore_index: Any) -> object:
    hidden, classifier, labels, _ = inputs()
    return linear_cross_entropy(hidden, classifier, labels, ignore_index=ignore_index)


def _check(ignore_index: Any) -> object:
    _, _, labels, logits = inputs()
    return check_cross_entropy(logits, labels, np.zeros_like(logits), ignore_index=ignore_index)


def _check_linear(ignore_index: Any) -> object:
    hidden, classifier, labels, _ = inputs()
    return check_linear_cross_entropy(hidden, classifier, labels, ignore_index=ignore_index, loss=F32(1.0))


def _check_linear_shards(ignore_index: Any) -> object:
    hidden, classifier, labels, _ = inputs()
    shards = [classifier[:3], classifier[3:]]
    return check_linear_cross_entropy(hidden, shards, labels, ignore_index=ignore_index, loss=F32(1.0))


CALLS: dict[str, Callable[[Any], object]] = {
    "softmax_cross_entropy": _softmax,
    "linear_cross_entropy": _linear,
    "check_cross_entropy": _check,
    "check_linear_cross_entropy": _check_linear,
    "check_linear_cross_entropy (shards)": _check_linear_shards,
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize("value", [10.5, -100.0, True, "-100", np.float64(3.0)], ids=repr)
def test_an_ignore_index_that_is_not_an_integer_is_named_before_the_labels(call, value) -> None:
    # 10.5 with a label of -100: the labels were blamed ("label -100 is negative … (or 10.5 to ignore the row)"),
    # and check_cross_entropy truncated it to 10 (True to 1) before saying so.
    with pytest.raises(ValueError, match=re.escape(f"ignore_index {value!r} is not an integer")) as raised:
        call(value)
    assert "label" not in str(raised.value)


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_an_integer_ignore_index_of_numpys_type_is_taken(call) -> None:
    call(np.int64(-100))  # the row of label -100 is ignored: no error


@pytest.mark.parametrize("dump", ["hidden_float32_correct.npz", "dump_float32_correct.npz"])
def test_the_command_line_refuses_it_in_one_line(sce, dump) -> None:
    from importlib.resources import files

    result = sce("check", "--arrays", files("sce") / "samples" / dump, "--ignore-index", "10.5")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        "sce check: error: Invalid value for '--ignore-index': '10.5' is not a valid int. (see 'sce check --help')\n"
    )
