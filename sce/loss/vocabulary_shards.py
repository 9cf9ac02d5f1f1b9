"""Cross-entropy over a vocabulary split into shards, without gathering the logits.

Megatron's vocabulary-parallel loss gives each rank a slice of the classes. Each row's loss
and gradient need only four numbers per shard: the shard's largest logit m_k, its sum of
exponentials s_k = Σ_j e^(b_j - m_k), the label's logit (on the one shard that holds the
label) and the weighted sum of its logits Σ_j w_j·b_j (for smoothing). Combined,
lse = M + log Σ_k s_k·e^(m_k - M) with M = max_k m_k: the same value, to float64's
rounding, as the lse of the gathered row. Each shard's gradient then follows from its own
logits and the row's lse.

Soft-capping is a per-logit map, so each shard caps its own logits; the z-loss and the
smoothing need only lse and the sums above.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sce.loss.softcap import soft_capped


@dataclass(frozen=True)
class ShardLoss:
    """The loss's options as a shard needs them (PyTorch's meaning; ε/K and the weights
    refer to the whole vocabulary of ``n_classes``)."""

    n_classes: int
    label_smoothing: float = 0.0
    smoothing_style: str = "uniform"
    softcap: float | None = None
    z_loss: float = 0.0

    def smoothed_mass(self, n_classes: int | None = None) -> tuple[float, float]:
        """(the label's extra share, every class's smoothed share): q_j = extra·δ_jy + share.

        'uniform': q = (1 - ε)·δ + ε/K; 'off-target': q = (1 - ε)·δ + ε/(K - 1)·(1 - δ),
        that is (1 - ε - ε/(K - 1))·δ + ε/(K - 1). ``n_classes`` replaces K (a what-if).
        """
        k = self.n_classes if n_classes is None else n_classes
        eps = self.label_smoothing
        if eps == 0 or k == 1:
            return 1.0, 0.0
        if self.smoothing_style == "off-target":
            return 1 - eps - eps / (k - 1), eps / (k - 1)
        return 1 - eps, eps / k


@dataclass(frozen=True)
class ShardRows:
    """One shard's statistics for a block of rows (each an array with one entry per row)."""

    maximum: np.ndarray
    """max_j b_j over the shard's classes (-inf for a shard without classes)."""
    exp_sum: np.ndarray
    """Σ_j e^(b_j - maximum)."""
    target: np.ndarray
    """w_y·b_y where the row's label is on this shard, else 0."""
    weighted_sum: np.ndarray
    """Σ_j w_j·b_j over the shard's classes."""


def capped_logits(logits: np.ndarray, loss: ShardLoss) -> tuple[np.ndarray, np.ndarray | None]:
    """(b, db/dz): the logits after the soft cap (float64) and the cap's derivative (None without a cap)."""
    z = np.asarray(logits, dtype=np.float64)
    if loss.softcap is None:
        return z, None
    capped = soft_capped(z, loss.softcap)
    return capped.rounded, capped.derivative


def shard_rows(b: np.ndarray, local_labels: np.ndarray, weights: np.ndarray, *, smoothed: bool = True) -> ShardRows:
    """The statistics of one shard's (capped) logits ``b`` (rows × local classes, float64),
    turning ``b`` into e^(b - maximum) in place (the exponentials the gradient is made of).

    ``local_labels``: each row's label as an index into this shard, -1 where the label is
    elsewhere or the row is ignored. ``weights``: the shard's class weights (local classes).
    ``smoothed``: whether the weighted sum is needed (left 0 without smoothing).
    """
    rows = np.arange(b.shape[0])
    zeros = np.zeros(b.shape[0])
    if b.shape[1] == 0:
        return ShardRows(np.full(b.shape[0], -np.inf), zeros, zeros, zeros)
    here = local_labels >= 0
    safe = np.where(here, local_labels, 0)
    target = np.where(here, weights[safe] * b[rows, safe], 0.0)
    weighted = b @ weights if smoothed else zeros
    maximum = b.max(axis=1)
    b -= maximum[:, None]
    np.exp(b, out=b)
    return ShardRows(maximum, b.sum(axis=1), target, weighted)


