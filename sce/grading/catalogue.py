"""The catalogue of named mistakes: each one once, with its name and its one-line fix.

Every grader names a wrong answer from this catalogue, in these words: a typed
answer (``sce check``), a file's columns (``sce check --csv``), tensor dumps
(``sce check --arrays``) and a learner's function (``sce test``). Each grader
looks for the mistakes its input can show (a typed row cannot show a mean of
per-batch means; only ``sce test`` sees an input modified in place), and
computes what each gives from the exact result. :func:`row_what_ifs` computes
those a row at a time can show, for ``sce check`` and ``sce check --csv``.

The texts may name options (:func:`sce.errors.option`): worded as Python's
keywords by :attr:`Mistake.name` and as the command line's flags by
:meth:`Mistake.worded_name` with the command's flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sce.errors import option, worded
from sce.grading import conventions

#: What joins a mistake's name and its fix in one line (:meth:`Mistake.described`).
FIX_SEPARATOR = "; fix: "


@dataclass(frozen=True)
class Mistake:
    """A known mistake, in a learner's words (``words``), and what to do about it (``advice``)."""

    words: str
    advice: str

    @property
    def name(self) -> str:
        return worded(self.words)

    @property
    def fix(self) -> str:
        return worded(self.advice)

    def worded_name(self, flag_of: Mapping[str, str] | None = None) -> str:
        return worded(self.words, flag_of)

    def worded_fix(self, flag_of: Mapping[str, str] | None = None) -> str:
        return worded(self.advice, flag_of)

    def described(self, detail: str = "") -> str:
        """The name, a detail of this input in brackets if given, and the fix, joined by
        :data:`FIX_SEPARATOR`: one line, its options still marked (for :func:`sce.errors.worded`).

        Examples
        --------
        >>> from sce.errors import worded
        >>> name, fix = worded(SUM_NOT_MEAN.described("not divided by 12")).split(FIX_SEPARATOR)
        >>> name
        '1/N missing: the sum over rows, not the mean (not divided by 12)'
        >>> fix
        "divide by N, the number of rows (or grade with reduction='sum')"
        >>> worded(FLOAT32.advice, {"dtype": "--dtype"})
        'grade it as float32 with --dtype float32'
        """
        where = f" ({detail})" if detail else ""
        return f"{self.words}{where}{FIX_SEPARATOR}{self.advice}"


# --- the arithmetic of the gradient and the loss -------------------------------------------------
SIGN_FLIPPED = Mistake("sign flipped: y − p instead of p − y", "the gradient is p − y, probabilities minus the target")
PROBABILITIES = Mistake("−1 missing: these are the probabilities", "subtract 1 at the label's class: p − y")
NOT_NORMALISED = Mistake(
    "probabilities not normalised: the exponentials are not divided by their sum",
    "divide exp(z − max z) by its row sum",
)
UNNORMALISED_EXP = Mistake(
    "e^z taken as the probabilities: neither shifted nor divided by their sum",
    "s = e^(z − max z) / Σ_j e^(z_j − max z): shift, exponentiate, then divide by the row sum",
)
STOPPED_AT_DL_DS = Mistake(
    "stopped at ∂L/∂s = −y/s: the gradient with respect to the probabilities, not the logits",
    "go on through the softmax: ∂L/∂z = (∂s/∂z)ᵀ·∂L/∂s = s − y",
)
ONLY_LABEL_ENTRY = Mistake(
    "only the label's entry: s_c − 1 there and 0 at every other class (as the Jacobian's diagonal alone gives)",
    "every class has an entry: ∂L/∂z_k = s_k − y_k, which is s_k where k is not the label",
)
JACOBIAN_DIAGONAL = Mistake(
    "only the Jacobian's diagonal s(1 − s): ∂s_j/∂z_k for j ≠ k left out",
    "∂s_j/∂z_k = s_j(δ_jk − s_k): the off-diagonal −s_j·s_k counts too, and the sum gives s − y",
)
SHIFT_REVERSED = Mistake(
    "shifted the wrong way: max z − z instead of z − max z",
    "subtract the largest logit from each logit: z_k − max z, so every shifted logit is ≤ 0",
)
EXP_NOT_SHIFTED = Mistake(
    "e^z instead of e^(z − max z): the exponentials of the logits, not of the shifted logits",
    "exponentiate the shifted logits, e^(z_k − max z): the largest term is then 1",
)
DL_DS_SIGN_DROPPED = Mistake(
    "the minus sign of −log s dropped: y/s instead of −y/s",
    "∂L/∂s_k = −y_k/s_k: −1/s_c at the label, 0 elsewhere",
)
DL_DZ_FOR_DL_DS = Mistake(
    "this is ∂L/∂z = s − y, the gradient with respect to the logits, not ∂L/∂s",
    "∂L/∂s is one step earlier: −y_k/s_k, −1/s_c at the label and 0 elsewhere",
)
NEGATIVE_LOSS = Mistake(
    "a negative loss: −log s ≥ 0 for every probability s ≤ 1", "check the sign: L = −log s_c is never negative"
)
LOG10 = Mistake("log base 10 in the loss", "use the natural logarithm, np.log")
LOG2 = Mistake("log base 2 in the loss", "use the natural logarithm, np.log")
ROUNDED_BEFORE_LOG = Mistake(
    "the probability was rounded before the log",
    "keep every digit of p until the end: take −log of the unrounded p, then round once",
)
NO_MAX_SHIFT = Mistake(
    "no max shift: exp overflows or underflows",
    "subtract each row's largest logit before exp, softmax(z) = softmax(z − max z)",
)
LOG_OF_ZERO = Mistake(
    "log of a probability that rounded to 0 (−log p gives inf)",
    "compute the loss as log Σ exp(z − max) − (z_c − max) (log-sum-exp) instead of −log p_c",
)
DIVIDED_BY_P = Mistake(
    "divides by the label's probability, which rounded to 0 (the chain rule's −1/s_c)",
    "simplify the chain rule first: ∂L/∂z = p − y has no division",
)
FLOAT32 = Mistake(
    "computed in float32 (PyTorch's default type), not in float64",
    f"grade it as float32 with {option('dtype', 'float32')}",
)

