"""A linear layer followed by softmax cross-entropy: the loss and the gradients of the hidden
states, the classifier and the bias, in float64, in blocks, never forming all the logits at once.

Fused kernels (Liger-Kernel, cut cross-entropy, torchtune's chunked loss, Megatron's
vocabulary-parallel loss) take hidden states E (N×D), a classifier C (V×D), a bias b and labels,
and return the loss with ∂L/∂E, ∂L/∂C and ∂L/∂b without storing the N×V logits z = E·Cᵀ + b.
This module computes the same four results exactly enough to grade any of them:

* the logits of a block of rows, in float64: a product of two float32 (or bfloat16, float16)
  numbers has at most 48 significant bits, so every product is exact in float64, and the sums
  BLAS forms are off by at most (D + 2)·2⁻⁵³·‖Eᵢ‖·‖Cⱼ‖ (``logit_error``, a bound per row);
* the softmax, the loss and ∂L/∂z of those rows, with every option of
  :func:`sce.softmax_cross_entropy` (weights, smoothing in either style, ignored rows, a soft
  cap, a z-loss) and an upstream gradient;
* ∂L/∂E = G·C, ∂L/∂C = Gᵀ·E and ∂L/∂b = Σᵢ Gᵢ, by float64 matrix products of the block.

The order of the blocks is chosen by size: where a float64 ∂L/∂C (V×D) fits in
:data:`CLASSIFIER_BYTES`, blocks of whole rows (each logit formed once); otherwise blocks of
classes, after a pass that finds each row's log-sum-exp, so that ∂L/∂C is finished a block of
classes at a time; and where ∂L/∂E (N×D) would not fit either, ∂L/∂E is then finished a block of
rows at a time in a third pass. The memory beyond the inputs stays under 1 GB at any size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from sce.loss.class_sums import ClassSums
from sce.loss.kept_logits import KeptLogits, narrow_logits
from sce.loss.linear_blocks import SIZE_GROUP, RowBlocks, group_maxima, group_sums
from sce.loss.linear_inputs import checked_grad_output, checked_linear_inputs
from sce.loss.linear_terms import LinearTerms, linear_terms, reported_loss
from sce.loss.softcap import soft_capped
from sce.options import LossOptions

#: The largest float64 ∂L/∂C (V×D) held whole (beside a float64 copy of C and two float32 arrays
#: as large: |C| and ∂L/∂C's operands' size); beyond it, blocks of classes.
CLASSIFIER_BYTES = 256 << 20
#: The bytes of one float64 block of logits (a few such are live at once). Under glibc's largest
#: threshold for serving allocations by mmap (32 MiB): a block's temporaries then reuse freed memory
#: rather than fault in fresh pages, which makes elementwise steps about 4× slower.
BLOCK_BYTES = 1 << 24
#: float64's unit roundoff.
UNIT = 2.0**-53


@dataclass(frozen=True)
class LinearCrossEntropyResult:
    """The loss of ``hidden @ classifier.T + bias`` and its gradients, in float64.

    Every array is float64; the gradients are those of the reported loss (for 'none', of
    Σᵢ grad_outputᵢ·lossᵢ, the upstream gradient all 1 unless given).
    """

    loss: float | np.ndarray
    """As PyTorch returns it: a float for 'mean' and 'sum', each row's loss (N) for 'none'."""
    losses: np.ndarray
    """Each row's loss, weights, smoothing and z-loss included; 0 where ignored (N)."""
    grad_hidden: np.ndarray
    """∂L/∂E (N×D)."""
    grad_classifier: np.ndarray
    """∂L/∂C (V×D)."""
    grad_bias: np.ndarray
    """∂L/∂b (V)."""
    logit_error: np.ndarray
    """A bound on the float64 logits' error in each row (N): what the products' sums may be off by."""
    terms: LinearTerms


@dataclass(frozen=True)
class Streamed:
    """What :func:`stream_gradients` returns beside the blocks it hands on."""

    losses: np.ndarray
    """Each row's cross-entropy and z-loss (N×2), 0 where ignored."""
    lse: np.ndarray
    """Each row's log-sum-exp of the (capped) logits (N)."""
    logit_error: np.ndarray
    """A bound on each row's float64 logits' error (N)."""
    grad_bias: np.ndarray
    """∂L/∂b (V)."""
    bias_magnitude: np.ndarray
    """Σᵢ of the operands' size of ∂L/∂z (V): the size of ∂L/∂b's sum."""


