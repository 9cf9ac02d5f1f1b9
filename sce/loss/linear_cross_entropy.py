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
:data:`CLASSIFIER_BYTES`, blocks of whole rows (one pass: each logit formed once); otherwise
blocks of classes, after a first pass that finds each row's log-sum-exp, so that ∂L/∂C is
finished one block of classes at a time and never held whole. Either way the memory beyond the
inputs and outputs stays under 1 GB at any size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from sce.loss.exact_sum import ExactSum, exact_ratio
from sce.loss.result import InvalidInput
from sce.loss.softcap import soft_capped
from sce.loss.validation import checked_labels, validated_options
from sce.options import LossOptions

#: The largest float64 ∂L/∂C (V×D) held whole (beside a float64 copy of C); beyond it, blocks of classes.
CLASSIFIER_BYTES = 384 << 20
#: The bytes of one float64 block of logits (a few such are live at once).
BLOCK_BYTES = 1 << 25
#: float64's unit roundoff.
UNIT = 2.0**-53


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

    def coefficients(self, rows: slice, classes: slice) -> np.ndarray:
        """c_ij of a block: the smoothing's mass on every class and the label's share on its own."""
        smoothed = self.smoothed[classes]
        c = np.repeat(smoothed[None, :], rows.stop - rows.start, axis=0)
        c[~self.counted[rows]] = 0.0
        start, stop, _ = classes.indices(len(self.smoothed))
        labels = self.labels[rows]
        inside = np.flatnonzero(self.counted[rows] & (labels >= start) & (labels < stop))
        where = labels[inside] - start
        if self.off_target:
            c[inside, where] = self.label_share[rows][inside]
        else:
            c[inside, where] += self.label_share[rows][inside]
        return c


def linear_terms(
    labels: np.ndarray, n_classes: int, options: LossOptions, grad_output: np.ndarray | float = 1.0
) -> LinearTerms:
    """The per-row coefficients and scales of the loss for ``labels`` (checked) and ``options``."""
    _, weights = validated_options(options)
    w = np.ones(n_classes) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != n_classes:
        raise InvalidInput(f"{len(w)} weights for {n_classes} classes", field="weight")
    counted = labels != options.ignore_index
    safe = np.where(counted, labels, 0)
    eps = options.label_smoothing
    off_target = options.smoothing_style == "off-target"
    if off_target:
        share, mass = (1.0, 0.0) if eps == 0 or n_classes == 1 else (1 - eps, eps / (n_classes - 1))
    else:
        share, mass = 1 - eps, eps / n_classes
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
    )  # fmt: skip


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
class GradientBlock:
    """∂L/∂z of a block of rows and classes, with the size of its operands (for ulps)."""

    rows: slice
    classes: slice
    gradient: np.ndarray
    """∂L/∂z (rows × classes), float64."""
    magnitude: np.ndarray
    """|s·p| + |c| (and the z-loss's |lse·p|), scaled as the gradient: the operands' size."""


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

    losses, bound, bias_gradient = stream_gradients(e, c, b, terms, rows_done, classes_done)
    grad_bias[:] = bias_gradient[0]
    return LinearCrossEntropyResult(
        reported_loss(losses, terms), losses, grad_hidden, grad_classifier, grad_bias, bound, terms
    )


Finished = Callable[[slice, np.ndarray, np.ndarray], None]


