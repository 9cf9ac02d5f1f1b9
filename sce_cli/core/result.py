"""What the core returns, and how it reports what it cannot compute."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..options import LossOptions
from . import blocks
from .log_softmax import exp_shifted_of, flat_indices, log_probabilities, shift_and_scale
from .targets import smoothed_one_hot, smoothed_targets


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

    The intermediate arrays only explanations need (``scaled_logits``,
    ``shifted_logits``, ``exp_shifted``, ``log_probabilities``, ``target``)
    are computed the first time they are read, with the same arithmetic as
    the loss and the gradient (and so the same bits), from the per-row
    numbers kept here: a caller that wants only the loss, the probabilities
    and the gradient never pays for them.
    """

    logits: np.ndarray
    """The logits as given (N×K, in ``options.dtype``, row-major)."""
    max_logit: np.ndarray
    """M, the row maximum of the logits as given (N)."""
    argmax: np.ndarray
    """Index of the first maximal logit: the predicted class (N)."""
    exp_sum: np.ndarray
    """Σ_j exp((logits_j - M) / T), at least 1 (N)."""
    probabilities: np.ndarray
    """softmax(logits / temperature) (N×K)."""
    labels: np.ndarray | None
    """Class-index targets (N), or None for probability targets."""
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
    others_sum: np.ndarray = field(repr=False)
    """S = Σ_{j ≠ argmax} exp((logits_j - M) / T), so that exp_sum = 1 + S (N)."""
    given_targets: np.ndarray | None = field(default=None, repr=False)
    """The probability targets as given, before smoothing (N×K), or None for labels."""

    @cached_property
    def scaled_logits(self) -> np.ndarray:
        """logits / temperature (N×K)."""
        if self.options.temperature == 1.0:
            return self.logits
        with np.errstate(over="ignore"):
            return self.logits / self.dtype.type(self.options.temperature)

    @cached_property
    def shifted_logits(self) -> np.ndarray:
        """(logits - M) / T, rounded (N×K)."""
        return self._by_blocks(lambda rows: self._shifted(rows)[0])

    @cached_property
    def exp_shifted(self) -> np.ndarray:
        """exp((logits - M) / T), with the rounding of the shift compensated; 1 at the argmax (N×K)."""
        return self._by_blocks(
            lambda rows: exp_shifted_of(*self._shifted(rows), flat_indices(self.argmax[rows], self.num_classes))
        )

    @cached_property
    def log_probabilities(self) -> np.ndarray:
        """log softmax(logits / temperature) (N×K)."""
        log_sum = np.log1p(self.others_sum)
        return self._by_blocks(lambda rows: log_probabilities(*self._shifted(rows), self.argmax[rows], log_sum[rows]))

    @cached_property
    def target(self) -> np.ndarray:
        """The effective target distribution after label smoothing (N×K); zero rows where ignored."""
        eps = self.dtype.type(self.options.label_smoothing)
        if self.labels is None:
            assert self.given_targets is not None
            return smoothed_targets(self.given_targets, eps, self.num_classes, self.dtype)
        safe_labels = np.where(self.counted, self.labels, 0)
        return smoothed_one_hot(safe_labels, self.counted, eps, self.num_classes, self.dtype)

    def _shifted(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        return shift_and_scale(self.logits[rows], self.max_logit[rows], self.options.temperature)

    def _by_blocks(self, block: Callable[[slice], np.ndarray]) -> np.ndarray:
        out = np.empty_like(self.logits)
        with np.errstate(all="ignore"):  # as in the core: results are checked, not warned about
            for rows in blocks.row_blocks(self.num_rows, self.num_classes, self.logits.itemsize):
                out[rows] = block(rows)
        return out

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

    def reported_loss(self, row: int = 0) -> float:
        """The loss to report for one row: its own loss with reduction 'none',
        else the reduced loss (which, for one row, is that row's)."""
        return float(self.loss if self.options.reduction != "none" else self.losses[row])
