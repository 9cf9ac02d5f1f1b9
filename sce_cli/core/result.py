"""What the core returns, and how it reports what it cannot compute."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options import LossOptions


class InvalidInput(ValueError):
    """An input the loss is not defined for.

    ``field`` names the input ("logits", "labels", "targets", or an option's
    field name such as "weight" or "temperature"); ``row`` and ``column`` are
    0-based positions inside it where they apply, so that a caller can say
    "argument 3" or "line 7, column z2" in its own terms. ``problem`` says
    what is wrong, ``hint`` how to fix it.
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
    options: LossOptions

    @property
    def num_rows(self) -> int:
        return int(self.logits.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])

    @property
    def dtype(self) -> np.dtype:
        """The float type computed in."""
        return np.dtype(self.options.dtype)

    @property
    def class_weights(self) -> np.ndarray:
        """The class weights, all 1 when none were given (K)."""
        if self.options.weight is not None:
            return np.asarray(self.options.weight, dtype=self.dtype)
        return np.ones(self.num_classes, self.dtype)

    @property
    def gradient_scale(self) -> float:
        """1/(T·D): what turns a row's ∂l/∂(z/T) into this result's ∂loss/∂z.

        0 where the mean divides by D = 0 (every row ignored or of weight 0):
        the loss is then NaN, as in PyTorch, and the gradient 0. Everything
        derived from the gradient (the Jacobian product, the Hessian,
        grading's what-ifs, the derivation) scales by this, never by 1/D itself.
        """
        if self.denominator == 0:
            return 0.0
        return 1.0 / (self.options.temperature * self.denominator)

    def label_of(self, row: int) -> int:
        """The class-index label of a row (for results computed from labels)."""
        if self.labels is None:
            raise ValueError("this result was computed from probability targets, not labels")
        return int(self.labels[row])

    def others_sum(self, row: int = 0) -> float:
        """S = Σ_{j≠argmax} e^{(z_j - M)/T} of a row: ``exp_sum`` less the maximum's
        exact 1, which rounding has not swallowed (the loss of a confident row is log1p(S))."""
        exponentials = self.exp_shifted[row].astype(np.float64)
        top = int(self.argmax[row])
        return float(exponentials[:top].sum() + exponentials[top + 1 :].sum())

    def reported_loss(self, row: int = 0) -> float:
        """The loss to report for one row: its own loss with reduction 'none',
        else the reduced loss (which, for one row, is that row's)."""
        return float(self.loss if self.options.reduction != "none" else self.losses[row])
