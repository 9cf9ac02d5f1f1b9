"""The exact side of the quick check: G = ∂L/∂Z block by block, reduced to what the quick
check compares (the loss's rows, ∂L/∂b, projections and sampled rows of ∂L/∂E and ∂L/∂C)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sce.loss.vocabulary_shards import ShardedBlock, ShardGradient, Sharding

BLOCK_BYTES = 1 << 27
#: The entries of any one float64 array the pass makes: below glibc's largest mmap threshold
#: (32 MB), so that a freed array's memory is reused rather than returned to the system and
#: faulted in again page by page, which costs more than the arithmetic.
ARRAY_ENTRIES = 1 << 20
#: Unit roundoff of each type a candidate may be given in.
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
#: Smallest normal number of each type: a probability below it is subnormal or, where a kernel flushes
#: subnormals to zero (GPU kernels often do), 0; either way off by at most this much.
SMALLEST_NORMAL = {"float64": 2.0**-1022, "float32": 2.0**-126, "float16": 2.0**-14, "bfloat16": 2.0**-126}


@dataclass(frozen=True)
class QuickPlan:
    """What the quick check looks at: seeded, so that a failing run can be repeated."""

    seed: int
    projections: int
    hidden_rows: np.ndarray
    """Rows of dE graded entry by entry."""
    classifier_rows: np.ndarray
    """Rows of dC (classes) graded entry by entry."""
    hidden_vectors: np.ndarray
    """D × k: dE is projected on these."""
    classifier_vectors: np.ndarray
    """D × k: dC is projected on these."""

    @classmethod
    def drawn(cls, n_rows: int, n_classes: int, width: int, *, seed: int, samples: int, projections: int) -> QuickPlan:
        rng = np.random.default_rng(seed)
        hidden_rows = np.sort(rng.choice(n_rows, size=min(samples, n_rows), replace=False))
        classifier_rows = np.sort(rng.choice(n_classes, size=min(samples, n_classes), replace=False))
        hidden_vectors = rng.uniform(-1.0, 1.0, (width, projections))
        classifier_vectors = rng.uniform(-1.0, 1.0, (width, projections))
        return cls(seed, projections, hidden_rows, classifier_rows, hidden_vectors, classifier_vectors)


@dataclass
class Accumulated:
    """The exact side of the quick check, summed over blocks of rows (float64)."""

    cross: list[np.ndarray] = field(default_factory=list)
    lse: list[np.ndarray] = field(default_factory=list)
    z_part: list[np.ndarray] = field(default_factory=list)
    grad_bias: np.ndarray | None = None
    grad_bias_magnitude: np.ndarray | None = None
    hidden_projected: list[np.ndarray] = field(default_factory=list)
    hidden_projected_magnitude: list[np.ndarray] = field(default_factory=list)
    classifier_projected: np.ndarray | None = None
    classifier_projected_magnitude: np.ndarray | None = None
    hidden_rows: list[np.ndarray] = field(default_factory=list)
    hidden_rows_magnitude: list[np.ndarray] = field(default_factory=list)
    classifier_rows: np.ndarray | None = None
    classifier_rows_magnitude: np.ndarray | None = None
    column_sums: np.ndarray | None = None
    """Σ_v |C_vd| for each d (what skipped entries of a row may leave out of ∂L/∂E, per unit)."""
    excused_hidden: np.ndarray | None = None
    """Σ_i excused_i·|E_id| for each d (the same for ∂L/∂C)."""
    column_maxima: np.ndarray | None = None
    """max_v |C_vd| for each d."""
    baseline_error: list[np.ndarray] = field(default_factory=list)
    """Per row: the same-type baseline's worst error in ∂L/∂z, relative to each entry's size."""
    logit_size: list[np.ndarray] = field(default_factory=list)
    """Each row's bound on its logits' size, Σ_d |E_id|·max_v |C_vd| (bias aside)."""
    baseline_loss_error: list[np.ndarray] = field(default_factory=list)
    """Per row: how far the same-type baseline's logits move the row's loss."""
    excused: list[np.ndarray] = field(default_factory=list)
    """Per row: what each entry of a correct kernel's ∂L/∂z may be off by beyond its relative
    rounding: the profile's skipped entries and the underflow of probabilities."""


