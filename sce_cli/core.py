"""The numerical core: softmax cross-entropy, its loss and its gradient.

Pure numpy: arrays and options in, a :class:`SoftmaxCrossEntropyResult` out.
Nothing here prints, parses command lines or touches files.

The semantics are those of ``torch.nn.functional.cross_entropy``; the
arithmetic is more careful than any framework's (see ``_log_softmax``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = [
    "InvalidInput",
    "LossWarning",
    "Options",
    "SoftmaxCrossEntropyResult",
    "softmax_cross_entropy",
    "REDUCTIONS",
    "TARGET_SUM_TOLERANCE",
]

Reduction = Literal["none", "mean", "sum"]
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")

#: How far a row of probability targets may sum from 1 before it is rejected.
TARGET_SUM_TOLERANCE = 1e-6


class InvalidInput(ValueError):
    """An input the loss is not defined for.

    ``field`` names the input ("logits", "labels", "targets", "weight",
    "label_smoothing", "temperature", "reduction", "dtype"); ``row`` and
    ``column`` are 0-based positions inside it where they apply, so that a
    caller can say "argument 3" or "line 7, column z2" in its own terms.
    ``problem`` says what is wrong, ``hint`` how to fix it.
    """

    def __init__(
        self,
        problem: str,
        *,
        field: str,
        row: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.field = field
        self.row = row
        self.column = column
        self.hint = hint
        where = [f"{field}"]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"class {column}")
        text = f"{problem} ({', '.join(where)})"
        super().__init__(f"{text}; {hint}" if hint else text)


class LossWarning(UserWarning):
    """A result that is defined but probably not what the caller wanted.

    ``rows`` lists the 0-based rows concerned (possibly empty).
    """

    def __init__(self, message: str, rows: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.rows = rows


@dataclass(frozen=True)
class Options:
    """The options a result was computed with (after defaults were applied)."""

    weight: np.ndarray | None
    label_smoothing: float
    ignore_index: int
    reduction: Reduction
    temperature: float
    dtype: np.dtype


@dataclass(frozen=True)
class SoftmaxCrossEntropyResult:
    """Everything computed on the way from logits to gradient, N rows by K classes.

    The intermediate arrays (``shifted_logits``, ``exp_shifted``, ``exp_sum``)
    are kept so that explanations (``sce grad --steps``) can show them without
    computing anything again.
    """

    logits: np.ndarray
    """The logits as given (N×K, in ``options.dtype``)."""
    scaled_logits: np.ndarray
    """logits / temperature (N×K)."""
    max_logit: np.ndarray
    """M, the row maximum of the scaled logits (N)."""
    argmax: np.ndarray
    """Index of the first maximal logit: the predicted class (N)."""
    shifted_logits: np.ndarray
    """scaled_logits - M, rounded (N×K)."""
    exp_shifted: np.ndarray
    """exp(scaled_logits - M), with the rounding of the shift compensated (N×K)."""
    exp_sum: np.ndarray
    """Σ_j exp(scaled_logits_j - M), at least 1 (N)."""
    probabilities: np.ndarray
    """softmax(logits / temperature) (N×K)."""
    log_probabilities: np.ndarray
    """log softmax(logits / temperature) (N×K)."""
    labels: np.ndarray | None
    """Class-index targets (N), or None for probability targets."""
    target: np.ndarray
    """The effective target distribution after label smoothing (N×K); zero rows where ignored."""
    counted: np.ndarray
    """Whether each row counts (False where the label is the ignore index) (N)."""
    losses: np.ndarray
    """Each row's own loss, weights and smoothing included, as with reduction 'none' (N)."""
    loss: float | np.ndarray
    """The loss as PyTorch returns it: ``losses`` for 'none', a float for 'mean' and 'sum'."""
    denominator: float
    """What 'mean' divides by: the weight sum of counted rows (class indices) or N (probabilities); 1 otherwise."""
    gradient: np.ndarray
    """∂loss/∂logits (N×K): each row's own loss for 'none', the reduced loss otherwise."""
    options: Options

    @property
    def num_rows(self) -> int:
        return int(self.logits.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])

    @property
    def class_weights(self) -> np.ndarray:
        """The class weights, all 1 when none were given (K)."""
        if self.options.weight is not None:
            return self.options.weight
        return np.ones(self.num_classes, self.options.dtype)

    def reported_loss(self, row: int = 0) -> float:
        """The loss to report for one row: its own loss with reduction 'none',
        else the reduced loss (which, for one row, is that row's)."""
        return float(self.loss if self.options.reduction != "none" else self.losses[row])


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    targets: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    reduction: Reduction = "none",
    temperature: float = 1.0,
    dtype: DTypeLike = np.float64,
    mean_denominator: float | None = None,
) -> SoftmaxCrossEntropyResult:
    """Softmax cross-entropy of ``logits`` against ``labels`` or ``targets``.

    Parameters mirror ``torch.nn.functional.cross_entropy``:

    logits
        N×K scores (a single vector of K is one row).
    labels
        N class indices in [0, K), or ``ignore_index`` to leave a row out.
    targets
        N×K probability targets (each row non-negative, summing to 1), in place of labels.
    weight
        K non-negative class weights (default all 1).
    label_smoothing
        ε in [0, 1]: the target becomes (1 - ε)·y + ε/K.
    ignore_index
        Label value whose rows contribute neither loss nor gradient.
    reduction
        'none' (per-row losses), 'mean' or 'sum'. With class indices 'mean'
        divides by the weight sum of the counted rows, with probability
        targets by N, exactly as PyTorch does.
    temperature
        T > 0; the softmax is taken of logits / T and the gradient is with
        respect to the logits as given.
    dtype
        float64 (default) or float32, used throughout.
    mean_denominator
        With reduction 'mean', divide by this rather than by this call's own
        weight sum or row count: for a large batch computed chunk by chunk,
        pass the denominator of the whole batch so that every chunk's
        gradient is that of the whole batch's mean.

    Raises :class:`InvalidInput` for an input the loss is not defined for and
    warns with :class:`LossWarning` where the result is infinite or NaN.
    """
    options = _check_options(weight, label_smoothing, ignore_index, reduction, temperature, dtype)
    float_type = options.dtype.type
    z = _check_logits(logits, options.dtype)
    n_rows, n_classes = z.shape
    if options.weight is not None and options.weight.shape != (n_classes,):
        raise InvalidInput(
            f"{options.weight.size} weights for {n_classes} classes",
            field="weight",
            hint=f"give one weight per class ({n_classes})",
        )
    if (labels is None) == (targets is None):
        raise InvalidInput(
            "give either class-index labels or probability targets, not both or neither",
            field="labels",
        )

    scaled = z / float_type(options.temperature) if options.temperature != 1.0 else z
    ls = _log_softmax(scaled)
    probabilities = ls.exp_shifted / ls.exp_sum[:, None]
    weight_vec = options.weight if options.weight is not None else np.ones(n_classes, options.dtype)
    eps = float_type(options.label_smoothing)

    if labels is not None:
        label_vec = _check_labels(labels, n_rows, n_classes, options.ignore_index)
        counted = label_vec != options.ignore_index
        rows = np.arange(n_rows)
        safe_labels = np.where(counted, label_vec, 0)
        label_weight = np.where(counted, weight_vec[safe_labels], 0).astype(options.dtype)

        nll = -ls.log_probabilities[rows, safe_labels]
        # p - e_c, with 1 - p_c taken from the sum of the other classes when c is
        # the argmax: p_c - 1 would cancel to 0 for a confident prediction.
        p_minus_onehot = probabilities.copy()
        label_is_argmax = safe_labels == ls.argmax
        complement = np.where(
            label_is_argmax,
            ls.others_sum / ls.exp_sum,
            1 - probabilities[rows, safe_labels],
        )
        p_minus_onehot[rows, safe_labels] = -complement

        with np.errstate(invalid="ignore"):
            losses = np.where(counted, label_weight * nll, 0).astype(options.dtype)
        gradient = label_weight[:, None] * p_minus_onehot
        gradient[~counted] = 0  # not 0 × (p - e_c), which leaves -0.0 where p - e_c < 0
        target = np.zeros_like(probabilities)
        target[rows[counted], safe_labels[counted]] = 1
        if eps > 0:
            # PyTorch adds ε/K times the "smooth loss" -Σ_c w_c log p_c to
            # (1 - ε) times the weighted NLL; its gradient is p·Σw - w.
            with np.errstate(invalid="ignore"):
                smooth = -(ls.log_probabilities * weight_vec).sum(axis=1)
                losses = np.where(
                    counted, (1 - eps) * label_weight * nll + (eps / n_classes) * smooth, 0
                ).astype(options.dtype)
            smooth_gradient = probabilities * weight_vec.sum() - weight_vec
            gradient = (1 - eps) * gradient + (eps / n_classes) * smooth_gradient
            gradient[~counted] = 0
            target = np.where(counted[:, None], (1 - eps) * target + eps / n_classes, 0).astype(
                options.dtype
            )
        own_denominator = float(label_weight.sum())
        if options.reduction == "mean" and (own_denominator if mean_denominator is None else mean_denominator) == 0:
            warnings.warn(
                LossWarning(
                    "every row is ignored or has weight 0, so the mean divides by 0: "
                    "the loss is NaN (as in PyTorch) and the gradient is 0",
                    tuple(np.flatnonzero(~counted)[:1].tolist()),
                ),
                stacklevel=2,
            )
    else:
        label_vec = None
        target = _check_targets(targets, n_rows, n_classes, options.dtype)
        if eps > 0:
            target = ((1 - eps) * target + eps / n_classes).astype(options.dtype)
        counted = np.ones(n_rows, dtype=bool)
        weighted_target = weight_vec * target
        # 0·log 0 = 0: a class the target gives no mass contributes nothing,
        # even when its logit is -inf (where frameworks produce NaN).
        with np.errstate(invalid="ignore"):
            terms = np.where(target > 0, weighted_target * ls.log_probabilities, 0)
        losses = -terms.sum(axis=1).astype(options.dtype)
        gradient = probabilities * weighted_target.sum(axis=1, keepdims=True) - weighted_target
        own_denominator = float(n_rows)

    infinite_rows = np.flatnonzero(np.isinf(losses))
    if infinite_rows.size:
        warnings.warn(
            LossWarning(
                "the loss is infinite: a class with target mass has probability 0 "
                "(its logit is -inf or far below the others)",
                tuple(infinite_rows.tolist()),
            ),
            stacklevel=2,
        )

    if mean_denominator is None:
        mean_denominator = own_denominator
    denominator = float(mean_denominator) if options.reduction == "mean" else 1.0
    gradient = gradient / float_type(options.temperature) if options.temperature != 1.0 else gradient
    loss: float | np.ndarray
    if options.reduction == "none":
        loss = losses
    elif options.reduction == "sum":
        loss = float(losses.sum(dtype=options.dtype))
    elif denominator == 0:
        loss = float("nan")
        gradient = np.zeros_like(gradient)
    else:
        loss = float(losses.sum(dtype=options.dtype) / float_type(denominator))
        gradient = gradient / float_type(denominator)

    return SoftmaxCrossEntropyResult(
        logits=z,
        scaled_logits=scaled,
        max_logit=ls.max_logit,
        argmax=ls.argmax,
        shifted_logits=ls.shifted,
        exp_shifted=ls.exp_shifted,
        exp_sum=ls.exp_sum,
        probabilities=probabilities,
        log_probabilities=ls.log_probabilities,
        labels=label_vec,
        target=target,
        counted=counted,
        losses=losses,
        loss=loss,
        denominator=denominator,
        gradient=gradient.astype(options.dtype, copy=False),
        options=options,
    )