def stream_gradients(
    e: np.ndarray, c: np.ndarray, b: np.ndarray | None, terms: LinearTerms, rows_done: Finished, classes_done: Finished
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Compute ∂L/∂E and ∂L/∂C in blocks, handing each finished block (float64, with the size of
    its operands: ‖|G|ᵢ‖·‖C_{:,d}‖ and ‖|G|_{:,v}‖·‖E_{:,d}‖) to ``rows_done`` and
    ``classes_done``. Returns each row's loss, the logits' error bound per row, and ∂L/∂b with
    the size of its operands."""
    n, d = e.shape
    v = c.shape[0]
    bound = logit_error_bound(e, c)
    if v * d * 8 <= CLASSIFIER_BYTES:
        return _by_rows(e, c, b, terms, rows_done, classes_done, bound)
    return _by_classes(e, c, b, terms, rows_done, classes_done, bound)


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
    z = np.asarray(e_rows, np.float64) @ np.asarray(c[classes], np.float64).T
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
    a: np.ndarray,
    derivative: np.ndarray | None,
    lse: np.ndarray,
    terms: LinearTerms,
    rows: slice,
    classes: slice,
) -> GradientBlock:
    """G = ((s·p − c)·scale + 2λ·lse·p·scale_z)·(1 − tanh²) of a block, p = exp(a − lse)."""
    c = terms.coefficients(rows, classes)
    p = np.exp(a - lse[:, None])
    s = terms.total[rows, None]
    ce = terms.ce_scale[rows, None]
    z = (terms.z_scale[rows] * lse)[:, None]
    gradient = (s * p - c) * ce
    magnitude = (s * p + c) * np.abs(ce)
    if terms.z_loss:
        gradient += z * p
        magnitude += np.abs(z) * p
    if derivative is not None:
        gradient *= derivative
        magnitude *= derivative
    return GradientBlock(rows, classes, gradient, magnitude)


def _cross_entropy_part(a: np.ndarray, top: np.ndarray, terms: LinearTerms, rows: slice, classes: slice) -> np.ndarray:
    """Σ_j c_ij·(mᵢ − a_ij) over a block's classes: each row's loss is that plus s·log Σ e^(a − m)."""
    return (terms.coefficients(rows, classes) * (top[:, None] - a)).sum(axis=1)


def _row_step(n_rows: int, n_classes: int) -> int:
    return max(1, min(n_rows, BLOCK_BYTES // (8 * max(1, n_classes))))


def _by_rows(
    e: np.ndarray,
    c: np.ndarray,
    b: np.ndarray | None,
    terms: LinearTerms,
    rows_done: Finished,
    classes_done: Finished,
    bound: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Blocks of whole rows: each row's logits formed once; ∂L/∂C accumulated whole in float64."""
    n, v = len(e), len(c)
    everything = slice(0, v)
    c64 = np.asarray(c, np.float64)
    column_norms = np.sqrt(np.square(c64).sum(axis=0))
    grad_classifier = np.zeros(c64.shape)
    magnitude_squares = np.zeros(v)
    grad_bias, bias_magnitude = np.zeros(v), np.zeros(v)
    losses = np.zeros((n, 2))
    step = _row_step(n, v)
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        e64 = np.asarray(e[rows], np.float64)
        a, derivative = _capped(_logits(e64, c64, b, everything), terms.softcap)
        top = a.max(axis=1)
        lse = top + np.log(np.exp(a - top[:, None]).sum(axis=1))
        losses[rows] = _row_losses(_cross_entropy_part(a, top, terms, rows, everything), top, lse, terms, rows)
        block = _block_gradient(a, derivative, lse, terms, rows, everything)
        del a, derivative
        rows_done(rows, block.gradient @ c64, np.outer(np.linalg.norm(block.magnitude, axis=1), column_norms))
        grad_classifier += block.gradient.T @ e64
        magnitude_squares += np.square(block.magnitude).sum(axis=0)
        grad_bias += block.gradient.sum(axis=0)
        bias_magnitude += block.magnitude.sum(axis=0)
    hidden_norms = np.sqrt(_column_squares(e))
    for start in range(0, v, step):
        classes = slice(start, min(start + step, v))
        classes_done(classes, grad_classifier[classes], np.outer(np.sqrt(magnitude_squares[classes]), hidden_norms))
    return losses, bound, (grad_bias, bias_magnitude)


def _column_squares(a: np.ndarray) -> np.ndarray:
    step = max(1, BLOCK_BYTES // (8 * max(1, a.shape[1])))
    total = np.zeros(a.shape[1])
    for i in range(0, len(a), step):
        total += np.square(a[i : i + step], dtype=np.float64).sum(axis=0)
    return total


def _row_losses(part: np.ndarray, top: np.ndarray, lse: np.ndarray, terms: LinearTerms, rows: slice) -> np.ndarray:
    """Each row's cross-entropy Σ c·(m − a) + s·(lse − m), and its z-loss λ·lse²; 0 where ignored (B×2)."""
    losses = np.zeros((len(part), 2))
    losses[:, 0] = part + terms.total[rows] * (lse - top)
    if terms.z_loss:
        losses[:, 1] = terms.z_loss * np.square(lse)
    losses[~terms.counted[rows]] = 0.0
    return losses


def _by_classes(
    e: np.ndarray,
    c: np.ndarray,
    b: np.ndarray | None,
    terms: LinearTerms,
    rows_done: Finished,
    classes_done: Finished,
    bound: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Blocks of classes, after a pass that finds each row's maximum and log-sum-exp: ∂L/∂C is
    finished one block of classes at a time; ∂L/∂E (N×D) is accumulated in float64."""
    n, d = e.shape
    v = len(c)
    top, lse = _row_statistics(e, c, b, terms)
    grad_hidden = np.zeros((n, d))
    hidden_squares = np.zeros(n)
    grad_bias, bias_magnitude = np.zeros(v), np.zeros(v)
    part = np.zeros(n)
    class_step = max(1, min(v, BLOCK_BYTES // (8 * d)))
    row_step = _row_step(n, class_step)
    hidden_norms = np.sqrt(_column_squares(e))
    column_norms = np.sqrt(_column_squares(c))
    for first in range(0, v, class_step):
        classes = slice(first, min(first + class_step, v))
        c64 = np.asarray(c[classes], np.float64)
        block_classifier = np.zeros(c64.shape)
        class_squares = np.zeros(len(c64))
        for start in range(0, n, row_step):
            rows = slice(start, min(start + row_step, n))
            e64 = np.asarray(e[rows], np.float64)
            a, derivative = _capped(_logits(e64, c, b, classes), terms.softcap)
            part[rows] += _cross_entropy_part(a, top[rows], terms, rows, classes)
            block = _block_gradient(a, derivative, lse[rows], terms, rows, classes)
            grad_hidden[rows] += block.gradient @ c64
            hidden_squares[rows] += np.square(block.magnitude).sum(axis=1)
            block_classifier += block.gradient.T @ e64
            class_squares += np.square(block.magnitude).sum(axis=0)
            grad_bias[classes] += block.gradient.sum(axis=0)
            bias_magnitude[classes] += block.magnitude.sum(axis=0)
        classes_done(classes, block_classifier, np.outer(np.sqrt(class_squares), hidden_norms))
    for start in range(0, n, row_step):
        rows = slice(start, min(start + row_step, n))
        rows_done(rows, grad_hidden[rows], np.outer(np.sqrt(hidden_squares[rows]), column_norms))
    everything = slice(0, n)
    return _row_losses(part, top, lse, terms, everything), bound, (grad_bias, bias_magnitude)


def _row_statistics(
    e: np.ndarray, c: np.ndarray, b: np.ndarray | None, terms: LinearTerms
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's largest (capped) logit m and log-sum-exp, over blocks of classes (online)."""
    n, d = e.shape
    v = len(c)
    top = np.full(n, -np.inf)
    sums = np.zeros(n)
    class_step = max(1, min(v, BLOCK_BYTES // (8 * d)))
    row_step = _row_step(n, class_step)
    for first in range(0, v, class_step):
        classes = slice(first, min(first + class_step, v))
        for start in range(0, n, row_step):
            rows = slice(start, min(start + row_step, n))
            a, _ = _capped(_logits(e[rows], c, b, classes), terms.softcap)
            new_top = np.maximum(top[rows], a.max(axis=1))
            sums[rows] = sums[rows] * np.exp(top[rows] - new_top) + np.exp(a - new_top[:, None]).sum(axis=1)
            top[rows] = new_top
    return top, top + np.log(sums)


def reported_loss(losses: np.ndarray, terms: LinearTerms) -> float | np.ndarray:
    """The loss as PyTorch reports it from each row's (cross-entropy, z-loss) (N×2): their sums
    for 'none', else summed exactly and rounded once (for 'mean', the cross-entropy over the
    counted rows' weight sum and the z-loss over their number)."""
    if terms.reduction == "none":
        return losses.sum(axis=1)
    cross_entropy, z = ExactSum.of(losses[:, 0]), ExactSum.of(losses[:, 1])
    if terms.reduction == "sum":
        return exact_ratio([(cross_entropy + z, 1.0)])
    parts = [(cross_entropy, terms.denominator)]
    if terms.z_loss:
        parts.append((z, terms.z_denominator))
    return exact_ratio(parts)


def checked_linear_inputs(
    hidden: ArrayLike, classifier: ArrayLike, labels: ArrayLike, bias: ArrayLike | None, ignore_index: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """E (N×D), C (V×D), b (V, float64) and the labels (N, int64), checked: shapes that agree,
    finite values, labels in range; an :class:`InvalidInput` naming the argument otherwise."""
    e = _float_matrix(hidden, "hidden")
    c = _float_matrix(classifier, "classifier")
    if e.shape[1] != c.shape[1]:
        raise InvalidInput(
            f"hidden has D = {e.shape[1]} columns but classifier has D = {c.shape[1]}",
            field="classifier",
            hint="classifier is V×D, one row per class, D the hidden states' width",
        )
    if c.shape[0] == 0:
        raise InvalidInput("classifier has no classes (V = 0)", field="classifier")
    b = None
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64)
        if b.shape != (c.shape[0],):
            raise InvalidInput(f"bias has shape {b.shape}, not ({c.shape[0]},): one per class", field="bias")
        if not np.isfinite(b).all():
            raise InvalidInput("bias has a value that is not finite", field="bias", column=_first_bad(b))
    return e, c, b, checked_labels(labels, e.shape[0], c.shape[0], ignore_index)


def _float_matrix(value: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2:
        raise InvalidInput(f"{name} has {array.ndim} axes; give a matrix (rows × D)", field=name)
    if array.dtype.kind not in "fV" and array.dtype.name != "bfloat16":
        raise InvalidInput(f"{name} has type {array.dtype}; give floating-point numbers", field=name)
    step = max(1, BLOCK_BYTES // (8 * max(1, array.shape[1])))
    for start in range(0, len(array), step):
        block = np.asarray(array[start : start + step], np.float64)
        if not np.isfinite(block).all():
            row, column = np.argwhere(~np.isfinite(block))[0]
            raise InvalidInput(
                f"{name} has a value that is not finite ({block[row, column]})",
                field=name,
                row=int(start + row),
                column=int(column),
            )
    return array


def _first_bad(values: np.ndarray) -> int:
    return int(np.flatnonzero(~np.isfinite(values))[0])


def checked_grad_output(grad_output: ArrayLike | float, reduction: str, n_rows: int) -> np.ndarray | float:
    """The upstream gradient: one finite number, or one per row for 'none'."""
    upstream = np.asarray(grad_output, dtype=np.float64)
    if upstream.ndim and not (reduction == "none" and upstream.shape == (n_rows,)):
        raise InvalidInput(
            f"grad_output has shape {upstream.shape}; give one number"
            + (f", or one per row ({n_rows})" if reduction == "none" else f" for reduction {reduction!r}"),
            field="grad_output",
        )
    if not np.isfinite(upstream).all():
        raise InvalidInput("grad_output is not finite", field="grad_output")
    return upstream if upstream.ndim else float(upstream)
