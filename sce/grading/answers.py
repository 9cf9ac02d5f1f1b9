"""Grading a typed answer: entry by entry, with a tolerance from the digits written."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np
from numpy.typing import ArrayLike

from sce.explain.exact_values import exact_row
from sce.grading import catalogue, verdicts
from sce.grading.catalogue import Mistake
from sce.grading.dump.baseline import operand_sizes
from sce.grading.mistakes import MistakenValue, usual_mistakes
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import WRITTEN_NUMBER, plain_spelling, read_number, tolerance_of

#: A difference below this many float64 epsilons of the expected value is
#: rounding (another engine's, or the last digit of a shortest repr), never a
#: mistake. Relative only: an absolute floor would let a wrong tiny answer pass.
ROUNDING_ALLOWANCE = 4 * float(np.finfo(np.float64).eps)
#: Entries written to within this much of their value, relatively (ten significant digits or more), are
#: precise: a mistake their digits fit as well agrees with the truth to as many digits, by coincidence
#: only. A mistake that agrees with the truth to this much everywhere (a confident row's unnormalised
#: e^(z − max z), 1e-14 from p) gives the same numbers: no digits written need tell it apart.
PRECISE = 1e-9


def within(
    given: np.ndarray | float,
    expected: np.ndarray | float,
    tolerance: np.ndarray | float,
    rounding: float = ROUNDING_ALLOWANCE,
) -> np.ndarray:
    """``rounding``: the relative difference that is the type's rounding, never a mistake."""
    given, expected = np.asarray(given, dtype=float), np.asarray(expected, dtype=float)
    # The digits' half unit is exact in decimal; the comparison is not: the answer parsed into
    # binary and the expected value each carry float64's rounding, so a difference of exactly
    # half a unit may compute a few ulps above it. That slack is below every digit shown.
    allowed = applied_tolerance(expected, tolerance, rounding) + ROUNDING_ALLOWANCE * np.abs(expected)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.isfinite(expected) & (np.abs(given - expected) <= allowed)
    # NaN where the exact value is NaN (a mean over no counted rows, as PyTorch gives it) is the right answer.
    return close | (given == expected) | (np.isnan(given) & np.isnan(expected))


