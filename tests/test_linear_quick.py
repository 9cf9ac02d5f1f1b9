"""The quick check of a fused linear cross-entropy: correct kernels pass, planted mistakes fail,
and a logits count past 2³¹ is checked in bounded memory."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sce.grading.linear.quick import QuickOutcome, miss_probability, quick_check
from sce.grading.linear.quick_grades import Candidates
from sce.io.arrays.dump import bfloat16_dtype
from sce.loss.linear_cross_entropy import linear_cross_entropy
from sce.loss.vocabulary_shards import Sharding, ShardLoss
from tests.linear_kernels import Case, kernel, make_case

IGNORE = -100


def float32_kernel(hidden, classifier, labels, bias=None, *, mistake=None, block=4096):
    """A correct fused kernel in float32, as the common ones work (logits, softmax and products in
    float32, rows in blocks), with one mistake planted on request."""
    n, v = len(hidden), len(classifier)
    counted = labels != IGNORE
    safe = np.where(counted, labels, 0)
    scale = np.float32(1.0 / counted.sum())
    grad_hidden = np.zeros(hidden.shape, np.float32)
    grad_classifier = np.zeros(classifier.shape, np.float32)
    grad_bias = np.zeros(v, np.float32)
    losses = np.zeros(n, np.float32)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        z = hidden[rows] @ classifier.T
        if bias is not None:
            z += bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        total = p.sum(axis=1, keepdims=True)
        losses[rows] = np.log(total[:, 0]) - z[np.arange(len(z)), safe[rows]]
        p /= total
        p[np.arange(len(p)), safe[rows]] -= 1
        if mistake != "ignored rows counted":
            p[~counted[rows]] = 0
        g = p * scale
        if mistake == "rows scaled by one row" and start == 0:
            g[1] *= 3
        grad_hidden[rows] = g @ classifier
        grad_classifier += g.T @ hidden[rows]
        grad_bias += g.sum(axis=0)
    loss = np.float32(losses[counted].sum(dtype=np.float64) * scale)
    if mistake == "classifier gradient halved on one class":
        grad_classifier[v // 2] *= 0.5
    return loss, grad_hidden, grad_classifier, grad_bias


def _problem(n=96, d=24, v=130, seed=0):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(0, 1, (n, d)).astype(np.float32)
    classifier = rng.normal(0, 0.5, (v, d)).astype(np.float32)
    bias = rng.normal(0, 0.1, v).astype(np.float32)
    labels = rng.integers(0, v, n)
    labels[[2, 5, 6]] = IGNORE
    return hidden, classifier, bias, labels


def _quick(hidden, classifier, bias, labels, outputs, *, seed=7, samples=16) -> QuickOutcome:
    loss, grad_hidden, grad_classifier, grad_bias = outputs
    sharding = Sharding.of(
        [len(classifier)], labels, weight=None, ignore_index=IGNORE, reduction="mean", loss=ShardLoss(len(classifier))
    )
    candidates = Candidates(np.float32(loss), grad_hidden, [grad_classifier], [grad_bias])
    return quick_check(hidden, [classifier], labels, [bias], candidates, sharding, seed=seed, samples=samples)


def test_a_correct_float32_kernel_passes_and_its_loss_matches_the_full_reference() -> None:
    hidden, classifier, bias, labels = _problem()
    outputs = float32_kernel(hidden, classifier, labels, bias)
    outcome = _quick(hidden, classifier, bias, labels, outputs)
    assert outcome.passed, [(g.name, g.entries, g.projections) for g in outcome.grades]
    full = linear_cross_entropy(hidden, classifier, labels, bias=bias)
    # The quick check's exact values are the full reference's (an independent formulation).
    np.testing.assert_allclose(float(outputs[0]), full.loss, rtol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_a_correct_kernel_passes_whatever_rows_and_projections_are_drawn(seed: int) -> None:
    hidden, classifier, bias, labels = _problem(seed=seed)
    outcome = _quick(hidden, classifier, bias, labels, float32_kernel(hidden, classifier, labels, bias), seed=seed)
    assert outcome.passed


@pytest.mark.parametrize(
    ("mistake", "output"),
    [
        ("ignored rows counted", "grad_hidden"),
        ("rows scaled by one row", "grad_hidden"),
        ("classifier gradient halved on one class", "grad_classifier"),
    ],
)
def test_planted_mistakes_fail_in_quick_mode_outside_the_sampled_rows(mistake: str, output: str) -> None:
    hidden, classifier, bias, labels = _problem()
    outputs = float32_kernel(hidden, classifier, labels, bias, mistake=mistake)
    # One sampled row each: the mistake is found by the projections, not by the sample.
    outcome = _quick(hidden, classifier, bias, labels, outputs, samples=1)
    failed = {g.name for g in outcome.grades if not g.passed}
    assert output in failed


def test_an_error_in_one_entry_of_an_unsampled_row_is_found_by_the_projections() -> None:
    hidden, classifier, bias, labels = _problem()
    loss, grad_hidden, grad_classifier, grad_bias = float32_kernel(hidden, classifier, labels, bias)
    outcome = _quick(hidden, classifier, bias, labels, (loss, grad_hidden, grad_classifier, grad_bias), samples=1)
    row = next(r for r in range(len(hidden)) if r not in outcome.plan.hidden_rows and labels[r] != IGNORE)
    grad_hidden = grad_hidden.copy()
    grad_hidden[row, 3] += np.float32(0.5) * np.abs(grad_hidden[row]).max()
    wrong = _quick(hidden, classifier, bias, labels, (loss, grad_hidden, grad_classifier, grad_bias), samples=1)
    hidden_grade = next(g for g in wrong.grades if g.name == "grad_hidden")
    assert not hidden_grade.passed
    assert hidden_grade.projections is not None and hidden_grade.projections.worst_row == row


def test_the_seed_decides_the_sample_and_is_reported() -> None:
    hidden, classifier, bias, labels = _problem()
    outputs = float32_kernel(hidden, classifier, labels, bias)
    first, again = (_quick(hidden, classifier, bias, labels, outputs, seed=11) for _ in range(2))
    assert first.plan.hidden_rows.tolist() == again.plan.hidden_rows.tolist()
    assert first.to_dict()["seed"] == 11
    assert "seed 11" in first.statement()


def test_the_stated_miss_probability_is_the_bound_of_independent_projections() -> None:
    # Each projection misses with probability at most 1/ρ (an entry uniform on [-δ, δ] has
    # density 1/(2δ)); k independent ones all miss with at most ρ^-k.
    assert miss_probability(1000.0, 4) == pytest.approx(1e-12)
    assert miss_probability(10.0, 2) == pytest.approx(1e-2)
    assert miss_probability(1.0, 8) == 1.0


#: Past 2³¹ logits: N·V = 65,536 × 32,769 = 2,147,549,184 > 2,147,483,648.
LARGE_ROWS, LARGE_CLASSES, LARGE_WIDTH = 65_536, 32_769, 8


@pytest.mark.large
@pytest.mark.skipif(not (os.environ.get("CI") or os.environ.get("SCE_LARGE")), reason="set SCE_LARGE=1 (CI runs it)")
def test_quick_mode_checks_a_logits_count_past_two_to_the_31_in_bounded_memory() -> None:
    assert LARGE_ROWS * LARGE_CLASSES > 2**31
    rng = np.random.default_rng(3)
    hidden = rng.normal(0, 1, (LARGE_ROWS, LARGE_WIDTH)).astype(np.float32)
    classifier = rng.normal(0, 0.5, (LARGE_CLASSES, LARGE_WIDTH)).astype(np.float32)
    labels = rng.integers(0, LARGE_CLASSES, LARGE_ROWS)
    labels[::97] = IGNORE
    outputs = float32_kernel(hidden, classifier, labels, block=1024)
    tracemalloc.start()
    try:
        outcome = _quick(hidden, classifier, None, labels, outputs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.passed, [(g.name, g.entries, g.projections) for g in outcome.grades]
    assert peak < 1 << 30  # beyond the inputs and outputs, which were allocated before
    assert outcome.plan.hidden_rows.max() < LARGE_ROWS


QUICK_OPTION_SETS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.1},
    {"label_smoothing": 0.2, "smoothing_style": "off-target"},
    {"softcap": 2.0},
    {"z_loss": 1e-2},
    {"weight": "random", "label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 4.0},
]


@pytest.mark.parametrize(
    "options", QUICK_OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain"
)
def test_quick_mode_passes_the_rounded_exact_answer_and_fails_one_row_off_under_every_option(options: dict) -> None:
    from sce.testing import check_linear_cross_entropy

    hidden, classifier, bias, labels = _problem(n=48, d=16, v=70, seed=5)
    options = dict(options)
    if options.get("weight") == "random":
        options["weight"] = np.random.default_rng(6).uniform(0.5, 2, len(classifier))
    # The exact answer rounded once to float32 is the most accurate float32 answer there is.
    exact = linear_cross_entropy(hidden, classifier, labels, bias=bias, **options)
    outputs = {
        "loss": np.asarray(exact.loss, dtype=np.float32),
        "grad_hidden": exact.grad_hidden.astype(np.float32),
        "grad_classifier": exact.grad_classifier.astype(np.float32),
        "grad_bias": exact.grad_bias.astype(np.float32),
    }
    report = check_linear_cross_entropy(hidden, classifier, labels, bias=bias, mode="quick", **outputs, **options)
    assert report.passed, str(report)
    assert report.mode == "quick" and report.to_dict()["quick"]["seed"] == 0
    wrong = dict(outputs, grad_hidden=outputs["grad_hidden"].copy())
    wrong["grad_hidden"][40] *= np.float32(1.01)
    report = check_linear_cross_entropy(hidden, classifier, labels, bias=bias, mode="quick", **wrong, **options)
    assert not report.passed and report.grad_hidden is not None and not report.grad_hidden.passed
    assert report.grad_hidden.worst_entry is not None and report.grad_hidden.worst_entry[0] == 40


def test_a_bfloat16_answer_is_graded_as_bfloat16_in_quick_mode() -> None:
    from sce.io.arrays.dump import bfloat16_dtype
    from sce.testing import check_linear_cross_entropy

    bf16 = bfloat16_dtype()
    hidden, classifier, bias, labels = _problem(n=40, d=16, v=60, seed=8)
    hidden, classifier, bias = hidden.astype(bf16), classifier.astype(bf16), bias.astype(bf16)
    exact = linear_cross_entropy(hidden, classifier, labels, bias=bias)
    outputs = {"grad_hidden": exact.grad_hidden.astype(bf16), "grad_classifier": exact.grad_classifier.astype(bf16)}
    report = check_linear_cross_entropy(hidden, classifier, labels, bias=bias, mode="quick", **outputs)
    assert report.passed, str(report)
    assert report.grad_hidden is not None and report.grad_hidden.dtype == "bfloat16"
    wrong = exact.grad_hidden.copy()
    wrong[9] *= 1.25
    outputs["grad_hidden"] = wrong.astype(bf16)
    report = check_linear_cross_entropy(hidden, classifier, labels, bias=bias, mode="quick", **outputs)
    assert not report.passed and report.grad_hidden is not None and report.grad_hidden.worst_entry[0] == 9


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_quick_mode_passes_a_correct_float32_kernel_whose_far_classes_underflow(reduction: str) -> None:
    # One row, logits from −80 to 48: the far classes' probabilities (e^−128) underflow to 0 in
    # float32, as in PyTorch; their rows of ∂L/∂C are then 0 where the exact value is 1e-54.
    from sce.testing import check_linear_cross_entropy

    hidden = np.array([[40.0]], np.float32)
    classifier = np.linspace(-2, 1.2, 32, dtype=np.float32)[:, None]
    labels = np.array([31])
    z = hidden @ classifier.T
    p = np.exp(z - z.max())
    p /= p.sum()
    assert (p == 0).any()  # the premise: float32 loses the far classes
    g = p.copy()
    g[0, 31] -= 1
    outputs = {"grad_hidden": g @ classifier, "grad_classifier": g.T @ hidden}
    for mode in ("full", "quick"):
        report = check_linear_cross_entropy(hidden, classifier, labels, reduction=reduction, mode=mode, **outputs)
        assert report.passed, str(report)


#: Options a correct kernel is tried under, at every scale of logits.
PROPERTY_OPTIONS = [
    {}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.1},
    {"label_smoothing": 0.1, "smoothing_style": "off-target"}, {"softcap": 30.0}, {"softcap": 2.0},
    {"z_loss": 1e-4}, {"reduction": "none", "z_loss": 1e-3}, {"weight": list(np.linspace(0.5, 2, 40))},
]  # fmt: skip
#: Mistakes that change every row they touch by more than any rounding, with the options they need.
PLANTED = {
    "ignored_counted": {},
    "mean_of_chunk_means": {},
    "upstream_first": {"reduction": "none"},
    "softcap_factor_missing": {"softcap": 2.0},
    "z_loss_weighted": {"z_loss": 1e-2, "weight": list(np.linspace(0.5, 2, 40))},
}


def _scaled_case(dtype: object, seed: int, scale: float, options: dict, grad_output: object = 1.0):  # noqa: ANN202
    """A random problem whose logits reach about ±``scale``: linear_kernels' case, hidden states scaled."""
    case = make_case(dtype, seed=seed, **options)
    hidden = (case.hidden.astype(np.float64) * (scale / 3)).astype(dtype)
    return Case(hidden, case.classifier, case.labels, case.bias, options, grad_output)


