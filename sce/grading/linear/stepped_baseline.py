"""The same-type baseline formed in step with the exact reference's blocks, for sizes where its
outputs would not fit beside the inputs: each block of ∂L/∂E or ∂L/∂C is formed when the
reference hands over the same block, graded, and dropped.

The results are those of :func:`~sce.grading.linear.baseline.same_type_baseline` (float32
accumulation, rounded where the profile says, each output rounded once to the answer's type); only
the order of the float32 sums over blocks differs, as it differs between kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sce.grading.linear.baseline import (
    LinearBaseline,
    block_gradient,
    capped_logits,
    class_block,
    profile_logits,
    raw_logits,
    reduced_loss,
    same_type_baseline,
)
from sce.grading.linear.profiles import Profile
from sce.loss import kept_logits
from sce.loss.kept_logits import KeptLogits
from sce.loss.linear_cross_entropy import block_bytes, block_steps, by_classes
from sce.loss.linear_terms import LinearTerms

#: The bytes of the baseline's outputs (in float32, with their copies in the answer's type) held
#: whole; beyond it they are formed a block at a time.
BASELINE_BYTES = 256 << 20


def keeps_logits_of(n: int, v: int, dtype: np.dtype) -> bool:
    """Whether a check of float32 inputs of N·V logits keeps them between its passes (from
    KEPT_FROM up). Narrower inputs' answers are graded at a size that float32's ε over their own
    scales down (:func:`~.check.operand_share`), which the kept logits' error would not stay small in."""
    return np.dtype(dtype) == np.float32 and n * v >= kept_logits.KEPT_FROM


def keeps_every_logit(n: int, d: int, v: int, dtype: np.dtype) -> bool:
    """Whether a check of these sizes keeps every logit of its first pass (within what the kept
    logits may hold): it then goes by blocks of classes whatever the size of ∂L/∂C, each logit
    formed once in each type and no V × D partial sums added for every block of rows."""
    return keeps_logits_of(n, v, dtype) and n * v <= kept_logits.capacity(n, d, v, not by_classes(n, d, 6))


def held_whole(n: int, d: int, v: int) -> bool:
    """Whether the baseline's ∂L/∂E and ∂L/∂C, in float32 and in the answer's type, fit in BASELINE_BYTES."""
    return (n + v) * d * 8 <= BASELINE_BYTES