@dataclass(frozen=True)
class GradientBlock:
    """∂L/∂z of a block of rows and classes, with the size of its operands (for ulps)."""

    rows: slice
    classes: slice
    gradient: np.ndarray
    """∂L/∂z (rows × classes), float64."""
    magnitude: np.ndarray
    """|s·p| + |c| (and the z-loss's |lse·p|), scaled as the gradient (but for the soft cap's
    factor): the operands' size, in float32 (it needs a digit or two)."""


def linear_cross_entropy(
    hidden: ArrayLike,
    classifier: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    grad_output: ArrayLike | float = 1.0,
    options: LossOptions | None = None,
    **keywords: object,
) -> LinearCrossEntropyResult:
    """The softmax cross-entropy of the logits ``hidden @ classifier.T + bias``, and its
    gradients with respect to the hidden states, the classifier and the bias, computed in
    blocks in float64.

    Parameters
    ----------
    hidden : array_like
        E, N×D (float32, bfloat16, float16 or float64).
    classifier : array_like
        C, V×D.
    labels : array_like
        N class indices (or ``ignore_index``).
    bias : array_like, optional
        b, V.
    grad_output : array_like or float, default 1.0
        The upstream gradient: one number for 'mean' and 'sum', one per row (or one for all)
        for 'none'.
    options : LossOptions, optional
        The loss's options; or give them as keywords (reduction, weight, label_smoothing,
        smoothing_style, ignore_index, softcap, z_loss). The temperature is 1.

    Returns
    -------
    LinearCrossEntropyResult

    Raises
    ------
    InvalidInput
        A ``ValueError`` naming the argument: shapes that disagree, labels out of range,
        values that are not finite, or an option out of range.

    Examples
    --------
    Two rows, three classes, D = 2: the logits are [[1, 0, 1], [0, 2, 1]].

    >>> import numpy as np
    >>> E = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> C = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=np.float32)
    >>> result = linear_cross_entropy(E, C, [2, 1])
    >>> print(f"{result.loss:.6f}")  # (log(e + 1 + e) − 1 + log(1 + e² + e) − 2) / 2
    0.634800
    >>> result.grad_hidden.shape, result.grad_classifier.shape, result.grad_bias.shape
    ((2, 2), (3, 2), (3,))
    """
    options = (options or LossOptions()).replace(**keywords) if keywords else (options or LossOptions())
    e, c, b, checked = checked_linear_inputs(hidden, classifier, labels, bias, options.ignore_index)
    upstream = checked_grad_output(grad_output, options.reduction, len(checked))
    terms = linear_terms(checked, c.shape[0], options, upstream)
    n, d = e.shape
    grad_hidden = np.zeros((n, d))
    grad_classifier = np.zeros(c.shape)
    grad_bias = np.zeros(c.shape[0])

    def rows_done(rows: slice, values: np.ndarray, magnitude: np.ndarray) -> None:
        grad_hidden[rows] = values

    def classes_done(classes: slice, values: np.ndarray, magnitude: np.ndarray) -> None:
        grad_classifier[classes] = values

    streamed = stream_gradients(e, c, b, terms, rows_done, classes_done)
    grad_bias[:] = streamed.grad_bias
    return LinearCrossEntropyResult(
        reported_loss(streamed.losses, terms), streamed.losses.sum(axis=1), grad_hidden, grad_classifier, grad_bias,
        streamed.logit_error, terms,
    )  # fmt: skip


Finished = Callable[[slice, np.ndarray, np.ndarray], None]