@dataclass(frozen=True)
class _LogSoftmax:
    max_logit: np.ndarray
    argmax: np.ndarray
    shifted: np.ndarray
    exp_shifted: np.ndarray
    others_sum: np.ndarray
    exp_sum: np.ndarray
    log_probabilities: np.ndarray


def _log_softmax(z: np.ndarray) -> _LogSoftmax:
    """Row-wise log-softmax, accurate to a few ulp even far from the maximum.

    Three choices keep the last digits:

    * The shift by M = max z makes every exponent <= 0 (no overflow) and the
      largest term exactly 1.
    * The rounding error of z_j - M is recovered exactly with Knuth's TwoSum
      and applied as a factor (1 + err): without it a logit 600 below the
      maximum loses two digits in exp(z_j - M), because the rounding of the
      difference is multiplied by its size.
    * The term 1 of the maximum is kept out of the sum S of the others, and
      log Σ = log1p(S), so that a confident prediction keeps its tiny loss
      (logits [0, 40], label 1: 4.2e-18 where log(1 + S) rounds to 0).
    """
    rows = np.arange(z.shape[0])
    argmax = np.argmax(z, axis=1)
    max_logit = z[rows, argmax]
    neg_max = -max_logit[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = z + neg_max
        # TwoSum: shifted + err == z - M exactly (err is NaN or inf only where
        # the logit is -inf or the difference overflows; those terms are 0).
        virtual = shifted - z
        err = (z - (shifted - virtual)) + (neg_max - virtual)
    err = np.where(np.isfinite(err), err, 0).astype(z.dtype, copy=False)
    exp_shifted = np.exp(shifted) * (1 + err)
    exp_shifted[rows, argmax] = 0
    others_sum = exp_shifted.sum(axis=1)
    exp_shifted[rows, argmax] = 1
    exp_sum = 1 + others_sum
    log_probabilities = (shifted - np.log1p(others_sum)[:, None]) + err
    log_probabilities[rows, argmax] = -np.log1p(others_sum)
    return _LogSoftmax(max_logit, argmax, shifted, exp_shifted, others_sum, exp_sum, log_probabilities)


def _check_options(
    weight: ArrayLike | None,
    label_smoothing: float,
    ignore_index: int,
    reduction: str,
    temperature: float,
    dtype: DTypeLike,
) -> Options:
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        np_dtype = None
    if np_dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise InvalidInput(f"unsupported dtype {dtype!r}", field="dtype", hint="use float64 or float32")
    if reduction not in REDUCTIONS:
        raise InvalidInput(
            f"unknown reduction {reduction!r}", field="reduction", hint="use none, mean or sum"
        )
    smoothing = float(label_smoothing)
    # PyTorch silently treats a negative ε as 0; a typo deserves an error instead.
    if not 0.0 <= smoothing <= 1.0:
        raise InvalidInput(
            f"label smoothing {label_smoothing!r} is outside [0, 1]",
            field="label_smoothing",
            hint="use a value from 0 (none) to 1",
        )
    temp = float(temperature)
    if not (temp > 0 and np.isfinite(temp)):
        raise InvalidInput(
            f"temperature {temperature!r} is not a positive finite number",
            field="temperature",
            hint="use T > 0 (1 leaves the logits as they are)",
        )
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise InvalidInput(
            f"ignore_index {ignore_index!r} is not an integer", field="ignore_index"
        )
    weight_arr = None
    if weight is not None:
        weight_arr = np.asarray(weight, dtype=np.float64)
        if weight_arr.ndim != 1:
            raise InvalidInput("weight must be a vector, one number per class", field="weight")
        for column, value in enumerate(weight_arr):
            if not np.isfinite(value) or value < 0:
                raise InvalidInput(
                    f"weight {float(value):g} is not a non-negative finite number",
                    field="weight",
                    column=column,
                    hint="class weights must be >= 0",
                )
        weight_arr = weight_arr.astype(np_dtype)
    return Options(weight_arr, smoothing, int(ignore_index), reduction, temp, np_dtype)  # type: ignore[arg-type]


def _check_logits(logits: ArrayLike, dtype: np.dtype) -> np.ndarray:
    z = np.asarray(logits)
    if z.dtype.kind not in "biuf":
        raise InvalidInput("logits must be numbers", field="logits")
    z = z.astype(dtype, copy=False)
    if z.ndim == 1:
        z = z[None, :]
    if z.ndim != 2:
        raise InvalidInput(f"logits must be N×K, not {z.ndim}-dimensional", field="logits")
    if z.shape[0] == 0 or z.shape[1] == 0:
        raise InvalidInput("no logits", field="logits", hint="give at least one class")
    bad = np.isnan(z) | (z == np.inf)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise InvalidInput(
            f"logit {float(z[row, column]):g} is not allowed",
            field="logits",
            row=row,
            column=column,
            hint="logits must be finite numbers or -inf (a masked class)",
        )
    all_masked = np.all(z == -np.inf, axis=1)
    if all_masked.any():
        raise InvalidInput(
            "every logit in the row is -inf, so the softmax is undefined",
            field="logits",
            row=int(np.flatnonzero(all_masked)[0]),
            hint="leave at least one class finite",
        )
    return z


def _check_labels(labels: ArrayLike, n_rows: int, n_classes: int, ignore_index: int) -> np.ndarray:
    label_arr = np.asarray(labels)
    if label_arr.ndim == 0:
        label_arr = label_arr[None]
    if label_arr.shape != (n_rows,):
        raise InvalidInput(f"{label_arr.size} labels for {n_rows} rows", field="labels")
    if label_arr.dtype.kind == "f":
        fractional = label_arr != np.round(label_arr)
        if fractional.any() or not np.isfinite(label_arr).all():
            row = int(np.flatnonzero(fractional | ~np.isfinite(label_arr))[0])
            raise InvalidInput(
                f"label {float(label_arr[row]):g} is not an integer", field="labels", row=row,
                hint="labels are 0-based class indices",
            )
    elif label_arr.dtype.kind not in "biu":
        raise InvalidInput("labels must be integers", field="labels")
    label_arr = label_arr.astype(np.int64)
    bad = ((label_arr < 0) | (label_arr >= n_classes)) & (label_arr != ignore_index)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        problem = "is negative" if label_arr[row] < 0 else f"is out of range for {n_classes} classes"
        raise InvalidInput(
            f"label {label_arr[row]} {problem}",
            field="labels",
            row=row,
            hint=f"labels are 0-based: use 0 to {n_classes - 1} (or {ignore_index} to ignore the row)",
        )
    return label_arr


def _check_targets(targets: ArrayLike, n_rows: int, n_classes: int, dtype: np.dtype) -> np.ndarray:
    y = np.asarray(targets, dtype=np.float64)
    if y.ndim == 1:
        y = y[None, :]
    if y.shape != (n_rows, n_classes):
        raise InvalidInput(
            f"targets have {y.shape[-1]} entries per row for {n_classes} classes",
            field="targets",
            hint=f"give one probability per class ({n_classes})",
        )
    bad = ~np.isfinite(y) | (y < 0)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise InvalidInput(
            f"target {float(y[row, column]):g} is not a probability",
            field="targets",
            row=row,
            column=column,
            hint="target entries must be >= 0 and sum to 1",
        )
    sums = y.sum(axis=1)
    off = np.abs(sums - 1) > TARGET_SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise InvalidInput(
            f"targets sum to {sums[row]:.10g}, not 1",
            field="targets",
            row=row,
            hint=f"make them sum to 1 (within {TARGET_SUM_TOLERANCE:g})",
        )
    return y.astype(dtype)


def softmax_jacobian(probabilities: ArrayLike) -> np.ndarray:
    """∂s/∂z of the softmax at one row of probabilities s: diag(s) - s sᵀ (K×K).

    (With a temperature T the Jacobian with respect to the logits as given is
    this divided by T.)
    """
    s = np.asarray(probabilities)
    return np.diag(s) - np.outer(s, s)


def loss_gradient_wrt_probabilities(result: SoftmaxCrossEntropyResult, row: int = 0) -> np.ndarray:
    """∂l/∂s for one row's loss l = -Σ_c w_c y_c log s_c: -w ⊙ y / s (0 where y is 0).

    Before the reduction and the temperature, which scale the gradient with
    respect to the logits by 1/D and 1/T.
    """
    s = result.probabilities[row]
    y = result.target[row]
    w = result.class_weights
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, -(w * y) / s, 0).astype(s.dtype)


