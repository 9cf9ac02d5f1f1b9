"""What the core returns, and how it reports what it cannot compute."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sce.errors import worded
from sce.loss import row_blocks
from sce.loss.layout import Layout
from sce.loss.log_softmax import exp_shifted_of, log_probabilities, shift_and_scale
from sce.loss.row_blocks import flat, flat_indices
from sce.loss.softcap import soft_capped
from sce.loss.targets import smoothed_one_hot, smoothed_targets
from sce.options import LossOptions


class InvalidInput(ValueError):
    """An input the loss is not defined for.

    ``field`` names the input ("logits", "labels", "targets", or an option's
    field name such as "weight" or "temperature"); ``row`` and ``column`` are
    0-based positions inside it where they apply, so that a caller can say
    "argument 3" or "line 7, column z2" in its own terms. ``problem`` says
    what is wrong, ``hint`` how to fix it. An option the hint names is an
    :func:`sce.errors.option`: ``hint`` and ``str(error)`` word it as its
    keyword (``dtype='float64'``), ``marked_hint`` keeps the marker for the
    command line to word as its flag.

    Parameters
    ----------
    problem : str
        What is wrong, in words ("label 3 is out of range for 3 classes").
    field : str
        The input or option concerned.
    row, column : int, optional
        0-based positions inside it.
    hint : str, optional
        How to fix it.
    column_word : str, default "class"
        What a column is called in the message: a class of logits, or a column of the hidden size.

    Examples
    --------
    >>> from sce import InvalidInput, softmax_cross_entropy
    >>> try:
    ...     softmax_cross_entropy([[2.0, 3.0, 4.0], [1.0, 2.0, 3.0]], [1, 3])
    ... except InvalidInput as error:
    ...     print(error.field, error.row, error.column, "|", error.problem, "|", error.hint)
    labels 1 None | label 3 is out of range for 3 classes | labels are 0-based: use 0 to 2 (or -100 to ignore the row)
    """

    def __init__(
        self,
        problem: str,
        *,
        field: str,
        row: int | None = None,
        column: int | None = None,
        hint: str | None = None,
        column_word: str = "class",
    ) -> None:
        self.problem = problem
        self.field = field
        self.row = row
        self.column = column
        self.marked_hint = hint
        self.hint = None if hint is None else worded(hint)
        where = [f"{field}"]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"{column_word} {column}")
        text = f"{problem} ({', '.join(where)})"
        super().__init__(f"{text}; {self.hint}" if self.hint else text)


class LossWarning(UserWarning):
    """A result that is defined but probably not what the caller wanted.

    ``rows`` lists the 0-based rows concerned (possibly empty).

    Examples
    --------
    >>> import warnings
    >>> from sce import LossWarning, softmax_cross_entropy
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     result = softmax_cross_entropy([[0.0, 0.0]], [-100], reduction="mean")
    >>> [(type(w.message).__name__, w.message.rows) for w in caught], result.loss
    ([('LossWarning', (0,))], nan)
    >>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
    every row is ignored or has weight 0, so the mean divides by 0:
    the loss is NaN (as in PyTorch) and the gradient is 0
    """

    def __init__(self, message: str, rows: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.rows = rows


@dataclass(frozen=True)
class Shaped:
    """The arrays a result gives in the caller's layout, in one value (see
    :attr:`SoftmaxCrossEntropyResult.shaped`; the result's own fields are in that layout too).

    Examples
    --------
    PyTorch's (N, K, d1) layout: 2 images of 4 pixels, 3 classes each; the rows are N·d1 = 8.

    >>> import numpy as np
    >>> from sce import softmax_cross_entropy
    >>> result = softmax_cross_entropy(
    ...     np.zeros((2, 3, 4)), np.zeros((2, 4), dtype=int), class_axis=1, reduction="none"
    ... )
    >>> result.shaped.gradient.shape, result.shaped.losses.shape, result.as_rows.gradient.shape
    ((2, 3, 4), (2, 4), (8, 3))
    >>> print(f"{result.shaped.losses[0, 0]:.4f}")  # log 3, every class alike
    1.0986
    """

    probabilities: np.ndarray
    gradient: np.ndarray
    """Shaped like the logits."""
    losses: np.ndarray
    log_sum_exp: np.ndarray
    z_losses: np.ndarray
    """Shaped like the labels: the logits without the class axis (0-d for a single vector)."""
    loss: float | np.ndarray
    """A float for 'mean' and 'sum'; for 'none' shaped like ``losses`` (0-d for a single vector)."""
    z_loss: float | np.ndarray


@dataclass(frozen=True)
class SoftmaxCrossEntropyResult:
    """Everything computed on the way from logits to gradient, in the caller's layout.

    The intermediate arrays only explanations need (``scaled_logits``,
    ``shifted_logits``, ``exp_shifted``, ``log_probabilities``, ``target``)
    are computed the first time they are read, with the same arithmetic as
    the loss and the gradient (and so the same bits), from the per-row
    numbers kept here: a caller that wants only the loss, the probabilities
    and the gradient never pays for them.

    Every array is in the layout the logits came in, as PyTorch returns them: the
    probabilities, the gradient and the other class-wise arrays shaped like the logits, the
    per-row values (``losses``, ``counted``, ``argmax``, …) like the labels, and ``loss`` a float
    for 'mean' and 'sum' or shaped like the labels for 'none' (0-d for one unbatched vector).
    Below, N×K and N name the logits' and the labels' shapes; for logits N×K with the classes
    last (the usual case) that is what they are. :attr:`as_rows` gives any result as N×K rows,
    one row per position of the axes other than the classes', in C order.

    See Also
    --------
    sce.softmax_cross_entropy : computes it.

    Examples
    --------
    Logits (2, 3, 4) and label 1, with exp_sum = 1 + e^-1 + e^-2 = 1.5032 (the maximum's term is 1):

    >>> from sce import softmax_cross_entropy
    >>> result = softmax_cross_entropy([[2.0, 3.0, 4.0]], [1])
    >>> result.argmax.tolist(), result.counted.tolist(), result.target.tolist()
    ([2], [True], [[0.0, 1.0, 0.0]])
    >>> print(f"{result.exp_sum[0]:.4f}", f"{result.losses[0]:.4f}")
    1.5032 1.4076
    >>> bool((result.gradient == result.probabilities - result.target).all())
    True
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
    """∂loss/∂logits, shaped like the logits: of each row's own loss for 'none', of the reduced loss otherwise."""
    options: LossOptions
    others_sum: np.ndarray = field(repr=False)
    """S = Σ_{j ≠ argmax} exp((logits_j - M) / T), so that exp_sum = 1 + S (N)."""
    given_targets: np.ndarray | None = field(default=None, repr=False)
    """The probability targets as given, before smoothing (N×K), or None for labels."""
    log_sum_exp: np.ndarray | None = field(default=None, repr=False)
    """lse(b) = log Σ_j e^(b_j) of each row, b the capped logits over T (N)."""
    z_losses: np.ndarray | None = field(default=None, repr=False)
    """Each row's z-loss term λ·lse², 0 where the row is ignored (N); included in ``losses``."""
    z_loss: float | np.ndarray = 0.0
    """The z-loss reduced ('mean': over the counted rows; 'sum'), or ``z_losses`` for 'none'; included in ``loss``."""
    z_loss_denominator: float = 1.0
    """What the z-loss's 'mean' divides by: the number of counted rows; 1 otherwise."""
    layout: Layout | None = field(default=None, repr=False)
    """The caller's layout where it is not N×K rows, else None."""
    rows: SoftmaxCrossEntropyResult | None = field(default=None, repr=False, compare=False)
    """The same result as N×K rows where the caller's layout is another, else None (see :attr:`as_rows`)."""

    @cached_property
    def capped_logits(self) -> np.ndarray:
        """a = c·tanh(logits/c) with the softcap c, else the logits (N×K)."""
        if (shaped := self._of_rows("capped_logits")) is not None:
            return shaped
        if self.options.softcap is None:
            return self.logits
        return self._by_blocks(lambda rows: soft_capped(self.logits[rows], self._cap, self.options.temperature).rounded)

    @cached_property
    def cap_derivative(self) -> np.ndarray:
        """1 - tanh²(logits/c) with the softcap c, else 1 (N×K)."""
        if (shaped := self._of_rows("cap_derivative")) is not None:
            return shaped
        if self.options.softcap is None:
            return np.ones_like(self.logits)
        temperature = self.options.temperature
        return self._by_blocks(lambda rows: soft_capped(self.logits[rows], self._cap, temperature).derivative)

    @property
    def _cap(self) -> float:
        assert self.options.softcap is not None
        return float(self.options.softcap)

    @cached_property
    def shaped(self) -> Shaped:
        """The arrays PyTorch's layout gives, in one value (the result's own fields are already in it)."""
        return Shaped(
            self.probabilities, self.gradient, self.losses, self._lse, self._z_losses, self.loss, self.z_loss
        )

    def in_layout(self, layout: Layout) -> SoftmaxCrossEntropyResult:
        """This result (N×K rows) in the caller's ``layout``: every array with the classes on their axis,
        every per-row value shaped like the labels, and the loss as PyTorch returns it (with 'none', shaped
        like the labels: 0-d for one unbatched vector). The rows stay as :attr:`rows`."""
        none = self.options.reduction == "none"
        like_logits, like_labels = layout.like_logits, layout.like_labels
        return dataclasses.replace(
            self,
            logits=like_logits(self.logits),
            max_logit=like_labels(self.max_logit),
            argmax=like_labels(self.argmax),
            exp_sum=like_labels(self.exp_sum),
            probabilities=like_logits(self.probabilities),
            labels=None if self.labels is None else like_labels(self.labels),
            counted=like_labels(self.counted),
            losses=like_labels(self.losses),
            loss=like_labels(np.asarray(self.loss)) if none else self.loss,
            gradient=like_logits(self.gradient),
            others_sum=like_labels(self.others_sum),
            given_targets=None if self.given_targets is None else like_logits(self.given_targets),
            log_sum_exp=like_labels(self._lse),
            z_losses=like_labels(self._z_losses),
            z_loss=like_labels(np.asarray(self.z_loss)) if none else self.z_loss,
            layout=layout,
            rows=self,
        )

    @property
    def as_rows(self) -> SoftmaxCrossEntropyResult:
        """This result as N×K rows (itself, where it already is)."""
        return self if self.rows is None else self.rows

    def _of_rows(self, name: str) -> np.ndarray | None:
        """An intermediate of :attr:`rows` in this result's layout; None where the result is rows."""
        if self.rows is None or self.layout is None:
            return None
        return self.layout.like_logits(getattr(self.rows, name))

    @property
    def _lse(self) -> np.ndarray:
        return self.log_sum_exp if self.log_sum_exp is not None else np.full(self.num_rows, np.nan)

    @property
    def _z_losses(self) -> np.ndarray:
        return self.z_losses if self.z_losses is not None else np.zeros(self.num_rows, self.dtype)

    @cached_property
    def scaled_logits(self) -> np.ndarray:
        """logits / temperature (N×K); with a softcap c, c·tanh(logits/c) / temperature."""
        if (shaped := self._of_rows("scaled_logits")) is not None:
            return shaped
        if self.options.temperature == 1.0:
            return self.capped_logits
        with np.errstate(over="ignore"):
            return self.capped_logits / self.dtype.type(self.options.temperature)

    @cached_property
    def shifted_logits(self) -> np.ndarray:
        """(logits - M) / T, rounded (N×K)."""
        if (shaped := self._of_rows("shifted_logits")) is not None:
            return shaped
        return self._by_blocks(lambda rows: self._shifted(rows)[0])

    @cached_property
    def exp_shifted(self) -> np.ndarray:
        """exp((logits - M) / T), with the rounding of the shift compensated; 1 at the argmax (N×K)."""
        if (shaped := self._of_rows("exp_shifted")) is not None:
            return shaped
        return self._by_blocks(
            lambda rows: exp_shifted_of(*self._shifted(rows), flat_indices(self.argmax[rows], self.num_classes))
        )

    @cached_property
    def log_probabilities(self) -> np.ndarray:
        """log softmax(logits / temperature) (N×K)."""
        if (shaped := self._of_rows("log_probabilities")) is not None:
            return shaped
        log_sum = np.log1p(self.others_sum)
        return self._by_blocks(lambda rows: log_probabilities(*self._shifted(rows), self.argmax[rows], log_sum[rows]))

    @cached_property
    def target(self) -> np.ndarray:
        """The effective target distribution after label smoothing (N×K); zero rows where ignored."""
        if (shaped := self._of_rows("target")) is not None:
            return shaped
        eps = self.dtype.type(self.options.label_smoothing)
        if self.labels is None:
            assert self.given_targets is not None
            return smoothed_targets(self.given_targets, eps, self.num_classes, self.dtype, self.options.smoothing_style)
        safe_labels = np.where(self.counted, self.labels, 0)
        return smoothed_one_hot(
            safe_labels, self.counted, eps, self.num_classes, self.dtype, self.options.smoothing_style
        )

    def _shifted(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        if self.options.softcap is None:
            return shift_and_scale(self.logits[rows], self.max_logit[rows], self.options.temperature)
        capped = soft_capped(self.logits[rows], self._cap, self.options.temperature)
        at_max = flat_indices(self.argmax[rows], self.num_classes)
        return shift_and_scale(
            capped.high, flat(capped.high).take(at_max), self.options.temperature, capped=capped, at_max=at_max
        )

    def _by_blocks(self, block: Callable[[slice], np.ndarray]) -> np.ndarray:
        out = np.empty_like(self.logits)
        with np.errstate(all="ignore"):  # as in the core: results are checked, not warned about
            for rows in row_blocks.row_blocks(self.num_rows, self.num_classes, self.logits.itemsize):
                out[rows] = block(rows)
        return out

    @property
    def num_rows(self) -> int:
        """N: the rows (every position of the axes other than the classes')."""
        return int(self.as_rows.logits.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.as_rows.logits.shape[1])

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
        labels = self.as_rows.labels
        if labels is None:
            raise ValueError("this result was computed from probability targets, not labels")
        return int(labels[row])

    def _repr_html_(self) -> str | None:
        # Jupyter's display: a table with bars for p and the signed gradient, drawn by sce.render and
        # registered by `import sce` (the loss renders nothing itself).
        from sce.displays import html_of

        return html_of("loss result", self)

    def reported_loss(self, row: int = 0) -> float:
        """The loss to report for one row: its own loss with reduction 'none',
        else the reduced loss (which, for one row, is that row's)."""
        rows = self.as_rows
        return float(rows.loss if self.options.reduction != "none" else rows.losses[row])

