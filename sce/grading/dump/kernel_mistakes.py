"""The denominator mistakes real kernels make, as what-ifs of the exact result, block by block.

Most are the exact gradient with each row scaled (a wrong denominator); the
label read 1-based and the smoothing term that counts ignored rows need the
exact computation again with a change. Each what-if gives, for a block, its
gradient and each row's contribution to the reported loss (None where the
mistake says nothing about the loss).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sce.grading import catalogue, conventions, derivative_slips
from sce.grading.dump.baseline import RowCoefficients, coefficients
from sce.io.arrays import ArrayDump
from sce.io.arrays.mapped_rows import read_rows
from sce.loss import SoftmaxCrossEntropyResult, softmax_cross_entropy
from sce.options import LossOptions

#: Micro-batch counts tried for "the mean of per-batch means" (equal batches only).
BATCH_COUNTS = (2, 4, 8, 16)


@dataclass(frozen=True)
class Denominators:
    rows: int
    counted_rows: int
    total: float
    """What 'mean' divides by: the counted rows' weight sum (labels) or N (targets)."""
    ignored: bool
    weighted: bool


@dataclass(frozen=True)
class Block:
    start: int
    logits: np.ndarray
    labels: np.ndarray | None
    targets: np.ndarray | None
    exact: SoftmaxCrossEntropyResult
    contributions: np.ndarray
    """Each row's share of the reported loss (its loss, or its loss / D for 'mean')."""
    stored_targets: np.ndarray | None = None
    """The targets as stored, for the core (which allows float32 targets float32's rounding)."""