def row_block_size(n_classes: int) -> int:
    """Rows per block: a block's float64 logits (all its chunks) within :data:`BLOCK_BYTES`."""
    return max(1, BLOCK_BYTES // (8 * max(n_classes, 1)))


def chunk_size(width: int, rows: int) -> int:
    """Classes per chunk: its float64 classifier and a block's logits of it within :data:`ARRAY_ENTRIES`."""
    return max(1, min(ARRAY_ENTRIES // max(width, 1), ARRAY_ENTRIES // max(rows, 1)))


@dataclass(frozen=True)
class Chunk:
    """A piece of the classifier (and bias) small enough to copy to float64 at once."""

    classifier: np.ndarray
    bias: np.ndarray | None
    shard: int = 0
    """The shard it was cut from."""

    def float64(self) -> np.ndarray:
        return np.asarray(self.classifier, dtype=np.float64)

    def logits(self, hidden: np.ndarray, classifier: np.ndarray) -> np.ndarray:
        # float32 and bfloat16 products are exact in float64; only the D-term sums round.
        logits = hidden @ classifier.T
        if self.bias is not None:
            logits += np.asarray(self.bias, dtype=np.float64)
        return logits


def chunks_of(classifier: Sequence[np.ndarray], bias: Sequence[np.ndarray | None], rows: int) -> list[Chunk]:
    """The shards cut into chunks of :func:`chunk_size` classes, in order."""
    chunks = []
    for owner, (shard, shard_bias) in enumerate(zip(classifier, bias)):
        step = chunk_size(shard.shape[1], rows)
        for start in range(0, max(shard.shape[0], 1), step):
            part = shard[start : start + step]
            chunks.append(Chunk(part, None if shard_bias is None else shard_bias[start : start + step], owner))
    return chunks


def exact_pass(
    hidden: np.ndarray, chunks: Sequence[Chunk], sharding: Sharding, plan: QuickPlan, excused: np.ndarray | None
) -> Accumulated:
    """G block by block, and what the quick check needs of it. ``sharding`` is over the chunks."""
    n_classes = sharding.offsets[-1]
    width = hidden.shape[1]
    acc = Accumulated(
        grad_bias=np.zeros(n_classes),
        grad_bias_magnitude=np.zeros(n_classes),
        classifier_projected=np.zeros((n_classes, plan.projections)),
        classifier_projected_magnitude=np.zeros((n_classes, plan.projections)),
        classifier_rows=np.zeros((len(plan.classifier_rows), width)),
        classifier_rows_magnitude=np.zeros((len(plan.classifier_rows), width)),
    )
    projected, projected_abs = [], []
    acc.column_maxima = np.zeros(width)
    acc.column_sums = np.zeros(width)
    acc.excused_hidden = np.zeros(width)
    for chunk in chunks:
        c64 = chunk.float64()
        if len(c64):
            np.maximum(acc.column_maxima, np.abs(c64).max(axis=0), out=acc.column_maxima)
            acc.column_sums += np.abs(c64).sum(axis=0)
        projected.append(c64 @ plan.hidden_vectors)
        projected_abs.append(np.abs(c64) @ np.abs(plan.hidden_vectors))
    step = max(1, min(hidden.shape[0], row_block_size(n_classes)))  # no rows (an empty batch): no block
    for start in range(0, hidden.shape[0], step):
        rows = slice(start, min(start + step, hidden.shape[0]))
        block_hidden = np.asarray(hidden[rows], dtype=np.float64)
        block = sharding.block([chunk.logits(block_hidden, chunk.float64()) for chunk in chunks], rows)
        row_excused = underflow_per_row(sharding, block.lse, rows, hidden.dtype)
        if excused is not None:
            row_excused += excused[rows]
        acc.excused.append(row_excused)
        acc.excused_hidden += row_excused @ np.abs(block_hidden)
        worst, loss_error = _baseline_error(hidden[rows], chunks, sharding, rows, block)
        acc.baseline_error.append(worst)
        acc.baseline_loss_error.append(loss_error)
        acc.cross.append(block.cross)
        acc.lse.append(block.lse)
        acc.z_part.append(block.z_part)
        sizes = (projected, projected_abs)
        _accumulate(acc, block.shards, block_hidden, chunks, rows, plan, sharding, sizes)
    if not hidden.shape[0]:
        _add_no_rows(acc, plan, width)
    return acc


def _add_no_rows(acc: Accumulated, plan: QuickPlan, width: int) -> None:
    """What a block of no rows adds (an empty batch has no block): empty per-row parts of every shape."""
    for parts in (acc.cross, acc.lse, acc.z_part, acc.excused, acc.baseline_error, acc.baseline_loss_error,
                  acc.logit_size):  # fmt: skip
        parts.append(np.zeros(0))
    k = plan.projections
    widths = ((acc.hidden_projected, k), (acc.hidden_projected_magnitude, k), (acc.hidden_rows, width),
              (acc.hidden_rows_magnitude, width))  # fmt: skip
    for parts, columns in widths:
        parts.append(np.zeros((0, columns)))


def underflow_per_row(sharding: Sharding, lse: np.ndarray, rows: slice, dtype: np.dtype) -> np.ndarray:
    """Per row, what underflow may take from each entry of a correct kernel's ∂L/∂z: a probability
    below the type's smallest normal number (e^-88 in float32) is lost (flushed, or subnormal),
    and so is its product with the row's factor, the division by the mean's denominator and the
    rounding to the type: 4·tiny·(1 + factor), far classes of confident rows being the common case."""
    scales = sharding.row_scales(lse, rows)
    factor = np.abs(scales.mass * scales.cross) + np.abs(scales.z)
    tiny = SMALLEST_NORMAL.get(np.dtype(dtype).name, SMALLEST_NORMAL["float32"])
    return 4 * tiny * (1 + np.nan_to_num(factor, nan=0.0, posinf=0.0))


def _cap_derivative_rounding(logits: np.ndarray, softcap: float | None, work: type[np.floating]) -> np.ndarray | None:
    """d'/d for the soft cap's derivative d = 1 - tanh²(z/c): d' as a kernel forms it in its working
    type, where 1 - tanh² loses its digits as the cap saturates (float32: 166 u at z = 3c)."""
    if softcap is None or work is np.float64:
        return None
    decay = np.exp(-2.0 * np.abs(logits / softcap))
    exact = 4.0 * decay / (1.0 + decay) ** 2  # 1/cosh²: 1 - tanh² without its cancellation
    t = np.tanh(logits.astype(work) / work(softcap))
    rounded = (work(1) - t * t).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = rounded / exact
    return np.where(exact > 0, ratio, 1.0)


def _baseline_error(
    hidden: np.ndarray, chunks: Sequence[Chunk], sharding: Sharding, rows: slice, exact: ShardedBlock
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the worst of |G' - G| / size over the row's entries, G' the gradient of the logits a
    same-type kernel forms (float32 products and sums, rounded to the input's type): what its
    logits' rounding moves the probabilities by, which the allowance must cover (extreme logits);
    and how far those logits move the row's loss."""
    kind = hidden.dtype if hidden.dtype in (np.float16, np.float64) or hidden.dtype.name == "bfloat16" else None
    work: type[np.floating] = np.float64 if hidden.dtype == np.float64 else np.float32
    block: np.ndarray = np.asarray(hidden, dtype=work)
    logits = []
    for chunk in chunks:
        z: np.ndarray = block @ np.asarray(chunk.classifier, dtype=work).T
        if chunk.bias is not None:
            z += np.asarray(chunk.bias, dtype=work)
        if kind is not None and kind != np.float64:
            z = z.astype(kind)
        logits.append(np.asarray(z, dtype=np.float64))
    rounded_caps = [_cap_derivative_rounding(z, sharding.loss.softcap, work) for z in logits]
    baseline = sharding.block(logits, rows)
    for shard, rounding in zip(baseline.shards, rounded_caps):
        if rounding is not None:
            shard.gradient[...] *= rounding
    with np.errstate(invalid="ignore"):
        loss_error = np.abs((baseline.cross + baseline.z_part) - (exact.cross + exact.z_part))
    loss_error[~np.isfinite(loss_error)] = 0.0
    worst = np.zeros(rows.stop - rows.start)
    for base, right in zip(baseline.shards, exact.shards):
        size = right.magnitude
        if size is None:
            size = np.abs(right.gradient)
            size[right.label_rows, right.label_columns] += right.label_excess
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.abs(base.gradient - right.gradient) / size
        ratio[~np.isfinite(ratio)] = 0.0
        if ratio.size:
            np.maximum(worst, ratio.max(axis=1), out=worst)
    return worst, loss_error


def _accumulate(
    acc: Accumulated,
    shards: list[ShardGradient],
    hidden: np.ndarray,
    chunks: Sequence[Chunk],
    rows: slice,
    plan: QuickPlan,
    sharding: Sharding,
    projected: tuple[list[np.ndarray], list[np.ndarray]],
) -> None:
    """Add a block's G to every reduction the quick check compares: one product of G with the
    projections and their sizes side by side, one of Gᵀ with the hidden side's and a column of
    ones (∂L/∂b), each corrected where the size differs from G only at the labels."""
    assert acc.grad_bias is not None and acc.grad_bias_magnitude is not None
    assert acc.classifier_projected is not None and acc.classifier_projected_magnitude is not None
    k = plan.projections
    right = np.hstack([hidden @ plan.classifier_vectors, np.abs(hidden) @ np.abs(plan.classifier_vectors),
                       np.ones((len(hidden), 1))])  # fmt: skip
    sampled = plan.hidden_rows[(plan.hidden_rows >= rows.start) & (plan.hidden_rows < rows.stop)] - rows.start
    sample_rows = np.zeros((len(sampled), hidden.shape[1]))
    sample_rows_abs = np.zeros_like(sample_rows)
    block_projected = np.zeros((hidden.shape[0], 2 * k))
    for index, shard in enumerate(shards):
        classes = slice(sharding.offsets[index], sharding.offsets[index + 1])
        left = np.hstack([projected[0][index], projected[1][index]])
        g = shard.gradient
        if shard.magnitude is None:
            block_projected += g @ left  # the size is G itself, but at the labels
            transposed = g.T @ right
            acc.classifier_projected[classes] += transposed[:, :k]
            acc.classifier_projected_magnitude[classes] += transposed[:, k : 2 * k]
            acc.grad_bias[classes] += transposed[:, 2 * k]
            acc.grad_bias_magnitude[classes] += transposed[:, 2 * k]
            _add_label_excess(acc, block_projected, shard, classes, projected[1][index], right, k)
        else:
            block_projected += np.hstack([g @ projected[0][index], shard.magnitude @ projected[1][index]])
            transposed = g.T @ right
            magnitude_t = shard.magnitude.T @ right[:, k:]
            acc.classifier_projected[classes] += transposed[:, :k]
            acc.classifier_projected_magnitude[classes] += magnitude_t[:, :k]
            acc.grad_bias[classes] += transposed[:, 2 * k]
            acc.grad_bias_magnitude[classes] += magnitude_t[:, k]
        if len(sampled) or _sampled_classes(plan, classes).size:
            _add_sampled(acc, shard, hidden, chunks[index], classes, plan, sampled, (sample_rows, sample_rows_abs))
    acc.hidden_projected.append(block_projected[:, :k])
    acc.hidden_projected_magnitude.append(block_projected[:, k:])
    acc.hidden_rows.append(sample_rows)
    acc.hidden_rows_magnitude.append(sample_rows_abs)
    acc.logit_size.append(_logit_size(hidden, acc.column_maxima))


def _add_label_excess(
    acc: Accumulated,
    block_projected: np.ndarray,
    shard: ShardGradient,
    classes: slice,
    projected_abs: np.ndarray,
    right: np.ndarray,
    k: int,
) -> None:
    """The size exceeds G only at the labels' entries, by ``label_excess``: add that there."""
    assert acc.classifier_projected_magnitude is not None and acc.grad_bias_magnitude is not None
    rows, columns, excess = shard.label_rows, shard.label_columns, shard.label_excess
    np.add.at(block_projected[:, k:], rows, excess[:, None] * projected_abs[columns])
    at = classes.start + columns
    np.add.at(acc.classifier_projected_magnitude, at, excess[:, None] * right[rows, k : 2 * k])
    np.add.at(acc.grad_bias_magnitude, at, excess)


def _sampled_classes(plan: QuickPlan, classes: slice) -> np.ndarray:
    return plan.classifier_rows[(plan.classifier_rows >= classes.start) & (plan.classifier_rows < classes.stop)]


def _add_sampled(
    acc: Accumulated,
    shard: ShardGradient,
    hidden: np.ndarray,
    chunk: Chunk,
    classes: slice,
    plan: QuickPlan,
    sampled: np.ndarray,
    into: tuple[np.ndarray, np.ndarray],
) -> None:
    """The sampled rows of ∂L/∂E and of ∂L/∂C, whole, with their sizes."""
    assert acc.classifier_rows is not None and acc.classifier_rows_magnitude is not None
    if len(sampled):
        c64 = chunk.float64()
        rows = shard.gradient[sampled]
        into[0][:] += rows @ c64
        into[1][:] += _size_of(shard, rows, sampled, None) @ np.abs(c64)
    local = _sampled_classes(plan, classes) - classes.start
    if len(local):
        at = np.searchsorted(plan.classifier_rows, local + classes.start)
        columns = shard.gradient[:, local]
        acc.classifier_rows[at] += columns.T @ hidden
        acc.classifier_rows_magnitude[at] += _size_of(shard, columns, None, local).T @ np.abs(hidden)


def _size_of(shard: ShardGradient, part: np.ndarray, rows: np.ndarray | None, columns: np.ndarray | None) -> np.ndarray:
    """The size of some rows (or columns) of a shard's gradient, ``part`` being G's."""
    if shard.magnitude is not None:
        return shard.magnitude[rows] if rows is not None else shard.magnitude[:, columns]
    size = part.copy()
    label_rows, label_columns = shard.label_rows, shard.label_columns
    if rows is not None:
        found = np.isin(label_rows, rows)
        size[np.searchsorted(rows, label_rows[found]), label_columns[found]] += shard.label_excess[found]
    else:
        assert columns is not None
        found = np.isin(label_columns, columns)
        size[label_rows[found], np.searchsorted(columns, label_columns[found])] += shard.label_excess[found]
    return size


def _logit_size(hidden: np.ndarray, column_maxima: np.ndarray | None) -> np.ndarray:
    """Each row's Σ_d |E_id|·max_v |C_vd|: no logit of the row (bias aside) is larger."""
    assert column_maxima is not None
    return np.abs(hidden) @ column_maxima
