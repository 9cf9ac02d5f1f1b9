"""The quick check of a fused linear cross-entropy: the forward product once, the backward
products only through random projections.

The full check forms G = ∂L/∂Z (N × V) and multiplies it twice more (dE = G·C, dC = Gᵀ·E);
the quick check forms G block by block exactly as the full check does, grades the loss and
dbias (which need only G) exactly, grades a seeded random sample of rows of dE and dC
entry by entry, and grades every other row through k random projections (Freivalds):
dE·r against G·(C·r), and dC·s against Gᵀ·(E·s), with r, s uniform in [-1, 1]^D.

Why a projection misses with small probability: for a row whose error e has an entry of
size δ, the projection e·r is a sum of independent terms of which one, e_j·r_j, is uniform
on [-δ, δ]; its density never exceeds 1/(2δ), so P(|e·r| ≤ T) ≤ T/δ, and k independent
projections all stay under T with probability at most (T/δ)^k. T is the row's summed
allowance: the largest projected error a correct kernel can make.

Allowances are the worst-case rounding of a correct kernel that works as the common ones do
(Higham's bound for a sum of K products accumulated in float32, float64 for float64
inputs; G and the result rounded to the candidate's type): an entry of dE may be off by
(2 + V·u_acc/u) units u of its type at its magnitude Σ_v |G_iv|·|C_vj|; dC and dbias
likewise with N. A correct kernel never fails; what a projection may miss is stated in
the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sce.grading.linear.projections import UNIT64, EntryGrade, ProjectionGrade, graded_entries, graded_projections
from sce.loss.vocabulary_shards import Sharding, reduced_sharded_loss

#: The float64 bytes a block of logits may take (several such arrays live at once).
BLOCK_BYTES = 1 << 26
#: Unit roundoff of each type a candidate may be given in.
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
#: The error sizes (times a row's summed allowance) whose chance of being missed the report states.
STATED_RATIOS = (10.0, 1000.0)


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


def miss_probability(ratio: float, projections: int) -> float:
    """The chance that k projections all miss an entry wrong by ``ratio`` times its row's summed allowance.

    Examples
    --------
    >>> miss_probability(1000.0, 4)
    1e-12
    >>> miss_probability(0.5, 4)
    1.0
    """
    return float(min(1.0, (1.0 / ratio) ** projections))


def allowance_units(dtype_name: str, terms: int) -> float:
    """κ: an entry's allowance in units u of its type at its magnitude, for a sum of ``terms`` products.

    2 for rounding G and the result to the type, plus Higham's γ_K = K·u_acc for the
    accumulation, in float32 (float64 for a float64 candidate).
    """
    unit = UNIT_ROUNDOFF[dtype_name]
    accumulation = UNIT_ROUNDOFF["float64"] if dtype_name == "float64" else UNIT_ROUNDOFF["float32"]
    return 2.0 + terms * accumulation / unit


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
    column_maxima: np.ndarray | None = None
    """max_v |C_vd| for each d."""
    logit_size: list[np.ndarray] = field(default_factory=list)
    """Each row's bound on its logits' size, Σ_d |E_id|·max_v |C_vd| (bias aside)."""


def row_block_size(n_classes: int) -> int:
    """Rows per block: a block of float64 logits within :data:`BLOCK_BYTES`."""
    return max(1, BLOCK_BYTES // (8 * max(n_classes, 1)))


@dataclass(frozen=True)
class Chunk:
    """A piece of the classifier (and bias) small enough to copy to float64 at once."""

    classifier: np.ndarray
    bias: np.ndarray | None

    def float64(self) -> np.ndarray:
        return np.asarray(self.classifier, dtype=np.float64)

    def logits(self, hidden: np.ndarray, classifier: np.ndarray) -> np.ndarray:
        # float32 and bfloat16 products are exact in float64; only the D-term sums round.
        logits = hidden @ classifier.T
        if self.bias is not None:
            logits += np.asarray(self.bias, dtype=np.float64)
        return logits


def chunks_of(classifier: Sequence[np.ndarray], bias: Sequence[np.ndarray | None]) -> list[Chunk]:
    """The shards cut into chunks of at most :data:`BLOCK_BYTES` as float64, in order."""
    chunks = []
    for shard, shard_bias in zip(classifier, bias):
        step = max(1, BLOCK_BYTES // (8 * max(shard.shape[1], 1)))
        for start in range(0, max(shard.shape[0], 1), step):
            part = shard[start : start + step]
            chunks.append(Chunk(part, None if shard_bias is None else shard_bias[start : start + step]))
    return chunks


def exact_pass(hidden: np.ndarray, chunks: Sequence[Chunk], sharding: Sharding, plan: QuickPlan) -> Accumulated:
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
    for chunk in chunks:
        c64 = chunk.float64()
        if len(c64):
            np.maximum(acc.column_maxima, np.abs(c64).max(axis=0), out=acc.column_maxima)
        projected.append(c64 @ plan.hidden_vectors)
        projected_abs.append(np.abs(c64) @ np.abs(plan.hidden_vectors))
    step = row_block_size(n_classes)
    for start in range(0, hidden.shape[0], step):
        rows = slice(start, min(start + step, hidden.shape[0]))
        block_hidden = np.asarray(hidden[rows], dtype=np.float64)
        block = sharding.block([chunk.logits(block_hidden, chunk.float64()) for chunk in chunks], rows)
        acc.cross.append(block.cross)
        acc.lse.append(block.lse)
        acc.z_part.append(block.z_part)
        sizes = (projected, projected_abs)
        _accumulate(acc, block.gradients, block.magnitudes, block_hidden, chunks, rows, plan, sharding, sizes)
    return acc


def _accumulate(
    acc: Accumulated,
    gradients: list[np.ndarray],
    magnitudes: list[np.ndarray],
    hidden: np.ndarray,
    chunks: Sequence[Chunk],
    rows: slice,
    plan: QuickPlan,
    sharding: Sharding,
    projected: tuple[list[np.ndarray], list[np.ndarray]],
) -> None:
    assert acc.grad_bias is not None and acc.grad_bias_magnitude is not None
    assert acc.classifier_projected is not None and acc.classifier_projected_magnitude is not None
    assert acc.classifier_rows is not None and acc.classifier_rows_magnitude is not None
    hidden_projected = hidden @ plan.classifier_vectors
    hidden_projected_abs = np.abs(hidden) @ np.abs(plan.classifier_vectors)
    sampled = plan.hidden_rows[(plan.hidden_rows >= rows.start) & (plan.hidden_rows < rows.stop)] - rows.start
    sample_rows = np.zeros((len(sampled), hidden.shape[1]))
    sample_rows_abs = np.zeros_like(sample_rows)
    block_projected = np.zeros((hidden.shape[0], plan.projections))
    block_projected_abs = np.zeros_like(block_projected)
    for k, gradient in enumerate(gradients):
        classes = slice(sharding.offsets[k], sharding.offsets[k + 1])
        magnitude = magnitudes[k]
        acc.grad_bias[classes] += gradient.sum(axis=0)
        acc.grad_bias_magnitude[classes] += magnitude.sum(axis=0)
        block_projected += gradient @ projected[0][k]
        block_projected_abs += magnitude @ projected[1][k]
        acc.classifier_projected[classes] += gradient.T @ hidden_projected
        acc.classifier_projected_magnitude[classes] += magnitude.T @ hidden_projected_abs
        if len(sampled):
            c64 = chunks[k].float64()
            sample_rows += gradient[sampled] @ c64
            sample_rows_abs += magnitude[sampled] @ np.abs(c64)
        local = plan.classifier_rows[(plan.classifier_rows >= classes.start) & (plan.classifier_rows < classes.stop)]
        if len(local):
            at = np.searchsorted(plan.classifier_rows, local)
            acc.classifier_rows[at] += gradient[:, local - classes.start].T @ hidden
            acc.classifier_rows_magnitude[at] += magnitude[:, local - classes.start].T @ np.abs(hidden)
    acc.hidden_projected.append(block_projected)
    acc.hidden_projected_magnitude.append(block_projected_abs)
    acc.hidden_rows.append(sample_rows)
    acc.hidden_rows_magnitude.append(sample_rows_abs)
    acc.logit_size.append(_logit_size(hidden, acc.column_maxima))


def _logit_size(hidden: np.ndarray, column_maxima: np.ndarray | None) -> np.ndarray:
    """Each row's Σ_d |E_id|·max_v |C_vd|: no logit of the row (bias aside) is larger."""
    assert column_maxima is not None
    return np.abs(hidden) @ column_maxima


