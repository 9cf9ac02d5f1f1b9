"""The derivation's building blocks: stages of equations, elided lists, matrices.

Every formula is written once, in LaTeX; numbers enter through placeholders
``⟨name⟩`` whose values travel with the equation, so that each format can
write them its own way (rounded for people, full precision in JSON).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from sce.loss import SoftmaxCrossEntropyResult

#: Up to this many classes every class gets its own line; beyond, the middle is elided.
MAX_LISTED_CLASSES = 10
#: Up to this many classes the K×K Jacobian is shown in full.
MAX_MATRIX_CLASSES = 6
#: exp() of a float64 overflows beyond this.
EXP_LIMIT = 709.0
#: A substitution whose last part is one number, the result: ``formula = ⟨name⟩``.
RESULT = re.compile(r"(?P<formula>.*) = ⟨(?P<result>\w+)⟩")


@dataclass(frozen=True)
class Equation:
    """``symbolic = substituted``; either part may be empty.

    Both are LaTeX; ``substituted`` holds placeholders ``⟨name⟩`` for ``values``.
    """

    symbolic: str = ""
    substituted: str = ""
    values: dict[str, float] = field(default_factory=dict)
    #: Significant digits of the operands (the numbers left of the last ``=``), where
    #: more than those asked for are needed for the line to check by hand.
    operand_digits: int | None = None
    #: No number of digits up to 17 makes the line check: it is written with ≈.
    approximate: bool = False

    def written(self, write: Callable[[float, int], str], digits: int) -> str:
        """The substitution with its numbers written by ``write(value, digits)``: the result
        with ``digits``, its operands with :attr:`operand_digits`, ``\\approx`` where approximate."""
        match = RESULT.fullmatch(self.substituted)
        if match is None:
            return _signed_fill(self.substituted, self.values, lambda value: write(value, digits))
        operand_digits = self.operand_digits or digits
        formula = _signed_fill(
            match.group("formula"),
            self.values,
            lambda value: exact_short(value, operand_digits) or write(value, operand_digits),
        )
        sign = " \\approx " if self.approximate else " = "
        return formula + sign + write(self.values[match.group("result")], digits)


def given_one_hot_class(result: SoftmaxCrossEntropyResult) -> int | None:
    """The class of a target given as probabilities that is one-hot (0, 1, 0), before any smoothing; else None."""
    given = result.given_targets
    if result.labels is not None or given is None:
        return None
    row = np.asarray(given).reshape(-1, result.num_classes)[0]
    ones = np.flatnonzero(row == 1)
    return int(ones[0]) if len(ones) == 1 and np.count_nonzero(row) == 1 else None


def exact_short(value: float, digits: int) -> str | None:
    """An operand's own shortest text where it has at most ``digits`` significant digits and
    no exponent (λ = 0.5, T = 0.7, y = 0.1): exact, and easier to read than 0.50000; else None."""
    text = repr(float(value))
    if not text[-1].isdigit() or "e" in text:  # inf, nan, 1e-05
        return None
    significant = text.lstrip("-").replace(".", "").strip("0")
    return text.removesuffix(".0") if len(significant) <= digits else None


_PLACEHOLDER = re.compile(r"⟨(\w+)⟩")
_OPERATOR_BEFORE = re.compile(r"(?:[-+]|\\times|\\cdot)\s*$")


def _signed_fill(template: str, values: dict[str, float], write: Callable[[float], str]) -> str:
    """:func:`fill`, with a negative number after an operator in parentheses: ``a - (-1)``, never ``a - -1``."""

    def number(match: re.Match[str]) -> str:
        text = write(values[match.group(1)])
        if text.startswith("-") and _OPERATOR_BEFORE.search(template, 0, match.start()):
            return f"\\left({text}\\right)"
        return text

    return _PLACEHOLDER.sub(number, template)


@dataclass(frozen=True)
class Elided:
    """Classes left out of a per-class list."""

    count: int


@dataclass(frozen=True)
class Matrix:
    """A matrix of numbers, rows and columns labelled by class index."""

    name: str  # LaTeX
    rows: tuple[tuple[float, ...], ...]
    indices: tuple[int, ...]


Item = Equation | Elided | Matrix


@dataclass(frozen=True)
class Stage:
    title: str
    notes: tuple[str, ...]  # prose with inline LaTeX between $...$
    items: tuple[Item, ...]


def shown_classes(n_classes: int, *important: int) -> list[int]:
    """The classes to list: all of them when few, else the ends and the important ones."""
    if n_classes <= MAX_LISTED_CLASSES:
        return list(range(n_classes))
    keep = {0, 1, 2, n_classes - 2, n_classes - 1, *important}
    return sorted(k for k in keep if 0 <= k < n_classes)


def walk_classes(n_classes: int, important: tuple[int, ...]) -> Iterator[tuple[int, int]]:
    """(skipped, k) for each shown class k, ``skipped`` the classes elided before it;
    a last (skipped, -1) where classes after the last shown one are elided."""
    previous = -1
    for k in shown_classes(n_classes, *important):
        yield k - previous - 1, k
        previous = k
    if previous < n_classes - 1:
        yield n_classes - 1 - previous, -1


def per_class(n_classes: int, important: tuple[int, ...], make: Callable[[int], Item]) -> list[Item]:
    """One item per shown class, with an Elided marker where classes are skipped."""
    items: list[Item] = []
    for skipped, k in walk_classes(n_classes, important):
        if skipped:
            items.append(Elided(skipped))
        if k >= 0:
            items.append(make(k))
    return items


def vector(key: str, symbol: str, values: np.ndarray, important: tuple[int, ...] = ()) -> Equation:
    """``symbol = (v0, v1, ...)`` with the middle elided for many classes.

    ``key`` names the placeholders (key0, key1, ...); ``symbol`` is LaTeX.
    """
    parts: list[str] = []
    named: dict[str, float] = {}
    for skipped, k in walk_classes(len(values), important):
        if skipped:
            parts.append(r"\ldots")
        if k >= 0:
            parts.append(f"⟨{key}{k}⟩")
            named[f"{key}{k}"] = float(values[k])
    return Equation(symbol, r"\left(" + ", ".join(parts) + r"\right)", named)


#: The product's dot, written wherever factors stand side by side: a terminal shows it as ·.
PRODUCT = " \\cdot "
DL_DZ = r"\frac{\partial L}{\partial \mathbf{z}}"
DL_DS = r"\frac{\partial L}{\partial \mathbf{s}}"


def important_classes(result: SoftmaxCrossEntropyResult) -> tuple[int, ...]:
    """Classes that must stay visible when the middle is elided: the label and the argmax."""
    keep = [int(result.argmax[0])]
    if result.labels is not None:
        keep.append(int(result.labels[0]))
    else:
        keep.extend(int(k) for k in np.flatnonzero(result.target[0])[:3])
    return tuple(keep)


def reduced_note(result: SoftmaxCrossEntropyResult) -> tuple[str, Equation] | None:
    if result.options.reduction != "mean" or result.denominator == 1:
        return None
    return (
        "With reduction mean the loss is divided by "
        + ("the label's weight" if result.labels is not None else "the number of rows")
        + f", $D = {plain(result.denominator)}$.",
        Equation("L / D", "⟨L⟩", {"L": result.reported_loss()}),
    )


def rounding_of_sum(gradient: np.ndarray) -> list[str]:
    if not np.isfinite(gradient).all():
        return [
            "Here entries of the gradient overflow float64 (they exceed 1.8e308 and are shown as "
            "$\\pm\\infty$), so their sum is undefined (NaN) in floating point; the exact entries sum to 0."
        ]
    total = float(gradient.sum())
    if total == 0:
        return []
    return [
        f"Added up in floating point the entries give ${plain(total)}$ rather than 0: "
        "the rounding of each entry, not an error in the formula."
    ]


def plain(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def scale_factor(result: SoftmaxCrossEntropyResult) -> str:
    """The LaTeX factor 1/T, 1/D or 1/(TD) that turns a row's ∂l/∂(z/T) into the
    gradient shown, followed by :data:`PRODUCT`; empty where it is 1."""
    t = result.options.temperature != 1.0
    d = result.options.reduction == "mean" and result.denominator != 1
    if not (t or d):
        return ""
    return "\\frac{1}{" + " \\cdot ".join(name for name, on in (("T", t), ("D", d)) if on) + "}" + PRODUCT


def denominator_notes(result: SoftmaxCrossEntropyResult) -> list[str]:
    """What the mean's denominator D does to the gradient (nothing to say where D is 1)."""
    if result.options.reduction != "mean" or result.denominator == 1:
        return []
    if result.denominator == 0:
        return [
            "Every row is ignored or has weight 0, so the mean divides by $D = 0$: the loss is "
            "$0/0$, NaN (as in PyTorch), and sce gives the gradient as 0, the factor $\\frac{1}{D}$ taken as 0."
        ]
    return [f"The mean divides the gradient by $D = {plain(result.denominator)}$ too."]