def applied_tolerance(
    expected: np.ndarray | float, tolerance: np.ndarray | float, rounding: float = ROUNDING_ALLOWANCE
) -> np.ndarray:
    """The difference allowed at each entry: the tolerance (of the digits written, or ``--tol``), or
    the type's rounding, ``rounding`` × |expected|, whichever is larger; the one a table shows.

    Examples
    --------
    >>> applied_tolerance(0.2, 0.05).tolist()  # the digits' half unit, exactly
    0.05
    >>> float(applied_tolerance(0.2, 5e-18, 4 * 2.0**-23))  # float32's rounding: 4 ulps of 0.2
    9.5367431640625e-08
    """
    expected = np.asarray(expected, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        # An infinite expected value is matched only by the same infinity: its
        # relative allowance would be infinite too, and let any answer pass.
        return np.where(np.isfinite(expected), np.maximum(tolerance, rounding * np.abs(expected)), 0.0)


@dataclass(frozen=True)
class QuantityCheck:
    """One quantity (gradient, probabilities or loss) compared entry by entry."""

    name: str
    expected: np.ndarray
    given: np.ndarray
    tolerance: np.ndarray
    ok: np.ndarray
    mistake: Mistake | None = None
    """The catalogue's mistake that explains every wrong entry, if one does."""
    texts: tuple[str, ...] = ()
    """The answer as it was typed."""
    slips: tuple[str, ...] = ()
    """Wrong entries that are the right number with one digit miswritten, each naming its entry."""
    also: Mistake | None = None
    """Another mistake that explains every wrong entry as well: on this row it gives the same
    numbers as ``mistake`` (the predicted class is the label's neighbour), or numbers so near
    that the digits given cannot tell them apart."""
    fitting: tuple[Mistake, ...] = ()
    """Every mistake that explains every wrong entry, in the catalogue's order."""
    tolerance_given: bool = False
    """The tolerance is the user's (``--tol``), not the digits'."""
    columns: int = 0
    """The entries are a matrix's, row by row, with this many columns (0: a vector)."""
    rounding: float = ROUNDING_ALLOWANCE
    """The relative difference that is the type's rounding (:func:`applied_tolerance`)."""
    ambiguous: Mistake | None = None
    """A usual mistake that the answer, right to the digits given, also fits:
    too few digits to tell the right answer from it. The answer is then not
    correct either: its verdict is "too few digits to grade"."""
    exact: tuple[Decimal, ...] | None = None
    """The exact values, as decimals, where known: ``expected`` is each one's nearest float64, and
    a table shows their own digits (:func:`exact_decimals`)."""
    look_alikes: tuple[Mistake, ...] = ()
    """Every usual mistake that the answer, right to the digits given, also fits (``ambiguous`` is
    the first of them that no other quantity given rules out)."""

    sign_only: np.ndarray | None = None
    """Entries wrong by their sign alone: within the tolerance, but of a sign no computation gives
    (:func:`sign_flipped`)."""

    def wrong_sign(self, k: int) -> bool:
        """Whether entry ``k`` is wrong by its sign alone (:attr:`sign_only`)."""
        return self.sign_only is not None and bool(self.sign_only[k])

    @property
    def verdict(self) -> str:
        """:data:`~sce.grading.verdicts.CORRECT`, ``TOO_FEW_DIGITS`` or ``NOT_CORRECT``."""
        if not self.ok.all():
            return verdicts.NOT_CORRECT
        return verdicts.CORRECT if self.ambiguous is None else verdicts.TOO_FEW_DIGITS

    def entry(self, k: int) -> str:
        """Where entry ``k`` is: its class, or "j,k" in a matrix."""
        return f"{k // self.columns},{k % self.columns}" if self.columns else str(k)

    @property
    def per_class(self) -> bool:
        """One entry per class (a gradient), not one number for the row (a loss, a sum)."""
        return self.name not in ("loss", "sum_exp")

    @property
    def passed(self) -> bool:
        return self.verdict == verdicts.CORRECT

    @property
    def allowed(self) -> np.ndarray:
        """The difference allowed at each entry: the tolerance or the type's rounding (:func:`applied_tolerance`)."""
        return applied_tolerance(self.expected, self.tolerance, self.rounding)

    @property
    def difference(self) -> np.ndarray:
        """given - expected per entry (NaN where both are the same infinity)."""
        with np.errstate(invalid="ignore"):
            return self.given - self.expected


def check_answer(
    result: SoftmaxCrossEntropyResult,
    given: dict[str, list[str]],
    tolerance: float | None = None,
    targets: ArrayLike | None = None,
) -> list[QuantityCheck]:
    """Compare the given texts (per quantity: 'gradient', 'probabilities', 'loss')
    with the exact values; name a usual mistake where the answer matches one,
    and say so where the digits given cannot tell the answer from one."""
    computed = {
        "probabilities": result.probabilities[0],
        "loss": np.array([result.reported_loss()]),
        "gradient": result.gradient[0],
    }
    exact = exact_decimals(result)
    mistakes = usual_mistakes(result, targets)
    # Computed in float32 (--dtype float32), another float32 engine's answer differs in its last
    # bits: 4 ulps of float32, not of float64, are rounding (PyTorch's loss for [2, 3, 4] is 1 ulp off).
    rounding = 4 * float(np.finfo(result.gradient.dtype).eps)
    operands = _operand_sizes(result, targets)
    checks = []
    for name in ("probabilities", "loss", "gradient"):
        if name in given:
            in_float64 = computed[name].astype(np.float64)
            # A mistake that gives float64's own numbers here is none, however they differ from the exact ones.
            candidates = [m for m in mistakes if m.quantity == name and not _same(m.value, in_float64)]
            decimals = exact.get(name)
            expected = in_float64 if decimals is None else np.array([float(d) for d in decimals])
            found = check_quantity(
                name, given[name], expected, tolerance, candidates, rounding,
                operands=operands.get(name), kept=_row_signs(result, name),
            )  # fmt: skip
            checks.append(replace(found, tolerance_given=tolerance is not None, exact=decimals))
    return one_diagnosis(not_ruled_out(checks, mistakes, given, tolerance))


def exact_decimals(result: SoftmaxCrossEntropyResult) -> dict[str, tuple[Decimal, ...]]:
    """Row 0's probabilities, loss and gradient, exact (:func:`sce.explain.exact_values.exact_row`):
    float64's p − t of a prediction within 1e-17 of its target keeps none of its digits. Empty
    where the row is not evaluated exactly (float32, beyond 10,000 classes, not finite)."""
    row = exact_row(result, 17)
    if row is None:
        return {}
    return {"probabilities": row.probabilities, "loss": (row.loss,), "gradient": row.gradient}


def digits_tolerances(texts: list[str], tolerance: float | None = None) -> np.ndarray:
    """Each entry's tolerance: ``tolerance`` (``--tol``), else the half unit of its last digit written."""
    return np.full(len(texts), tolerance) if tolerance is not None else np.array([tolerance_of(t) for t in texts])


def not_ruled_out(
    checks: list[QuantityCheck], mistakes: list[MistakenValue], given: dict[str, list[str]], tolerance: float | None
) -> list[QuantityCheck]:
    """Each quantity's look-alike, the first that every other quantity given fits as well: an
    answer is one computation, so a loss whose 4 digits fit the z-loss left out is graded where the
    gradient given carries the z-loss's term. Too few digits only where no given number tells."""
    if not all(check.ok.all() for check in checks):
        return checks

    def fits(mistake: Mistake, name: str) -> bool:
        values = [m.value for m in mistakes if m.mistake == mistake and m.quantity == name]
        if not values:
            return True  # the mistake says nothing of this quantity
        typed = np.array([read_number(t) for t in given[name]], dtype=float)
        written = digits_tolerances(given[name], tolerance)
        return any(value.shape == typed.shape and within(typed, value, written).all() for value in values)

    found = []
    for check in checks:
        others = [other.name for other in checks if other.name != check.name]
        kept = next((m for m in check.look_alikes if all(fits(m, name) for name in others)), None)
        found.append(replace(check, ambiguous=kept) if check.look_alikes else check)
    return found


def sign_flipped(
    given: np.ndarray, expected: np.ndarray, written: np.ndarray, kept: np.ndarray | None
) -> np.ndarray:
    """Entries of the opposite sign to the one every computation keeps (``kept``, from
    :func:`kept_signs`; None: none is kept), beyond what the digits written allow: rounding is no
    excuse for those. The exact value's own sign rules where it is not 0 (it may round to 0)."""
    if kept is None:
        return np.zeros(np.shape(given), dtype=bool)
    with np.errstate(invalid="ignore"):
        sign = np.where(expected != 0, np.sign(expected), np.broadcast_to(kept, np.shape(expected)))
        opposite = np.sign(given) * sign < 0
    return opposite & ~within(given, expected, written)


def explains_signs(
    mistaken: np.ndarray,
    given: np.ndarray,
    expected: np.ndarray,
    flipped: np.ndarray,
    allowances: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Per entry, whether a mistake can explain the answer there: anywhere its sign is not
    ``flipped`` (:func:`sign_flipped`); where it is, only a mistake of the answer's sign that the
    answer fits to the digits written, or within the rounding ``allowances`` = (written, allowed)
    allow where the mistake is told apart from the truth somewhere in the row (the last axis).
    A mistake within the rounding of the truth is the truth, of the right sign: a float32 loss
    of 0 explains no −1.42e-14, nor −L = −1.9e-22 a loss of −3e-16.

    Examples
    --------
    >>> loss, flipped = np.array([1.9e-22]), np.array([True])
    >>> explains_signs(-loss, np.array([-3e-16]), loss, flipped, (np.array([5e-17]), np.array([8.9e-16]))).tolist()
    [False]
    >>> loss = np.array([1.4076059644443804])  # z = (2, 3, 4), label 1; −1.4076 is −L to its digits
    >>> explains_signs(-loss, np.array([-1.4076]), loss, flipped, (np.array([5e-5]), np.array([5e-5]))).tolist()
    [True]
    """
    written, allowed = allowances
    with np.errstate(invalid="ignore", over="ignore"):
        same_sign = np.sign(mistaken) == np.sign(given)
        told_apart = (~within(mistaken, expected, allowed, 0.0)).any(axis=-1, keepdims=True)
    fits = within(given, mistaken, written) | (told_apart & within(given, mistaken, allowed))
    return ~flipped | (same_sign & fits)


def negative_beyond_digits(given: np.ndarray, expected: np.ndarray, written: np.ndarray) -> np.ndarray:
    """Per entry, a loss below 0 by more than its digits' half unit, where the exact one is not."""
    with np.errstate(invalid="ignore"):
        return np.asarray((given + written < 0) & (expected >= 0), dtype=bool)


def kept_signs(result: SoftmaxCrossEntropyResult, quantity: str) -> np.ndarray | None:
    """The sign every computation of ``quantity`` gives each entry, whatever the exact value rounds
    to (N for the rows' losses, N×K for the gradient), or None where rounding may give either: the
    loss is never negative (a log of at most 1, a sum of squares); for a one-hot target with no
    smoothing or z-loss the gradient is p − y times factors ≥ 0, where 0 ≤ p ≤ 1 however rounded:
    −1 at the label, +1 elsewhere, 0 on a row that counts for nothing.

    Examples
    --------
    >>> from sce.loss import softmax_cross_entropy
    >>> kept_signs(softmax_cross_entropy([[0.0, 800.0]], [1]), "gradient").tolist()  # p₀ = e^-800 rounds to 0
    [[1.0, -1.0]]
    """
    if quantity == "loss":
        return np.ones(result.num_rows)
    options = result.options
    if quantity != "gradient" or result.labels is None or options.label_smoothing or options.z_loss:
        return None
    labels = np.asarray(result.labels).reshape(-1)
    rows = np.flatnonzero(result.counted)
    signs = np.zeros((result.num_rows, result.num_classes))
    signs[rows] = 1.0
    signs[rows, labels[rows]] = -1.0
    weights = np.asarray(result.class_weights, dtype=np.float64)[np.where(result.counted, labels, 0)]
    return np.where((weights > 0)[:, None] & (result.gradient_scale > 0), signs, 0.0)


def _row_signs(result: SoftmaxCrossEntropyResult, quantity: str) -> np.ndarray | None:
    """Row 0's :func:`kept_signs` (the loss: the one reported)."""
    kept = kept_signs(result, quantity if quantity in ("loss", "gradient") else "")
    return None if kept is None else kept[:1] if quantity == "loss" else kept[0]


def _operand_sizes(result: SoftmaxCrossEntropyResult, targets: ArrayLike | None) -> dict[str, np.ndarray]:
    """Row 0's gradient and loss entries' operand sizes: a textbook loop forms the label's p − 1 of a
    confident row from numbers near 1, so its rounding is in ulps of 1, not of the tiny difference."""
    given_targets = None if targets is None else np.asarray(targets, dtype=np.float64).reshape(result.num_rows, -1)
    denominators = (result.denominator, result.z_loss_denominator)
    gradient, loss = operand_sizes(result, given_targets, denominators)
    return {"gradient": gradient[0].astype(np.float64), "loss": loss[:1].astype(np.float64)}


def one_diagnosis(checks: list[QuantityCheck]) -> list[QuantityCheck]:
    """Where one mistake explains every wrong quantity, each names that one (and, after "or",
    the next that does), not each its own first."""
    wrong = [check for check in checks if check.fitting]
    common = [m for m in wrong[0].fitting if all(m in check.fitting for check in wrong[1:])] if wrong else []
    if len(wrong) < 2 or not common:
        return checks
    also = common[1] if len(common) > 1 else None
    return [replace(check, mistake=common[0], also=also) if check.fitting else check for check in checks]


def diagnosis(checks: list[QuantityCheck]) -> list[tuple[str, Mistake]]:
    """(the quantity, its mistake) for each wrong quantity with a named mistake, where they are not
    all the same: more than one mistake. Empty where one mistake (or none) is named."""
    named = [(check.name, check.mistake) for check in checks if check.mistake is not None]
    return named if len({mistake for _, mistake in named}) > 1 else []


def check_quantity(
    name: str,
    texts: list[str],
    expected: np.ndarray,
    tolerance: float | None,
    mistakes: list[MistakenValue],
    rounding: float = ROUNDING_ALLOWANCE,
    columns: int = 0,
    operands: np.ndarray | None = None,
    kept: np.ndarray | None = None,
) -> QuantityCheck:
    """Compare the texts of one quantity with its exact values, entry by entry; ``columns`` for a
    matrix's entries, row by row. ``operands``: the size of the numbers each entry is formed from,
    where it exceeds the entry's own (the type's rounding is counted in ulps of those)."""
    values = np.array([read_number(t) for t in texts], dtype=float)
    tolerances = written = digits_tolerances(texts, tolerance)  # too few digits is judged on these alone
    if operands is not None and operands.shape == tolerances.shape:
        tolerances = np.maximum(tolerances, rounding * operands)
    flipped = sign_flipped(values, expected, written, kept)
    close = within(values, expected, tolerances, rounding)
    ok = close & ~flipped
    also, fitting = None, []
    look_alikes: tuple[Mistake, ...] = ()
    if ok.all():  # right to its digits: say if those digits fit a usual mistake too
        look_alikes = _look_alikes(values, expected, written, mistakes)
    else:
        fitting = _fitting(name, values, expected, (written, tolerances), mistakes, (flipped, ~ok))
        also = fitting[1] if len(fitting) > 1 else None
    mistake = fitting[0] if fitting else None
    ambiguous = look_alikes[0] if look_alikes else None
    slips = []
    wrong = np.flatnonzero(~ok)
    # A slip is a typo: one or two entries, or fewer than half. Every entry off by one digit is
    # one mistake made everywhere (the gradient of another ε), not so many typos.
    # A named mistake explains every wrong entry: no typo besides.
    for k in wrong if mistake is None and len(wrong) <= max(2, len(texts) // 2 - 1) else []:
        slip = digit_slip(texts[k], float(expected[k]))
        if slip is not None:
            where = f"entry {k // columns},{k % columns}" if columns else f"class {k}"
            slips.append(slip if name in ("loss", "sum_exp") else f"{where}: {slip}")
    return QuantityCheck(
        name,
        expected,
        values,
        tolerances,
        ok,
        mistake,
        tuple(texts),
        tuple(slips),
        also=also,
        fitting=tuple(fitting),
        columns=columns,
        rounding=rounding,
        ambiguous=ambiguous,
        sign_only=close & flipped,
        look_alikes=look_alikes,
    )


def _look_alikes(
    values: np.ndarray, expected: np.ndarray, written: np.ndarray, mistakes: list[MistakenValue]
) -> tuple[Mistake, ...]:
    """The usual mistakes a right answer's digits fit as well. Only a mistake that differs from the
    truth: where it gives the same numbers (to ten digits), no digits tell them apart; nor need an
    answer written to ten digits tell it (see PRECISE)."""
    same = PRECISE * np.abs(expected)
    if (written <= same).all():
        return ()
    return tuple(
        dict.fromkeys(
            m.mistake
            for m in mistakes
            if m.look_alike and within(values, m.value, written).all() and not within(m.value, expected, same).all()
        )
    )


def _fitting(
    name: str,
    values: np.ndarray,
    expected: np.ndarray,
    allowances: tuple[np.ndarray, np.ndarray],
    mistakes: list[MistakenValue],
    marks: tuple[np.ndarray, np.ndarray],
) -> list[Mistake]:
    """The mistakes that explain every entry of a wrong answer (``allowances``: the digits written,
    and those with the type's rounding; ``marks``: the entries of a flipped sign, and the wrong
    ones), in the catalogue's order; a negative loss where none does."""
    written, tolerances = allowances
    flipped, wrong = marks
    fitting = list(
        dict.fromkeys(
            m.mistake
            for m in mistakes
            if _tells_apart(values, m, expected, tolerances)
            and explains_signs(m.value, values, expected, flipped, allowances).all()
        )
    )
    if not fitting and name == "loss" and negative_beyond_digits(values[wrong], expected[wrong], written[wrong]).all():
        fitting = [catalogue.NEGATIVE_LOSS]
    return fitting


def _same(mistaken: np.ndarray, expected: np.ndarray) -> bool:
    """A mistake that gives the right numbers here (the sum of one row of weight 1) is none."""
    return bool(within(mistaken, expected, 0.0).all())


def _tells_apart(given: np.ndarray, candidate: MistakenValue, expected: np.ndarray, tolerance: np.ndarray) -> bool:
    """The answer fits the mistake (within its own rounding, float32's for a float32 computation),
    and the mistake differs from the truth by more than the answer's own precision somewhere
    (0,0,0 with a tolerance of 0.5 fits many things and tells none of them apart)."""
    mistaken = candidate.value
    rounding = ROUNDING_ALLOWANCE if candidate.rounding is None else candidate.rounding
    if not within(given, mistaken, tolerance, rounding).all():
        return False
    with np.errstate(invalid="ignore"):
        return bool((np.abs(mistaken - expected) > 2 * tolerance).any())


def digit_slip(text: str, expected: float) -> str | None:
    """Say so when ``text`` is the correctly rounded value with one digit
    changed or two neighbouring digits swapped (the second post's -0.775
    for -0.755)."""
    typed = plain_spelling(text).lstrip("+")
    match = re.fullmatch(WRITTEN_NUMBER, typed)
    if match is None or match.group(3) or not (match.group(1) or match.group(2)):
        return None
    if sum(ch.isdigit() for ch in typed) < 3:
        return None  # "2" for 0 is not a slip of one digit: there is nothing else to it
    decimals = len(match.group(2) or "")
    right = f"{expected:.{decimals}f}"
    if len(right) != len(typed) or right == typed:
        return None
    differ = [i for i, (a, b) in enumerate(zip(right, typed)) if a != b]
    swapped = (
        len(differ) == 2
        and differ[1] == differ[0] + 1
        and right[differ[0]] == typed[differ[1]]
        and right[differ[1]] == typed[differ[0]]
    )
    if len(differ) == 1 or swapped:
        how = "two digits swapped" if swapped else "one digit differs"
        return f"{typed} looks like a slip for {right} ({how})"
    return None


def answer_verdict(checks: list[QuantityCheck]) -> str:
    """The verdict of a typed answer: the worst of its quantities' (:func:`sce.grading.verdicts.worst`)."""
    return verdicts.worst(check.verdict for check in checks)


__all__ = [
    "QuantityCheck",
    "answer_verdict",
    "check_answer",
    "check_quantity",
    "one_diagnosis",
    "diagnosis",
    "digit_slip",
    "tolerance_of",
    "within",
]