@dataclass
class SteppedBaseline:
    """The baseline a block at a time, in the order the reference hands its blocks over: blocks of
    rows where the reference takes whole rows; else blocks of classes (∂L/∂E then held whole in
    float32 where the reference holds it whole, else formed a block of rows at a time after)."""

    e: np.ndarray
    c: np.ndarray
    b: np.ndarray | None
    terms: LinearTerms
    profile: Profile
    output_types: dict[str, np.dtype]
    wants_hidden: bool
    keeps_logits: bool = True
    """Whether a float32 baseline going by classes holds :attr:`logits` (for the reference to fill)."""
    work: np.dtype = field(init=False)
    by_classes: bool = field(init=False)
    hidden_later: bool = field(init=False)
    done: np.ndarray = field(init=False)
    """Rows (by rows) or classes (by classes) whose part of every sum is in."""
    losses: np.ndarray = field(init=False)
    grad_bias: np.ndarray = field(init=False)
    sums: np.ndarray = field(init=False)
    """∂L/∂C in float32 (by rows), or ∂L/∂E (by classes, where held whole); else empty."""
    lse: np.ndarray | None = None
    logits: KeptLogits | None = None
    """The float32 logits the reference's first pass keeps (:mod:`sce.loss.kept_logits`): the
    blocks it holds are not formed again here."""

    def __post_init__(self) -> None:
        n, d = self.e.shape
        v = len(self.c)
        self.work = np.dtype(np.float64) if self.e.dtype == np.float64 else np.dtype(np.float32)
        self.by_classes = by_classes(v, d) or (self.keeps_logits and keeps_every_logit(n, d, v, self.e.dtype))
        self.hidden_later = self.by_classes and by_classes(n, d, 6) and self.wants_hidden
        self.done = np.zeros(v if self.by_classes else n, bool)
        self.losses = np.zeros((n, 2), self.work)
        self.grad_bias = np.zeros(v, self.work)
        held = self.wants_hidden and not self.hidden_later
        if self.by_classes and self.keeps_logits and keeps_logits_of(n, v, self.e.dtype) and self.logits is None:
            cap = 1.0 if self.terms.softcap is None else min(1.0, self.terms.softcap)
            self.logits = KeptLogits(n, kept_logits.capacity(n, d, v, held), kept_logits.TOLERANCE * cap)
        if self.by_classes:
            self.sums = np.zeros((n, d) if held else (0, d), self.work)
        else:
            self.sums = np.zeros((v, d) if "grad_classifier" in self.output_types else (0, d), self.work)

    def fresh(self) -> SteppedBaseline:
        """The same baseline from the start (for another pass of the reference)."""
        again = SteppedBaseline(self.e, self.c, self.b, self.terms, self.profile, self.output_types, self.wants_hidden)
        again.lse, again.logits = self.lse, self.logits
        return again

    def row_lse(self) -> np.ndarray:
        """Each row's log-sum-exp in the work type (by classes: a row's depends on its own logits
        only, so a run of whole blocks of :meth:`steps` rows computed apart gives the same)."""
        return self._statistics()

    def steps(self) -> tuple[int, int]:
        """Classes and rows per block, going by classes."""
        return self._steps()

    def own_class_blocks(self) -> list[slice]:
        """The blocks of classes not yet done, in the baseline's own steps (as :meth:`finished` takes them)."""
        return _undone(self.done, self._steps()[0])

    def class_block(self, classes: slice) -> np.ndarray:
        """A block of classes over every row (from :attr:`lse`): its ∂L/∂C in the work type, its
        part of ∂L/∂E (where held), the losses and ∂L/∂b added in."""
        return self._classes(classes)

    def hidden_over_classes(self, rows: slice) -> np.ndarray:
        """∂L/∂E of a block of rows over every block of classes, in the work type (from :attr:`lse`)."""
        return self._hidden_over_classes(rows)

    def hidden_rows(self, rows: slice) -> np.ndarray:
        """The baseline's ∂L/∂E of these rows, in the answer's type."""
        if not self.by_classes:
            g = self._rows(rows)
            found = g @ np.asarray(self.c, self.work)
        elif self.hidden_later:
            found = self._hidden_over_classes(rows)
        else:
            self._all_classes()
            found = self.sums[rows]
        with np.errstate(over="ignore"):
            return found.astype(self.output_types.get("grad_hidden", self.work))

    def classifier_classes(self, classes: slice) -> np.ndarray:
        """The baseline's ∂L/∂C of these classes, in the answer's type."""
        if not self.by_classes:
            self._all_rows()
            found = self.sums[classes]
        else:
            found = self._classes(classes)
        with np.errstate(over="ignore"):
            return found.astype(self.output_types.get("grad_classifier", self.work))

    def finished(self) -> LinearBaseline:
        """The loss and ∂L/∂b (every block taken in); the gradients' fields empty."""
        if self.by_classes:
            self._all_classes()
            if self.terms.z_loss and self.lse is not None:
                lse = self.lse.astype(self.e.dtype) if self.profile.z_loss_in_input_type else self.lse
                self.losses[:, 1] = self.work.type(self.terms.z_loss) * np.square(lse)
            self.losses[~self.terms.counted] = 0
        else:
            self._all_rows()
        empty = np.zeros((0, self.e.shape[1]), self.work)
        with np.errstate(over="ignore"):
            return LinearBaseline(
                reduced_loss(self.losses, self.terms, self.work).astype(self.output_types.get("loss", self.work)),
                empty, empty, self.grad_bias.astype(self.output_types.get("grad_bias", self.work)),
            )  # fmt: skip

    def _rows(self, rows: slice) -> np.ndarray:
        """A block of whole rows: its ∂L/∂z, its part of ∂L/∂C and ∂L/∂b, its losses."""
        e_work = np.asarray(self.e[rows], self.work)
        b_work = None if self.b is None else self.b.astype(self.e.dtype).astype(self.work)
        c_work = np.asarray(self.c, self.work)
        with np.errstate(all="ignore"):
            g, self.losses[rows] = block_gradient(e_work, c_work, b_work, self.terms, rows, self.profile, self.e.dtype)
            if len(self.sums):
                self.sums += g.T @ e_work
            self.grad_bias += g.sum(axis=0, dtype=self.work)
        self.done[rows] = True
        return g

    def _all_rows(self) -> None:
        for rows in _undone(self.done, max(1, block_bytes() // (8 * len(self.c)))):
            self._rows(rows)

    def _steps(self) -> tuple[int, int]:
        """The reference's blocks going by classes (so that its kept logits are the baseline's blocks)."""
        return block_steps(len(self.e), len(self.c), self.e.shape[1])[:2]

    def _statistics(self) -> np.ndarray:
        """Each row's log-sum-exp in the work type, online over blocks of classes (once)."""
        if self.lse is not None:
            return self.lse
        n, v = len(self.e), len(self.c)
        class_step, row_step = self._steps()
        top, total = np.full(n, -np.inf, self.work), np.zeros(n, self.work)
        scratch: dict[tuple[int, int], np.ndarray] = {}
        with np.errstate(all="ignore"):
            for first in range(0, v, class_step):
                classes = slice(first, min(first + class_step, v))
                for start in range(0, n, row_step):
                    rows = slice(start, min(start + row_step, n))
                    z, _ = capped_logits(self._raw(rows, classes), self.terms)
                    new_top = np.maximum(top[rows], z.max(axis=1))
                    shifted = np.subtract(z, new_top[:, None], out=_scratch(scratch, z.shape, self.work))
                    total[rows] = total[rows] * np.exp(top[rows] - new_top) + np.exp(shifted, out=shifted).sum(axis=1)
                    top[rows] = new_top
            self.lse = top + np.log(total)
        return self.lse

    def _raw(self, rows: slice, classes: slice) -> np.ndarray:
        """A block's raw logits (:func:`raw_logits`): from :attr:`logits` where it holds them."""
        found = None if self.logits is None else self.logits.narrow(rows, classes)
        if found is None:
            return raw_logits(self.e[rows], self.c, self.b, classes, self.profile)
        return profile_logits(found, self.e.dtype, self.profile)

    def _classes(self, classes: slice) -> np.ndarray:
        """A block of classes over every row: its ∂L/∂C in float32, its part of the rest."""
        lse = self._statistics()
        n, d = self.e.shape
        _, row_step = self._steps()
        block = np.zeros((classes.stop - classes.start, d), self.work)
        c_block = np.asarray(self.c[classes], self.work)
        with np.errstate(all="ignore"):
            for start in range(0, n, row_step):
                rows = slice(start, min(start + row_step, n))
                g = class_block(self.e, self.c, self.b, self.terms, self.profile, rows, classes, lse, self.losses,
                                self._raw(rows, classes))  # fmt: skip
                if len(self.sums):
                    self.sums[rows] += g @ c_block
                block += g.T @ np.asarray(self.e[rows], self.work)
                self.grad_bias[classes] += g.sum(axis=0, dtype=self.work)
        self.done[classes] = True
        return block

    def _all_classes(self) -> None:
        for classes in _undone(self.done, self._steps()[0]):
            self._classes(classes)

    def _hidden_over_classes(self, rows: slice) -> np.ndarray:
        """∂L/∂E of a block of rows over every block of classes (its losses not counted again)."""
        lse = self._statistics()
        class_step, _ = self._steps()
        found = np.zeros((rows.stop - rows.start, self.e.shape[1]), self.work)
        scratch = np.zeros_like(self.losses)
        with np.errstate(all="ignore"):
            for first in range(0, len(self.c), class_step):
                classes = slice(first, min(first + class_step, len(self.c)))
                g = class_block(self.e, self.c, self.b, self.terms, self.profile, rows, classes, lse, scratch,
                                self._raw(rows, classes))  # fmt: skip
                found += g @ np.asarray(self.c[classes], self.work)
        return found


def _scratch(buffers: dict[tuple[int, int], np.ndarray], shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """A buffer of ``shape`` for a block's temporaries, the same one for every block of that shape."""
    if shape not in buffers:
        buffers[shape] = np.empty(shape, dtype)
    return buffers[shape]


def _undone(done: np.ndarray, step: int) -> list[slice]:
    """The runs of entries not yet done, in slices of at most ``step``."""
    missing = np.flatnonzero(~done)
    runs = np.split(missing, np.flatnonzero(np.diff(missing) != 1) + 1) if len(missing) else []
    return [
        slice(int(run[i]), int(run[min(i + step, len(run)) - 1]) + 1) for run in runs for i in range(0, len(run), step)
    ]


def baseline_for(
    e: np.ndarray,
    c: np.ndarray,
    b: np.ndarray | None,
    terms: LinearTerms,
    profile: Profile,
    output_types: dict[str, np.dtype],
    known: LinearBaseline | SteppedBaseline | None,
) -> LinearBaseline | SteppedBaseline:
    """The baseline to grade against: ``known`` (a stepped one from its start), else held whole
    where its outputs fit in BASELINE_BYTES and the check does not keep every logit, else formed in
    steps."""
    if isinstance(known, SteppedBaseline):
        return known.fresh()
    if known is not None:
        return known
    n, d = e.shape
    if held_whole(n, d, len(c)) and not keeps_every_logit(n, d, len(c), e.dtype):
        return same_type_baseline(e, c, b, terms, profile, output_types)
    return SteppedBaseline(e, c, b, terms, profile, output_types, "grad_hidden" in output_types)
