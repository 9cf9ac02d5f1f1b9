"""Softmax cross-entropy: the public function over private steps.

The steps: check the inputs (finding each row's argmax on the way), then,
block of rows by block of rows (:mod:`.row_blocks`), take the log-softmax and
compute each row's loss and gradient for the kind of target given (class
indices or probabilities: each kind is a small object with the same
``block`` method, so the loop, the scaling and the reduction are written
once), and finally reduce. The intermediates only explanations need are
left to the result, which computes them when they are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from sce.loss import row_blocks
from sce.loss.exact_sum import ExactSum
from sce.loss.language_model import LanguageModelScale, log_sum_exp, reduced_z_loss, z_losses_of
from sce.loss.log_softmax import LogSoftmax, Workspace, log_softmax, shift_is_exact
from sce.loss.reduction import (
    GradientScale,
    overflowing_rows,
    reduce,
    reduced_loss,
    warn_about_infinite_losses,
    warn_about_nan,
    warn_about_overflowing_gradients,
)
from sce.loss.result import InvalidInput, SoftmaxCrossEntropyResult
from sce.loss.row_blocks import flat, flat_indices
from sce.loss.softcap import Capped, soft_capped
from sce.loss.target_kinds import HardLabels, OffTargetLabels, SoftTargets, Terms
from sce.loss.targets import smoothing_masses
from sce.loss.validation import (
    as_rows,
    checked_labels,
    checked_logits_and_argmax,
    checked_targets,
    class_weights,
    float_type_name,
    validated_options,
    weight_tuple,
)
from sce.options import LossOptions, Reduction, SmoothingStyle

_DEFAULTS = LossOptions()


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    targets: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    temperature: float = 1.0,
    dtype: DTypeLike = np.float64,
    softcap: float | None = None,
    z_loss: float = 0.0,
    smoothing_style: SmoothingStyle = "uniform",
    options: LossOptions | None = None,
    mean_denominator: float | None = None,
    z_loss_denominator: float | None = None,
    class_axis: int = -1,
) -> SoftmaxCrossEntropyResult:
    """Softmax cross-entropy of ``logits`` against ``labels`` or ``targets``: the loss and its gradient.

    For each row, p = softmax(z / T) and the loss is -Σ_j t_j·log p_j with t the target (the one-hot y of the label,
    smoothed with ε if asked); its gradient is ∂L/∂z = (p - t) / T, weighted and reduced as PyTorch's does.

    Parameters
    ----------
    logits : array_like
        Scores with the classes on ``class_axis``: N×K (classes last), PyTorch's (N, K, d1, …) with
        ``class_axis=1``, or a single vector of K (one unbatched row). An empty batch (N = 0) is allowed: 'none'
        gives no losses, 'sum' 0 and 'mean' NaN with a :class:`LossWarning`, as PyTorch.
    labels : array_like of int, optional
        Class indices in [0, K), or ``ignore_index`` to leave a row out, shaped like the logits without the class
        axis (a scalar for a vector).
    targets : array_like, optional
        Probability targets shaped like the logits (each non-negative, summing to 1 along the class axis within
        1e-6, or within their type's rounding when given as float32, float16 or bfloat16), in place of labels.
    weight : array_like, optional
        K non-negative class weights (default all 1).
    label_smoothing : float, default 0.0
        ε in [0, 1]: the target becomes (1 - ε)·y + ε/K (``smoothing_style`` 'uniform', PyTorch's) or (1 - ε)·y +
        ε/(K - 1)·(1 - y) ('off-target', Megatron's and t5x's: 1 - ε on the label, ε/(K - 1) on each other class;
        with K = 1 the target is left as it is).
    ignore_index : int, default -100
        Label value whose rows contribute neither loss nor gradient.
    reduction : {'mean', 'none', 'sum'}, default 'mean'
        As PyTorch: 'mean' (the default), 'sum', or 'none' (each row's own loss, and the gradient of each row's
        loss). With class indices 'mean' divides by the weight sum of the counted rows, with probability targets
        by N, exactly as PyTorch does. Every reduction also gives each row's loss as ``losses``. The rows' losses are
        summed exactly and the sum or mean rounded once (:mod:`sce.loss.exact_sum`), so no grouping or order of the
        rows changes its bits.
    temperature : float, default 1.0
        T > 0; the softmax is taken of logits / T and the gradient is with respect to the logits as given.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        The float type computed in, throughout.
    softcap : float, optional
        c > 0: the logits are first capped, a = c·tanh(z/c) (Gemma 2), then divided by the temperature: b = a/T, p =
        softmax(b). The gradient is with respect to z, so each entry carries 1 - tanh²(z/c). A masked logit (-inf)
        becomes -c.
    z_loss : float, default 0.0
        λ >= 0: each counted (not ignored) row adds λ·lse(b)², lse(b) = log Σ_j e^(b_j), not weighted; its gradient
        with respect to b is 2λ·lse·p. With 'mean' the z-loss is divided by the number of counted rows while the
        cross-entropy keeps PyTorch's Σ w[y] (Liger's convention; without weights also flash-attention's). The
        result reports it apart too (``z_losses``, ``z_loss``, ``log_sum_exp``).
    smoothing_style : {'uniform', 'off-target'}, default 'uniform'
        See ``label_smoothing``.
    options : LossOptions, optional
        All of the above as one :class:`~sce.options.LossOptions`, in place of the separate keywords (giving both is
        a TypeError).
    mean_denominator : float, optional
        With reduction 'mean', divide by this rather than by this call's own weight sum or row count: for a large
        batch computed chunk by chunk, pass the denominator of the whole batch so that every chunk's gradient is
        that of the whole batch's mean.
    z_loss_denominator : float, optional
        The same for the z-loss's mean: the whole batch's number of counted rows.
    class_axis : int, default -1
        The axis of the classes (1 for PyTorch's (N, K, d1, …)). The result's arrays come back in the caller's
        layout, as PyTorch's: the gradient shaped like the logits, the losses like the labels;
        ``result.as_rows`` gives them as N×K rows (one row per position of the other axes, in C order).

    Returns
    -------
    SoftmaxCrossEntropyResult
        The probabilities, the per-row losses, the loss as PyTorch returns it and the gradient ∂loss/∂logits, in
        the caller's layout, with everything computed on the way.

    Raises
    ------
    InvalidInput
        For an input the loss is not defined for; ``field``, ``row`` and ``column`` say where, ``problem`` what is
        wrong and ``hint`` how to fix it.
    TypeError
        For options given both as ``options=`` and as keywords.

    Warns
    -----
    LossWarning
        Where the result is infinite or NaN, naming the rows.

    See Also
    --------
    sce.LossOptions : the options as one value.
    sce.loss.softmax_jacobian, sce.loss.loss_hessian : the derivatives as matrices.
    sce.testing.assert_cross_entropy_close : grade a gradient computed elsewhere.

    Notes
    -----
    Order of operations: soft-capping of the logits as given, then the temperature, then the softmax. The loss and
    the gradient are accurate to a few units in the last place, far from the maximum too:

    * the shift comes before the scaling, (z - M) / T with M the row's maximum, so that the largest term is exactly
      e^0 = 1 and nothing overflows that the result does not need;
    * the rounding error of z - M is recovered exactly with TwoSum [1]_ and that of the division by T with Dekker's
      TwoProduct [2]_, and applied as a factor (1 + err) to each exponential;
    * the maximum's 1 is kept out of the sum S of the others and log Σ = log1p(S), so that a confident prediction
      keeps its tiny loss (the analysis of log-sum-exp and softmax by Blanchard, Higham and Higham [3]_);
    * sums that decide a reported figure (the weight sum a mean divides by) are formed exactly and rounded once.

    References
    ----------
    .. [1] D. E. Knuth, *The Art of Computer Programming*, vol. 2, §4.2.2 (TwoSum); O. Møller, "Quasi
       double-precision in floating point addition", BIT 5, 1965.
    .. [2] T. J. Dekker, "A floating-point technique for extending the available precision", Numerische
       Mathematik 18, 224–242, 1971.
    .. [3] P. Blanchard, D. J. Higham and N. J. Higham, "Accurate computation of the log-sum-exp and softmax
       functions", IMA Journal of Numerical Analysis 41(4), 2311–2330, 2021.

    Examples
    --------
    Logits z = (2, 3, 4) and label 1: p = softmax(z), L = -log p_1 and ∂L/∂z = p - y.

    >>> from sce import softmax_cross_entropy
    >>> result = softmax_cross_entropy([2.0, 3.0, 4.0], 1)
    >>> print(*(f"{p:.4f}" for p in result.probabilities))
    0.0900 0.2447 0.6652
    >>> print(f"{result.loss:.4f}")
    1.4076
    >>> print(*(f"{g:.4f}" for g in result.gradient))
    0.0900 -0.7553 0.6652

    A confident prediction keeps its tiny loss, log(1 + e^-40) (where 1 + e^-40 rounds to 1):

    >>> softmax_cross_entropy([0.0, 40.0], 1).loss
    4.248354255291589e-18

    The mean, PyTorch's default, with the second row left out by ``ignore_index``; and each row's
    own loss with ``reduction="none"``:

    >>> batch = softmax_cross_entropy([[2.0, 3.0, 4.0], [1.0, 1.0, 1.0]], [1, -100])
    >>> print(f"{batch.loss:.4f}", batch.denominator)
    1.4076 1.0
    >>> batch.gradient[1].tolist()
    [0.0, 0.0, 0.0]
    >>> softmax_cross_entropy([[2.0, 3.0, 4.0], [1.0, 1.0, 1.0]], [1, 0], reduction="none").loss.round(4).tolist()
    [1.4076, 1.0986]

    PyTorch's (N, K, d1) layout, and one unbatched vector (a 0-d loss with 'none'):

    >>> import numpy as np
    >>> spatial = softmax_cross_entropy(
    ...     np.zeros((2, 3, 4)), np.zeros((2, 4), dtype=int), class_axis=1, reduction="none"
    ... )
    >>> spatial.gradient.shape, spatial.loss.shape
    ((2, 3, 4), (2, 4))
    >>> softmax_cross_entropy([2.0, 3.0, 4.0], 1, reduction="none").loss.shape
    ()

    A bad input says what is wrong and where:

    >>> from sce import InvalidInput
    >>> try:
    ...     softmax_cross_entropy([2.0, 3.0, 4.0], 3)
    ... except InvalidInput as error:
    ...     print(error.field, error.row, "|", error.problem)
    labels 0 | label 3 is out of range for 3 classes
    """
    keywords = LossOptions(
        weight=weight_tuple(weight),
        label_smoothing=label_smoothing,
        ignore_index=ignore_index,
        reduction=reduction,
        temperature=temperature,
        dtype=float_type_name(dtype),
        softcap=softcap,
        z_loss=z_loss,
        smoothing_style=smoothing_style,
    )
    if options is None:
        options = keywords
    elif keywords != _DEFAULTS:
        raise TypeError("give the options either as options= or as keywords, not both")
    # Floating-point events are not reported as numpy's warnings: the core
    # checks its results instead, and every inf or NaN it returns comes with a
    # LossWarning that says why (no raw warning reaches a user).
    with np.errstate(all="ignore"):
        logits, labels, targets, layout = as_rows(logits, labels, targets, class_axis)
        rows = _compute(logits, labels, targets, options, mean_denominator, z_loss_denominator)
        return rows if layout is None else rows.in_layout(layout)


def _block_log_softmax(
    z: np.ndarray,
    max_logit: np.ndarray,
    argmax: np.ndarray,
    options: LossOptions,
    workspace: Workspace,
    stored: np.ndarray | None = None,
) -> tuple[LogSoftmax, np.ndarray, Capped | None]:
    """A block's log-softmax, its rows' log-sum-exp lse(b), and the soft cap's parts (None without one).

    ``stored``: the block's logits as given, where they were float32 and z is float64."""
    temperature = z.dtype.type(options.temperature)
    if options.softcap is None:
        exact = stored is not None and options.temperature == 1.0 and shift_is_exact(stored)
        ls = log_softmax(z, max_logit, argmax, options.temperature, workspace, exact_shift=exact)
        return ls, log_sum_exp(max_logit, None, temperature, ls.log_sum), None
    capped = soft_capped(z, options.softcap, options.temperature)
    at_max = flat_indices(argmax, z.shape[1])
    high_max, low_max = flat(capped.high).take(at_max), flat(capped.low).take(at_max)
    ls = log_softmax(capped.high, high_max, argmax, options.temperature, workspace, capped)
    return ls, log_sum_exp(high_max, low_max, temperature, ls.log_sum, capped.lower_at(at_max)), capped


def _reduced(
    losses: np.ndarray,
    z_losses: np.ndarray,
    counted: np.ndarray,
    options: LossOptions,
    denominator: float,
    z_denominator: float,
    gradient: np.ndarray,
) -> tuple[np.ndarray, float | np.ndarray, float, float | np.ndarray]:
    """The rows' losses with their z-loss, the reduced loss, D, and the z-loss as reported."""
    # Only rows that count have a z-loss: with every row ignored it has no gradient to keep either.
    z_gradient_kept = options.z_loss != 0 and bool(counted.any())
    llm = options.has_llm_options
    loss, denominator = reduce(
        losses, counted, options.reduction, denominator, gradient, zero_gradient=not llm, z_loss=z_gradient_kept
    )
    z_loss: float | np.ndarray = z_losses
    if options.z_loss != 0:
        losses = losses + z_losses
        if options.reduction == "none":
            loss = losses
        else:
            z_loss = reduced_z_loss(z_losses, options.reduction, z_denominator)
            sums = ExactSum.of(losses), ExactSum.of(z_losses)
            loss = reduced_loss(*sums, options.reduction, (denominator, z_denominator), losses.dtype)
    elif options.reduction != "none":
        z_loss = 0.0
    return losses, loss, denominator, z_loss


def _compute(
    logits: ArrayLike,
    labels: ArrayLike | None,
    targets: ArrayLike | None,
    options: LossOptions,
    mean_denominator: float | None,
    z_loss_denominator: float | None = None,
) -> SoftmaxCrossEntropyResult:
    dtype, weights = validated_options(options)
    z, argmax, max_logit = checked_logits_and_argmax(logits, dtype)
    n_classes = z.shape[1]
    # float32 logits computed in float64: their shifts may be exact (log_softmax.shift_is_exact).
    # Only an array is looked at: a list would be converted a second time.
    stored: np.ndarray | None = None
    if isinstance(logits, np.ndarray) and logits.dtype == np.float32 and logits.ndim == 2 and dtype == np.float64:
        stored = logits
    weight_vec = class_weights(weights, n_classes, dtype)
    terms, label_vec, y = _terms_for(labels, targets, argmax, weight_vec, options, dtype)
    denominator = terms.denominator if mean_denominator is None else float(mean_denominator)
    z_denominator = float(terms.counted.sum()) if z_loss_denominator is None else float(z_loss_denominator)
    rows = _rows_by_blocks(z, max_logit, argmax, stored, terms, options, dtype, (denominator, z_denominator))
    probabilities, gradient, lse, others_sum = rows.probabilities, rows.gradient, rows.lse, rows.others_sum
    losses, overflowing, llm = rows.losses, rows.overflowing, options.has_llm_options
    warn_about_infinite_losses(losses, weight_vec)
    z_losses = z_losses_of(lse, terms.counted, options.z_loss, dtype)
    losses, loss, denominator, z_loss = _reduced(
        losses, z_losses, terms.counted, options, denominator, z_denominator, gradient
    )
    if denominator == 0 and options.reduction == "mean" and not llm:
        overflowing = []  # the gradient is 0
    warn_about_overflowing_gradients(overflowing, options.temperature)
    warn_about_nan(losses, gradient, z.dtype, rows.nonfinite)
    return SoftmaxCrossEntropyResult(
        logits=z,
        max_logit=max_logit,
        argmax=argmax,
        exp_sum=1 + others_sum,
        probabilities=probabilities,
        labels=label_vec,
        counted=terms.counted,
        losses=losses,
        loss=loss,
        denominator=denominator,
        gradient=gradient,
        options=options,
        others_sum=others_sum,
        given_targets=y,
        log_sum_exp=lse,
        z_losses=z_losses,
        z_loss=z_loss,
        z_loss_denominator=z_denominator if options.reduction == "mean" else 1.0,
    )


@dataclass
class _Rows:
    """What the loop over blocks of rows fills: each row's outputs, and where they overflowed."""

    probabilities: np.ndarray
    gradient: np.ndarray
    losses: np.ndarray
    others_sum: np.ndarray
    lse: np.ndarray
    overflowing: list[int] = field(default_factory=list)
    nonfinite: list[slice] = field(default_factory=list)
    """Blocks whose gradient has an entry that is not finite."""


def _rows_by_blocks(
    z: np.ndarray,
    max_logit: np.ndarray,
    argmax: np.ndarray,
    stored: np.ndarray | None,
    terms: Terms,
    options: LossOptions,
    dtype: np.dtype,
    denominators: tuple[float, float],
) -> _Rows:
    """Each row's probabilities, gradient, loss and log-sum-exp, a block of rows at a time
    (:mod:`.row_blocks`); ``denominators``: D of 'mean' and the z-loss's."""
    n_rows, n_classes = z.shape
    rows = _Rows(
        np.empty_like(z), np.empty_like(z), np.empty(n_rows, dtype), np.empty(n_rows, dtype), np.empty(n_rows, dtype)
    )
    temperature = dtype.type(options.temperature)
    llm = options.has_llm_options
    scale = GradientScale(options.reduction, denominators[0], temperature)
    llm_scale = LanguageModelScale(options, denominators[0], denominators[1], temperature)
    workspace = Workspace(min(n_rows, row_blocks.block_rows(n_classes, z.itemsize)), n_classes, dtype)
    for block in row_blocks.row_blocks(n_rows, n_classes, z.itemsize):
        ls, rows.lse[block], capped = _block_log_softmax(
            z[block], max_logit[block], argmax[block], options, workspace, None if stored is None else stored[block]
        )
        rows.others_sum[block] = ls.others_sum
        p = rows.probabilities[block]
        np.divide(ls.exp_shifted, ls.exp_sum[:, None], out=p)
        g = rows.gradient[block]
        rows.losses[block] = terms.block(block, ls, p, g)
        if llm:
            llm_scale.apply(g, p, rows.lse[block], terms.counted[block], None if capped is None else capped.derivative)
        else:
            scale.apply(g)
        found = overflowing_rows(g, block)
        if found is not None:
            rows.nonfinite.append(block)
            rows.overflowing.extend(found)
    return rows


def _terms_for(
    labels: ArrayLike | None,
    targets: ArrayLike | None,
    argmax: np.ndarray,
    weight_vec: np.ndarray,
    options: LossOptions,
    dtype: np.dtype,
) -> tuple[Terms, np.ndarray | None, np.ndarray | None]:
    """The kind of target's terms, and the checked labels or targets."""
    n_rows, n_classes = len(argmax), len(weight_vec)
    if labels is not None and targets is not None:
        raise _neither_or_both()
    eps = dtype.type(options.label_smoothing)
    if targets is not None:
        y = checked_targets(targets, n_rows, n_classes, dtype)
        return SoftTargets(y, weight_vec, eps, options.smoothing_style), None, y
    if labels is None:
        raise _neither_or_both()
    label_vec = checked_labels(labels, n_rows, n_classes, options.ignore_index)
    label_share, uniform, off_target = smoothing_masses(eps, n_classes, options.smoothing_style, dtype)
    if off_target:
        terms: Terms = OffTargetLabels(label_vec, argmax, weight_vec, label_share, uniform, options.ignore_index)
    else:
        terms = HardLabels(label_vec, argmax, weight_vec, eps, options.ignore_index)
    return terms, label_vec, None


def _neither_or_both() -> InvalidInput:
    return InvalidInput(
        "give either class-index labels or probability targets, not both or neither",
        field="labels",
    )