def combined_log_sum_exp(shards: Sequence[ShardRows]) -> np.ndarray:
    """lse of each whole row from its shards' maxima and sums of exponentials."""
    maxima = np.stack([s.maximum for s in shards])
    top = maxima.max(axis=0)
    with np.errstate(invalid="ignore"):
        scaled = sum(s.exp_sum * np.exp(s.maximum - top) for s in shards if np.isfinite(s.maximum).any())
    return top + np.log(scaled)


def row_losses(
    lse: np.ndarray, shards: Sequence[ShardRows], label_weight: np.ndarray, total_weight: float, loss: ShardLoss
) -> tuple[np.ndarray, np.ndarray]:
    """(cross-entropy part, z-loss part) of each row's loss, before any reduction.

    ℓ = Σ_j w_j·q_j·(lse - b_j) = mass·lse - extra·w_y·b_y - share·Σ_j w_j·b_j, with
    mass = extra·w_y + share·Σ_j w_j; z-loss λ·lse². ``label_weight``: w_y per row, 0 for
    an ignored row (its loss is 0); ``total_weight``: Σ_j w_j over the whole vocabulary.
    """
    extra, share = loss.smoothed_mass()
    target = sum(s.target for s in shards)
    weighted = sum(s.weighted_sum for s in shards)
    counted = label_weight != 0
    mass = extra * label_weight + share * total_weight
    cross = np.where(counted, mass * lse - extra * target - share * weighted, 0.0)
    z_part = np.where(counted, loss.z_loss * lse * lse, 0.0)
    return cross, z_part


@dataclass(frozen=True)
class RowScales:
    """Per row, what multiplies each part of the gradient (0 for an ignored row)."""

    cross: np.ndarray
    """The cross-entropy part's factor: 1/W for 'mean' (W = Σ w_y over counted rows), else 1."""
    mass: np.ndarray
    """Σ_l w_l·q_l = extra·w_y + share·Σ_l w_l."""
    z: np.ndarray
    """The z-loss part's 2λ·lse, over n counted rows for 'mean'."""


@dataclass(frozen=True)
class ShardGradient:
    """∂L/∂z on one shard (rows × local classes, float64) and the size of its operands: either
    a whole array, or (where they differ only there) the gradient plus ``label_excess`` at the
    labels' entries ``label_rows``, ``label_columns``."""

    gradient: np.ndarray
    magnitude: np.ndarray | None
    label_rows: np.ndarray
    label_columns: np.ndarray
    label_excess: np.ndarray


def shard_gradient(
    exponentials: np.ndarray,
    derivative: np.ndarray | None,
    shift: np.ndarray,
    local_labels: np.ndarray,
    weights: np.ndarray,
    scales: RowScales,
    shares: tuple[float, float],
) -> ShardGradient:
    """∂L/∂z on one shard from its e^(b - m) (turned into the gradient in place), with
    ``shift`` = m - lse per row, so that p = e^(b - m)·e^(m - lse).

    ∂ℓ/∂b_j = (Σ_l w_l·q_l)·p_j - w_j·q_j for the cross-entropy part and 2λ·lse·p_j for the
    z-loss; times the cap's derivative. ``shares``: the label's extra share and every
    class's smoothed share (:meth:`ShardLoss.smoothed_mass`). The size is the same sum with
    every term's absolute value: a label's entry p - 1 of a confident row is tiny, but it is
    the difference of numbers near 1, and errors are counted in units of those. Under a soft
    cap the size is that of ∂L/∂a, before the cap's factor 1 − tanh², as the full check counts
    it: a kernel forms the factor from tanh's rounded result, to within an ulp of 1, which is
    all of a saturated cap's factor; counted at the capped size, that rounding would excuse
    any answer of the capped gradient's size, a negated one included.
    """
    extra, share = shares
    p = exponentials
    p *= np.exp(shift)[:, None]
    coefficient = scales.mass * scales.cross + scales.z
    plain = derivative is None and not share and bool((coefficient >= 0).all()) and bool((scales.cross >= 0).all())
    magnitude = None if plain else p * (scales.mass * np.abs(scales.cross) + np.abs(scales.z))[:, None]
    gradient = p
    gradient *= coefficient[:, None]
    if share:
        smoothed = (share * scales.cross)[:, None] * weights[None, :]
        gradient -= smoothed
        assert magnitude is not None
        magnitude += np.abs(smoothed)
    here = np.flatnonzero(local_labels >= 0)
    columns = local_labels[here]
    label_part = extra * scales.cross[here] * weights[columns]
    gradient[here, columns] -= label_part
    excess = 2 * np.abs(label_part)
    if magnitude is not None:
        magnitude[here, columns] += np.abs(label_part)
    if derivative is not None:
        gradient *= derivative
    return ShardGradient(gradient, magnitude, here, columns, excess)


