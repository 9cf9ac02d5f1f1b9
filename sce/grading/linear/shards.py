"""A fused linear cross-entropy whose classifier (and bias) is split over the vocabulary, one
array per rank, checked without gathering it.

Each row's log-sum-exp comes from the shards' maxima and sums of exponentials
(:mod:`sce.loss.vocabulary_shards`); each shard's ∂L/∂C and ∂L/∂b are graded against its own
exact values, ∂L/∂E (a sum over every shard) and the loss against the whole's. In full mode
every entry is compared; in quick mode as :mod:`sce.grading.linear.quick` does. A wrong answer
that a vocabulary-parallel kernel gives by spreading the smoothing over its own shard's classes
is named.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from sce.grading.linear.answers import ANSWER_TYPES, as_numpy, as_rows
from sce.grading.linear.mistakes import SMOOTHING_OVER_LOCAL_VOCABULARY
from sce.grading.linear.profiles import Profile
from sce.grading.linear.quick import QuickOutcome, quick_check
from sce.grading.linear.quick_grades import Candidates
from sce.grading.linear.quick_report import DEFAULT_SEED, outcome_report, sharding_for
from sce.grading.linear.report import Report
from sce.grading.linear.skipped import skipped_per_row
from sce.loss.linear_inputs import checked_grad_output, checked_linear_inputs
from sce.loss.linear_terms import linear_terms
from sce.loss.result import InvalidInput
from sce.loss.validation import checked_labels
from sce.loss.vocabulary_shards import Sharding
from sce.options import LossOptions


def is_sharded(classifier: Any) -> bool:
    """A list or tuple of matrices (numpy arrays or tensors), one per rank: not a nested list of numbers."""
    return (
        isinstance(classifier, (list, tuple))
        and len(classifier) > 0
        and all(getattr(part, "ndim", None) == 2 for part in classifier)
    )


@dataclasses.dataclass(frozen=True)
class ShardedInputs:
    hidden: np.ndarray
    classifier: list[np.ndarray]
    bias: list[np.ndarray | None]
    labels: np.ndarray
    grad_output: np.ndarray | float
    leading: tuple[int, ...]
    """The hidden states' leading axes as given: (N,), or (B, T) for B × T × D."""

    @property
    def widths(self) -> list[int]:
        return [len(c) for c in self.classifier]


def checked_shards(
    hidden: Any, classifier: Sequence[Any], labels: Any, bias: Any, options: LossOptions, grad_output: Any
) -> ShardedInputs:
    """Each shard checked against the hidden states as a whole classifier would be; the labels
    against the whole vocabulary; a ValueError naming the argument (and the shard) otherwise."""
    e, labels, grad_output, leading = as_rows(as_numpy(hidden, "hidden"), as_numpy(labels, "labels"), grad_output,
                                              options.reduction)  # fmt: skip
    shards = [as_numpy(c, f"classifier[{k}]") for k, c in enumerate(classifier)]
    biases: list[Any] = [None] * len(shards)
    if bias is not None:
        if not isinstance(bias, (list, tuple)) or len(bias) != len(shards):
            raise InvalidInput(
                f"bias must be one array per classifier shard ({len(shards)})", field="bias",
                hint="split the bias over the vocabulary as the classifier is",
            )  # fmt: skip
        biases = [as_numpy(b, f"bias[{k}]") for k, b in enumerate(bias)]
    checked_bias: list[np.ndarray | None] = []
    for k, (shard, shard_bias) in enumerate(zip(shards, biases)):
        try:
            _, _, b, _ = checked_linear_inputs(e, shard, np.zeros(len(e), np.int64), shard_bias, -1)
        except InvalidInput as problem:
            raise InvalidInput(
                f"shard {k}: {problem.problem}", field=problem.field or "classifier", row=problem.row,
                column=problem.column, hint=problem.marked_hint,
            ) from None  # fmt: skip
        if shard.dtype != e.dtype or e.dtype.name not in ANSWER_TYPES:
            raise InvalidInput(
                f"classifier[{k}] has type {shard.dtype} but hidden has {e.dtype}", field="classifier",
                hint="give every shard in the hidden states' type",
            )  # fmt: skip
        checked_bias.append(b)
    n_classes = sum(len(s) for s in shards)
    checked = checked_labels(labels, len(e), n_classes, options.ignore_index)
    upstream = checked_grad_output(grad_output, options.reduction, len(checked))
    return ShardedInputs(e, shards, checked_bias, checked, upstream, leading)


def sharded_candidates(inputs: ShardedInputs, outputs: dict[str, Any], options: LossOptions) -> Candidates:
    """The outputs given, checked: ∂L/∂C and ∂L/∂b one array per shard, of each shard's shape."""
    n, d = inputs.hidden.shape
    if outputs.get("grad_bias") is not None and inputs.bias[0] is None:
        raise InvalidInput("grad_bias is given but bias is not", field="grad_bias", hint="give bias too")
    per_shard = {
        name: _per_shard(inputs, outputs.get(name), name, [(w, d) if name == "grad_classifier" else (w,)
                                                           for w in inputs.widths])
        for name in ("grad_classifier", "grad_bias")
    }  # fmt: skip
    leading = inputs.leading
    grad_hidden = _whole(outputs.get("grad_hidden"), "grad_hidden", [(*leading, d)])
    reduced = options.reduction != "none"
    loss = _whole(outputs.get("loss"), "loss", [(), (1,)] if reduced else [leading])
    if grad_hidden is not None:
        grad_hidden = grad_hidden.reshape(n, d)
    if loss is not None:
        loss = loss.reshape(()) if reduced else loss.reshape(n)
    return Candidates(loss, grad_hidden, per_shard["grad_classifier"], per_shard["grad_bias"])