WhatIf = Callable[[Block], tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class GradientChange:
    """A what-if's gradient as the exact one changed: each row times its factor, then some entries
    (flat indices into the block, increasing) set to values of their own."""

    factors: np.ndarray
    """Each row's factor (B)."""
    index: np.ndarray
    values: np.ndarray

    def applied(self, gradient: np.ndarray) -> np.ndarray:
        changed = gradient * self.factors[:, None]
        changed.reshape(-1)[self.index] = self.values
        return changed


@dataclass(frozen=True)
class ChangedGradient:
    """A what-if whose gradient is the exact one changed (:class:`GradientChange`), so that its
    errors may be measured entry by entry without the what-if formed (:mod:`.mistake_trials`)."""

    change: Callable[[Block], tuple[GradientChange, np.ndarray | None]]
    """The block's change, and the rows' contributions to the loss (None where not changed)."""

    def __call__(self, block: Block) -> tuple[np.ndarray, np.ndarray | None]:
        change, losses = self.change(block)
        return change.applied(block.exact.gradient), losses


def _row_factors(factors: np.ndarray) -> GradientChange:
    return GradientChange(factors, np.zeros(0, np.int64), np.zeros(0))


def exact_block(
    dump: ArrayDump, start: int, stop: int, options: LossOptions, d: Denominators
) -> tuple[Block, RowCoefficients]:
    """Rows start:stop of the dump, their exact float64 result and their loss coefficients."""
    block, _ = exact_rows(dump, start, stop, options, d)
    coef = coefficients(block.labels, block.targets, block.logits.shape[1], options, d.total, d.counted_rows)
    return block, coef


def exact_rows(
    dump: ArrayDump, start: int, stop: int, options: LossOptions, d: Denominators
) -> tuple[Block, np.ndarray]:
    """Rows start:stop of the dump and their exact float64 result, with the whole dump's
    denominators (the mean's and the z-loss's); also the logits as stored."""
    total = d.total
    stored = read_rows(dump.logits, start, stop)
    # As stored where numpy knows the type: the core converts, and knows where float32's shifts
    # are exact (bfloat16, from ml_dtypes, is not one of numpy's floats).
    logits = stored if stored.dtype.kind == "f" else stored.astype(np.float64)
    labels = None if dump.labels is None else np.asarray(dump.labels[start:stop])
    stored_targets = None if dump.targets is None else read_rows(dump.targets, start, stop)
    targets = None if stored_targets is None else stored_targets.astype(np.float64, copy=False)
    # Called in threads: the caller silences the core's warnings (catch_warnings is not thread-safe).
    exact = softmax_cross_entropy(
        logits,
        labels,
        targets=stored_targets,  # as stored: float32 targets may sum to 1 only within float32's rounding
        options=options,
        mean_denominator=total if options.reduction == "mean" else None,
        z_loss_denominator=d.counted_rows if options.reduction == "mean" else None,
    )
    block = Block(start, exact.logits, labels, targets, exact, _contributions(exact, options), stored_targets)
    return block, stored


def denominators(labels: np.ndarray | None, rows: int, options: LossOptions) -> Denominators:
    if labels is None:
        return Denominators(rows, rows, float(rows), False, options.weight is not None)
    counted = labels != options.ignore_index
    total = float(_label_weights(labels, options).sum())
    return Denominators(rows, int(counted.sum()), total, bool((~counted).any()), options.weight is not None)


def _label_weights(labels: np.ndarray, options: LossOptions) -> np.ndarray:
    counted = labels != options.ignore_index
    if options.weight is None:
        return counted.astype(np.float64)
    weights = np.asarray(options.weight, dtype=np.float64)
    return np.where(counted, weights[np.where(counted, labels, 0)], 0.0)


def what_ifs(
    labels: np.ndarray | None, d: Denominators, options: LossOptions, rerun: bool = True
) -> dict[str, WhatIf]:
    """The mistakes that differ from the truth for these inputs, each by the catalogue's words
    (:meth:`~sce.grading.catalogue.Mistake.described`, with what this input makes of it).
    ``rerun`` False: other labels' what-ifs may change the exact result's entries instead of
    computing it again, to within a rounding of float64 (for answers graded in a narrower type)."""
    found: dict[str, WhatIf] = {}
    if options.reduction == "mean" and d.total > 0:
        if d.ignored:
            detail = f"{d.rows:,} rows, where the mean divides by {d.total:g}"
            found[catalogue.IGNORED_ROWS_COUNTED.described(detail)] = _scaled(d.total / d.rows)
        if d.weighted and d.counted_rows and d.total != d.counted_rows:
            detail = f"{d.counted_rows:,} rows, where the weight sum is {d.total:g}"
            found[catalogue.WEIGHT_SUM_BY_ROW_COUNT.described(detail)] = _scaled(d.total / d.counted_rows)
        found[catalogue.SUM_NOT_MEAN.described(f"not divided by {d.total:g}")] = _scaled(d.total)
        if labels is not None:
            found.update(_per_batch_means(labels, d, options))
        if labels is not None and d.ignored and options.label_smoothing > 0:
            found[catalogue.SMOOTHING_OVER_EVERY_ROW.described()] = _smoothing(options, d.total / d.rows)
    if options.reduction == "sum" and d.total > 0:
        found[catalogue.MEAN_NOT_SUM.described(f"divided by {d.total:g}")] = _scaled(1 / d.total)
    if options.reduction == "none" and d.total > 0:
        found[catalogue.MEAN_NOT_NONE.described(f"divided by {d.total:g}")] = _scaled(1 / d.total, loss=False)
    found.update(_formula_what_ifs(labels, options, rerun))
    found.update(_convention_what_ifs(d, options))
    return found


def _formula_what_ifs(labels: np.ndarray | None, options: LossOptions, rerun: bool) -> dict[str, WhatIf]:
    """The slips of the formula itself, row by row: the sign, the −y, the log's base, the
    temperature's 1/T, the normalisation, the weights, the label's index."""
    found: dict[str, WhatIf] = {
        catalogue.SIGN_FLIPPED.described(): _scaled(-1.0),
        catalogue.PROBABILITIES.described(): _target_left_out,
        catalogue.LOG10.described(): _scaled(1 / math.log(10)),
        catalogue.LOG2.described(): _scaled(1 / math.log(2)),
    }
    if options.temperature != 1.0:
        found[catalogue.TEMPERATURE_FACTOR_MISSING.described()] = _scaled(options.temperature, loss=False)
    if not options.z_loss:
        found[catalogue.NOT_NORMALISED.described()] = _not_normalised
        if labels is not None and options.weight is not None:
            found[catalogue.WEIGHTS_PER_CLASS.described()] = _weights_per_class
    if labels is not None:
        found[catalogue.PREDICTED_CLASS.described()] = _label_predicted(options, rerun)
        found[catalogue.ONE_BASED.described()] = _label_shifted(options, -1, rerun)
        found[catalogue.LABEL_PLUS_ONE.described()] = _label_shifted(options, +1, rerun)
    if not options.z_loss and options.weight is None:
        found.update(_derivation_what_ifs(labels, options))
    return found


def _derivation_what_ifs(labels: np.ndarray | None, options: LossOptions) -> dict[str, WhatIf]:
    """The slips of the derivation (:mod:`sce.grading.derivative_slips`), gradient only but e^z's;
    each only where it applies to every block (without a z-loss or weights, as the caller asks)."""
    slips = {catalogue.STOPPED_AT_DL_DS: derivative_slips.stopped_at_probabilities}
    if labels is not None:
        slips[catalogue.ONLY_LABEL_ENTRY] = derivative_slips.label_entry_only
    if labels is None or options.label_smoothing:  # with a one-hot target it is the label's entry
        slips[catalogue.JACOBIAN_DIAGONAL] = derivative_slips.jacobian_diagonal
    found: dict[str, WhatIf] = {mistake.described(): _gradient_of(slip) for mistake, slip in slips.items()}
    if (
        labels is not None
        and not options.label_smoothing
        and not (labels == options.ignore_index).any()
        and len(np.unique(labels)) > 1
    ):
        found[catalogue.LABELS_BROADCAST.described()] = _gradient_of(
            lambda exact: derivative_slips.labels_broadcast(exact, labels)
        )
    found[catalogue.UNNORMALISED_EXP.described()] = _unnormalised_exp
    return found


def _gradient_of(slip: Callable[[SoftmaxCrossEntropyResult], np.ndarray | None]) -> WhatIf:
    """A slip of the gradient alone (chosen where it applies: :func:`_derivation_what_ifs`)."""

    def what_if(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
        gradient = slip(block.exact)
        assert gradient is not None
        return gradient, None

    return what_if


def _unnormalised_exp(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
    """e^z for the probabilities: its gradient, and each row's −Σ t·z as its share of the loss."""
    slip = derivative_slips.unnormalised_exp(block.exact)
    assert slip is not None
    _exp, gradient, losses = slip
    exact = block.exact
    if exact.options.reduction == "mean":
        losses = losses * (1 / exact.denominator if exact.denominator else 0.0)
    return gradient, losses


def _label_predicted(options: LossOptions, rerun: bool) -> WhatIf:
    """The −1 at each row's predicted class (its first largest logit), not at its label."""

    def what_if(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
        predicted = derivative_slips.predicted_labels(block.exact)
        if predicted is None:
            return block.exact.gradient, block.contributions
        return _relabelled(block, predicted, options, rerun)

    def change(block: Block) -> tuple[GradientChange, np.ndarray | None]:
        predicted = derivative_slips.predicted_labels(block.exact)
        if predicted is None:
            return _row_factors(np.ones(len(block.logits))), block.contributions
        return _relabelled_change(block, predicted, options)

    return what_if if rerun or not _changes_two_entries(options) else ChangedGradient(change)


def _relabelled(
    block: Block, labels: np.ndarray, options: LossOptions, rerun: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The gradient and the loss's contributions with other labels: the exact computation again;
    or (without ``rerun``, and where :func:`_changes_two_entries`) the exact result with those
    entries changed (:func:`_relabelled_change`)."""
    if rerun or not _changes_two_entries(options) or block.labels is None:
        other = _rerun(block, labels, options)
        return other.gradient, _contributions(other, options)
    change, losses = _relabelled_change(block, labels, options)
    return change.applied(block.exact.gradient), losses


def _changes_two_entries(options: LossOptions) -> bool:
    """Whether other labels change two entries per row and its loss alone: no weights, smoothing,
    z-loss or softcap."""
    return options.weight is None and not options.label_smoothing and not options.z_loss and options.softcap is None


def _relabelled_change(
    block: Block, labels: np.ndarray, options: LossOptions
) -> tuple[GradientChange, np.ndarray | None]:
    """Other labels as the exact result with two entries per row changed, to within a rounding of
    float64 (for an answer graded in a narrower type, where that is nothing)."""
    assert block.labels is not None
    exact = block.exact
    rows = np.flatnonzero(exact.counted)
    old, new = block.labels[rows], labels[rows]
    scale = exact.gradient_scale
    p = exact.probabilities
    classes = p.shape[1]
    # The label's entry set first and the new one after it, as two assignments would (one class: the new one).
    index = np.concatenate([rows * classes + old, rows * classes + new]).astype(np.int64)
    values = np.concatenate([p[rows, old] * scale, (p[rows, new] - 1.0) * scale]).astype(np.float64)
    order = np.argsort(index, kind="stable")
    index, values = index[order], values[order]
    last = np.ones(len(index), dtype=bool)
    last[:-1] = index[1:] != index[:-1]
    # −log p_new = −log p_old + (z_old − z_new)/T: the row's log-sum-exp cancels.
    losses = np.array(exact.losses, dtype=np.float64)
    logits = block.logits
    losses[rows] += (logits[rows, old].astype(np.float64) - logits[rows, new]) / options.temperature
    if options.reduction == "mean":
        losses *= 0.0 if exact.denominator == 0 else 1 / exact.denominator
    return GradientChange(np.ones(len(p)), index[last], values[last]), losses


def _convention_what_ifs(d: Denominators, options: LossOptions) -> dict[str, WhatIf]:
    """The options' slips (:mod:`.conventions`): the other smoothing style or none; the z-loss
    left out, divided by the weight sum or summed; the softcap or its derivative left out."""
    z_count = float(d.counted_rows) if options.reduction == "mean" else 1.0
    kinds: dict[str, WhatIf] = {}
    if options.label_smoothing:
        other = "uniform" if options.smoothing_style == "off-target" else "off-target"
        kinds[conventions.OTHER_SMOOTHING_STYLE] = _changed(options, smoothing_style=other)
        kinds[conventions.SMOOTHING_LEFT_OUT] = _changed(options, label_smoothing=0.0)
    if options.z_loss and z_count != 0:  # no counted row: no z-loss to leave out
        kinds[conventions.Z_LOSS_LEFT_OUT] = _z_loss_scaled(0.0)
        if options.reduction == "mean" and d.total not in (0, z_count):
            kinds[conventions.Z_LOSS_BY_WEIGHT_SUM] = _z_loss_scaled(z_count / d.total)
        if options.reduction == "mean" and z_count not in (0, 1):
            kinds[conventions.Z_LOSS_SUMMED] = _z_loss_scaled(z_count)
    if options.softcap is not None:
        kinds[conventions.SOFTCAP_LEFT_OUT] = _changed(options, softcap=None)
        kinds[conventions.TANH_DERIVATIVE_LEFT_OUT] = _without_cap_factor
    if options.temperature != 1.0:
        kinds[conventions.TEMPERATURE_LEFT_OUT] = _changed(options, temperature=1.0)
    return {catalogue.OF_CONVENTION[kind].described(): what_if for kind, what_if in kinds.items()}


def _changed(options: LossOptions, **changes: object) -> WhatIf:
    """The exact computation again with an option changed (the same denominators)."""
    other_options = options.replace(**changes)

    def what_if(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
        other = _rerun(block, block.labels, other_options)
        return other.gradient, _contributions(other, other_options)

    return what_if


def _z_loss_scaled(factor: float) -> WhatIf:
    """The z-loss's term (gradient and loss) times ``factor`` instead of 1: 0 left out, D_z/D
    divided by the weight sum, D_z summed."""

    def what_if(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
        exact = block.exact
        z_gradient = conventions.z_loss_gradients(exact)
        z_losses = np.zeros(len(block.logits)) if exact.z_losses is None else exact.z_losses.astype(np.float64)
        if exact.options.reduction == "mean":
            z_count = exact.z_loss_denominator
            z_losses = z_losses * (0.0 if z_count == 0 else 1 / z_count)
        change = factor - 1
        return exact.gradient + z_gradient * change, block.contributions + z_losses * change

    return what_if


def _without_cap_factor(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
    """∂L/∂a, the gradient with respect to the capped logits; the loss is not changed."""
    return conventions.gradient_wrt_capped(block.exact), None


def _target_left_out(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
    """The gradient without its −y: the probabilities (scaled as the gradient is); the loss is not changed."""
    exact = block.exact
    scale = _gradient_factor(exact)
    mass = (exact.class_weights.astype(np.float64) * exact.target.astype(np.float64)).sum(axis=1, keepdims=True)
    # From p itself, not the gradient plus y: p − 1 + 1 would lose the digits of a small p.
    probabilities = exact.probabilities.astype(np.float64) * mass * scale
    return probabilities + conventions.z_loss_gradients(exact), None


def _gradient_factor(exact: SoftmaxCrossEntropyResult) -> np.ndarray:
    """Each row's 1/(T·D) (0 on rows not counted) times the cap's factor 1 − tanh²(z/c) (N×K)."""
    scale = np.where(exact.counted, exact.gradient_scale, 0.0)[:, None]
    return scale * exact.cap_derivative.astype(np.float64)


def _not_normalised(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
    """e^(z − max z) in place of the probabilities (without a z-loss); the loss is not changed."""
    exact = block.exact
    weighted = exact.class_weights.astype(np.float64) * exact.target.astype(np.float64)
    unnormalised = exact.exp_shifted.astype(np.float64) * weighted.sum(axis=1, keepdims=True)
    return (unnormalised - weighted) * _gradient_factor(exact), None


def _weights_per_class(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
    """w ⊙ (p − y): each class scaled by its own weight, not the row by its label's."""
    exact = block.exact
    y = exact.target.astype(np.float64)
    p = exact.probabilities.astype(np.float64) * y.sum(axis=1, keepdims=True)
    return exact.class_weights.astype(np.float64) * (p - y) * _gradient_factor(exact), None


def _scaled(factor: float, loss: bool = True) -> WhatIf:
    def change(block: Block) -> tuple[GradientChange, np.ndarray | None]:
        factors = np.full(len(block.logits), factor)
        return _row_factors(factors), block.contributions * factor if loss else None

    return ChangedGradient(change)


def _per_batch_means(labels: np.ndarray, d: Denominators, options: LossOptions) -> dict[str, WhatIf]:
    """x1/n1 + x2/n2 (or their mean) instead of (x1 + x2)/(n1 + n2), over equal micro-batches."""
    found: dict[str, WhatIf] = {}
    weights = _label_weights(labels, options)
    for count in BATCH_COUNTS:
        if d.rows % count or d.rows < 2 * count:
            continue
        per_batch = weights.reshape(count, -1).sum(axis=1)
        if (per_batch == 0).any() or np.allclose(per_batch, per_batch[0]):
            continue  # equal batches: the mean of means is the mean
        size = d.rows // count
        row_factor = np.repeat(d.total / per_batch, size)
        detail = f"{count} batches of {size:,} rows"
        found[catalogue.PER_BATCH_MEANS.described(detail)] = _row_scaled(row_factor / count)
        found[catalogue.PER_BATCH_MEANS_SUMMED.described(detail)] = _row_scaled(row_factor)
    return found


def _row_scaled(factors: np.ndarray) -> WhatIf:
    def change(block: Block) -> tuple[GradientChange, np.ndarray | None]:
        rows = factors[block.start : block.start + len(block.logits)]
        return _row_factors(rows), block.contributions * rows

    return ChangedGradient(change)


def _rerun(block: Block, labels: np.ndarray | None, options: LossOptions) -> SoftmaxCrossEntropyResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return softmax_cross_entropy(
            block.logits,
            labels,
            targets=None if labels is not None else block.stored_targets,
            options=options,
            mean_denominator=block.exact.denominator if options.reduction == "mean" else None,
            z_loss_denominator=block.exact.z_loss_denominator if options.reduction == "mean" else None,
        )


def _contributions(result: SoftmaxCrossEntropyResult, options: LossOptions) -> np.ndarray:
    """Each row's share of the reported loss: for 'mean' its cross-entropy over the weight sum D
    and its z-loss over the counted rows D_z (the z-loss is unweighted)."""
    if options.reduction != "mean":
        return result.losses
    shares = result.losses * (0.0 if result.denominator == 0 else 1 / result.denominator)
    if options.z_loss and result.z_losses is not None and result.denominator != result.z_loss_denominator:
        z_losses = result.z_losses.astype(np.float64)
        z_count = result.z_loss_denominator
        shares = shares - z_losses * (0.0 if result.denominator == 0 else 1 / result.denominator)
        shares = shares + z_losses * (0.0 if z_count == 0 else 1 / z_count)
    return shares


def _label_shifted(options: LossOptions, by: int, rerun: bool) -> WhatIf:
    """The labels read one class off: label − 1 (1-based labels read as 0-based) or label + 1."""

    def shifted(block: Block) -> np.ndarray:
        assert block.labels is not None
        classes = block.logits.shape[1]
        return np.where(block.labels == options.ignore_index, block.labels, (block.labels + by) % classes)

    def what_if(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
        return _relabelled(block, shifted(block), options, rerun)

    def change(block: Block) -> tuple[GradientChange, np.ndarray | None]:
        return _relabelled_change(block, shifted(block), options)

    return what_if if rerun or not _changes_two_entries(options) else ChangedGradient(change)


def _smoothing(options: LossOptions, factor: float) -> WhatIf:
    """(1 − ε)·nll/D + ε·smooth/N: the smoothing term's share scaled by D/N."""
    eps = options.label_smoothing

    def what_if(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
        plain_options = options.replace(label_smoothing=0.0)
        plain = _rerun(block, block.labels, plain_options)
        nll_gradient = (1 - eps) * plain.gradient
        nll_loss = (1 - eps) * _contributions(plain, plain_options)
        gradient = nll_gradient + (block.exact.gradient - nll_gradient) * factor
        return gradient, nll_loss + (block.contributions - nll_loss) * factor

    return what_if