def loss_hessian(result: SoftmaxCrossEntropyResult, row: int = 0) -> np.ndarray:
    """∇²l with respect to one row's logits (K×K), for the reduced loss.

    ∂l/∂z_i = (s_i Σ_c w_c y_c - w_i y_i) / T differentiates to
    (Σ_c w_c y_c) s_i (δ_ij - s_j) / T²: a positive semidefinite matrix (a
    scaled softmax Jacobian) that is zero along the all-ones direction, since
    adding a constant to every logit changes nothing. Divided by D for 'mean'.
    """
    s = result.probabilities[row]
    mass = float((result.class_weights * result.target[row]).sum())
    scale = mass / (result.options.temperature**2 * result.denominator)
    return scale * softmax_jacobian(s)


def gradient_via_jacobian(result: SoftmaxCrossEntropyResult, row: int = 0) -> np.ndarray:
    """The gradient the long way: ∂l/∂s · ∂s/∂z, times 1/T and 1/D.

    Equal to ``result.gradient[row]`` up to rounding, except where a
    probability with target mass underflows to 0: then ∂l/∂s is infinite and
    the product meets ∞ × 0 (NaN), which is why the core never takes this route.
    """
    s = result.probabilities[row].astype(np.float64)
    dl_ds = loss_gradient_wrt_probabilities(result, row).astype(np.float64)
    scale = 1.0 / (result.options.temperature * result.denominator)
    with np.errstate(invalid="ignore", over="ignore"):
        return scale * (dl_ds @ softmax_jacobian(s))