@dataclass(frozen=True)
class Candidates:
    """What a kernel returned, each output None where it was not given; the classifier's and
    the bias's gradients one array per shard."""

    loss: np.ndarray | None
    grad_hidden: np.ndarray | None
    grad_classifier: Sequence[np.ndarray] | None
    grad_bias: Sequence[np.ndarray] | None


@dataclass(frozen=True)
class OutputGrade:
    """One output's quick grade: entries compared whole, and projections of the rest."""

    name: str
    dtype: str
    allowance: float
    """κ, in ulps of the type at the entry's operands' size."""
    entries: EntryGrade
    projections: ProjectionGrade | None

    @property
    def passed(self) -> bool:
        return self.entries.passed and (self.projections is None or self.projections.passed)


def dtype_name(array: object, default: str) -> str:
    """The float type's name of what a kernel returned ('bfloat16' from ml_dtypes or torch)."""
    name = getattr(getattr(array, "dtype", None), "name", None) or default
    name = str(name).removeprefix("torch.")
    return name if name in UNIT_ROUNDOFF else default


def graded_outputs(
    hidden: np.ndarray, acc: Accumulated, sharding: Sharding, plan: QuickPlan, candidates: Candidates
) -> list[OutputGrade]:
    """Each given output's grade from the exact pass."""
    input_type = dtype_name(hidden, "float32")
    n_rows, width = hidden.shape
    n_classes = sharding.offsets[-1]
    logit_size = np.concatenate(acc.logit_size) if acc.logit_size else np.zeros(0)
    row_slack = 2 * (width + 2) * UNIT64 * 1.01 * logit_size + (n_classes + width + 16) * UNIT64
    class_slack = float(row_slack.max(initial=0.0)) + (n_rows + width + 16) * UNIT64
    grades = []
    if candidates.loss is not None:
        grades.append(_loss_grade(candidates.loss, acc, sharding, logit_size, input_type))
    if candidates.grad_bias is not None:
        assert acc.grad_bias is not None and acc.grad_bias_magnitude is not None
        given = np.concatenate([np.asarray(b, dtype=np.float64) for b in candidates.grad_bias])
        kind = dtype_name(candidates.grad_bias[0], input_type)
        allowance = allowance_units(kind, n_rows)
        entries = graded_entries(given, acc.grad_bias, acc.grad_bias_magnitude, kind, allowance, class_slack)
        grades.append(OutputGrade("grad_bias", kind, allowance, entries, None))
    if candidates.grad_hidden is not None:
        grades.append(_hidden_grade(candidates.grad_hidden, acc, plan, row_slack, n_classes))
    if candidates.grad_classifier is not None:
        grades.append(_classifier_grade(candidates.grad_classifier, acc, plan, class_slack, n_rows))
    return grades