def stream_gradients(
    e: np.ndarray,
    c: np.ndarray,
    b: np.ndarray | None,
    terms: LinearTerms,
    rows_done: Finished | None,
    classes_done: Finished | None,
    kept: KeptLogits | None = None,
) -> Streamed:
    """Compute ∂L/∂E and ∂L/∂C in blocks, handing each finished block (float64, with the size of
    its operands, Σ_v |G|_iv·|C_vd| and Σᵢ |G|_iv·|E_id| in float32) to ``rows_done`` and
    ``classes_done``; return the rest (:class:`Streamed`). Where one is None, that gradient's
    products are left out (a check of the loss alone costs the logits' product only). ``kept``:
    where to keep, going by classes, the logits the first pass forms for the passes after it (and
    a float32 kernel's, for the same-type baseline); their error is then in the returned bound."""
    n, d = e.shape
    v = c.shape[0]
    bound = logit_error_bound(e, c)
    # The operands' sizes are float32: past its range (a z-loss factor of 1e40) they are infinite,
    # which the grading knows; numpy's warnings about it are not the caller's concern.
    with np.errstate(over="ignore", invalid="ignore"):
        if not by_classes(v, d) and kept is None:
            return _by_rows(e, c, b, terms, rows_done, classes_done, bound)
        if not by_classes(n, d, 6) or rows_done is None:  # float64 ∂L/∂E and its float32 size: 512 MiB
            return _by_classes(e, c, b, terms, rows_done, classes_done, bound, kept)
        # Neither gradient fits whole: ∂L/∂C a block of classes at a time, then ∂L/∂E a block of
        # rows at a time, each over the other's blocks (the logits formed three times).
        streamed = _by_classes(e, c, b, terms, None, classes_done, bound, kept)
        hidden_by_rows(e, c, b, terms, rows_done, streamed.lse)
        return streamed


def by_classes(n_classes: int, width: int, itemsize: int = 8) -> bool:
    """Whether ∂L/∂C (V×D) in a type of ``itemsize`` bytes is too large to hold whole: then
    blocks of classes (the reference and the grading's baseline decide alike)."""
    return n_classes * width * itemsize > CLASSIFIER_BYTES


def block_bytes() -> int:
    """The bytes of one float64 block of logits."""
    return BLOCK_BYTES


