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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sce.grading.linear.quick_grades import Candidates, OutputGrade, graded_outputs
from sce.grading.linear.quick_pass import QuickPlan, chunks_of, exact_pass, row_block_size
from sce.loss.vocabulary_shards import Sharding

#: The error sizes (times a row's summed allowance) whose chance of being missed the report states.
STATED_RATIOS = (10.0, 1000.0)


def miss_probability(ratio: float, projections: int) -> float:
    """The chance that k projections all miss an entry wrong by ``ratio`` times its row's summed allowance.

    Examples
    --------
    >>> print(f"{miss_probability(1000.0, 4):.3g}")
    1e-12
    >>> miss_probability(0.5, 4)
    1.0
    """
    return float(min(1.0, 1.0 / ratio**projections))


@dataclass(frozen=True)
class QuickOutcome:
    """The quick check's grades, what it looked at, and what it may have missed."""

    plan: QuickPlan
    grades: list[OutputGrade]
    lse: np.ndarray | None = None
    """Each row's exact log-sum-exp (what a mistake's what-if needs of the exact pass)."""

    @property
    def passed(self) -> bool:
        return all(grade.passed for grade in self.grades)

    @property
    def given(self) -> list[str]:
        """The outputs graded, in the order the report lists them."""
        return [grade.name for grade in self.grades]

    @property
    def projected(self) -> list[str]:
        """The outputs checked through projections: the gradients of E and C, where given."""
        return [name for name in self.given if name in ("grad_hidden", "grad_classifier")]

    def miss_probabilities(self) -> dict[str, float]:
        """For each stated ratio ρ: the chance an entry wrong by ρ times its row's summed allowance
        goes unseen by every projection (keys as text, for JSON); none where nothing was projected."""
        if not self.projected:
            return {}
        return {f"{ratio:g}": float(f"{miss_probability(ratio, self.plan.projections):.3g}") for ratio in STATED_RATIOS}

    def statement(self) -> str:
        """The report's sentence on what the quick check compared and what it may miss: only the
        outputs given are named.

        Examples
        --------
        >>> plan = QuickPlan.drawn(40, 30, 8, seed=0, samples=16, projections=4)
        >>> QuickOutcome(plan, []).statement()
        'quick check (seed 0): no output given'
        """
        whole = " and ".join(
            words for name, words in (("loss", "the loss"), ("grad_bias", "grad_bias")) if name in self.given
        )
        counts = {"grad_hidden": len(self.plan.hidden_rows), "grad_classifier": len(self.plan.classifier_rows)}
        rows = [f"{counts[name]} of {name}" for name in self.projected]
        if rows:
            rows[0] = rows[0].replace(" of ", " rows of ", 1)
        sampled = " and ".join(rows)
        compared = f"{whole} compared whole" if whole else ""
        if sampled:
            compared = f"{compared}, and {sampled}" if whole else f"{sampled} compared whole"
        if not compared:
            return f"quick check (seed {self.plan.seed}): no output given"
        if not self.projected:
            return f"quick check (seed {self.plan.seed}): {compared}"
        ratio = STATED_RATIOS[-1]
        return (
            f"quick check (seed {self.plan.seed}): {compared}; every row through {self.plan.projections} random "
            f"projections, which miss an entry wrong by {ratio:g}× its row's summed allowance with probability at "
            f"most {miss_probability(ratio, self.plan.projections):.0e}"
        )

    def to_dict(self) -> dict[str, object]:
        rows = {"grad_hidden": self.plan.hidden_rows, "grad_classifier": self.plan.classifier_rows}
        return {
            "seed": self.plan.seed,
            "sampled_rows": {name: rows[name].tolist() for name in self.projected},
            "projections": self.plan.projections if self.projected else 0,
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
    excused: np.ndarray | None = None,
) -> QuickOutcome:
    """Grade a kernel's outputs quickly (see the module's notes). ``classifier`` and ``bias``
    are the shards in order (one each for an unsplit classifier); ``sharding`` holds the labels
    and the loss's options over the whole vocabulary, its ``offsets`` those of ``classifier``.
    ``excused``: per row, what a profile allows each entry of ∂L/∂z to leave out (skipped blocks)."""
    n_classes = sharding.offsets[-1]
    plan = QuickPlan.drawn(
        hidden.shape[0], n_classes, hidden.shape[1], seed=seed, samples=samples, projections=projections
    )
    n_rows = hidden.shape[0]
    chunks = chunks_of(classifier, bias, min(n_rows, row_block_size(n_classes)))
    chunked = sharding.with_widths([len(c.classifier) for c in chunks], [c.shard for c in chunks])
    acc = exact_pass(hidden, chunks, chunked, plan, excused)
    lse = np.concatenate(acc.lse) if acc.lse else np.zeros(0)
    return QuickOutcome(plan, graded_outputs(hidden, acc, chunked, plan, candidates), lse)
