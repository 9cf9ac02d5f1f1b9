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
from sce.loss.linear_cross_entropy import block_bytes, by_classes
from sce.loss.linear_terms import LinearTerms


@dataclass(frozen=True)
class LinearBaseline:
    """The baseline's results, each in the type its answer is graded in."""

    loss: np.ndarray
    """The loss as reported (0-d, or N for 'none')."""
    grad_hidden: np.ndarray
    grad_classifier: np.ndarray
    grad_bias: np.ndarray

    def hidden_rows(self, rows: slice) -> np.ndarray:
        """∂L/∂E of these rows (as :class:`~.stepped_baseline.SteppedBaseline` gives them)."""
        return self.grad_hidden[rows]

    def classifier_classes(self, classes: slice) -> np.ndarray:
        """∂L/∂C of these classes."""
        return self.grad_classifier[classes]

    def finished(self) -> LinearBaseline:
        """Itself: every output is held whole."""
        return self


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
    n, v = len(e), len(c)
    if by_classes(v, e.shape[1], work.itemsize):
        return _by_classes(e, c, b, terms, profile, output_types)
    e_work, c_work = e.astype(work, copy=False), c.astype(work, copy=False)
    b_work = None if b is None else b.astype(given).astype(work)
    grad_hidden = np.zeros(e.shape, work)
    grad_classifier = np.zeros(c.shape, work)
    grad_bias = np.zeros(v, work)
    losses = np.zeros((n, 2), work)
    step = max(1, block_bytes() // (8 * v))
    with np.errstate(all="ignore"):
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            g, losses[rows] = block_gradient(e_work[rows], c_work, b_work, terms, rows, profile, given)
            grad_hidden[rows] = g @ c_work
            grad_classifier += g.T @ e_work[rows]
            grad_bias += g.sum(axis=0, dtype=work)
    with np.errstate(over="ignore"):  # beyond the type's largest is ±inf in it, as in a kernel
        return LinearBaseline(
            reduced_loss(losses, terms, work).astype(output_types.get("loss", work)),
            grad_hidden.astype(output_types.get("grad_hidden", work)),
            grad_classifier.astype(output_types.get("grad_classifier", work)),
            grad_bias.astype(output_types.get("grad_bias", work)),
        )


def block_gradient(
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
    if profile.logits_in_input_type and given != work:
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
    everything = slice(0, c.shape[0])
    ce = terms.ce_scale[rows].astype(work)
    g = p * (terms.total[rows].astype(work) * ce)[:, None]
    terms.add_coefficients(g, rows, everything, -ce)
    losses = np.zeros((len(z), 2), work)
    losses[:, 0] = terms.weighted_sums((lse - z).astype(work), rows, everything)
    if terms.z_loss:
        square = np.square(lse[:, 0].astype(given) if profile.z_loss_in_input_type else lse[:, 0])
        losses[:, 1] = work.type(terms.z_loss) * square
        g += (terms.z_scale[rows, None].astype(work) * lse) * p
    if derivative is not None:
        g *= derivative
    if profile.gradient_in_input_type and given != work:
        g = g.astype(given).astype(work)
    losses[~terms.counted[rows]] = 0
    return g, losses


def reduced_loss(losses: np.ndarray, terms: LinearTerms, work: np.dtype) -> np.ndarray:
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


def block_logits(
    e: np.ndarray, c: np.ndarray, b: np.ndarray | None, classes: slice, terms: LinearTerms, profile: Profile
) -> tuple[np.ndarray, np.ndarray | None]:
    """A block's logits in the work type (rounded to the input's where the profile says), capped,
    with the cap's derivative."""
    return capped_logits(raw_logits(e, c, b, classes, profile), terms)


def raw_logits(e: np.ndarray, c: np.ndarray, b: np.ndarray | None, classes: slice, profile: Profile) -> np.ndarray:
    """A block's logits E·Cᵀ + b in the work type, rounded to the input's where the profile says."""
    given = e.dtype
    work: np.dtype = np.dtype(np.float64) if given == np.float64 else np.dtype(np.float32)
    z: np.ndarray = np.asarray(e, dtype=work) @ np.asarray(c[classes], dtype=work).T
    if b is not None:
        z += b[classes].astype(work)
    return profile_logits(z, given, profile)


def profile_logits(z: np.ndarray, given: np.dtype, profile: Profile) -> np.ndarray:
    """Logits formed in the work type, rounded to the input's type where the profile says."""
    return z.astype(given).astype(z.dtype) if profile.logits_in_input_type and given != z.dtype else z


def capped_logits(z: np.ndarray, terms: LinearTerms) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits in their work type capped as the terms say, with the cap's derivative (None without a cap)."""
    if terms.softcap is None:
        return z, None
    work = z.dtype
    cap = work.type(terms.softcap)
    ratio = z / cap
    return cap * np.tanh(ratio), work.type(1) / np.square(np.cosh(ratio))


def _by_classes(
    e: np.ndarray,
    c: np.ndarray,
    b: np.ndarray | None,
    terms: LinearTerms,
    profile: Profile,
    output_types: dict[str, np.dtype],
) -> LinearBaseline:
    """As a kernel that never holds ∂L/∂C whole: each row's maximum and sum of exponentials
    online over blocks of classes, then each block of classes finished in turn (float32
    accumulators of one block, rounded into the answer's type)."""
    given, work = e.dtype, (np.dtype(np.float64) if e.dtype == np.float64 else np.dtype(np.float32))
    n, d = e.shape
    v = len(c)
    class_step = max(1, block_bytes() // (8 * max(1, d)))
    row_step = max(1, block_bytes() // (8 * class_step))
    blocks = [(slice(r, min(r + row_step, n)), slice(k, min(k + class_step, v)))
              for k in range(0, v, class_step) for r in range(0, n, row_step)]  # fmt: skip
    top, total = np.full(n, -np.inf, work), np.zeros(n, work)
    with np.errstate(all="ignore"):
        for rows, classes in blocks:
            z, _ = block_logits(e[rows], c, b, classes, terms, profile)
            new_top = np.maximum(top[rows], z.max(axis=1))
            total[rows] = total[rows] * np.exp(top[rows] - new_top) + np.exp(z - new_top[:, None]).sum(axis=1)
            top[rows] = new_top
        lse = top + np.log(total)
        grad_hidden = np.zeros((n, d), work)
        grad_classifier = np.zeros((v, d), output_types.get("grad_classifier", work))
        grad_bias, losses = np.zeros(v, work), np.zeros((n, 2), work)
        for first in range(0, v, class_step):
            classes = slice(first, min(first + class_step, v))
            block = np.zeros((classes.stop - classes.start, d), work)
            for rows in (rows for rows, at in blocks if at == classes):
                g = class_block(e, c, b, terms, profile, rows, classes, lse, losses)
                grad_hidden[rows] += g @ c[classes].astype(work)
                block += g.T @ e[rows].astype(work)
                grad_bias[classes] += g.sum(axis=0, dtype=work)
            with np.errstate(over="ignore"):
                grad_classifier[classes] = block
    if terms.z_loss:
        square = np.square(lse.astype(given) if profile.z_loss_in_input_type else lse)
        losses[:, 1] = work.type(terms.z_loss) * square
    losses[~terms.counted] = 0
    with np.errstate(over="ignore"):
        return LinearBaseline(
            reduced_loss(losses, terms, work).astype(output_types.get("loss", work)),
            grad_hidden.astype(output_types.get("grad_hidden", work)),
            grad_classifier,
            grad_bias.astype(output_types.get("grad_bias", work)),
        )


def class_block(
    e: np.ndarray,
    c: np.ndarray,
    b: np.ndarray | None,
    terms: LinearTerms,
    profile: Profile,
    rows: slice,
    classes: slice,
    lse: np.ndarray,
    losses: np.ndarray,
    logits: np.ndarray | None = None,
) -> np.ndarray:
    """∂L/∂z of a block (as the products take it), from the rows' lse; the block's part of each
    row's cross-entropy added to ``losses``. ``logits``: the block's :func:`raw_logits`, where
    they are kept from the pass that found the lse."""
    given, work = e.dtype, lse.dtype
    raw = raw_logits(e[rows], c, b, classes, profile) if logits is None else logits
    z, derivative = capped_logits(raw, terms)
    losses[rows, 0] += terms.weighted_differences(lse[rows], z, rows, classes)
    p = np.subtract(z, lse[rows, None])
    np.exp(p, out=p)
    ce = terms.ce_scale[rows].astype(work)
    scale = (terms.total[rows].astype(work) * ce)[:, None]
    g = p * scale if terms.z_loss else np.multiply(p, scale, out=p)  # the z-loss's term needs p again
    terms.add_coefficients(g, rows, classes, -ce)
    if terms.z_loss:
        g += (terms.z_scale[rows].astype(work) * lse[rows])[:, None] * p
    if derivative is not None:
        g *= derivative
    return g.astype(given).astype(work) if profile.gradient_in_input_type and given != work else g
