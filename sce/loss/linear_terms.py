"""What every block of a linear layer's cross-entropy needs of the labels and the options:
each row's coefficients c_ij (the label's share and the smoothing's mass), their sum s, and the
scales of the cross-entropy's and the z-loss's gradients (upstream gradient over the mean's
denominator)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sce.loss.exact_sum import ExactSum, exact_ratio
from sce.loss.result import InvalidInput
from sce.loss.validation import validated_options
from sce.options import LossOptions


@dataclass(frozen=True)
class LinearTerms:
    """What every block needs of the labels and options: each row's coefficients and scales."""

    labels: np.ndarray
    """Each row's label, 0 where the row is ignored (N)."""
    counted: np.ndarray
    """Whether each row counts (N)."""
    label_share: np.ndarray
    """The label's coefficient (1 − ε)·w_y, 0 where the row is ignored (N)."""
    smoothed: np.ndarray
    """Each class's smoothing coefficient, ε/V·w_j (uniform) or ε/(V − 1)·w_j (off-target) (V)."""
    off_target: bool
    """Whether the label's own entry has no smoothing mass (off-target style)."""
    total: np.ndarray
    """s = Σ_j c_ij, each row's coefficients summed (N)."""
    ce_scale: np.ndarray
    """What multiplies s·p − c: the upstream gradient over the mean's denominator (N)."""
    z_scale: np.ndarray
    """What multiplies lse·p for the z-loss: 2λ times the upstream gradient over its denominator (N)."""
    z_loss: float
    softcap: float | None
    reduction: str
    denominator: float
    """What 'mean' divides the cross-entropy by: the weight sum of the counted rows."""
    z_denominator: float
    """What 'mean' divides the z-loss by: the number of counted rows."""
    chain_softcap: bool = True
    """Whether the gradient is multiplied by the soft cap's derivative (a what-if may leave it out)."""
    row_factors: tuple[np.ndarray, np.ndarray] | None = None
    """What multiplies each row's cross-entropy and z-loss in the reported loss, where it is not
    the reduction's own (a what-if's: the mean of per-chunk means)."""
    operand_share: float = 1.0
    """How much of the operands' size |s·p| + |c| a block's ``magnitude`` counts beside |G|
    itself: 1 where the answer's type is the one p − y is formed in, u(float32)/u(type) where a
    narrower answer forms it in float32 (then rounds a value that keeps its own digits)."""
    row_weights: np.ndarray | None = None
    """Each counted row's label weight w_y (what 'mean' sums), 0 where ignored (N)."""
    label_offset: np.ndarray | None = None
    """Added to each row's label entry of ∂L/∂z before the soft cap's factor (a what-if's: the
    label's probability rounded before 1 is subtracted) (N), or None."""

    def of_rows(self, rows: np.ndarray) -> LinearTerms:
        """The terms of some rows only (their denominators those of all rows)."""

        def some(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[rows]

        factors = self.row_factors
        return dataclasses.replace(
            self, labels=self.labels[rows], counted=self.counted[rows], label_share=self.label_share[rows],
            total=self.total[rows], ce_scale=self.ce_scale[rows], z_scale=self.z_scale[rows],
            row_factors=None if factors is None else (factors[0][rows], factors[1][rows]),
            row_weights=some(self.row_weights), label_offset=some(self.label_offset),
        )  # fmt: skip

    def coefficients(self, rows: slice, classes: slice) -> np.ndarray:
        """c_ij of a block: the smoothing's mass on every class and the label's share on its own."""
        c = np.zeros((rows.stop - rows.start, classes.stop - classes.start))
        self.add_coefficients(c, rows, classes, np.ones(len(c)))
        return c

    def add_coefficients(self, block: np.ndarray, rows: slice, classes: slice, factor: np.ndarray) -> None:
        """block += c·factor (one factor per row), in place, never forming c where there is no
        smoothing (the label's entries alone)."""
        factor = np.where(self.counted[rows], factor, 0).astype(block.dtype)
        smoothed = self.smoothed[classes].astype(block.dtype)
        if self.smoothing:
            block += factor[:, None] * smoothed
        inside, where = self.label_entries(rows, classes)
        block[inside, where] += self._label_part(rows, inside, where, smoothed) * factor[inside]

    def weighted_sums(self, values: np.ndarray, rows: slice, classes: slice) -> np.ndarray:
        """Σ_j c_ij·values_ij of each row of a block."""
        smoothed = self.smoothed[classes].astype(values.dtype)
        sums = values @ smoothed if self.smoothing else np.zeros(len(values), values.dtype)
        sums[~self.counted[rows]] = 0
        inside, where = self.label_entries(rows, classes)
        sums[inside] += self._label_part(rows, inside, where, smoothed) * values[inside, where]
        return sums

    def weighted_differences(
        self, row_values: np.ndarray, block: np.ndarray, rows: slice, classes: slice
    ) -> np.ndarray:
        """Σ_j c_ij·(row_valuesᵢ − block_ij) of each row of a block, as :meth:`weighted_sums` of the
        differences gives it, forming them only at the labels where there is no smoothing."""
        if self.smoothing:
            return self.weighted_sums(row_values[:, None] - block, rows, classes)
        sums = np.zeros(len(block), np.result_type(row_values, block))
        inside, where = self.label_entries(rows, classes)
        smoothed = self.smoothed[classes].astype(sums.dtype)
        sums[inside] += self._label_part(rows, inside, where, smoothed) * (row_values[inside] - block[inside, where])
        return sums

    @property
    def smoothing(self) -> bool:
        return bool(self.smoothed.any())

    def label_entries(self, rows: slice, classes: slice) -> tuple[np.ndarray, np.ndarray]:
        """The counted rows of a block whose label is among its classes, and that label's column."""
        start, stop, _ = classes.indices(len(self.smoothed))
        labels = self.labels[rows]
        inside = np.flatnonzero(self.counted[rows] & (labels >= start) & (labels < stop))
        return inside, labels[inside] - start

    def _label_part(self, rows: slice, inside: np.ndarray, where: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
        """What the label's entry adds to the smoothing's mass there: its share, less that mass
        where the style sets (off-target) rather than adds."""
        share = self.label_share[rows][inside].astype(smoothed.dtype)
        return share - smoothed[where] if self.off_target else share


def linear_terms(
    labels: np.ndarray,
    n_classes: int,
    options: LossOptions,
    grad_output: np.ndarray | float = 1.0,
    smoothing_classes: int | None = None,
) -> LinearTerms:
    """The per-row coefficients and scales of the loss for ``labels`` (checked) and ``options``;
    ``smoothing_classes`` is the count smoothing spreads ε over (V; a what-if may give another)."""
    _, weights = validated_options(options)
    w = np.ones(n_classes) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != n_classes:
        raise InvalidInput(f"{len(w)} weights for {n_classes} classes", field="weight")
    counted = labels != options.ignore_index
    safe = np.where(counted, labels, 0)
    eps = options.label_smoothing
    off_target = options.smoothing_style == "off-target"
    spread = n_classes if smoothing_classes is None else smoothing_classes
    if off_target:
        share, mass = (1.0, 0.0) if eps == 0 or spread == 1 else (1 - eps, eps / (spread - 1))
    else:
        share, mass = 1 - eps, eps / spread
    smoothed = mass * w
    label_share = np.where(counted, share * w[safe], 0.0)
    smoothing_total = float(smoothed.sum())
    total = label_share + np.where(counted, smoothing_total - (smoothed[safe] if off_target else 0.0), 0.0)
    denominator = float(w[safe][counted].sum()) if options.reduction == "mean" else 1.0
    z_denominator = float(counted.sum()) if options.reduction == "mean" else 1.0
    upstream = np.broadcast_to(np.asarray(grad_output, dtype=np.float64), labels.shape)
    ce_scale = np.where(counted, upstream / denominator if denominator else 0.0, 0.0)
    z_scale = np.where(counted, 2 * options.z_loss * upstream / z_denominator if z_denominator else 0.0, 0.0)
    return LinearTerms(
        safe, counted, label_share, smoothed, off_target, total, ce_scale, z_scale,
        float(options.z_loss), options.softcap, options.reduction, denominator, z_denominator,
        row_weights=np.where(counted, w[safe], 0.0),
    )  # fmt: skip


def reported_loss(losses: np.ndarray, terms: LinearTerms) -> float | np.ndarray:
    """The loss as PyTorch reports it from each row's (cross-entropy, z-loss) (N×2): their sums
    for 'none', else summed exactly and rounded once (for 'mean', the cross-entropy over the
    counted rows' weight sum and the z-loss over their number)."""
    if terms.reduction == "none":
        return losses.sum(axis=1)
    if terms.row_factors is not None:
        return float((losses[:, 0] * terms.row_factors[0]).sum() + (losses[:, 1] * terms.row_factors[1]).sum())
    cross_entropy, z = ExactSum.of(losses[:, 0]), ExactSum.of(losses[:, 1])
    if terms.reduction == "sum":
        return exact_ratio([(cross_entropy + z, 1.0)])
    parts = [(cross_entropy, terms.denominator)]
    if terms.z_loss:
        parts.append((z, terms.z_denominator))
    return exact_ratio(parts)
