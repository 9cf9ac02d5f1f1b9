"""A fused linear cross-entropy check from Python's keywords: the inputs checked, the outputs
graded under the profile, the mistake named where the answer is wrong."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sce.grading.linear.answers import LinearAnswer, LinearInputs, checked_answer, checked_inputs
from sce.grading.linear.check import full_check
from sce.grading.linear.profiles import profile_named
from sce.grading.linear.quick_report import checked_seed
from sce.grading.linear.report import Report
from sce.grading.linear.shards import check_sharded, checked_shards, is_sharded, sharded_candidates
from sce.loss.result import InvalidInput
from sce.loss.validation import refuse_shared_memory, validated_options, weight_tuple
from sce.options import LossOptions

MODES = ("full", "quick")


def check_linear(
    hidden: Any,
    classifier: Any,
    labels: Any,
    *,
    bias: Any = None,
    outputs: dict[str, Any],
    options: dict[str, Any],
    profile: str = "pytorch",
    mode: str = "full",
    grad_output: Any = 1.0,
    seed: int | None = None,
    client: Any = None,
) -> Report:
    """The report of a check: see :func:`sce.testing.check_linear_cross_entropy`; with ``client`` (a
    ``distributed.Client``), the full check's blocks computed on its cluster (:mod:`.cluster`)."""
    # Extreme inputs (float16 logits past its range, a huge z-loss or weight) overflow in the exact
    # pass and the same-type baselines: the inf and NaN they make are graded as such (an answer not
    # finite where the truth is; a baseline's entry that is not finite left out of its allowance),
    # and numpy's own warnings about them would only reach the user's screen raw.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _checked(hidden, classifier, labels, bias, outputs, options, profile, mode, grad_output, seed, client)


def _checked(
    hidden: Any,
    classifier: Any,
    labels: Any,
    bias: Any,
    outputs: dict[str, Any],
    options: dict[str, Any],
    profile: str,
    mode: str,
    grad_output: Any,
    seed: int | None,
    client: Any,
) -> Report:
    chosen = profile_named(profile)
    if mode not in MODES:
        raise InvalidInput(f"unknown mode {mode!r}", field="mode", hint="use full or quick")
    checked_seed(seed, mode)
    seed = None if seed is None else int(seed)  # a numpy integer is stored as Python's, as the report shows it
    loss_options = _options(options)
    refuse_shared_memory(outputs, {"hidden": hidden, "classifier": classifier, "labels": labels, "bias": bias})
    if is_sharded(classifier):
        sharded = checked_shards(hidden, classifier, labels, bias, loss_options, grad_output)
        candidates = sharded_candidates(sharded, outputs, loss_options)
        _refuse_cluster(client, "a classifier in shards")
        return check_sharded(sharded, candidates, loss_options, chosen, mode, seed)
    inputs = checked_inputs(hidden, classifier, labels, bias, loss_options, grad_output)
    answer = checked_answer(inputs, outputs)
    if mode == "quick":
        from sce.grading.linear.quick_report import quick_report

        _refuse_cluster(client, "quick mode")
        return quick_report(inputs, answer, chosen, seed)
    if client is not None:
        from sce.grading.linear.cluster import cluster_check

        report = cluster_check(inputs, answer, chosen, client)
    else:
        report, reference, baseline = full_check(inputs, answer, chosen)
        if not report.passed:
            from sce.grading.linear.mistakes import named_mistake

            return named_mistake(report, inputs, answer, chosen, reference, baseline)
        del reference, baseline  # its kept logits (up to 560 MiB) freed before a loop profile's second check
    return _unless_a_mistake_explains_it(report, inputs, answer) if report.passed and chosen.running_sums else report


def _unless_a_mistake_explains_it(report: Report, inputs: LinearInputs, answer: LinearAnswer) -> Report:
    """A pass under the loop profile that only a running sum's worst case allows (frameworks' sums
    would not) stands unless a named mistake explains the answer: at many rows K·u exceeds a 1/N
    slip (an ignored row counted in the mean). Then the frameworks' verdict and the mistake."""
    from sce.grading.linear.mistakes import named_mistake

    plain = profile_named("pytorch")  # the loop profile rounds as pytorch's does
    strict, reference, baseline = full_check(inputs, answer, plain)
    if strict.passed:
        return report
    named = named_mistake(strict, inputs, answer, plain, reference, baseline)
    return report if named.mistake is None else dataclasses.replace(named, profile=report.profile)


def _options(options: dict[str, Any]) -> LossOptions:
    found = dict(options)
    found["weight"] = weight_tuple(found.get("weight"))
    try:
        chosen = LossOptions(**found)
    except TypeError as problem:
        raise ValueError(str(problem)) from None
    # Before the inputs: a bad option is named as itself, not as the labels it fails to ignore.
    validated_options(chosen)
    return chosen


def _refuse_cluster(client: Any, what: str) -> None:
    if client is not None:
        raise InvalidInput(
            f"{what} is checked on one machine, not on a cluster", field="engine",
            hint="leave out the cluster, or check the whole classifier in full mode",
        )  # fmt: skip