def rounds_to_one(result: SoftmaxCrossEntropyResult, k: int, row: int = 0) -> bool:
    """Whether class k is the prediction and so close to certain that -log s_k and
    s_k - 1, formed from the rounded s_k, lose the digits the core keeps (s_k = 1 - 4e-18
    is 1.0 in float64): then the derivation shows the log1p(S) forms the core uses."""
    if k != int(result.argmax[row]):
        return False
    s_k = float(result.probabilities[row, k])
    others = float(result.others_sum[row])
    return others > 0 and not math.isclose(-math.log(s_k), math.log1p(others), rel_tol=1e-12)


def softmax_input(result: SoftmaxCrossEntropyResult) -> str:
    """The letter of the softmax's input: z, or b where a temperature or a cap stands between it and the logits."""
    options = result.options
    return "z" if options.temperature == 1.0 and options.softcap is None else "b"


def others_sum(result: SoftmaxCrossEntropyResult) -> str:
    """S in LaTeX: the other classes' shifted exponentials, (z_j − M)/T or a_j where the options say."""
    return f"\\sum_{{j \\neq c}} e^{{{exponent(result, 'j')}}}"
CONFIDENT_NOTE = (
    "Here $s_c$ is so close to 1 that it rounds to 1 in float64, and $-\\log s_c$ or $s_c - 1$ "
    "formed from it would be 0. With $S = {others}$ (the other classes' shifted exponentials), "
    "$-\\log s_c = \\log(1 + S)$ and $s_c - 1 = -S / (1 + S)$ keep every digit: the forms sce computes."
)


def exponent(result: SoftmaxCrossEntropyResult, k: int | str) -> str:
    """The exponent of class k's shifted term, in LaTeX: z_k - M, or (z_k - M)/T (a_k for capped logits)."""
    z = logit_symbol(result, k)
    return f"{z} - M" if result.options.temperature == 1.0 else f"({z} - M) / T"


def logit_symbol(result: SoftmaxCrossEntropyResult, k: int | str) -> str:
    """z_k, or a_k where soft-capping has replaced the logits before the softmax."""
    letter = "a" if result.options.softcap is not None else "z"
    return f"{letter}_{{{k}}}" if isinstance(k, int) else f"{letter}_{k}"