def _checked(case, outputs: dict, mode: str):  # noqa: ANN001, ANN202
    from sce.testing import check_linear_cross_entropy

    return check_linear_cross_entropy(
        case.hidden, case.classifier, case.labels, bias=case.bias, mode=mode, grad_output=case.grad_output,
        **outputs, **case.options,
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    bfloat16=st.booleans(),
    scale=st.floats(1.0, 100.0),
    options=st.sampled_from(PROPERTY_OPTIONS),
)
def test_quick_mode_never_fails_a_correct_kernel_at_any_scale_of_logits(
    seed: int, bfloat16: bool, scale: float, options: dict
) -> None:
    case = _scaled_case(bfloat16_dtype() if bfloat16 else np.float32, seed, scale, options)
    report = _checked(case, kernel(case), "quick")
    assert report.passed, str(report)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    bfloat16=st.booleans(),
    scale=st.floats(1.0, 100.0),
    mistake=st.sampled_from(sorted(PLANTED)),
)
def test_quick_mode_catches_each_planted_mistake_at_any_scale_of_logits(
    seed: int, bfloat16: bool, scale: float, mistake: str
) -> None:
    # In bfloat16 the logits themselves round by 2⁻⁸ of their size: at |z| ≈ 50 a correct kernel's
    # probabilities move by a fifth, and a mistake that scales rows is within that; keep it below.
    # The z-loss's variants move a bfloat16 gradient by less than its rounding on any one entry: only
    # the full check's typical (rms) error tells them.
    assume(not (bfloat16 and mistake == "z_loss_weighted"))
    scale = min(scale, 5.0) if bfloat16 else scale
    upstream = np.linspace(0.5, 2.0, 12) if mistake == "upstream_first" else 1.0
    case = _scaled_case(bfloat16_dtype() if bfloat16 else np.float32, seed, scale, PLANTED[mistake], upstream)
    report = _checked(case, kernel(case, mistake=mistake), "quick")
    assert not report.passed, str(report)


