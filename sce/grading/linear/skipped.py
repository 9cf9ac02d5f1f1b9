"""What a profile's skipped gradient entries may leave out of each output (cut cross-entropy's
filter: entries of ∂L/∂z below ε/32 of the type left out of the backward products).

Each skipped entry is at most tᵢ = ε/32·(sᵢ·|scaleᵢ| + 100·|z-scaleᵢ|), so ∂L/∂E_id misses at
most Σⱼ |G_ij|·|C_jd| over the entries that small, ∂L/∂C_vd Σᵢ |G_iv|·|E_id|, ∂L/∂b_v Σᵢ |G_iv|.
Where those sums fit in memory they are formed from the exact probabilities, over the entries
that are that small (a kernel that skips entries 16 times larger is not excused); elsewhere each
entry is taken at the threshold: tᵢ·Σⱼ|C_jd| and so on, over every entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sce.grading.linear.answers import LinearInputs
from sce.grading.linear.profiles import Profile
from sce.loss.linear_terms import LinearTerms

#: The largest float64 copy of C (V×D) or E for the sums formed from the probabilities (those sums, in
#: float32, and |C|, |E| beside it: some 200 MB at most beyond the check's own blocks).
HELD_BYTES = 64 << 20
#: How far above its row's threshold an entry's exact size may be and still be skipped: a kernel
#: filters its own probabilities, formed from logits in its type (bfloat16's are off by 2⁻⁸ of their
#: size, which moves a probability by a few percent), not the exact ones.
SLACK = 2.0
#: Each type's ε, the distance from 1 to the next float (``torch.finfo(dtype).eps``): cut cross-entropy's
#: ``filter_eps="auto"`` is the input type's own ε/32.
MACHINE_EPSILON = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
#: The bytes of one block of float64 logits.
_BLOCK_BYTES = 1 << 25


@dataclass(frozen=True)
class Excuses:
    """What skipped entries may leave out: each row's part of ∂L/∂E, each class's of ∂L/∂C, ∂L/∂b."""

    hidden: np.ndarray
    """N×D, or per row (N) times ``hidden_columns``."""
    hidden_columns: np.ndarray | None
    classifier: np.ndarray
    """V×D, or one row (D) for every class."""
    bias: np.ndarray

    def of_rows(self, rows: slice) -> np.ndarray:
        found = self.hidden[rows]
        return found if self.hidden_columns is None else np.outer(found, self.hidden_columns)

    def of_classes(self, classes: slice, shape: tuple[int, ...]) -> np.ndarray:
        found = self.classifier[classes] if self.classifier.ndim == 2 else self.classifier
        return np.broadcast_to(found, shape)


def skipped_excuses(inputs: LinearInputs, profile: Profile) -> Excuses | None:
    """The excuses of ``profile``'s skipped entries, or None where it skips none."""
    per_row = skipped_per_row(inputs.terms, inputs.e.dtype, profile)
    if per_row is None:
        return None
    n, d = inputs.e.shape
    v = len(inputs.c)
    if max(n, v) * d * 8 <= HELD_BYTES:
        return _from_probabilities(inputs, per_row)
    hidden_columns = _absolute_column_sums(inputs.e, per_row)
    return Excuses(per_row, _absolute_column_sums(inputs.c), hidden_columns, np.full(v, float(per_row.sum())))


def skipped_per_row(terms: LinearTerms, dtype: np.dtype, profile: Profile) -> np.ndarray | None:
    """Each row's threshold tᵢ below which ``profile`` may skip an entry of ∂L/∂z, in ``dtype``'s own ε
    (ε/32·(sᵢ·|scaleᵢ| + 100·|z-scaleᵢ|) for cut cross-entropy), or None where it skips nothing.

    Examples
    --------
    >>> from sce.grading.linear.profiles import PROFILES
    >>> from sce.loss.linear_terms import linear_terms
    >>> from sce.options import LossOptions
    >>> terms = linear_terms(np.array([0]), 2, LossOptions(reduction="sum"), 1.0)
    >>> [float(skipped_per_row(terms, np.dtype(t), PROFILES["cce"])[0]) * 2**15 for t in ("float16", "float32")]
    [1.0, 0.0001220703125]
    """
    if not profile.skipped_below:
        return None
    eps = MACHINE_EPSILON[np.dtype(dtype).name]
    return profile.skipped_below * eps * (terms.total * np.abs(terms.ce_scale) + np.abs(terms.z_scale) * 100)


def _from_probabilities(inputs: LinearInputs, threshold: np.ndarray) -> Excuses:
    """The sums over the entries whose size bound |G| ≤ |scale|·(s·p + c) + |z-scale·lse|·p is
    below SLACK times their row's threshold, in float32 widened by float32's worst rounding of them."""
    e, c, b, t = inputs.e, inputs.c, inputs.b, inputs.terms
    n, d = e.shape
    v = len(c)
    c64 = np.asarray(c, np.float64)
    abs_c, abs_e = np.abs(np.asarray(c, np.float32)), np.abs(np.asarray(e, np.float32))
    hidden, classifier, bias = np.zeros((n, d), np.float32), np.zeros((v, d), np.float32), np.zeros(v)
    step = max(1, _BLOCK_BYTES // (8 * max(v, 1)))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            size = _entry_sizes(np.asarray(e[rows], np.float64) @ c64.T + (0.0 if b is None else b), t, rows)
            size[size >= SLACK * threshold[rows, None]] = 0.0
            small = size.astype(np.float32)
            hidden[rows] = small @ abs_c
            classifier += small.T @ abs_e[rows]
            bias += size.sum(axis=0)
    widen = np.float32(1 + (max(n, v) + 2) * 2.0**-23)
    return Excuses(hidden * widen, None, classifier * widen, bias * (1 + 2.0**-40))


def _entry_sizes(z: np.ndarray, t: LinearTerms, rows: slice) -> np.ndarray:
    """A bound on each |∂L/∂z| of a block of whole rows, from its probabilities (after the soft cap)."""
    a = z if t.softcap is None else t.softcap * np.tanh(z / t.softcap)
    top = a.max(axis=1, keepdims=True)
    p = np.exp(a - top)
    total = p.sum(axis=1, keepdims=True)
    p /= total
    lse = top[:, 0] + np.log(total[:, 0])
    scale = np.abs(t.ce_scale[rows])
    size = p * (t.total[rows] * scale + np.abs(t.z_scale[rows] * lse))[:, None]
    t.add_coefficients(size, rows, slice(0, a.shape[1]), scale)
    return size


def _absolute_column_sums(a: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Σᵢ wᵢ·|a_ij| of each column (w all 1 unless given), in float64, a block of rows at a time."""
    total = np.zeros(a.shape[1])
    step = max(1, (1 << 24) // (8 * max(1, a.shape[1])))
    for start in range(0, len(a), step):
        block = np.abs(np.asarray(a[start : start + step], np.float64))
        total += block.sum(axis=0) if weights is None else weights[start : start + step] @ block
    return total
