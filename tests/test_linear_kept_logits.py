"""The logits the fused check's first pass keeps for the passes after it: float32 logits and the
float64 logits' 16-bit offsets from them. What they give back is within the bound they state; a
check that takes them gives the verdicts, mistakes and errors of one that forms every logit again."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from sce.loss.kept_logits import KeptLogits, narrow_logits
from sce.loss.linear_terms import linear_terms
from sce.options import LossOptions
from tests.linear_kernels import kernel, make_case
from tests.test_linear_cross_entropy import MISTAKES, OPTIONS, _check

blocked = importlib.import_module("sce.loss.linear_cross_entropy")
kept_module = importlib.import_module("sce.loss.kept_logits")
ml_dtypes = pytest.importorskip("ml_dtypes")
BFLOAT16 = ml_dtypes.bfloat16


def _blocks(monkeypatch, keep: bool = True) -> None:
    """Small sizes go by blocks of classes (two rows or classes of 16 at a time), the baseline
    formed in steps alongside, keeping logits or not."""
    monkeypatch.setattr(blocked, "CLASSIFIER_BYTES", 0)
    monkeypatch.setattr(blocked, "BLOCK_BYTES", 8 * 16 * 7)
    monkeypatch.setattr(importlib.import_module("sce.grading.linear.stepped_baseline"), "BASELINE_BYTES", 0)
    monkeypatch.setattr(kept_module, "KEPT_FROM", 0 if keep else 1 << 62)


@pytest.mark.parametrize("scale", [1e-30, 1e-3, 1.0, 1e3, 1e15])
@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16], ids=["float32", "bfloat16"])
def test_kept_logits_give_back_the_float64_logits_within_their_stated_bound(dtype, scale) -> None:
    rng = np.random.default_rng(7)
    e = (rng.standard_normal((9, 300)) * scale).astype(dtype)
    c = (rng.standard_normal((50, 300)) / 17).astype(dtype)
    e[3] = 0  # a row whose logits are all exact: no offsets, no error
    e[5, 0] = 1e4 * scale  # a row with one large product beside small ones
    b = rng.standard_normal(50).astype(dtype)
    rows, classes = slice(0, 9), slice(0, 50)
    wide = e.astype(np.float64) @ c.astype(np.float64).T + b.astype(np.float64)
    kept = KeptLogits(9, tolerance=np.inf)  # any size kept: the bound stated is what is tested
    kept.keep(rows, classes, wide.copy(), narrow_logits(e, c, b, classes))
    given = kept.wide(rows, classes)
    assert given is not None and given.dtype == np.float64
    miss = np.abs(given - wide).max(axis=1)
    assert (miss <= kept.error).all(), (miss, kept.error)
    assert kept.error[3] <= 3 * 2.0**-53 * np.abs(wide[3]).max() + 1e-300  # the bias alone: exact in float32 too
    # A float32 dot product is off by at most γ_D·Σ|E||C| (Higham) + the bias's rounding: the kept
    # logits' bound is 2¹⁵ times under that, plus float64's own rounding of the logits.
    sizes = (np.abs(e.astype(np.float64)) @ np.abs(c.astype(np.float64)).T + np.abs(b.astype(np.float64))).max(axis=1)
    float32_error = (300 + 1) * 2.0**-24 * sizes
    assert (kept.error <= float32_error * 2.0**-15 + 4 * 2.0**-53 * np.abs(wide).max(axis=1)).all()
    # By default a block whose bound passes the tolerance is not kept, and is not offered again.
    default = KeptLogits(9)
    default.keep(rows, classes, wide.copy(), narrow_logits(e, c, b, classes))
    held = default.wide(rows, classes) is not None
    assert held == (kept.error.max() <= default.tolerance)
    assert not default.wants(rows, classes)


def test_a_block_whose_float32_logits_overflow_is_not_kept() -> None:
    e = np.full((2, 2), 3e19, np.float32)
    c = np.full((3, 2), 3e19, np.float32)
    with np.errstate(over="ignore"):  # as the check's passes run it
        narrow = narrow_logits(e, c, None, slice(0, 3))
    assert np.isinf(narrow).all()
    kept = KeptLogits(2)
    kept.keep(slice(0, 2), slice(0, 3), e.astype(np.float64) @ c.astype(np.float64).T, narrow)
    assert kept.wide(slice(0, 2), slice(0, 3)) is None and kept.narrow(slice(0, 2), slice(0, 3)) is None
    assert kept.entries == 0 and not kept.error.any()


def test_blocks_past_the_capacity_are_left_to_be_formed_again() -> None:
    kept = KeptLogits(4, capacity=10)
    z = np.ones((2, 5))
    assert kept.wants(slice(0, 2), slice(0, 5))
    kept.keep(slice(0, 2), slice(0, 5), z, z.astype(np.float32))
    assert not kept.wants(slice(0, 2), slice(0, 5))  # held already
    assert not kept.wants(slice(2, 4), slice(0, 5))  # no room left
    assert kept.wide(slice(0, 2), slice(0, 4)) is None  # another block's shape is formed again


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16], ids=["float32", "bfloat16"])
def test_the_reference_from_kept_logits_is_within_its_bound_of_the_formed_one(dtype, options, monkeypatch) -> None:
    _blocks(monkeypatch)
    case = make_case(dtype, **options)
    options_ = LossOptions().replace(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()})
    terms = linear_terms(np.asarray(case.labels), len(case.classifier), options_)
    e, c, b = case.hidden, case.classifier, case.bias
    formed, taken = [], []
    store = KeptLogits(len(e))

    def collector(into):
        return lambda part, values, size: into.append(values.copy())

    exact = blocked.stream_gradients(e, c, b, terms, collector(formed), collector(formed))
    again = blocked.stream_gradients(e, c, b, terms, collector(taken), collector(taken), kept=store)
    assert store.entries == e.shape[0] * c.shape[0]  # every block kept
    delta = float(store.error.max())
    assert 0 < delta < 1e-9
    assert (again.logit_error == exact.logit_error + store.error).all()
    np.testing.assert_array_equal(again.lse, exact.lse)  # the first pass forms them: the same
    # Every logit within δ: probabilities within a factor e^(±2δ), every result within a few δ of its size.
    for mine, theirs in zip(formed, taken):
        assert np.abs(mine - theirs).max() <= 8 * delta * max(1.0, np.abs(mine).max())
    assert np.abs(again.losses - exact.losses).max() <= 8 * delta * max(1.0, np.abs(exact.losses).max())
    assert np.abs(again.grad_bias - exact.grad_bias).max() <= 8 * delta * max(1.0, np.abs(exact.grad_bias).max())


@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("options", OPTIONS[:4] + OPTIONS[-2:], ids=str)
def test_a_check_that_takes_kept_logits_grades_as_one_that_forms_them_again(dtype, options, monkeypatch) -> None:
    case = make_case(dtype, **options)
    right = kernel(case)
    wrong = {**right, "grad_classifier": right["grad_classifier"] * 2, "grad_bias": right["grad_bias"] * 0}
    reports = {}
    for keep in (False, True):
        _blocks(monkeypatch, keep)
        reports[keep] = [_check(case, outputs) for outputs in (right, wrong)]
    assert [r.passed for r in reports[True]] == [r.passed for r in reports[False]] == [True, False]
    assert reports[True][1].mistake == reports[False][1].mistake
    for mine, theirs in zip(*(reports[k][0].outputs + reports[k][1].outputs for k in (False, True))):
        # The baseline's logits are the same float32 values, formed again or kept: its errors, to the
        # references' bounds.
        assert abs(theirs.baseline_ulp - mine.baseline_ulp) <= mine.reference_ulp + theirs.reference_ulp + 1e-9, mine.name
        # The loss in ulps at the logits' own size, not at the kept logits' wider bound.
        reach = mine.reference_ulp + theirs.reference_ulp + 1e-9 * max(1.0, mine.worst_ulp)
        assert abs(theirs.worst_ulp - mine.worst_ulp) <= reach, (mine.name, mine.worst_ulp, theirs.worst_ulp)


@pytest.mark.parametrize("planted", ["ignored_counted", "softcap_factor_missing", "z_loss_weighted", "local_smoothing"])
def test_planted_mistakes_are_named_from_kept_logits(planted, monkeypatch) -> None:
    _blocks(monkeypatch)
    mistake, options, _ = MISTAKES[planted]
    case = make_case(np.float32, **options)
    report = _check(case, kernel(case, mistake=planted))
    assert not report.passed and report.mistake == mistake.name, str(report)


def test_only_checks_of_some_million_logits_keep_them(monkeypatch) -> None:
    stepped = importlib.import_module("sce.grading.linear.stepped_baseline")
    monkeypatch.setattr(blocked, "CLASSIFIER_BYTES", 0)
    case = make_case(np.float32)
    terms = linear_terms(np.asarray(case.labels), len(case.classifier), LossOptions())
    profile = importlib.import_module("sce.grading.linear.profiles").PROFILES["pytorch"]

    def baseline():
        return stepped.SteppedBaseline(case.hidden, case.classifier, case.bias, terms, profile, {}, True)

    assert baseline().logits is None  # 12 × 40 logits: formed again, a cluster's reference to the bit
    monkeypatch.setattr(kept_module, "KEPT_FROM", 12 * 40)
    assert isinstance(baseline().logits, KeptLogits)
    assert baseline().fresh().logits is not None
    f64 = stepped.SteppedBaseline(case.hidden.astype(np.float64), case.classifier.astype(np.float64), None, terms,
                                  profile, {}, True)  # fmt: skip
    assert f64.logits is None  # float64 inputs: the baseline's own logits are float64


def test_a_check_that_keeps_every_logit_goes_by_classes_where_the_classifiers_gradient_would_fit(monkeypatch) -> None:
    # By rows, every block of rows adds a V × D partial ∂L/∂C into the whole one; by classes with every
    # logit kept, each logit is formed once in each type and nothing of that size is added.
    stepped = importlib.import_module("sce.grading.linear.stepped_baseline")
    case = make_case(np.float32)
    terms = linear_terms(np.asarray(case.labels), len(case.classifier), LossOptions())
    profile = importlib.import_module("sce.grading.linear.profiles").PROFILES["pytorch"]
    types = {"grad_classifier": np.dtype(np.float32)}

    def baseline():
        return stepped.baseline_for(case.hidden, case.classifier, case.bias, terms, profile, types, None)

    assert not isinstance(baseline(), stepped.SteppedBaseline)  # held whole, by rows
    monkeypatch.setattr(kept_module, "KEPT_FROM", 12 * 40)
    found = baseline()
    assert isinstance(found, stepped.SteppedBaseline) and found.by_classes and found.logits is not None
    monkeypatch.setattr(kept_module, "CHECK_BYTES", 0)  # no room to keep them all: by rows again
    assert not isinstance(baseline(), stepped.SteppedBaseline)
    right = kernel(case)
    monkeypatch.setattr(kept_module, "CHECK_BYTES", 950 << 20)
    assert _check(case, right).passed


@pytest.mark.parametrize("width", [12, 16, 20, 24])
def test_the_baseline_takes_every_logit_it_needs_from_the_kept_ones(width, monkeypatch) -> None:
    # The baseline's blocks are the reference's, whatever D: none of its logits is formed again (∂L/∂E
    # held whole: where it is not, a last pass forms it a block of rows at a time, over other blocks).
    _blocks(monkeypatch)
    monkeypatch.setattr(blocked, "CLASSIFIER_BYTES", 16 * 40 * 7)
    stepped = importlib.import_module("sce.grading.linear.stepped_baseline")
    formed = []
    real = stepped.raw_logits
    monkeypatch.setattr(stepped, "raw_logits", lambda *a: formed.append(a[3]) or real(*a))
    case = make_case(np.float32, d=width)
    assert _check(case, kernel(case)).passed
    assert formed == []


def test_the_classifier_gradient_summed_in_bfloat16_is_named_beside_kept_logits(monkeypatch) -> None:
    # Keeping every logit, the baseline is formed in steps though its outputs would fit whole: the
    # what-if of ∂L/∂C summed in the input's type forms it whole again, as without keeping.
    from sce.grading.linear import mistakes

    monkeypatch.setattr(kept_module, "KEPT_FROM", 0)
    case = make_case(BFLOAT16, n=2048, offset=2.0)
    report = _check(case, kernel(case, mistake="classifier_in_input_type", chunk=1))
    assert not report.passed and report.mistake == mistakes.CLASSIFIER_GRADIENT_IN_INPUT_TYPE.name, str(report)