def _per_shard(inputs: ShardedInputs, value: Any, name: str, shapes: list[tuple[int, ...]]) -> list[np.ndarray] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != len(inputs.classifier):
        raise InvalidInput(f"{name} must be one array per classifier shard ({len(inputs.classifier)})", field=name)
    arrays = [as_numpy(v, f"{name}[{k}]") for k, v in enumerate(value)]
    for k, (array, want) in enumerate(zip(arrays, shapes)):
        if array.shape != want:
            raise InvalidInput(f"{name}[{k}] has shape {array.shape}, not {want}", field=name)
        _check_type(array, f"{name}[{k}]", name)
    return arrays


def _whole(value: Any, name: str, shapes: list[tuple[int, ...]]) -> np.ndarray | None:
    if value is None:
        return None
    array = as_numpy(value, name)
    if array.shape not in shapes:
        raise InvalidInput(f"{name} has shape {array.shape}, not {' or '.join(map(str, shapes))}", field=name)
    _check_type(array, name, name)
    return array


def _check_type(array: np.ndarray, where: str, name: str) -> None:
    if array.dtype.name not in ANSWER_TYPES:
        raise InvalidInput(f"{where} has type {array.dtype}", field=name, hint=f"use {', '.join(ANSWER_TYPES)}")


def check_sharded(
    inputs: ShardedInputs,
    candidates: Candidates,
    options: LossOptions,
    profile: Profile,
    mode: str,
    seed: int | None = None,
) -> Report:
    """Grade the outputs of a kernel whose classifier is split over the vocabulary."""
    sharding = sharding_for(options, inputs.labels, inputs.grad_output, inputs.widths)
    terms = linear_terms(inputs.labels, sum(inputs.widths), options, inputs.grad_output)
    excused = skipped_per_row(terms, inputs.hidden.dtype, profile)
    outcome = _outcome(inputs, candidates, sharding, mode, excused, seed)
    report = outcome_report(outcome, profile, mode)
    if report.passed or not options.label_smoothing or len(inputs.classifier) < 2:
        return report
    local = _outcome(inputs, candidates, sharding.as_if_smoothing_were_local(), mode, excused, seed)
    if all(grade.passed for grade in local.grades if grade.name != "loss"):
        mistake = SMOOTHING_OVER_LOCAL_VOCABULARY
        return dataclasses.replace(report, mistake=mistake.name, fix=mistake.fix)
    return report


def _outcome(
    inputs: ShardedInputs,
    candidates: Candidates,
    sharding: Sharding,
    mode: str,
    excused: np.ndarray | None,
    seed: int | None = None,
) -> QuickOutcome:
    n, v = len(inputs.hidden), sum(inputs.widths)
    samples, projections = (16, 4) if mode == "quick" else (max(n, v), 1)
    return quick_check(
        inputs.hidden, inputs.classifier, inputs.labels, inputs.bias, candidates, sharding,
        seed=DEFAULT_SEED if seed is None else seed, samples=samples, projections=projections, excused=excused,
    )  # fmt: skip


def swaps_that_could_pass(
    widths: Sequence[int], labels: np.ndarray, options: LossOptions, failing_rows: Sequence[int] = ()
) -> list[int]:
    """The neighbours k whose shards, swapped (k and k + 1), could turn a failing check into a pass.

    A swap moves only the classes of the two shards: every row whose label lies elsewhere keeps its
    loss and its gradient's entries (moved with their classes), and so its verdicts, unless class
    weights with label smoothing weigh those classes anew. A swap that moves no counted row's label
    changes nothing the check sees, and one that leaves a failing row (``failing_rows``: where ∂L/∂E
    or a per-row loss failed) as it was leaves it failing: neither is worth a check.

    Examples
    --------
    >>> labels = np.array([0, 5, -100])
    >>> swaps_that_could_pass([2, 2, 2, 2], labels, LossOptions())
    [0, 1, 2]
    >>> swaps_that_could_pass([2, 2, 2, 2], labels, LossOptions(), failing_rows=[1])
    [1, 2]
    """
    offsets = np.cumsum([0, *widths])
    counted = labels != options.ignore_index
    weights = None if options.weight is None else np.asarray(options.weight, dtype=np.float64)
    found = []
    for k in range(len(widths) - 1):
        low, middle, high = offsets[k], offsets[k + 1], offsets[k + 2]
        moved = counted & (labels >= low) & (labels < high)
        if options.label_smoothing and weights is not None:
            swapped = np.concatenate([weights[middle:high], weights[low:middle]])
            moved = moved if np.array_equal(weights[low:high], swapped) else counted
        if moved.any() and all(moved[row] for row in failing_rows):
            found.append(k)
    return found