def _hidden_grade(
    given: np.ndarray, acc: Accumulated, plan: QuickPlan, row_slack: np.ndarray, n_classes: int
) -> OutputGrade:
    kind = dtype_name(given, "float32")
    allowance = allowance_units(kind, n_classes)
    exact_rows = np.concatenate(acc.hidden_rows)
    rows_size = np.concatenate(acc.hidden_rows_magnitude)
    sampled = np.asarray(given[plan.hidden_rows], dtype=np.float64)
    entries = graded_entries(
        sampled, exact_rows, rows_size, kind, allowance, row_slack[plan.hidden_rows, None], plan.hidden_rows
    )
    projected, size = _projected(given, plan.hidden_vectors)
    projections = graded_projections(
        projected,
        size,
        np.concatenate(acc.hidden_projected),
        np.concatenate(acc.hidden_projected_magnitude),
        dtype_name=kind,
        allowance=allowance,
        slack=row_slack,
        width=given.shape[1],
    )
    return OutputGrade("grad_hidden", kind, allowance, entries, projections)


def _classifier_grade(
    given: Sequence[np.ndarray], acc: Accumulated, plan: QuickPlan, class_slack: float, n_rows: int
) -> OutputGrade:
    assert acc.classifier_rows is not None and acc.classifier_rows_magnitude is not None
    assert acc.classifier_projected is not None and acc.classifier_projected_magnitude is not None
    kind = dtype_name(given[0], "float32")
    allowance = allowance_units(kind, n_rows)
    offsets = np.cumsum([0, *(len(g) for g in given)])
    shard_of = np.searchsorted(offsets, plan.classifier_rows, side="right") - 1
    sampled = np.stack(
        [np.asarray(given[k][row - offsets[k]], dtype=np.float64) for k, row in zip(shard_of, plan.classifier_rows)]
    ) if len(plan.classifier_rows) else np.zeros((0, acc.classifier_rows.shape[1]))  # fmt: skip
    entries = graded_entries(
        sampled, acc.classifier_rows, acc.classifier_rows_magnitude, kind, allowance, class_slack, plan.classifier_rows
    )
    parts = [_projected(g, plan.classifier_vectors) for g in given]
    projections = graded_projections(
        np.concatenate([p for p, _ in parts]),
        np.concatenate([s for _, s in parts]),
        acc.classifier_projected,
        acc.classifier_projected_magnitude,
        dtype_name=kind,
        allowance=allowance,
        slack=np.full(len(acc.classifier_projected), class_slack),
        width=given[0].shape[1],
    )
    return OutputGrade("grad_classifier", kind, allowance, entries, projections)