def test_the_seed_is_an_argument_of_the_check_and_named_in_its_report() -> None:
    from sce.testing import check_linear_cross_entropy

    hidden, classifier, bias, labels = _problem()
    loss, grad_hidden, grad_classifier, grad_bias = float32_kernel(hidden, classifier, labels, bias)
    outputs = {"loss": loss, "grad_hidden": grad_hidden, "grad_classifier": grad_classifier, "grad_bias": grad_bias}
    reports = {
        seed: check_linear_cross_entropy(hidden, classifier, labels, bias=bias, mode="quick", seed=seed, **outputs)
        for seed in (None, 0, 12)
    }
    assert all(report.passed for report in reports.values())
    assert reports[None].quick == reports[0].quick  # 0 when none is given
    assert reports[12].quick is not None and reports[12].quick["seed"] == 12
    assert "quick check (seed 12)" in str(reports[12])
    assert reports[12].quick["sampled_rows"] != reports[0].quick["sampled_rows"]
    sharded = check_linear_cross_entropy(
        hidden, [classifier[:60], classifier[60:]], labels, bias=[bias[:60], bias[60:]], mode="quick", seed=12,
        grad_hidden=grad_hidden, grad_classifier=[grad_classifier[:60], grad_classifier[60:]],
    )  # fmt: skip
    assert sharded.passed and sharded.quick is not None and sharded.quick["seed"] == 12


