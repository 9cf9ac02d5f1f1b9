"""The compiled loop of sce check --arrays (sce/grading/dump/_ulp_errors.c) gives the reports of
the numpy code it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sce import softmax_cross_entropy
from sce.grading.dump import ulp_kernel, verdict_pass
from sce.grading.dump.baseline import numpy_lane_sum
from sce.grading.dump.check import check_dump
from sce.io.arrays import ArrayDump
from sce.options import LossOptions

from .test_check_arrays_fast import _report, count_calls, dumps, reports_with_and_without

IGNORE = -100


def _full_report(check):
    """_report, and the sums of squares behind the typical errors (added in another order by the
    loop: equal to a few ulps, and the same to the 6 digits shown)."""
    squares = [(q.squares, q.baseline_squares, q.zero_squares) for q in check.quantities]
    typical = [(q.rms_ulps, q.baseline_rms_ulps, q.zero_rms_ulps) for q in check.quantities]
    return _report(check), squares, typical


def _assert_same(compiled, plain):
    assert compiled[0] == plain[0]
    for (s, b, z), (s2, b2, z2) in zip(compiled[1], plain[1]):
        assert s == pytest.approx(s2, rel=1e-12, abs=0)
        assert b == pytest.approx(b2, rel=1e-12, abs=0)
        assert z == pytest.approx(z2, rel=1e-12, abs=0)
    for found, expected in zip(compiled[2], plain[2]):
        assert found == pytest.approx(expected, rel=2e-6)


def test_the_compiled_loop_is_built_and_loaded():
    """pip install builds it where there is a C compiler (CI's machine has one): without it
    the tests below would compare numpy with itself (this one fails, the ones that need the
    loop are skipped)."""
    assert ulp_kernel.library() is not None, "sce/grading/dump/_ulp_errors.c was not built (no C compiler?)"


needs_the_loop = pytest.mark.skipif(ulp_kernel.library() is None, reason="the compiled loop was not built")


@needs_the_loop
def test_loading_the_loop_keeps_subnormal_numbers():
    """Regression (hostile review): built with CFLAGS=-Ofast, the library brought gcc's
    crtfastmath.o, which flushes subnormals to zero in the whole process once loaded, and a
    correct float64 gradient was failed by "inf" ulps. The build's flags now come after CFLAGS."""
    assert ulp_kernel.library() is not None
    tiny = np.array([5e-324, 1e-310])
    # Bits, not ==: with subnormals flushed, == reads them as 0 on both sides (review 6).
    assert (tiny * np.float64(1.0)).tobytes() == tiny.tobytes()
    assert np.nextafter(0.0, 1.0) + 0.0 > 0
    loss = softmax_cross_entropy(np.array([[0.0, 745.0]]), [1]).losses[0]  # e^-745, subnormal
    assert loss.tobytes() == np.float64(5e-324).tobytes()


def test_a_library_built_from_another_source_is_not_loaded(monkeypatch, tmp_path):
    """Regression (review 6): an editable install's library, built from an older source, was
    loaded after a checkout of a newer one, with the older one's bugs. The library carries its
    source's digest, and is loaded only where the source beside the Python code matches."""
    other = tmp_path / "_ulp_errors.c"
    other.write_bytes(b"/* another version */\n" + ulp_kernel._SOURCE.read_bytes())
    monkeypatch.setattr(ulp_kernel, "_SOURCE", other)
    ulp_kernel.library.cache_clear()
    try:
        assert ulp_kernel.library() is None
        assert ulp_kernel.lane_sum_f32(np.ones((1, 3), np.float32)) is None
    finally:
        monkeypatch.undo()
        ulp_kernel.library.cache_clear()
    missing = tmp_path / "nothing.c"
    monkeypatch.setattr(ulp_kernel, "_SOURCE", missing)
    ulp_kernel.library.cache_clear()
    try:
        assert ulp_kernel.library() is None  # no source to compare with: numpy grades
    finally:
        monkeypatch.undo()
        ulp_kernel.library.cache_clear()


def test_the_library_beside_the_module_comes_before_those_on_sys_path(monkeypatch, tmp_path):
    """Beside ulp_kernel.py: an install, or a build in place; then sys.path's, where a checkout's
    tests find the installed one (CI runs them from the checkout, which has no library)."""
    import importlib.machinery
    import sys

    elsewhere = tmp_path / "sce" / "grading" / "dump"
    elsewhere.mkdir(parents=True)
    planted = elsewhere / f"_ulp_errors{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    planted.write_bytes(b"not a library")
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path)])
    candidates = ulp_kernel._candidates()
    beside = [path for path in candidates if path.parent == ulp_kernel._SOURCE.parent]
    assert candidates[: len(beside)] == beside
    assert candidates[-1] == planted
    ulp_kernel.library.cache_clear()
    try:
        assert (ulp_kernel.library() is None) == (len(candidates) == 1)  # the planted file is skipped
    finally:
        monkeypatch.undo()
        ulp_kernel.library.cache_clear()


@needs_the_loop
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dumps(), st.sampled_from([1 << 20, 7, 30]), st.sampled_from([1 << 18, 1, 20]))
def test_the_compiled_loop_gives_the_reports_of_numpy(case, entries, slice_entries):
    _assert_same(*reports_with_and_without("COMPILED", case, entries, slice_entries, _full_report))


def _calls(monkeypatch):
    return count_calls(monkeypatch, ulp_kernel, "grade", "graded", "left")


