"""A fused linear cross-entropy with its classifier split over the vocabulary, one array per
rank, checked without gathering it; Megatron's local-vocabulary smoothing is named."""

from __future__ import annotations

import numpy as np
import pytest

from sce.grading.linear.mistakes import SMOOTHING_OVER_LOCAL_VOCABULARY
from sce.loss.linear_cross_entropy import linear_cross_entropy
from sce.testing import check_linear_cross_entropy

WIDTHS = (30, 17, 23)


def _problem(seed: int = 0, n: int = 40, d: int = 12):
    rng = np.random.default_rng(seed)
    v = sum(WIDTHS)
    hidden = rng.normal(0, 1, (n, d)).astype(np.float32)
    classifier = rng.normal(0, 0.6, (v, d)).astype(np.float32)
    bias = rng.normal(0, 0.2, v).astype(np.float32)
    labels = rng.integers(0, v, n)
    labels[7] = -100
    return hidden, classifier, bias, labels


def _split(array: np.ndarray) -> list[np.ndarray]:
    return np.split(array, np.cumsum(WIDTHS)[:-1])


def _rounded_exact(hidden, classifier, bias, labels, **options):
    """The exact answer (computed on the gathered classifier) rounded once to float32."""
    exact = linear_cross_entropy(hidden, classifier, labels, bias=bias, **options)
    return {
        "loss": np.float32(exact.loss),
        "grad_hidden": exact.grad_hidden.astype(np.float32),
        "grad_classifier": _split(exact.grad_classifier.astype(np.float32)),
        "grad_bias": _split(exact.grad_bias.astype(np.float32)),
    }


@pytest.mark.parametrize("mode", ["full", "quick"])
@pytest.mark.parametrize(
    "options", [{}, {"label_smoothing": 0.1, "smoothing_style": "off-target"}, {"z_loss": 1e-3, "softcap": 3.0}]
)
def test_a_right_answer_split_over_ranks_passes(mode: str, options: dict) -> None:
    hidden, classifier, bias, labels = _problem()
    outputs = _rounded_exact(hidden, classifier, bias, labels, **options)
    report = check_linear_cross_entropy(
        hidden, _split(classifier), labels, bias=_split(bias), mode=mode, profile="megatron", **outputs, **options
    )
    assert report.passed, str(report)
    assert report.mode == mode and report.profile == "megatron"


def test_one_rank_wrong_fails_and_points_at_the_class_in_the_whole_vocabulary() -> None:
    hidden, classifier, bias, labels = _problem()
    outputs = _rounded_exact(hidden, classifier, bias, labels)
    outputs["grad_classifier"][1] = outputs["grad_classifier"][1].copy()
    outputs["grad_classifier"][1][4] *= np.float32(1.5)
    report = check_linear_cross_entropy(hidden, _split(classifier), labels, bias=_split(bias), **outputs)
    assert not report.passed
    assert report.grad_classifier is not None and report.grad_classifier.worst_entry is not None
    assert report.grad_classifier.worst_entry[0] == WIDTHS[0] + 4
    assert report.grad_hidden is not None and report.grad_hidden.passed


def _megatron_local_smoothing(hidden, classifier, labels, eps):
    """Megatron's vocabulary-parallel backward as it once was: each rank subtracts
    (1 - s)·onehot + s/K_k with s = ε·K_k/(K_k - 1), K_k its own vocabulary."""
    logits = hidden.astype(np.float64) @ classifier.astype(np.float64).T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    counted = labels != -100
    grad = p.copy()
    for start, width in zip(np.cumsum((0, *WIDTHS[:-1])), WIDTHS):
        s = eps * width / (width - 1)
        block = grad[:, start : start + width]
        here = counted & (labels >= start) & (labels < start + width)
        block[np.flatnonzero(here), labels[here] - start] -= 1 - s
        block -= s / width
    grad[~counted] = 0
    grad /= counted.sum()
    return (grad @ classifier.astype(np.float64)).astype(np.float32), (grad.T @ hidden.astype(np.float64)).astype(
        np.float32
    )


@pytest.mark.parametrize("mode", ["full", "quick"])
def test_smoothing_over_the_local_vocabulary_is_named(mode: str) -> None:
    hidden, classifier, _, labels = _problem(seed=2)
    eps = 0.1
    grad_hidden, grad_classifier = _megatron_local_smoothing(hidden, classifier, labels, eps)
    report = check_linear_cross_entropy(
        hidden, _split(classifier), labels, grad_hidden=grad_hidden, grad_classifier=_split(grad_classifier),
        label_smoothing=eps, smoothing_style="off-target", profile="megatron", mode=mode,
    )  # fmt: skip
    assert not report.passed
    assert report.mistake == SMOOTHING_OVER_LOCAL_VOCABULARY.name
    assert report.fix == SMOOTHING_OVER_LOCAL_VOCABULARY.fix


