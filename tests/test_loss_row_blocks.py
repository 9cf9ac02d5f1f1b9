"""The core in row blocks gives the reference path's results, bit for bit.

The reference (:mod:`tests.core_reference`) forms every N×K intermediate for
all rows at once; the public core works through cache-sized blocks of rows
and forms the explanations' intermediates only when they are read. Every
field, every warning and the sign of every zero must agree, for every option
and with blocks of any size (here as small as one row, so that hypothesis'
few rows cross several blocks, and with N not a multiple of the block).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sce.loss import InvalidInput, LossOptions, row_blocks, softmax_cross_entropy

from .core_reference import reference_softmax_cross_entropy

FIELDS = (
    "logits",
    "scaled_logits",
    "max_logit",
    "argmax",
    "shifted_logits",
    "exp_shifted",
    "exp_sum",
    "probabilities",
    "log_probabilities",
    "labels",
    "target",
    "counted",
    "losses",
    "loss",
    "denominator",
    "gradient",
)


@contextlib.contextmanager
def rows_per_block(rows: int | None) -> Iterator[None]:
    """Make the core's blocks ``rows`` rows long (None: its own choice)."""
    if rows is None:
        yield
        return
    saved = row_blocks.block_rows
    row_blocks.block_rows = lambda n_classes, itemsize: rows
    try:
        yield
    finally:
        row_blocks.block_rows = saved


def recorded(compute: Any) -> tuple[Any, list[tuple[str, str, tuple[int, ...]]]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = compute()
    return value, [(type(w.message).__name__, str(w.message), getattr(w.message, "rows", ())) for w in caught]


def assert_identical(actual: Any, expected: Any, name: str) -> None:
    if expected is None or isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if expected is None:
            assert actual is None, name
            return
        assert type(actual) is type(expected), name
        np.testing.assert_array_equal(np.float64(actual), np.float64(expected), err_msg=name, strict=True)
        assert np.signbit(actual) == np.signbit(expected), name
        return
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, name
    np.testing.assert_array_equal(actual, expected, err_msg=name, strict=True)
    if expected.dtype.kind == "f":
        np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected), err_msg=f"{name}: sign of zero")


def check_same(logits, labels, targets, options: LossOptions, mean_denominator, block_rows: int | None) -> None:
    expected, expected_warnings = recorded(
        lambda: reference_softmax_cross_entropy(
            logits, labels, targets=targets, options=options, mean_denominator=mean_denominator
        )
    )
    with rows_per_block(block_rows):
        result, actual_warnings = recorded(
            lambda: softmax_cross_entropy(
                logits, labels, targets=targets, options=options, mean_denominator=mean_denominator
            )
        )
    # LossWarnings exactly, in order; and never one of numpy's own RuntimeWarnings
    # (no raw warning reaches the user), which the frozen reference
    # path may still give where a loss overflows.
    # (The frozen reference predates the warning that a sum of finite losses
    # overflows; test_overflowing_sum_of_finite_losses_is_warned_about checks it.)
    assert [w for w in actual_warnings if w[0] != "RuntimeWarning" and "reduced loss overflows" not in w[1]] == [
        w for w in expected_warnings if w[0] != "RuntimeWarning"
    ]
    assert {w for w in actual_warnings if w[0] == "RuntimeWarning"} == set()
    for name in FIELDS:
        actual, reading_warnings = recorded(lambda: getattr(result, name))  # noqa: B023
        assert reading_warnings == [], name
        assert_identical(actual, expected[name], name)


LOGIT = st.one_of(
    st.floats(-50, 50),
    st.floats(-1e300, 1e300),
    st.sampled_from([0.0, -0.0, -np.inf, 40.0, -745.0, 709.0, 1e-310, -1e308]),
)