@pytest.mark.parametrize("seed", [np.int64(5), np.uint8(3)], ids=["int64", "uint8"])
def test_a_numpy_integer_seed_gives_a_report_whose_dict_is_json(seed: np.integer) -> None:
    import json

    from sce.testing import check_linear_cross_entropy

    hidden, classifier, bias, labels = _problem()
    loss, grad_hidden, grad_classifier, grad_bias = float32_kernel(hidden, classifier, labels, bias)
    report = check_linear_cross_entropy(
        hidden, classifier, labels, bias=bias, mode="quick", seed=seed, loss=loss, grad_hidden=grad_hidden,
        grad_classifier=grad_classifier, grad_bias=grad_bias,
    )  # fmt: skip
    assert report.passed and report.quick is not None
    found = json.loads(json.dumps(report.to_dict()))  # a dashboard's json.dumps takes it whole
    assert found["quick"]["seed"] == int(seed) and type(report.quick["seed"]) is int


@pytest.mark.parametrize(("seed", "mode"), [(-1, "quick"), (True, "quick"), (1.5, "quick"), ("3", "quick"), (3, "full")])
def test_a_seed_that_is_no_whole_number_or_given_to_the_full_check_is_a_value_error(seed: object, mode: str) -> None:
    from sce.testing import check_linear_cross_entropy

    hidden, classifier, bias, labels = _problem(n=8, v=10)
    with pytest.raises(ValueError, match="seed"):
        check_linear_cross_entropy(hidden, classifier, labels, grad_hidden=np.zeros_like(hidden), mode=mode, seed=seed)