def test_the_whole_vocabulary_smoothing_written_the_megatron_way_is_correct() -> None:
    # The same kernel with K_k replaced by the whole vocabulary's V: the right answer.
    hidden, classifier, _, labels = _problem(seed=2)
    exact = linear_cross_entropy(hidden, classifier, labels, label_smoothing=0.1, smoothing_style="off-target")
    report = check_linear_cross_entropy(
        hidden, _split(classifier), labels, grad_hidden=exact.grad_hidden.astype(np.float32),
        label_smoothing=0.1, smoothing_style="off-target",
    )  # fmt: skip
    assert report.passed and report.mistake is None


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"grad_classifier": "one array"}, "grad_classifier"),
        ({"grad_classifier": "wrong count"}, "grad_classifier"),
        ({"bias": "wrong count"}, "bias"),
        ({"classifier": "wrong width"}, "classifier"),
        ({"labels": "out of range"}, "labels"),
        ({"grad_bias": "without bias"}, "grad_bias"),
    ],
)
def test_bad_shards_raise_a_value_error_naming_the_argument(change: dict, argument: str) -> None:
    hidden, classifier, bias, labels = _problem()
    outputs = _rounded_exact(hidden, classifier, bias, labels)
    keywords: dict = {"bias": _split(bias), **outputs}
    shards = _split(classifier)
    what = next(iter(change.values()))
    if what == "one array":
        keywords["grad_classifier"] = np.vstack(outputs["grad_classifier"])
    elif what == "wrong count" and argument == "grad_classifier":
        keywords["grad_classifier"] = outputs["grad_classifier"][:2]
    elif what == "wrong count":
        keywords["bias"] = _split(bias)[:2]
    elif what == "wrong width":
        shards[1] = shards[1][:, :5]
    elif what == "out of range":
        labels = labels.copy()
        labels[0] = sum(WIDTHS)
    elif what == "without bias":
        keywords.pop("bias")
    with pytest.raises(ValueError, match=argument):
        check_linear_cross_entropy(hidden, shards, labels, **keywords)


@pytest.mark.parametrize("shard", ["empty", "narrow"])
def test_a_bad_shards_refusal_names_the_shard_and_the_argument_once(shard: str) -> None:
    hidden, classifier, bias, labels = _problem()
    shards = _split(classifier)
    shards[0] = shards[0][:0] if shard == "empty" else shards[0][:, :5]
    with pytest.raises(ValueError, match="^shard 0: ") as refused:
        check_linear_cross_entropy(hidden, shards, labels, loss=np.float32(1.0))
    message = str(refused.value)
    assert message.count("(classifier)") == 1, message


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_shards_take_hidden_states_with_batch_and_sequence_axes_as_the_whole_classifier_does(reduction: str) -> None:
    hidden, classifier, bias, labels = _problem()
    upstream = np.linspace(0.5, 2.0, len(labels)) if reduction == "none" else 1.0
    outputs = _rounded_exact(hidden, classifier, bias, labels, reduction=reduction, grad_output=upstream)
    batched = {"grad_output": upstream if reduction == "none" else 1.0, "reduction": reduction}
    if reduction == "none":
        outputs["loss"] = np.asarray(outputs["loss"]).reshape(5, 8)
        batched["grad_output"] = upstream.reshape(5, 8)
    outputs["grad_hidden"] = outputs["grad_hidden"].reshape(5, 8, -1)
    given = (hidden.reshape(5, 8, -1), _split(classifier), labels.reshape(5, 8))
    report = check_linear_cross_entropy(*given, bias=_split(bias), **outputs, **batched)
    assert report.passed, str(report)
    wrong = dict(outputs, grad_hidden=outputs["grad_hidden"] * np.float32(1.01))
    assert not check_linear_cross_entropy(*given, bias=_split(bias), **wrong, **batched).passed
    with pytest.raises(ValueError, match="^grad_hidden has shape"):  # the rows' shape is not the states' own
        check_linear_cross_entropy(*given, bias=_split(bias), **dict(outputs, grad_hidden=outputs["grad_hidden"].reshape(40, -1)), **batched)


@pytest.mark.parametrize(
    ("widths", "labels", "options", "failing_rows", "pairs"),
    [
        # Classes 0-1 | 2-3 | 4-5 | 6-7; labels 0 and 5 and an ignored row: each pair moving a label, by hand.
        ((2, 2, 2, 2), (0, 5, -100), {}, (), [0, 1, 2]),
        ((2, 2, 2, 2), (0, 5, -100), {}, (1,), [1, 2]),  # the row of label 5 fails: pair 0 leaves it as it was
        ((2, 2, 2, 2), (0, 5, -100), {}, (0, 1), []),  # labels 0 and 5 both failing: no one pair moves both
        ((2, 2, 2, 2), (0, 5, -100), {}, (2,), []),  # an ignored row failing: no order makes it right
        ((2, 2, 2, 2), (0, 1), {}, (), [0]),  # no swap but the first moves a label
        ((1, 3), (3,), {}, (0,), [0]),  # shards of other widths: the pair spans classes 0-3
        # Class weights weigh a label the same in any order; with smoothing they weigh every class: a pair whose
        # classes' weights differ (1, 1, 2, 2) moves every counted row, one whose weights are alike (1, 1, 1, 1) none.
        ((2, 2, 2, 2), (0,), {"weight": (1, 1, 1, 1, 2, 2, 2, 2)}, (0,), [0]),
        ((2, 2, 2, 2), (0,), {"weight": (1, 1, 1, 1, 2, 2, 2, 2), "label_smoothing": 0.1}, (0,), [0, 1]),
        ((2, 2, 2, 2), (0, -100), {"weight": (1, 1, 1, 1, 2, 2, 2, 2), "label_smoothing": 0.1}, (1,), []),
    ],
)
def test_only_the_swaps_that_move_every_failing_rows_label_could_pass(
    widths: tuple[int, ...], labels: tuple[int, ...], options: dict, failing_rows: tuple[int, ...], pairs: list[int]
) -> None:
    from sce.grading.linear.shards import swaps_that_could_pass
    from sce.options import LossOptions

    found = swaps_that_could_pass(widths, np.array(labels), LossOptions(**options), failing_rows)
    assert found == pairs
