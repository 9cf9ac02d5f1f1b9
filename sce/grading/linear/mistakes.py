"""Named mistakes of fused linear cross-entropy kernels, each told by what it gives.

A wrong answer is graded again against each mistake's what-if: the reference computed as the
mistake computes it (other scales per row, no soft-cap factor, smoothing over fewer classes, the
label's probability rounded), allowed the same errors as the right result. A mistake is named
only where the answer passes against its what-if in every output given: the name then explains
every failing entry. The classifier's gradient accumulated in the input's type is a rounding, not
a value: it is named where the answer passes with that accumulation as its baseline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from sce.errors import option
from sce.grading.catalogue import Mistake
from sce.grading.dump.baseline import ulps
from sce.grading.linear.answers import LinearAnswer, LinearInputs
from sce.grading.linear.baseline import LinearBaseline, same_type_baseline
from sce.grading.linear.check import full_check, operand_share
from sce.grading.linear.profiles import Profile
from sce.grading.linear.report import Report
from sce.grading.linear.stepped_baseline import SteppedBaseline, held_whole
from sce.loss.linear_cross_entropy import stream_gradients
from sce.loss.linear_terms import LinearTerms, linear_terms

ROWS_SCALED_BY_FIRST_UPSTREAM = Mistake(
    "every row's gradient scaled by the first row's upstream gradient",
    f"with {option('reduction')}='none', scale row i by grad_output[i], not grad_output[0]",
)
IGNORED_ROWS_COUNTED = Mistake(
    "ignored rows counted in the mean",
    f"divide by the counted rows only: those whose label is not {option('ignore_index')}",
)
CLASSIFIER_GRADIENT_IN_INPUT_TYPE = Mistake(
    "the classifier's gradient accumulated over chunks in the input's type",
    "accumulate ∂L/∂C in float32 across chunks and round to the input's type once, at the end",
)
LABEL_GRADIENT_ROUNDED_EARLY = Mistake(
    "the label's probability rounded to the input's type before 1 is subtracted",
    "form p − 1 in float32, then round: rounded first, p − 1 of a confident row is all error",
)
SOFTCAP_FACTOR_MISSING = Mistake(
    "the soft cap's factor 1 − tanh²(z/c) missing from the gradient",
    f"multiply ∂L/∂a by 1 − tanh²(z/c): the chain rule through c·tanh(z/c) ({option('softcap')})",
)
Z_LOSS_WEIGHTED_OR_DIVIDED = Mistake(
    "the z-loss weighted or divided differently",
    f"add λ·lse² per counted row, unweighted, with 'mean' divided by the number of counted rows; "
    f"its gradient is 2λ·lse·p ({option('z_loss')})",
)
SMOOTHING_OVER_LOCAL_VOCABULARY = Mistake(
    "label smoothing spread over a shard's local vocabulary",
    f"spread ε over the whole vocabulary V, not V divided by the shards ({option('label_smoothing')})",
)
MEAN_OF_CHUNK_MEANS = Mistake(
    "the mean of per-chunk means",
    "sum the chunks' losses and divide once, by the weight sum of all counted rows",
)

#: Every mistake this grader names, in the order tried.
LINEAR_MISTAKES = (
    ROWS_SCALED_BY_FIRST_UPSTREAM,
    IGNORED_ROWS_COUNTED,
    MEAN_OF_CHUNK_MEANS,
    Z_LOSS_WEIGHTED_OR_DIVIDED,
    SOFTCAP_FACTOR_MISSING,
    SMOOTHING_OVER_LOCAL_VOCABULARY,
    LABEL_GRADIENT_ROUNDED_EARLY,
    CLASSIFIER_GRADIENT_IN_INPUT_TYPE,
)


def named_mistake(
    report: Report,
    inputs: LinearInputs,
    answer: LinearAnswer,
    profile: Profile,
    reference: dict[str, Any],
    baseline: LinearBaseline | SteppedBaseline,
) -> Report:
    """The report with the mistake named (and its fix) where a what-if explains every output."""
    # A few rows of ∂L/∂E first, then the loss alone (one product, the logits'), then everything.
    loss_only = dataclasses.replace(answer, grad_hidden=None, grad_classifier=None, grad_bias=None)
    sample = _sample_rows(report, len(inputs.labels))
    for mistake, terms in what_ifs(inputs, reference):
        if answer.grad_hidden is not None and not _rows_fit(inputs, answer, terms, report, sample):
            continue
        if answer.loss is not None and not full_check(inputs, loss_only, profile, terms, baseline, report)[0].passed:
            continue
        if full_check(inputs, answer, profile, terms, baseline, report)[0].passed:
            return dataclasses.replace(report, mistake=mistake.name, fix=mistake.fix)
    # (At sizes where the baseline's outputs do not fit whole, a whole ∂L/∂C in the input's type does not either.)
    whole = _whole_baseline(inputs, profile, answer, baseline) if "grad_classifier" in answer.given else None
    if whole is not None and inputs.e.dtype.itemsize < 4:
        from sce.grading.linear.accumulation import input_type_accumulations

        for accumulated in input_type_accumulations(inputs, profile, answer, whole):
            if full_check(inputs, answer, profile, None, accumulated)[0].passed:
                mistake = CLASSIFIER_GRADIENT_IN_INPUT_TYPE
                return dataclasses.replace(report, mistake=mistake.name, fix=mistake.fix)
    return report


def _whole_baseline(
    inputs: LinearInputs, profile: Profile, answer: LinearAnswer, baseline: LinearBaseline | SteppedBaseline
) -> LinearBaseline | None:
    """The baseline with its outputs whole: the one graded against, or (where it was formed in steps
    beside kept logits, though its outputs fit) formed again whole; None where they do not fit."""
    if isinstance(baseline, LinearBaseline):
        return baseline
    n, d = inputs.e.shape
    if not held_whole(n, d, len(inputs.c)):
        return None
    return same_type_baseline(inputs.e, inputs.c, inputs.b, inputs.terms, profile, answer.types)


#: Rows of ∂L/∂E a mistake's what-if is tried on before the whole check: its worst and some others.
SAMPLE_ROWS = 32


def _sample_rows(report: Report, n: int) -> np.ndarray:
    entry = None if report.grad_hidden is None else report.grad_hidden.worst_entry
    worst = [entry[0]] if entry else []
    spread = np.linspace(0, n - 1, min(n, SAMPLE_ROWS)).astype(int) if n else np.zeros(0, int)
    return np.unique(np.concatenate([np.asarray(worst, int), spread]))


def _rows_fit(inputs: LinearInputs, answer: LinearAnswer, terms: LinearTerms, report: Report, rows: np.ndarray) -> bool:
    """Whether the answer's ∂L/∂E on ``rows`` is within the allowance of the what-if's: the
    products of those rows alone (a screen; the whole check decides)."""
    allowed = report.grad_hidden
    if allowed is None or not len(rows):
        return True
    found: list[bool] = []

    def rows_done(block: slice, values: np.ndarray, magnitude: np.ndarray) -> None:
        given = np.asarray(answer.grad_hidden, dtype=np.float64)[rows[block]]
        size = np.maximum(magnitude, np.abs(values))
        with np.errstate(invalid="ignore"):
            within = ulps(given, values, size, allowed.dtype) <= allowed.against_reference[0]
            found.append(bool(within.all()))

    shared = dataclasses.replace(terms.of_rows(rows), operand_share=operand_share(inputs.e.dtype))
    stream_gradients(inputs.e[rows], inputs.c, inputs.b, shared, rows_done, None)
    return all(found)


def what_ifs(inputs: LinearInputs, reference: dict[str, Any]) -> Iterator[tuple[Mistake, LinearTerms]]:
    """Each mistake the options allow, with the terms that compute what it gives."""
    t = inputs.terms
    options = inputs.options
    upstream = np.asarray(inputs.grad_output, dtype=np.float64)
    if options.reduction == "none" and upstream.ndim and len(upstream) and not (upstream == upstream[0]).all():
        yield ROWS_SCALED_BY_FIRST_UPSTREAM, linear_terms(inputs.labels, len(inputs.c), options, float(upstream[0]))
    if options.reduction == "mean" and not t.counted.all():
        yield IGNORED_ROWS_COUNTED, _divided(t, np.full(len(t.counted), 1.0 / len(t.counted)))
    if options.reduction == "mean":
        yield from ((MEAN_OF_CHUNK_MEANS, terms) for terms in _chunk_means(t))
    if options.z_loss:
        yield from ((Z_LOSS_WEIGHTED_OR_DIVIDED, terms) for terms in _z_loss_variants(t))
    if options.softcap is not None:
        yield SOFTCAP_FACTOR_MISSING, dataclasses.replace(t, chain_softcap=False)
    if options.label_smoothing:
        yield from ((SMOOTHING_OVER_LOCAL_VOCABULARY, terms) for terms in _local_smoothing(inputs, upstream))
    if inputs.e.dtype.itemsize < 4:
        yield LABEL_GRADIENT_ROUNDED_EARLY, _label_rounded(inputs, reference)


def _divided(t: LinearTerms, factors: np.ndarray, z_factors: np.ndarray | None = None) -> LinearTerms:
    """The terms with each row's cross-entropy (and z-loss) multiplied by ``factors`` in the
    loss and the gradient, instead of the mean's 1/denominator."""
    z_factors = factors if z_factors is None else z_factors
    upstream_ce = t.ce_scale * t.denominator
    upstream_z = t.z_scale * t.z_denominator
    counted = t.counted.astype(float)
    return dataclasses.replace(
        t,
        ce_scale=upstream_ce * factors,
        z_scale=upstream_z * z_factors,
        row_factors=(factors * counted, z_factors * counted),
    )