@pytest.mark.parametrize("bfloat16", [False, True], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("planted", ["upstream_first", "ignored_counted", "mean_of_chunk_means", "z_loss_weighted",
                                     "softcap_factor_missing", "local_smoothing", "local_smoothing_off_target"])  # fmt: skip
def test_quick_mode_names_the_mistake_its_sampled_rows_tell_or_says_it_does_not(planted: str, bfloat16: bool) -> None:
    import dataclasses

    from tests.test_linear_cross_entropy import MISTAKES

    mistake, options, _ = MISTAKES[planted]
    dtype = bfloat16_dtype() if bfloat16 else np.float32
    v = 10 if planted.startswith("local") and bfloat16 else 40
    if "weight" in options:
        options = {**options, "weight": list(np.linspace(0.5, 2, v))}
    case = make_case(dtype, v=v, **options)
    if planted == "upstream_first":
        case = dataclasses.replace(case, grad_output=np.linspace(0.5, 2.0, len(case.labels)))
    report = _checked(case, kernel(case, mistake=planted.removesuffix("_off_target")), "quick")
    assert not report.passed and report.quick is not None
    if report.mistake is None:
        # bfloat16's z-loss variants lie within its rounding on these rows: then the report says so.
        assert (bfloat16, planted) == (True, "z_loss_weighted")
        assert report.quick["naming"].startswith("no mistake named: quick mode names one only where")
        return
    assert report.mistake == mistake.name and report.fix == mistake.fix
    assert report.quick["naming"] == "the mistake named from the 12 sampled rows of grad_hidden, which it explains"
    assert str(report).splitlines()[-1].endswith(report.quick["naming"])


def test_a_mistake_outside_the_sampled_rows_of_grad_hidden_is_not_named_and_the_report_says_so() -> None:
    from sce.testing import check_linear_cross_entropy

    hidden, classifier, bias, labels = _problem()
    loss, grad_hidden, grad_classifier, grad_bias = float32_kernel(
        hidden, classifier, labels, bias, mistake="classifier gradient halved on one class"
    )
    report = check_linear_cross_entropy(
        hidden, classifier, labels, bias=bias, mode="quick", grad_hidden=grad_hidden, grad_classifier=grad_classifier
    )
    assert not report.passed and report.mistake is None and report.quick is not None
    assert "no mistake named" in report.quick["statement"]
    right = check_linear_cross_entropy(
        hidden, classifier, labels, bias=bias, mode="quick", grad_hidden=grad_hidden
    )
    assert right.passed and right.quick is not None and "naming" not in right.quick