@dataclass(frozen=True)
class Sharding:
    """Where each shard's classes sit in the whole vocabulary, and the rows' labels and weights.

    Built once for a problem (:meth:`of`); :meth:`rows` and :meth:`block` then work on any
    block of rows.
    """

    offsets: tuple[int, ...]
    """The first class of each shard, and the vocabulary's size last."""
    labels: np.ndarray
    counted: np.ndarray
    weights: np.ndarray
    loss: ShardLoss
    reduction: str
    upstream: np.ndarray | float = 1.0
    """The upstream gradient: one number, or one per row for 'none'."""
    local_classes: tuple[int, ...] | None = None
    """A what-if: each shard spreads the smoothing over this many classes (its rank's own
    vocabulary) instead of the whole vocabulary's, as Megatron's vocabulary-parallel loss once did."""

    @classmethod
    def of(
        cls,
        widths: Sequence[int],
        labels: np.ndarray,
        *,
        weight: np.ndarray | None,
        ignore_index: int,
        reduction: str,
        loss: ShardLoss,
        upstream: np.ndarray | float = 1.0,
    ) -> Sharding:
        offsets = (0, *np.cumsum(widths).tolist())
        labels = np.asarray(labels, dtype=np.int64)
        counted = labels != ignore_index
        weights = np.ones(offsets[-1]) if weight is None else np.asarray(weight, dtype=np.float64)
        return cls(tuple(int(o) for o in offsets), labels, counted, weights, loss, reduction, upstream)

    def with_widths(self, widths: Sequence[int], owners: Sequence[int] | None = None) -> Sharding:
        """The same problem cut into other shards (of these widths, in order); ``owners``: which
        of the present shards each new one lies in (it keeps that shard's ``local_classes``)."""
        local = self.local_classes
        if local is not None and owners is not None:
            local = tuple(local[k] for k in owners)
        return dataclasses.replace(self, offsets=(0, *(int(o) for o in np.cumsum(widths))), local_classes=local)

    def as_if_smoothing_were_local(self) -> Sharding:
        """The what-if of smoothing spread over each shard's own classes (see ``local_classes``)."""
        widths = np.diff(self.offsets)
        return dataclasses.replace(self, local_classes=tuple(int(w) for w in widths))

    @functools.cached_property
    def label_weights(self) -> np.ndarray:
        """w_y per row, 0 for an ignored row."""
        return np.where(self.counted, self.weights[np.where(self.counted, self.labels, 0)], 0.0)

    @functools.cached_property
    def denominators(self) -> tuple[float, float]:
        """(W, n): the 'mean' divisors of the cross-entropy part and of the z-loss part."""
        if self.reduction != "mean":
            return 1.0, 1.0
        return math.fsum(self.label_weights.tolist()), float(self.counted.sum())

    def local_labels(self, shard: int, rows: slice) -> np.ndarray:
        """The rows' labels as indices into one shard, -1 where the label is elsewhere or ignored."""
        start, stop = self.offsets[shard], self.offsets[shard + 1]
        labels = self.labels[rows]
        here = self.counted[rows] & (labels >= start) & (labels < stop)
        return np.where(here, labels - start, -1)

    def row_scales(self, lse: np.ndarray, rows: slice) -> RowScales:
        """What multiplies each row's probabilities and smoothing shares in ∂L/∂z (``lse``: the rows')."""
        counted = self.counted[rows]
        w_total, n_total = self.denominators
        shares = self.loss.smoothed_mass()
        upstream = np.broadcast_to(np.asarray(self.upstream, dtype=np.float64), self.labels.shape)[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            return RowScales(
                cross=np.where(counted, upstream / w_total, 0.0),
                mass=shares[0] * self.label_weights[rows] + shares[1] * float(self.weights.sum()),
                z=np.where(counted, 2 * self.loss.z_loss * lse * upstream / n_total, 0.0),
            )

    def block(self, logits: Sequence[np.ndarray], rows: slice) -> ShardedBlock:
        """Each row's loss parts and each shard's gradient for a block of rows, from its shards'
        logits (float64 arrays this consumes: each becomes its shard's gradient)."""
        capped = [capped_logits(z, self.loss) for z in logits]
        locals_ = [self.local_labels(k, rows) for k in range(len(logits))]
        weights = [self.weights[self.offsets[k] : self.offsets[k + 1]] for k in range(len(logits))]
        shares = self.loss.smoothed_mass()
        stats = [shard_rows(b, lab, w, smoothed=bool(shares[1])) for (b, _), lab, w in zip(capped, locals_, weights)]
        lse = combined_log_sum_exp(stats)
        label_weight = self.label_weights[rows]
        cross, z_part = row_losses(lse, stats, label_weight, float(self.weights.sum()), self.loss)
        scales = self.row_scales(lse, rows)
        every = [shares] * len(logits)
        if self.local_classes is not None:
            every = [self.loss.smoothed_mass(k) for k in self.local_classes]
        gradients = [
            shard_gradient(e, d, st.maximum - lse, lab, w, scales, own)
            for (e, d), st, lab, w, own in zip(capped, stats, locals_, weights, every)
        ]
        return ShardedBlock(lse, cross, z_part, gradients)


@dataclass(frozen=True)
class ShardedBlock:
    """A block of rows' results: lse, loss parts (unreduced) and one gradient per shard."""

    lse: np.ndarray
    cross: np.ndarray
    z_part: np.ndarray
    shards: list[ShardGradient]

    @property
    def gradients(self) -> list[np.ndarray]:
        return [shard.gradient for shard in self.shards]


def reduced_sharded_loss(cross: np.ndarray, z_part: np.ndarray, sharding: Sharding) -> float | np.ndarray:
    """The loss as the reduction asks: per row for 'none'; else Σ cross/W + Σ z/n, each sum rounded once."""
    if sharding.reduction == "none":
        return cross + z_part
    w_total, n_total = sharding.denominators
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_total = np.float64(math.fsum(cross.tolist())) / np.float64(w_total)
        z_total = np.float64(math.fsum(z_part.tolist())) / np.float64(n_total) if sharding.loss.z_loss else 0.0
    return float(cross_total + z_total)


def sharded_cross_entropy(
    logits: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    smoothing_style: str = "uniform",
    softcap: float | None = None,
    z_loss: float = 0.0,
) -> tuple[float | np.ndarray, list[np.ndarray]]:
    """The loss and ∂L/∂z of logits split over the vocabulary, one array per shard, never gathered.

    Parameters
    ----------
    logits : sequence of numpy.ndarray
        Shard k holds the classes offset_k … offset_k + V_k - 1 of every row (N × V_k), in order.
    labels : numpy.ndarray
        N class indices into the whole vocabulary.
    weight, ignore_index, reduction, label_smoothing, smoothing_style, softcap, z_loss
        As :func:`sce.softmax_cross_entropy` (``weight`` over the whole vocabulary).

    Returns
    -------
    (loss, gradients)
        The loss (a float, or N floats for 'none') and one gradient per shard, float64.

    Examples
    --------
    >>> import numpy as np
    >>> loss, (g0, g1) = sharded_cross_entropy([np.array([[2.0, 3.0]]), np.array([[4.0]])], np.array([1]))
    >>> print(f"{loss:.6f}", np.round(np.hstack([g0, g1]), 6))
    1.407606 [[ 0.090031 -0.755272  0.665241]]
    """
    shard_loss = ShardLoss(sum(z.shape[1] for z in logits), label_smoothing, smoothing_style, softcap, z_loss)
    sharding = Sharding.of(
        [z.shape[1] for z in logits],
        labels,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        loss=shard_loss,
    )
    block = sharding.block([np.array(z, dtype=np.float64) for z in logits], slice(0, len(sharding.labels)))
    return reduced_sharded_loss(block.cross, block.z_part, sharding), block.gradients
