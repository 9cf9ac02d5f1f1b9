"""float32 logits computed in float64 skip TwoSum where every shift z − M is exact
(sce.loss.log_softmax.shift_is_exact), and give the bits of the same logits given as float64."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sce import softmax_cross_entropy
from sce.loss import log_softmax as log_softmax_module
from sce.loss.log_softmax import shift_and_scale, shift_is_exact

IGNORE = -100


def _float32_rows(draw):
    rows, classes = draw(st.integers(1, 4)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spread = draw(st.sampled_from([1.0, 10.0, 1e4, 1e8, 1e10]))  # octaves of |z| below the largest
    z = rng.standard_normal((rows, classes)) * draw(st.sampled_from([1e-20, 1.0, 3.0, 1e3, 1e30]))
    z *= spread ** -rng.random((rows, classes))
    if draw(st.booleans()):
        z[0, 0] = draw(st.sampled_from([0.0, -0.0, 1e-45, -np.inf]))  # zero, subnormal, masked
    return np.clip(z, -3e38, 3e38).astype(np.float32)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_where_the_shift_is_called_exact_twosum_finds_no_error(data):
    z32 = _float32_rows(data.draw)
    z = z32.astype(np.float64)
    if not shift_is_exact(z32):
        return
    _, err = shift_and_scale(z, z.max(axis=1), 1.0)
    assert (err == 0).all()


def test_the_exact_shift_holds_at_its_bound_and_is_refused_beyond():
    """A spread of 28 octaves with the worst mantissas (the largest below 16, the smallest odd one 28
    octaves down): exact. 31 octaves down the difference needs 54 bits: TwoSum finds an error, and
    shift_is_exact says no."""
    largest = np.float32(np.nextafter(np.float32(16), np.float32(0)))  # 2^4 − 2^-20, exponent 3
    for octaves, exact in ((28, True), (31, False)):
        small = np.float32(2.0 ** (3 - octaves) * (1 + 2.0**-23))  # odd last bit
        z32 = np.array([[largest, -small], [-largest, small]], np.float32)
        _, err = shift_and_scale(z32.astype(np.float64), z32.astype(np.float64).max(axis=1), 1.0)
        assert shift_is_exact(z32) is exact
        assert bool((err == 0).all()) is exact


@pytest.mark.filterwarnings("ignore:every row is ignored")
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_float32_logits_give_the_bits_of_their_float64_copy(data):
    """The core given float32 logits (the exact shift where it holds) and given them as float64
    (TwoSum): every result the same bits."""
    z32 = _float32_rows(data.draw)
    if not np.isfinite(z32.max(axis=1)).all():
        return  # a row of -inf: refused either way
    rows, classes = z32.shape
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    labels = rng.integers(0, classes, rows)
    labels[rng.random(rows) < 0.3] = IGNORE
    options = {
        "reduction": data.draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": data.draw(st.sampled_from([0.0, 0.1])),
        "weight": rng.uniform(0.1, 3, classes) if data.draw(st.booleans()) else None,
        "z_loss": data.draw(st.sampled_from([0.0, 1e-3])),
    }
    narrow = softmax_cross_entropy(z32, labels, **options)
    wide = softmax_cross_entropy(z32.astype(np.float64), labels, **options)
    for name in ("probabilities", "gradient", "losses", "log_sum_exp"):
        assert getattr(narrow, name).tobytes() == getattr(wide, name).tobytes(), name
    assert narrow.log_probabilities.tobytes() == wide.log_probabilities.tobytes()
    assert repr(narrow.loss) == repr(wide.loss)


def test_the_exact_shift_is_the_path_taken_for_float32_logits_of_one_scale(monkeypatch):
    calls = []
    original = log_softmax_module.shift_and_scale

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(log_softmax_module, "shift_and_scale", counted)
    z32 = (3 * np.random.default_rng(4).standard_normal((5, 100))).astype(np.float32)
    softmax_cross_entropy(z32, np.arange(5))
    assert calls == []  # no TwoSum
    softmax_cross_entropy(z32.astype(np.float64), np.arange(5))
    assert calls == [1]
    softmax_cross_entropy(z32, np.arange(5), temperature=0.5)  # a division's rounding to recover
    assert calls == [1, 1]