@st.composite
def problems(draw: st.DrawFn) -> tuple[Any, ...]:
    dtype = draw(st.sampled_from(["float64", "float32"]))
    n = draw(st.integers(1, 9))
    k = draw(st.integers(1, 20))
    z = draw(arrays(np.float64, (n, k), elements=LOGIT))
    if dtype == "float32":
        z = np.clip(z, -3e38, 3e38)
        z[np.isnan(z)] = 0.0
    finite_column = draw(arrays(np.int64, n, elements=st.integers(0, k - 1)))
    all_masked = np.all(z == -np.inf, axis=1)
    z[all_masked, finite_column[all_masked]] = draw(st.floats(-50, 50))
    weight = draw(st.one_of(st.none(), arrays(np.float64, k, elements=st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.5, 1e-3]))))
    options = LossOptions(
        weight=None if weight is None else tuple(float(w) for w in weight),
        label_smoothing=draw(st.one_of(st.just(0.0), st.sampled_from([0.1, 1.0]), st.floats(0, 1))),
        ignore_index=draw(st.sampled_from([-100, 0, 1, 7])),
        reduction=draw(st.sampled_from(["none", "mean", "sum"])),
        temperature=draw(st.one_of(st.just(1.0), st.sampled_from([1e-3, 0.5, 3.0, 1e3]), st.floats(1e-2, 1e2))),
        dtype=dtype,
    )
    labels = targets = None
    if draw(st.booleans()):
        choices = list(range(k)) + [options.ignore_index]
        labels = np.array(draw(st.lists(st.sampled_from(choices), min_size=n, max_size=n)), dtype=np.int64)
    else:
        raw = draw(arrays(np.float64, (n, k), elements=st.sampled_from([0.0, -0.0, 1.0, 0.25, 3.0, 1e-9])))
        raw[raw.sum(axis=1) == 0, 0] = 1.0
        targets = raw / raw.sum(axis=1, keepdims=True)
    mean_denominator = draw(st.one_of(st.none(), st.sampled_from([0.0, 3.0, 1e6])))
    block_rows = draw(st.one_of(st.none(), st.integers(1, 4)))
    return z.astype(dtype), labels, targets, options, mean_denominator, block_rows


@settings(max_examples=400)
@given(problems())
def test_blocks_give_the_reference_results_bit_for_bit(problem):
    check_same(*problem)


@pytest.mark.parametrize("block_rows", [1, 3, 4, 7, None])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(reduction="mean"),
        dict(reduction="sum", temperature=0.25),
        dict(reduction="mean", weight="random", label_smoothing=0.1, ignore_index=3, temperature=2.0),
        dict(reduction="none", weight="random", label_smoothing=1.0),
    ],
    ids=["plain", "mean", "sum-T", "everything", "smoothing-1"],
)
@pytest.mark.parametrize("kind", ["labels", "targets"])
def test_many_rows_not_a_multiple_of_the_block(kind, options, dtype, block_rows):
    rng = np.random.default_rng(12)
    n, k = 23, 300
    z = rng.normal(0, 10, (n, k))
    z[rng.random((n, k)) < 0.05] = -np.inf
    z[:, 0] = rng.normal(0, 10, n)  # no row all -inf
    options = dict(options)
    if options.get("weight") == "random":
        w = rng.uniform(0, 3, k)
        w[::5] = 0
        options["weight"] = tuple(w.tolist())
    labels = targets = None
    if kind == "labels":
        labels = rng.integers(0, k, n)
        labels[::4] = options.get("ignore_index", -100)
        labels[1] = int(np.argmax(z[1]))  # the label at the argmax, and at a -inf logit of weight 0
        if options.get("weight"):
            labels[2] = 0
    else:
        q = rng.random((n, k)) * (rng.random((n, k)) < 0.2)
        q[:, 0] += 1
        targets = q / q.sum(axis=1, keepdims=True)
    check_same(z.astype(dtype), labels, targets, LossOptions(**options, dtype=dtype), None, block_rows)


