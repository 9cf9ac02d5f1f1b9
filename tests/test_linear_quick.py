"""The quick check of a fused linear cross-entropy: correct kernels pass, planted mistakes fail,
and a logits count past 2³¹ is checked in bounded memory."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

from sce.grading.linear.quick import QuickOutcome, miss_probability, quick_check
from sce.grading.linear.quick_grades import Candidates
from sce.loss.linear_cross_entropy import linear_cross_entropy
from sce.loss.vocabulary_shards import Sharding, ShardLoss

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