# --- labels and rows -----------------------------------------------------------------------------
PREDICTED_CLASS = Mistake(
    "−1 at the predicted class (the largest logit), not at the label",
    "subtract 1 at the label's class, labels[i], whatever the prediction",
)
ONE_BASED = Mistake(
    "−1 at the wrong class: labels read as 1-based", "labels are 0-based: use index labels[i], not labels[i] − 1"
)
LABEL_PLUS_ONE = Mistake(
    "−1 at the wrong class: the label's index plus one (off by one)", "subtract 1 at index labels[i] itself"
)
WRONG_AXIS = Mistake(
    "softmax over the wrong axis: columns instead of rows",
    "take the max and the sum over each row: axis=1, keepdims=True",
)
ONE_ROW_FOR_ALL = Mistake(
    "one row's gradient used for every row", "compute p − y for each row (check the loop variable)"
)
LABELS_BROADCAST = Mistake(
    "−1 at every row's label in every row: grad[:, labels] -= 1 broadcasts",
    "subtract 1 once per row, at its own label: grad[np.arange(N), labels] -= 1",
)
LOGITS_IN_PLACE = Mistake(
    "logits modified in place",
    "work on a copy: z = logits - logits.max(...) makes a new array, logits -= ... overwrites the caller's",
)
LABELS_IN_PLACE = Mistake("labels (or targets) modified in place", "leave the caller's arrays unchanged: copy first")
WEIGHTS_PER_CLASS = Mistake(
    "weights applied class by class, w ⊙ (p − y)",
    "the label's weight w_c scales its whole row: w_c·(p − y)",
)

# --- the reduction -------------------------------------------------------------------------------
SUM_NOT_MEAN = Mistake(
    "1/N missing: the sum over rows, not the mean",
    f"divide by N, the number of rows (or grade with {option('reduction', 'sum')})",
)
MEAN_TWICE = Mistake("1/N applied twice", "divide by N once")
MEAN_NOT_SUM = Mistake(
    f"divided by N, but {option('reduction', 'sum')} has no 1/N",
    f"drop the division by N (or grade with {option('reduction', 'mean')})",
)
MEAN_NOT_NONE = Mistake(
    f"divided by N, but {option('reduction', 'none')} gives each row its own gradient",
    f"drop the division by N (or grade with {option('reduction', 'mean')})",
)
IGNORED_ROWS_COUNTED = Mistake(
    "the mean over every row, ignored (padding) rows included",
    f"divide by the counted rows (their weight sum): a row labelled with the {option('ignore_index')} value counts "
    "for nothing",
)
WEIGHT_SUM_BY_ROW_COUNT = Mistake(
    "the weighted mean divided by the row count, not the weight sum",
    "divide by the counted rows' weight sum, Σ w of each row's label",
)
PER_BATCH_MEANS = Mistake(
    "the mean of per-batch means, (x1/n1 + x2/n2 + …)/B",
    "divide the whole sum by the whole count once: (x1 + x2 + …)/(n1 + n2 + …)",
)
PER_BATCH_MEANS_SUMMED = Mistake(
    "the sum of per-batch means, x1/n1 + x2/n2 + …",
    "divide the whole sum by the whole count once: (x1 + x2 + …)/(n1 + n2 + …)",
)
SMOOTHING_OVER_EVERY_ROW = Mistake(
    "the smoothing term divided by every row, ignored rows included (PyTorch #73205)",
    "divide the smoothing term by the counted rows, as the rest of the loss",
)