@pytest.mark.parametrize("block_rows", [2, None])
def test_warnings_and_their_rows(block_rows):
    # Infinite losses in rows 1 and 4, gradients overflowing in 0 and 4 (T near 0).
    z = np.array([[0.0, 1e300], [0.0, -np.inf], [1.0, 2.0], [3.0, 4.0], [-np.inf, 5.0]])
    labels = np.array([0, 1, 0, 1, 0])
    check_same(z, labels, None, LossOptions(temperature=1e-300), None, block_rows)
    check_same(z, labels, None, LossOptions(reduction="mean", ignore_index=0, weight=(1.0, 0.0)), None, block_rows)


def test_fortran_order_gives_the_same_bits():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 5, (50, 37))
    labels = rng.integers(0, 37, 50)
    options = LossOptions(label_smoothing=0.1, weight=tuple(rng.uniform(0, 2, 37).tolist()))
    c_order = softmax_cross_entropy(z, labels, options=options)
    f_order = softmax_cross_entropy(np.asfortranarray(z), labels, options=options)
    for name in ("probabilities", "losses", "gradient", "log_probabilities"):
        np.testing.assert_array_equal(getattr(f_order, name), getattr(c_order, name), strict=True)


def test_a_row_alone_and_in_a_batch_agree():
    # Each row's numbers depend on that row alone (no BLAS call whose work split
    # depends on the number of rows), so `sce grad` and `sce batch` agree.
    rng = np.random.default_rng(5)
    z = rng.normal(0, 5, (301, 1000))
    labels = rng.integers(0, 1000, 301)
    options = LossOptions(label_smoothing=0.2, weight=tuple(rng.uniform(0, 2, 1000).tolist()), reduction="none")
    batch = softmax_cross_entropy(z, labels, options=options)
    for row in (0, 150, 300):
        alone = softmax_cross_entropy(z[row : row + 1], labels[row : row + 1], options=options)
        np.testing.assert_array_equal(alone.losses, batch.losses[row : row + 1], strict=True)
        np.testing.assert_array_equal(alone.gradient, batch.gradient[row : row + 1], strict=True)


def test_the_result_does_not_alias_the_callers_targets():
    targets = np.array([[0.25, 0.75]])
    result = softmax_cross_entropy([[1.0, 2.0]], targets=targets)
    targets[0] = [1.0, 0.0]
    assert result.target.tolist() == [[0.25, 0.75]]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("k", [2, 17, 100, 1000])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_bad_logit_anywhere_in_a_row_is_found_where_it_is(dtype, k, bad):
    # The check goes through each row's argmax: a NaN or +inf before or after
    # the row's largest finite logit must still be found, at its own place.
    rng = np.random.default_rng(k)
    for column in sorted({0, k // 2, k - 1}):
        z = rng.normal(size=(4, k))
        z[2, (column + 1) % k] = 100.0
        z[2, column] = bad
        with pytest.raises(InvalidInput) as caught:
            softmax_cross_entropy(z.astype(dtype), np.zeros(4, dtype=np.int64))
        assert (caught.value.field, caught.value.row, caught.value.column) == ("logits", 2, column)


def test_a_row_of_minus_infinity_is_found():
    z = np.zeros((5, 7))
    z[3] = -np.inf
    with pytest.raises(InvalidInput, match="every logit in the row is -inf") as caught:
        softmax_cross_entropy(z, np.zeros(5, dtype=np.int64))
    assert caught.value.row == 3


def test_overflowing_sum_of_finite_losses_is_warned_about():
    # Found by hypothesis: two rows of loss 1e308 each; their sum is inf, once with a raw
    # numpy "overflow encountered in reduce", now with one LossWarning that says why.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = softmax_cross_entropy([[-1e308, 0.0], [0.0, -1e308]], [0, 1], reduction="sum")
    assert result.loss == float("inf")
    assert [type(w.message).__name__ for w in caught] == ["LossWarning"]
    assert "the reduced loss overflows float64" in str(caught[0].message)