def _projected(given: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(given·r, |given|·|r|) in float64, a block of rows at a time."""
    step = max(1, BLOCK_BYTES // (8 * max(given.shape[1], 1)))
    projected, size = [], []
    for start in range(0, len(given), step):
        block = np.asarray(given[start : start + step], dtype=np.float64)
        projected.append(block @ vectors)
        size.append(np.abs(block) @ np.abs(vectors))
    if not projected:
        return np.zeros((0, vectors.shape[1])), np.zeros((0, vectors.shape[1]))
    return np.concatenate(projected), np.concatenate(size)


def _loss_grade(
    given: np.ndarray, acc: Accumulated, sharding: Sharding, logit_size: np.ndarray, input_type: str
) -> OutputGrade:
    """The loss, exact, against what a correct kernel's float32 logits and sums may be off by."""
    cross, z_part, lse = np.concatenate(acc.cross), np.concatenate(acc.z_part), np.concatenate(acc.lse)
    exact = reduced_sharded_loss(cross, z_part, sharding)
    extra, share = sharding.loss.smoothed_mass()
    mass = np.where(sharding.counted, extra * sharding.label_weights + share * float(sharding.weights.sum()), 0.0)
    size = np.abs(cross) + np.abs(z_part) + 2 * mass * (np.abs(lse) + logit_size)
    kind = dtype_name(given, input_type)
    width_terms = sharding.offsets[-1] + len(acc.column_maxima if acc.column_maxima is not None else ())
    allowance = allowance_units(kind, width_terms)
    if sharding.reduction != "none":
        w_total, n_total = sharding.denominators
        size = np.array(math.fsum(size.tolist()) / max(min(w_total, n_total), np.finfo(np.float64).tiny))
    entries = graded_entries(
        np.asarray(given, dtype=np.float64), np.asarray(exact), size, kind, allowance, 4 * UNIT64 * len(cross)
    )
    return OutputGrade("loss", kind, allowance, entries, None)


@dataclass(frozen=True)
class QuickOutcome:
    """The quick check's grades, what it looked at, and what it may have missed."""

    plan: QuickPlan
    grades: list[OutputGrade]

    @property
    def passed(self) -> bool:
        return all(grade.passed for grade in self.grades)

    def miss_probabilities(self) -> dict[str, float]:
        """For each stated ratio ρ: the chance an entry wrong by ρ times its row's summed allowance
        goes unseen by every projection (keys as text, for JSON)."""
        return {f"{ratio:g}": miss_probability(ratio, self.plan.projections) for ratio in STATED_RATIOS}

    def statement(self) -> str:
        """The report's sentence on what the quick check may miss."""
        ratio = STATED_RATIOS[-1]
        return (
            f"quick check (seed {self.plan.seed}): loss and grad_bias exact; "
            f"{len(self.plan.hidden_rows)} rows of grad_hidden and {len(self.plan.classifier_rows)} of "
            f"grad_classifier compared whole; every other row through {self.plan.projections} random "
            f"projections, which miss an entry wrong by {ratio:g} times its row's summed allowance "
            f"with probability at most {miss_probability(ratio, self.plan.projections):.0e}"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "seed": self.plan.seed,
            "sampled_rows": {
                "grad_hidden": self.plan.hidden_rows.tolist(),
                "grad_classifier": self.plan.classifier_rows.tolist(),
            },
            "projections": self.plan.projections,
            "miss_probability": self.miss_probabilities(),
            "miss_probability_means": "chance that an entry wrong by the key times its row's summed allowance "
            "passes every projection",
        }


def quick_check(
    hidden: np.ndarray,
    classifier: Sequence[np.ndarray],
    labels: np.ndarray,
    bias: Sequence[np.ndarray | None],
    candidates: Candidates,
    sharding: Sharding,
    *,
    seed: int,
    samples: int = 16,
    projections: int = 4,
) -> QuickOutcome:
    """Grade a kernel's outputs quickly (see the module's notes). ``classifier`` and ``bias``
    are the shards in order (one each for an unsplit classifier); ``sharding`` holds the labels
    and the loss's options over the whole vocabulary, its ``offsets`` those of ``classifier``."""
    n_classes = sharding.offsets[-1]
    plan = QuickPlan.drawn(
        hidden.shape[0], n_classes, hidden.shape[1], seed=seed, samples=samples, projections=projections
    )
    chunks = chunks_of(classifier, bias)
    chunked = Sharding(
        (0, *np.cumsum([len(c.classifier) for c in chunks]).tolist()),
        sharding.labels, sharding.counted, sharding.weights, sharding.loss, sharding.reduction,
    )  # fmt: skip
    acc = exact_pass(hidden, chunks, chunked, plan)
    return QuickOutcome(plan, graded_outputs(hidden, acc, chunked, plan, candidates))
