"""What a straightforward fused kernel gets in the input's type: the same-type baseline.

As the common kernels do: the logits of a chunk by a matrix product that accumulates in float32
(bfloat16 and float16 products are exact in float32), rounded to the input's type where the
profile says so; the softmax, the loss and ∂L/∂z in float32; ∂L/∂z rounded to the input's type
before ∂L/∂E = G·C and ∂L/∂C = Gᵀ·E, both accumulated in float32 and rounded once to the type
of the answer. float64 inputs are computed in float64 throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sce.grading.linear.profiles import Profile
from sce.loss.linear_cross_entropy import BLOCK_BYTES, LinearTerms


@dataclass(frozen=True)
class LinearBaseline:
    """The baseline's results, each in the type its answer is graded in."""

    loss: np.ndarray
    """The loss as reported (0-d, or N for 'none')."""
    grad_hidden: np.ndarray
    grad_classifier: np.ndarray
    grad_bias: np.ndarray


def same_type_baseline(
    e: np.ndarray,
    c: np.ndarray,
    b: np.ndarray | None,
    terms: LinearTerms,
    profile: Profile,
    output_types: dict[str, np.dtype],
) -> LinearBaseline:
    """The straightforward computation in ``e``'s type (float32 accumulation for narrower
    types), rounded where ``profile`` says, each output rounded to ``output_types[name]``."""
    given = e.dtype
    work = np.dtype(np.float64) if given == np.float64 else np.dtype(np.float32)
    e_work, c_work = e.astype(work), c.astype(work)
    b_work = None if b is None else b.astype(given).astype(work)
    n, v = len(e), len(c)
    grad_hidden = np.zeros(e.shape, work)
    grad_classifier = np.zeros(c.shape, work)
    grad_bias = np.zeros(v, work)
    losses = np.zeros((n, 2), work)
    step = max(1, BLOCK_BYTES // (8 * v))
    with np.errstate(all="ignore"):
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            g, losses[rows] = _block(e_work[rows], c_work, b_work, terms, rows, profile, given)
            grad_hidden[rows] = g @ c_work
            grad_classifier += g.T @ e_work[rows]
            grad_bias += g.sum(axis=0, dtype=work)
    return LinearBaseline(
        _reduced(losses, terms, work).astype(output_types.get("loss", work)),
        grad_hidden.astype(output_types.get("grad_hidden", work)),
        grad_classifier.astype(output_types.get("grad_classifier", work)),
        grad_bias.astype(output_types.get("grad_bias", work)),
    )


def _block(
    e: np.ndarray,
    c: np.ndarray,
    b: np.ndarray | None,
    terms: LinearTerms,
    rows: slice,
    profile: Profile,
    given: np.dtype,
) -> tuple[np.ndarray, np.ndarray]:
    """A block's ∂L/∂z (as the products take it) and each row's cross-entropy and z-loss (B×2)."""
    work = e.dtype
    z = e @ c.T
    if b is not None:
        z += b
    if profile.logits_in_input_type:
        z = z.astype(given).astype(work)
    derivative = None
    if terms.softcap is not None:
        cap = work.type(terms.softcap)
        ratio = z / cap
        z = cap * np.tanh(ratio)
        derivative = work.type(1) / np.square(np.cosh(ratio))
    top = z.max(axis=1, keepdims=True)
    exponentials = np.exp(z - top)
    total = exponentials.sum(axis=1, keepdims=True)
    p = exponentials / total
    lse = top + np.log(total)
    coefficients = terms.coefficients(rows, slice(0, c.shape[0])).astype(work)
    s = terms.total[rows, None].astype(work)
    g = (s * p - coefficients) * terms.ce_scale[rows, None].astype(work)
    losses = np.zeros((len(z), 2), work)
    losses[:, 0] = (coefficients * (lse - z)).sum(axis=1)
    if terms.z_loss:
        square = np.square(lse[:, 0].astype(given) if profile.z_loss_in_input_type else lse[:, 0])
        losses[:, 1] = work.type(terms.z_loss) * square
        g += (terms.z_scale[rows, None].astype(work) * lse) * p
    if derivative is not None:
        g *= derivative
    if profile.gradient_in_input_type:
        g = g.astype(given).astype(work)
    losses[~terms.counted[rows]] = 0
    return g, losses


def _reduced(losses: np.ndarray, terms: LinearTerms, work: np.dtype) -> np.ndarray:
    """The loss reduced in the work type, as a framework reduces it."""
    if terms.reduction == "none":
        return losses.sum(axis=1, dtype=work)
    cross_entropy, z = losses.sum(axis=0, dtype=work)
    if terms.reduction == "sum":
        return np.asarray(cross_entropy + z)
    with np.errstate(all="ignore"):
        mean = cross_entropy / work.type(terms.denominator)
        if terms.z_loss:
            mean = mean + z / work.type(terms.z_denominator)
    return np.asarray(mean)