def _chunk_means(t: LinearTerms) -> Iterator[LinearTerms]:
    """The mean of per-chunk means, over the chunks torch.chunk makes (2, 4, 8, 16 of them) and
    chunks of a power of two rows: each row's factor 1/(chunks · the chunk's weight sum)."""
    n = len(t.counted)
    weight = _row_weights(t)
    count = t.counted.astype(float)
    layouts = {tuple(range(0, n, -(-n // k))) for k in (2, 4, 8, 16) if k < n}
    layouts |= {tuple(range(0, n, 1 << s)) for s in range(0, n.bit_length()) if (1 << s) < n}
    for starts in sorted(layouts):
        bounds = [*starts, n]
        factors, z_factors = np.zeros(n), np.zeros(n)
        for first, last in zip(bounds, bounds[1:]):
            chunk_weight, chunk_count = weight[first:last].sum(), count[first:last].sum()
            factors[first:last] = 1 / (len(starts) * chunk_weight) if chunk_weight else 0.0
            z_factors[first:last] = 1 / (len(starts) * chunk_count) if chunk_count else 0.0
        if _as_the_mean(t, factors, z_factors):
            continue  # chunks of equal weight: the mean of their means is the mean, no mistake to name
        yield _divided(t, factors, z_factors)


def _as_the_mean(t: LinearTerms, factors: np.ndarray, z_factors: np.ndarray) -> bool:
    """Whether every counted row's factors are the mean's own, 1/(weight sum) and 1/(counted rows)."""
    counted = t.counted
    if not t.denominator or not counted.any():
        return True
    same = np.allclose(factors[counted], 1 / t.denominator, rtol=1e-12, atol=0)
    return bool(same and (not t.z_loss or np.allclose(z_factors[counted], 1 / t.z_denominator, rtol=1e-12, atol=0)))


def _row_weights(t: LinearTerms) -> np.ndarray:
    return t.counted.astype(float) if t.row_weights is None else t.row_weights


def _z_loss_variants(t: LinearTerms) -> Iterator[LinearTerms]:
    """The z-loss divided by the cross-entropy's weight sum, by all N rows, weighted by the label's
    class weight, not divided ('mean' as 'sum'), or with λ for 2λ in its gradient."""
    n = len(t.counted)
    weight = _row_weights(t)
    if t.reduction == "mean" and t.denominator:
        ce = np.full(n, 1.0 / t.denominator)
        yield _divided(t, ce, np.full(n, 1.0 / t.denominator))
        yield _divided(t, ce, np.full(n, 1.0 / n))
        yield _divided(t, ce, weight / t.denominator)
        yield _divided(t, ce, np.ones(n))
    elif t.reduction != "mean":
        yield dataclasses.replace(t, z_scale=t.z_scale * weight, row_factors=(np.ones(n), weight))
    yield dataclasses.replace(t, z_scale=t.z_scale / 2)


def _local_smoothing(inputs: LinearInputs, upstream: np.ndarray) -> Iterator[LinearTerms]:
    """Smoothing spread over V/2, V/4, V/8 classes: uniform ε/V_local on each class; off-target
    as Megatron's vocabulary-parallel loss forms it, s = ε·V_local/(V_local − 1) for ε·V/(V − 1)."""
    v = len(inputs.c)
    eps = inputs.options.label_smoothing
    scale = upstream if upstream.ndim else float(upstream)
    for shards in (2, 4, 8):
        local = v // shards
        if local < 2:
            return
        if inputs.options.smoothing_style == "uniform":
            yield linear_terms(inputs.labels, v, inputs.options, scale, smoothing_classes=local)
            continue
        # (1 − s)·nll + s·mean_j(−log p_j) is off-target smoothing with ε' = s·(V − 1)/V.
        s = eps * local / (local - 1)
        yield linear_terms(inputs.labels, v, inputs.options.replace(label_smoothing=s * (v - 1) / v), scale)


def _label_rounded(inputs: LinearInputs, reference: dict[str, Any]) -> LinearTerms:
    """The label's probability p_y rounded to the input's type before p_y − 1: each label entry
    of ∂L/∂z moved by (round(p_y) − p_y)·s·scale."""
    t = inputs.terms
    label_logits = np.einsum("ij,ij->i", inputs.e.astype(np.float64), inputs.c[t.labels].astype(np.float64))
    if inputs.b is not None:
        label_logits = label_logits + inputs.b[t.labels]
    if t.softcap is not None:
        label_logits = t.softcap * np.tanh(label_logits / t.softcap)
    p = np.exp(label_logits - reference["lse"])
    rounded = p.astype(inputs.e.dtype).astype(np.float64)
    return dataclasses.replace(t, label_offset=(rounded - p) * t.total * t.ce_scale)