def logit_error_bound(e: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Each row's bound on |fl(Eᵢ·Cⱼ + bⱼ) − (Eᵢ·Cⱼ + bⱼ)| in float64: (D + 2)·u·‖Eᵢ‖·maxⱼ‖Cⱼ‖
    (Higham's γ_D for the dot product, with products exact or rounded once, and the bias's sum)."""
    d = e.shape[1]
    top = float(np.sqrt(_row_squares(c).max(initial=0.0)))
    return (d + 2) * UNIT * 1.01 * np.sqrt(_row_squares(e)) * top


def _row_squares(a: np.ndarray) -> np.ndarray:
    step = max(1, BLOCK_BYTES // (8 * max(1, a.shape[1])))
    squares = [np.square(a[i : i + step], dtype=np.float64).sum(axis=1) for i in range(0, len(a), step)]
    return np.concatenate(squares) if squares else np.zeros(0)


def _logits(e_rows: np.ndarray, c: np.ndarray, b: np.ndarray | None, classes: slice) -> np.ndarray:
    return _block_logits(np.asarray(e_rows, np.float64), np.asarray(c[classes], np.float64), b, classes)


def _block_logits(e64: np.ndarray, c64: np.ndarray, b: np.ndarray | None, classes: slice) -> np.ndarray:
    """E·Cᵀ + b of a block whose E and C are float64 already."""
    z = e64 @ c64.T
    if b is not None:
        z += b[classes]
    return z


def _capped(z: np.ndarray, softcap: float | None) -> tuple[np.ndarray, np.ndarray | None]:
    """a = c·tanh(z/c) and its derivative 1 − tanh², or z itself without a cap."""
    if softcap is None:
        return z, None
    capped = soft_capped(np.ascontiguousarray(z), softcap)
    return capped.rounded, capped.derivative


def _block_gradient(
    p: np.ndarray,
    derivative: np.ndarray | None,
    lse: np.ndarray,
    terms: LinearTerms,
    rows: slice,
    classes: slice,
) -> GradientBlock:
    """G = ((s·p − c)·scale + 2λ·lse·p·scale_z)·(1 − tanh²) of a block, from its probabilities
    (``p`` is overwritten: G takes its place), with the operands' size in float32."""
    ce = terms.ce_scale[rows]
    scale, size_scale = terms.total[rows] * ce, terms.total[rows] * np.abs(ce)
    if terms.z_loss:
        z = terms.z_scale[rows] * lse
        scale, size_scale = scale + z, size_scale + np.abs(z)
    magnitude = np.multiply(p, size_scale[:, None], out=np.empty(p.shape, np.float32), casting="same_kind")
    terms.add_coefficients(magnitude, rows, classes, np.abs(ce))
    gradient = np.multiply(p, scale[:, None], out=p)
    terms.add_coefficients(gradient, rows, classes, -ce)
    if terms.operand_share != 1.0:
        magnitude *= np.float32(terms.operand_share)
        np.add(magnitude, np.abs(gradient), out=magnitude, casting="same_kind")
    if terms.label_offset is not None:
        inside, where = terms.label_entries(rows, classes)
        gradient[inside, where] += terms.label_offset[rows][inside]
    if derivative is not None and terms.chain_softcap:
        # The size stays the uncapped one: 1 − tanh² formed in a narrow type is off by an ulp of
        # 1, which is all of it where the cap saturates (as sce check --arrays counts it).
        gradient *= derivative
    return GradientBlock(rows, classes, gradient, magnitude)


def _cross_entropy_part(a: np.ndarray, top: np.ndarray, terms: LinearTerms, rows: slice, classes: slice) -> np.ndarray:
    """Σ_j c_ij·(mᵢ − a_ij) over a block's classes: each row's loss is that plus s·log Σ e^(a − m)."""
    return terms.weighted_differences(top, a, rows, classes)


def _row_step(n_rows: int, n_classes: int) -> int:
    """Rows per block: a multiple of SIZE_GROUP, so that the groups the operands' size is bounded
    over are the same however the rows are cut into blocks."""
    return max(1, min(n_rows, _whole_groups(BLOCK_BYTES // (8 * max(1, n_classes)))))


def _class_step(n_classes: int, width: int) -> int:
    """Classes per block: a multiple of SIZE_GROUP (as :func:`_row_step`)."""
    return max(1, min(n_classes, _whole_groups(BLOCK_BYTES // (8 * max(1, width)))))


def _whole_groups(count: int) -> int:
    return max(SIZE_GROUP, count // SIZE_GROUP * SIZE_GROUP)


def _by_rows(
    e: np.ndarray,
    c: np.ndarray,
    b: np.ndarray | None,
    terms: LinearTerms,
    rows_done: Finished | None,
    classes_done: Finished | None,
    bound: np.ndarray,
) -> Streamed:
    """Blocks of whole rows: each row's logits formed once; ∂L/∂C accumulated whole in float64."""
    n, v = len(e), len(c)
    everything = slice(0, v)
    c64 = np.asarray(c, np.float64)
    c_size = group_maxima(c) if rows_done else None
    grad_classifier = np.zeros(c64.shape) if classes_done else None
    class_magnitude = np.zeros(c.shape, np.float32) if classes_done else None
    grad_bias, bias_magnitude = np.zeros(v), np.zeros(v)
    losses = np.zeros((n, 2))
    lses = np.zeros(n)
    step = _row_step(n, v)
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        e64 = np.asarray(e[rows], np.float64)
        a, derivative = _capped(_logits(e64, c64, b, everything), terms.softcap)
        top = a.max(axis=1)
        losses_part = _cross_entropy_part(a, top, terms, rows, everything)
        p = np.exp(a - top[:, None], out=a)
        total = p.sum(axis=1)
        p /= total[:, None]
        lses[rows] = lse = top + np.log(total)
        losses[rows] = _row_losses(losses_part, top, lse, terms, rows)
        block = _block_gradient(p, derivative, lse, terms, rows, everything)
        del a, p, derivative
        size = block.magnitude
        if rows_done and c_size is not None:
            rows_done(rows, block.gradient @ c64, group_sums(size, 1) @ c_size)
        if grad_classifier is not None and class_magnitude is not None:
            grad_classifier += block.gradient.T @ e64
            class_magnitude += group_sums(size, 0).T @ group_maxima(e[rows])
        grad_bias += block.gradient.sum(axis=0)
        bias_magnitude += block.magnitude.sum(axis=0, dtype=np.float64)
    if classes_done and grad_classifier is not None and class_magnitude is not None:
        class_step = _class_step(v, c.shape[1])
        for start in range(0, v, class_step):
            classes = slice(start, min(start + class_step, v))
            classes_done(classes, grad_classifier[classes], class_magnitude[classes])
    return Streamed(losses, lses, bound, grad_bias, bias_magnitude)


def _row_losses(part: np.ndarray, top: np.ndarray, lse: np.ndarray, terms: LinearTerms, rows: slice) -> np.ndarray:
    """Each row's cross-entropy Σ c·(m − a) + s·(lse − m), and its z-loss λ·lse²; 0 where ignored (B×2)."""
    losses = np.zeros((len(part), 2))
    losses[:, 0] = part + terms.total[rows] * (lse - top)
    if terms.z_loss:
        losses[:, 1] = terms.z_loss * np.square(lse)
    losses[~terms.counted[rows]] = 0.0
    return losses


def _by_classes(
    e: np.ndarray, c: np.ndarray, b: np.ndarray | None, terms: LinearTerms, rows_done: Finished | None,
    classes_done: Finished | None, bound: np.ndarray, kept: KeptLogits | None = None,
) -> Streamed:
    """Blocks of classes, after a pass that finds each row's maximum and log-sum-exp: ∂L/∂C is
    finished one block of classes at a time; ∂L/∂E (N×D) is accumulated in float64."""
    n, d = e.shape
    top, lse = row_statistics(e, c, b, terms, kept)
    sums = ClassSums.zeros(n, d, len(c), rows_done is not None)
    step = _class_step(len(c), d)
    row_blocks = RowBlocks(e, _row_step(n, step))
    for classes in (slice(k, min(k + step, len(c))) for k in range(0, len(c), step)):
        block = add_class_block(row_blocks, c, b, terms, classes, (top, lse), sums, classes_done is not None, kept)
        if classes_done and block is not None:
            classes_done(classes, *block)
    return finished_by_classes(sums, top, lse, terms, bound if kept is None else bound + kept.error, rows_done)


def add_class_block(
    row_blocks: RowBlocks, c: np.ndarray, b: np.ndarray | None, terms: LinearTerms, classes: slice,
    statistics: tuple[np.ndarray, np.ndarray], sums: ClassSums, classes_wanted: bool, kept: KeptLogits | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A block of classes over every block of rows (:func:`block_steps`), from each row's (max, lse):
    its part of ∂L/∂E, the losses and ∂L/∂b added to ``sums``; its ∂L/∂C and operands' size, where wanted."""
    top, lse = statistics
    c64 = np.asarray(c[classes], np.float64)
    block_classifier = np.zeros(c64.shape)
    block_magnitude = np.zeros(c64.shape, np.float32)
    c_size = group_maxima(c64)
    for k, rows in enumerate(row_blocks.slices):
        e64 = row_blocks.float64(k)
        z = None if kept is None else kept.wide(rows, classes)
        a, derivative = _capped(_block_logits(e64, c64, b, classes) if z is None else z, terms.softcap)
        sums.cross_entropy[rows] += _cross_entropy_part(a, top[rows], terms, rows, classes)
        p = np.exp(np.subtract(a, lse[rows, None], out=a), out=a)
        block = _block_gradient(p, derivative, lse[rows], terms, rows, classes)
        size = block.magnitude
        if len(sums.grad_hidden):
            sums.grad_hidden[rows] += block.gradient @ c64
            sums.hidden_magnitude[rows] += group_sums(size, 1) @ c_size
        if classes_wanted:
            block_classifier += block.gradient.T @ e64
            block_magnitude += group_sums(size, 0).T @ row_blocks.group_maxima(k)
        sums.grad_bias[classes] += block.gradient.sum(axis=0)
        sums.bias_magnitude[classes] += block.magnitude.sum(axis=0, dtype=np.float64)
    return (block_classifier, block_magnitude) if classes_wanted else None


def finished_by_classes(
    sums: ClassSums, top: np.ndarray, lse: np.ndarray, terms: LinearTerms, bound: np.ndarray, rows_done: Finished | None
) -> Streamed:
    """Every block of classes added in: ∂L/∂E handed over a block of rows at a time, the rest returned."""
    n, step = len(top), _row_step(len(top), _class_step(len(sums.grad_bias), sums.grad_hidden.shape[1]))
    for rows in (slice(k, min(k + step, n)) for k in range(0, n if rows_done else 0, step)):
        rows_done(rows, sums.grad_hidden[rows], sums.hidden_magnitude[rows])  # type: ignore[misc]
    losses = _row_losses(sums.cross_entropy, top, lse, terms, slice(0, n))
    return Streamed(losses, lse, bound, sums.grad_bias, sums.bias_magnitude)


def hidden_by_rows(
    e: np.ndarray, c: np.ndarray, b: np.ndarray | None, terms: LinearTerms, rows_done: Finished, lse: np.ndarray
) -> None:
    """∂L/∂E a block of rows at a time, over blocks of classes, from each row's log-sum-exp."""
    n, d = e.shape
    v = len(c)
    class_step = _class_step(v, d)
    row_step = block_steps(n, v, d)[2]
    for start in range(0, n, row_step):
        rows = slice(start, min(start + row_step, n))
        e64 = np.asarray(e[rows], np.float64)
        grad_hidden = np.zeros(e64.shape)
        magnitude = np.zeros(e64.shape, np.float32)
        for first in range(0, v, class_step):
            classes = slice(first, min(first + class_step, v))
            for part in range(start, rows.stop, _row_step(n, class_step)):
                inner = slice(part, min(part + _row_step(n, class_step), rows.stop))
                a, derivative = _capped(_logits(e[inner], c, b, classes), terms.softcap)
                block = _block_gradient(np.exp(a - lse[inner, None]), derivative, lse[inner], terms, inner, classes)
                local = slice(inner.start - start, inner.stop - start)
                grad_hidden[local] += block.gradient @ np.asarray(c[classes], np.float64)
                magnitude[local] += group_sums(block.magnitude, 1) @ group_maxima(c[classes])
        rows_done(rows, grad_hidden, magnitude)


def row_statistics(
    e: np.ndarray, c: np.ndarray, b: np.ndarray | None, terms: LinearTerms, kept: KeptLogits | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's largest (capped) logit m and log-sum-exp, over blocks of classes (online); the
    blocks ``kept`` has room for kept there (those it holds already taken from it)."""
    n, d = e.shape
    v = len(c)
    top = np.full(n, -np.inf)
    sums = np.zeros(n)
    class_step = _class_step(v, d)
    row_blocks = RowBlocks(e, _row_step(n, class_step))
    for first in range(0, v, class_step):
        classes = slice(first, min(first + class_step, v))
        c64 = np.asarray(c[classes], np.float64)
        for k, rows in enumerate(row_blocks.slices):
            a, _ = _capped(_statistics_logits(row_blocks, k, (c, c64), b, classes, kept), terms.softcap)
            new_top = np.maximum(top[rows], a.max(axis=1))
            exponentials = np.exp(np.subtract(a, new_top[:, None], out=a), out=a)
            sums[rows] = sums[rows] * np.exp(top[rows] - new_top) + exponentials.sum(axis=1)
            top[rows] = new_top
    return top, top + np.log(sums)


def _statistics_logits(
    row_blocks: RowBlocks, k: int, classifier: tuple[np.ndarray, np.ndarray], b: np.ndarray | None, classes: slice,
    kept: KeptLogits | None,
) -> np.ndarray:
    """A block's float64 logits: from ``kept`` where it holds them, else formed (and kept there,
    with a float32 kernel's, where it has room). ``classifier``: C, and the block's classes of it in float64."""
    c, c64 = classifier
    rows = row_blocks.slices[k]
    found = None if kept is None else kept.wide(rows, classes)
    if found is not None:
        return found
    z = _block_logits(row_blocks.float64(k), c64, b, classes)
    if kept is not None and kept.wants(rows, classes):
        kept.keep(rows, classes, z, narrow_logits(row_blocks.e[rows], c, b, classes))
    return z


def block_steps(n_rows: int, n_classes: int, width: int) -> tuple[int, int, int]:
    """Classes per block going by classes, rows per block of :func:`row_statistics` and of :func:`hidden_by_rows`."""
    step = _class_step(n_classes, width)
    return step, _row_step(n_rows, step), max(1, min(n_rows, BLOCK_BYTES // (8 * max(1, width))))
