"""Naming the mistake in quick mode, from the rows of ∂L/∂E it computed exactly.

The quick check has the exact rows of a sample: the named-mistake machinery runs on them. A
mistake is named where those rows of the answer fail against the right result and fit its what-if,
entry by entry within the same allowances; the report says so. A mistake the sample cannot tell
(one only in ∂L/∂C, the loss or unsampled rows) goes unnamed, and the report says that too: the
full check tries every output.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sce.grading.dump.baseline import ulps
from sce.grading.linear.answers import LinearAnswer, LinearInputs
from sce.grading.linear.check import operand_share
from sce.grading.linear.mistakes import what_ifs
from sce.grading.linear.quick import QuickOutcome
from sce.grading.linear.report import Report
from sce.loss.linear_cross_entropy import stream_gradients
from sce.loss.linear_terms import LinearTerms

NOT_NAMED = (
    "no mistake named: quick mode names one only where the sampled rows of grad_hidden fit it and not the right "
    "result (the full check tries every output)"
)
#: The same where ∂L/∂E was not given: the sentence names no rows that were never compared.
NOT_NAMED_WITHOUT_HIDDEN = (
    "no mistake named: quick mode names one only from sampled rows of grad_hidden, which was not given (the full "
    "check tries every output)"
)


def quick_named(report: Report, inputs: LinearInputs, answer: LinearAnswer, outcome: QuickOutcome) -> Report:
    """The failed quick report with the mistake its sampled rows of ∂L/∂E tell, and a sentence
    saying how it was named, or that it was not."""
    if report.passed or report.quick is None:
        return report
    rows = outcome.plan.hidden_rows
    grade = next((grade for grade in outcome.grades if grade.name == "grad_hidden"), None)
    if answer.grad_hidden is None or grade is None:
        return _said(report, NOT_NAMED_WITHOUT_HIDDEN)
    if grade.entries.passed:
        return _said(report, NOT_NAMED)
    allowed, size = grade.entries.allowed, grade.entries.magnitude
    if allowed is None or size is None:
        return _said(report, NOT_NAMED)
    given = np.asarray(answer.grad_hidden[rows], dtype=np.float64)
    for mistake, terms in what_ifs(inputs, {"lse": outcome.lse}):
        with np.errstate(invalid="ignore"):
            fits = bool((ulps(given, _what_if_rows(inputs, terms, rows), size, grade.dtype) <= allowed).all())
        if fits:
            said = f"the mistake named from the {len(rows)} sampled rows of grad_hidden, which it explains"
            return _said(dataclasses.replace(report, mistake=mistake.name, fix=mistake.fix), said)
    return _said(report, NOT_NAMED)


def _what_if_rows(inputs: LinearInputs, terms: LinearTerms, rows: np.ndarray) -> np.ndarray:
    """The rows of ∂L/∂E that ``terms`` give (exact, float64)."""
    found = np.zeros((len(rows), inputs.e.shape[1]))

    def rows_done(block: slice, values: np.ndarray, magnitude: np.ndarray) -> None:
        found[block] = values

    shared = dataclasses.replace(terms.of_rows(rows), operand_share=operand_share(inputs.e.dtype))
    stream_gradients(inputs.e[rows], inputs.c, inputs.b, shared, rows_done, None)
    return found


def _said(report: Report, sentence: str) -> Report:
    assert report.quick is not None
    quick = dict(report.quick, naming=sentence, statement=f"{report.quick['statement']}; {sentence}")
    return dataclasses.replace(report, quick=quick)
