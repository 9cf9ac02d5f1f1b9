"""sce check --arrays' faster pass gives the very reports of the path it
replaces: labels without smoothing graded by sce.grading.dump.sparse_labels against the dense
coefficients (SPARSE_LABELS off), and the histogram's looked-up bins and the in-place ulp unit
against the formulas they replace, on dumps of every type and option generated here."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sce.grading.dump import check, histogram, verdict_pass
from sce.grading.dump.baseline import ulp_unit
from sce.io.arrays import ArrayDump
from sce.options import LossOptions

IGNORE = -100
DTYPES = ["float64", "float32", "float16"]
try:
    import ml_dtypes  # noqa: F401

    DTYPES.append("bfloat16")
except ImportError:  # pragma: no cover - the test extra installs it
    pass


def _numpy(name):
    from sce.grading.dump.baseline import numpy_dtype

    return numpy_dtype(name)


def _report(check):
    """Everything a report shows, as plain values (NaN made comparable)."""
    out = [check.correct, tuple(check.mistakes)]
    for q in check.quantities:
        worst = [(e.row, e.column, repr(e.expected), repr(e.given), repr(e.ulps)) for e in q.worst]
        out.append((q.name, q.entries, q.counts.tolist(), repr(q.max_ulps), repr(q.baseline_ulps), worst))
    return out


def _answer(z, labels, options, dtype, rng, mistake):
    """A gradient and row losses made in float32 with numpy (a plain computation, scaled as the
    reduction asks), then spoiled as ``mistake`` says and stored in ``dtype``."""
    x = z.astype(np.float32) / np.float32(options.temperature)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    counted = labels != IGNORE
    w = np.ones(z.shape[1], np.float32) if options.weight is None else np.asarray(options.weight, np.float32)
    g = p.copy()
    rows = np.flatnonzero(counted)
    g[rows, labels[counted]] -= 1
    g *= np.where(counted, w[np.where(counted, labels, 0)], 0)[:, None]
    with np.errstate(divide="ignore"):
        picked = p[np.arange(len(z)), np.where(counted, labels, 0)]
        losses = np.where(counted, -np.log(picked), 0).astype(np.float32)
    if options.reduction == "mean":
        total = max(float(np.where(counted, w[np.where(counted, labels, 0)], 0).sum()), 1.0)
        g /= np.float32(total)
    if mistake == "noise":
        g *= (1 + rng.normal(0, 1e-5, g.shape)).astype(np.float32)
    elif mistake == "all rows":
        g *= np.float32(counted.sum() / len(z))
    elif mistake == "nan":
        g[0, 0] = np.nan
    kind = _numpy(dtype)
    return g.astype(kind), losses.astype(kind)


@st.composite
def dumps(draw):
    dtype = draw(st.sampled_from(DTYPES))
    rows = draw(st.integers(1, 9))
    classes = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 3.0, 30.0, 1e4, 6e4]))
    z = (scale * rng.standard_normal((rows, classes))).astype(np.float32)
    if draw(st.booleans()):
        z[rng.integers(0, rows), rng.integers(0, classes)] = z.max() + 40  # a confident row
    z = np.clip(z, -6e4, 6e4)  # finite in float16 (whose z − max can still overflow)
    labels = rng.integers(0, classes, rows)
    labels[rng.random(rows) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = IGNORE
    options = LossOptions(
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
        weight=tuple(rng.uniform(0.1, 3, classes).tolist()) if draw(st.booleans()) else None,
        label_smoothing=draw(st.sampled_from([0.0, 0.0, 0.1])),
        temperature=draw(st.sampled_from([1.0, 1.0, 0.7])),
        softcap=draw(st.sampled_from([None, 5.0])),
        z_loss=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        smoothing_style=draw(st.sampled_from(["uniform", "off-target"])),
    )
    mistake = draw(st.sampled_from(["none", "noise", "all rows", "nan"]))
    grad, losses = _answer(z, labels, options, dtype, rng, mistake)
    loss_kind = draw(st.sampled_from(["none", "rows", "reduced"]))
    if loss_kind == "rows" and options.reduction == "none":
        loss = losses
    elif loss_kind == "reduced" and options.reduction != "none":
        loss = np.asarray(losses.astype(np.float64).sum(), dtype=losses.dtype)
    else:
        loss = None
    stored = z.astype(_numpy(dtype)) if draw(st.booleans()) else z  # logits as the answer's type, or float32
    # Claimed as the answer's type, or as float32 where its type holds float32's values.
    claimed = dtype if draw(st.booleans()) or dtype not in ("float32", "float64") else "float32"
    return ArrayDump(stored, labels, None, grad, loss, {}), options, claimed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dumps(), st.sampled_from([1 << 20, 7, 30]), st.sampled_from([1 << 18, 1, 20]))
def test_sparse_labels_give_the_reports_of_the_dense_coefficients(case, entries, slice_entries):
    fast, dense = reports_with_and_without("SPARSE_LABELS", case, entries, slice_entries)
    assert fast == dense


def reports_with_and_without(flag, case, entries, slice_entries, report=_report):
    """The dump's report with the verdict pass's ``flag`` on and off, in blocks and slices of that many entries."""
    dump, options, claimed = case
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(check, "BLOCK_ENTRIES", entries)
        patch.setattr(verdict_pass, "SLICE_ENTRIES", slice_entries)
        on = report(check.check_dump(dump, options, claimed))
        patch.setattr(verdict_pass, flag, False)
        off = report(check.check_dump(dump, options, claimed))
    return on, off


def test_sparse_labels_are_the_path_taken_and_a_bad_row_is_left_to_the_dense_one(monkeypatch):
    """The equivalence above means something only if both paths run: count them."""
    from sce.grading.dump import sparse_labels as label_block

    calls = count_calls(monkeypatch, label_block, "baseline", "sparse", "none")
    z = np.array([[1.0, 2.0, 3.0], [0.0, -60000.0, 60000.0]], np.float16)
    labels = np.array([2, 0])
    grad = np.zeros((2, 3), np.float16)
    loss = np.zeros(2, np.float16)
    dump = ArrayDump(z, labels, None, grad, loss, {})
    check.check_dump(dump, LossOptions(reduction="none"), "float16")
    # float16's z − max overflows to −inf in the second row: not finite, so the dense path grades it
    assert calls == {"sparse": 0, "none": 1}
    check.check_dump(ArrayDump(z[:1], labels[:1], None, grad[:1], loss[:1], {}), LossOptions(), "float16")
    assert calls == {"sparse": 1, "none": 1}


def count_calls(monkeypatch, module, name, found, none):
    """Calls of module.name from now on, counted under ``found`` or ``none`` by what they return."""
    calls = {found: 0, none: 0}
    original = getattr(module, name)

    def counted(*args, **kwargs):
        result = original(*args, **kwargs)
        calls[found if result is not None else none] += 1
        return result

    monkeypatch.setattr(module, name, counted)
    return calls


def test_looked_up_bins_count_as_the_exponent_formula():
    from sce.grading.dump.histogram import EDGES, bin_counts, bins

    rng = np.random.default_rng(1)
    edges = EDGES[1:]
    errors = np.concatenate(
        [
            [0.0, 5e-324, 2.0**-11, 2.0**61, 1e300, np.finfo(np.float64).max],
            edges,
            np.nextafter(edges, 0),
            np.nextafter(edges, np.inf),
            2.0 ** rng.uniform(-12, 62, 100_000),
            rng.uniform(0, 40, 100_000),
        ]
    )
    expected = np.bincount(np.searchsorted(EDGES, errors, side="right") - 1, minlength=len(EDGES) + 1)
    assert errors.size > histogram._LOOKED_UP_FROM  # the table, not the formula
    assert (bin_counts(errors) == expected).all()
    assert (np.bincount(bins(errors), minlength=len(EDGES) + 1) == expected).all()


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_ulp_unit_is_a_power_of_two_from_frexp(dtype):
    """The unit is 2^(exponent − mantissa bits), the smallest normal's below it; the sign of
    the magnitude (a NaN's too) does not change it."""
    mantissa, lowest = {"float16": (10, -14), "bfloat16": (7, -126), "float32": (23, -126), "float64": (52, -1022)}[
        dtype
    ]
    rng = np.random.default_rng(2)
    magnitudes = np.concatenate([2.0 ** rng.uniform(-1100, 1000, 1000), [0.0, 5e-324, 1.0, 1.5, 2.0**-126]])
    magnitudes = np.concatenate([magnitudes, -magnitudes])
    _, exponent = np.frexp(np.abs(magnitudes))
    exponent = np.where(magnitudes == 0, lowest, exponent - 1)  # frexp(0) is (0, 0)
    expected = np.ldexp(1.0, np.maximum(exponent, lowest) - mantissa)
    assert (ulp_unit(magnitudes, dtype) == expected).all()
    assert (ulp_unit(np.array([np.nan, -np.nan, -np.inf]), dtype) == np.inf).all()  # as with abs first


def test_z_loss_mean_divides_by_the_whole_dumps_counted_rows_in_every_block(monkeypatch):
    """Regression: each block's exact result divided the z-loss's mean by that block's counted
    rows, so a correct answer of a dump longer than one block was failed. The answer here is
    float64 numpy, Liger's convention (README): (p − onehot)/D + 2λ·lse·p/D."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6, 5))
    labels = np.array([1, IGNORE, 0, 4, 2, 3])
    lam = 0.01
    counted = labels != IGNORE
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    g = p.copy()
    g[np.flatnonzero(counted), labels[counted]] -= 1
    g += 2 * lam * lse[:, None] * p
    g[~counted] = 0
    g /= counted.sum()
    dump = ArrayDump(z.astype(np.float32), labels, None, g.astype(np.float32), None, {})
    options = LossOptions(reduction="mean", z_loss=lam)
    for entries in (1 << 20, 5, 10):
        monkeypatch.setattr(check, "BLOCK_ENTRIES", entries)
        found = check.check_dump(dump, options, "float32")
        assert found.correct, entries
        assert found.quantities[0].max_ulps <= 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_routes_worst_error_and_squares_are_those_of_its_errors(dtype):
    """max(max d, −min d) in place of the largest |d|: the same number, 0.0 for no error, and
    NaN or infinity left to the general errors (whose finite worst is taken); Σ d² that of
    the finite errors, summed here one by one in 60 digits."""
    import mpmath

    from sce.grading.dump.block_errors import _errors, _finite_worst, _route_errors

    rng = np.random.default_rng(3)
    expected = rng.standard_normal((4, 50))
    magnitude = np.abs(expected) + 0.5
    unit = ulp_unit(magnitude, dtype)
    kind = _numpy(dtype)
    cases = [expected.astype(kind), (expected * (1 + 1e-3 * rng.standard_normal(expected.shape))).astype(kind)]
    spoiled = cases[1].copy()
    spoiled[0, 0], spoiled[1, 1] = np.nan, -np.inf
    zero = np.zeros_like(expected)
    pairs = [(cases[0], expected), (cases[1], expected), (spoiled, expected), (zero.astype(kind), -zero)]
    pairs.append(((-zero).astype(kind), zero))
    for route, exact in pairs:
        errors = _errors(route, exact, unit, magnitude, dtype)
        found = _route_errors(route, exact, unit, magnitude, dtype)
        assert repr(found.worst) == repr(_finite_worst(errors))
        with mpmath.workdps(60):
            squares = mpmath.fsum(mpmath.mpf(float(e)) ** 2 for e in errors.ravel() if np.isfinite(e))
        assert found.squares[0] == pytest.approx(float(squares), rel=1e-13, abs=0)