def _dump(rng, rows=6, classes=40, dtype=np.float32, ignored=(1,), scale=1.0):
    z = (3 * rng.standard_normal((rows, classes))).astype(np.float32)
    labels = rng.integers(0, classes, rows)
    labels[list(ignored)] = IGNORE
    counted = labels != IGNORE
    e = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
    g = e / e.sum(axis=1, keepdims=True)
    g[np.flatnonzero(counted), labels[counted]] -= 1
    g[~counted] = 0
    return z, labels, (g / counted.sum() * scale).astype(dtype)


@needs_the_loop
@pytest.mark.parametrize("claimed, stored", [("float32", np.float32), ("float64", np.float64), ("float32", np.float64)])
def test_the_compiled_loop_is_the_path_taken(monkeypatch, claimed, stored):
    """The comparison above means something only if the loop grades: count its calls."""
    calls = _calls(monkeypatch)
    z, labels, g = _dump(np.random.default_rng(1), dtype=stored)
    check = check_dump(ArrayDump(z, labels, None, g, None, {}), LossOptions(reduction="mean"), claimed)
    assert check.correct
    assert calls == {"graded": 1, "left": 0}
    check = check_dump(ArrayDump(z, labels, None, g * 2, None, {}), LossOptions(reduction="mean"), claimed)
    assert not check.correct
    assert calls == {"graded": 2, "left": 0}


@needs_the_loop
@pytest.mark.parametrize("spoil", [np.nan, np.inf, -np.inf, 1e300])
def test_an_answer_that_is_not_finite_or_overflows_is_left_to_numpy(monkeypatch, spoil):
    """NaN and infinity are numpy's to grade (ulps knows them); an error whose square overflows
    too (the sums of squares would be inf)."""
    calls = _calls(monkeypatch)
    z, labels, g = _dump(np.random.default_rng(2), dtype=np.float64)
    g[0, 3] = spoil
    dump = ArrayDump(z, labels, None, g, None, {})
    compiled = _full_report(check_dump(dump, LossOptions(reduction="mean"), "float64"))
    assert calls == {"graded": 0, "left": 1}
    monkeypatch.setattr(verdict_pass, "COMPILED", False)
    _assert_same(compiled, _full_report(check_dump(dump, LossOptions(reduction="mean"), "float64")))
    assert compiled[0][0] is False  # not correct


def test_a_minus_zero_answer_is_no_error():
    """Regression (found while writing the loop): |−0.0 − 0.0| kept its sign bit, which read as an
    exponent of 1024 and the histogram's last bin. An ignored row's gradient of −0.0 is right."""
    z, labels, g = _dump(np.random.default_rng(3))
    g[1] = -0.0  # the ignored row
    check = check_dump(ArrayDump(z, labels, None, g, None, {}), LossOptions(reduction="mean"), "float32")
    assert check.correct
    assert check.quantities[0].counts[-2:].sum() == 0


def test_worst_entries_tie_to_the_earliest_as_numpys_do(monkeypatch):
    """An answer equal to the truth everywhere: every error is 0, and the worst shown are the
    first ten entries, as numpy's partition-then-sort picks them."""
    z = np.zeros((3, 7), np.float32)
    labels = np.array([0, 1, 2])
    g = np.full((3, 7), 1 / 7)
    g[[0, 1, 2], labels] -= 1
    dump = ArrayDump(z, labels, None, (g / 3).astype(np.float32), None, {})
    compiled = check_dump(dump, LossOptions(reduction="mean"), "float32").quantities[0].worst
    monkeypatch.setattr(verdict_pass, "COMPILED", False)
    plain = check_dump(dump, LossOptions(reduction="mean"), "float32").quantities[0].worst
    assert [(e.row, e.column, e.ulps) for e in compiled] == [(e.row, e.column, e.ulps) for e in plain]
    assert len(compiled) == 10


@needs_the_loop
@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 70),
    st.integers(0, 2**32 - 1),
    st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e30]),
    st.booleans(),
)
def test_the_compiled_lane_sum_is_numpys(rows, classes, seed, scale, special):
    rng = np.random.default_rng(seed)
    values = (scale * rng.standard_normal((rows, classes))).astype(np.float32)
    if special:
        values.ravel()[rng.integers(0, values.size, 3)] = rng.choice([0.0, -0.0, np.inf, np.nan, 1e38], 3)
    found = ulp_kernel.lane_sum_f32(values)
    assert found is not None
    expected = numpy_lane_sum(values, np.dtype(np.float32))
    assert found.shape == expected.shape == (rows, 1)
    assert found.tobytes() == expected.tobytes()


@needs_the_loop
@pytest.mark.parametrize("classes", [1, 511, 513, 1_000_000])
def test_the_compiled_loop_at_one_class_and_a_million(monkeypatch, classes):
    """Chunks of 512 entries: a row of one class, rows just short of and past a chunk, and a
    vocabulary of a million; a right answer passes and one 1 % off fails, the loop grading both
    (the class of sizes around the loop's lanes and blocks, not only the usual ones)."""
    calls = _calls(monkeypatch)
    rng = np.random.default_rng(classes)
    rows = 3 if classes < 1_000_000 else 1
    z, labels, g = _dump(rng, rows=rows, classes=classes, ignored=())
    right = check_dump(ArrayDump(z, labels, None, g, None, {}), LossOptions(reduction="mean"), "float32")
    wrong_g = (g * np.float32(1.01)).astype(np.float32)
    wrong = check_dump(ArrayDump(z, labels, None, wrong_g, None, {}), LossOptions(reduction="mean"), "float32")
    assert right.correct
    assert wrong.correct == (classes == 1)  # one class: the gradient is 0, and 1 % of 0 is 0
    assert calls["graded"] >= 2 and calls["left"] == 0