# --- the options of language-model kernels -------------------------------------------------------
SOFTCAP_LEFT_OUT = Mistake(
    "softcap left out: the softmax is of the logits, not of the capped c·tanh(z/c)",
    "cap the logits first, a = c·tanh(z/c), and take the softmax (and the z-loss) of a",
)
TANH_DERIVATIVE_LEFT_OUT = Mistake(
    "the derivative of tanh left out: this is ∂L/∂a, the gradient with respect to the capped logits",
    "the chain rule through a = c·tanh(z/c) multiplies each entry by 1 − tanh²(z/c)",
)
CAP_FACTOR_LOSES_DIGITS = Mistake(
    "1 − tanh²(z/c) computed as 1 minus a number near 1: it loses its digits (or is 0) where |z/c| is large",
    "compute the factor as 1/cosh²(z/c), or 4e^(−2|x|)/(1 + e^(−2|x|))² with x = z/c",
)
Z_LOSS_LEFT_OUT = Mistake(
    "z-loss missing: each row adds λ·lse², whose gradient is 2λ·lse·p",
    "add λ·(log Σ_j e^(b_j))² to each row's loss and 2λ·lse·p to its gradient",
)
Z_LOSS_SUMMED = Mistake(
    "z-loss summed: the mean divides it by N, the number of rows, as the cross-entropy",
    "divide the z-loss (and its gradient) by N with the mean",
)
Z_LOSS_BY_WEIGHT_SUM = Mistake(
    "z-loss divided by the weight sum: it is unweighted, so the mean divides it by the counted rows",
    "divide the z-loss by the number of counted rows, the cross-entropy by the weight sum",
)
OTHER_SMOOTHING_STYLE = Mistake(
    "the other label-smoothing convention",
    f"see {option('smoothing_style')}: uniform puts ε/K on every class (PyTorch); "
    "off-target puts 1 − ε on the label and ε/(K − 1) on each other class (Megatron, t5x)",
)  # fmt: skip
SMOOTHING_LEFT_OUT = Mistake(
    "label smoothing left out", f"the target is (1 − ε)·y + ε/K (or off-target: see {option('smoothing_style')})"
)
TEMPERATURE_LEFT_OUT = Mistake(
    "temperature left out: the softmax of z, not of z/T, and no factor 1/T",
    "divide the logits by T before the softmax, and the gradient by T",
)
TEMPERATURE_FACTOR_MISSING = Mistake(
    "the temperature's factor 1/T missing from the gradient",
    "the chain rule through z/T divides every entry by T: (p − y)/T",
)

#: The catalogue's entry for each of the options' slips that :mod:`sce.grading.conventions` computes.
OF_CONVENTION: Mapping[str, Mistake] = {
    conventions.SOFTCAP_LEFT_OUT: SOFTCAP_LEFT_OUT,
    conventions.TANH_DERIVATIVE_LEFT_OUT: TANH_DERIVATIVE_LEFT_OUT,
    conventions.Z_LOSS_LEFT_OUT: Z_LOSS_LEFT_OUT,
    conventions.Z_LOSS_SUMMED: Z_LOSS_SUMMED,
    conventions.Z_LOSS_BY_WEIGHT_SUM: Z_LOSS_BY_WEIGHT_SUM,
    conventions.OTHER_SMOOTHING_STYLE: OTHER_SMOOTHING_STYLE,
    conventions.SMOOTHING_LEFT_OUT: SMOOTHING_LEFT_OUT,
    conventions.TEMPERATURE_LEFT_OUT: TEMPERATURE_LEFT_OUT,
}

#: Every named mistake, in the order the docs' table lists them.
CATALOGUE: tuple[Mistake, ...] = tuple(
    value for value in dict(globals()).values() if isinstance(value, Mistake)
)  # fmt: skip
