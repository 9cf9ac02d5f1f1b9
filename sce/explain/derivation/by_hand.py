"""Digits that check by hand: each substituted equation, evaluated on the numbers it shows, gives the value it shows.

A result is shown to the digits asked for. Its operands are shown with the
fewest digits, from those asked for up to 17, for which the displayed formula,
evaluated exactly on the displayed operands (decimal arithmetic: sums exact,
products and quotients to 60 digits, ``ln`` and ``exp`` correctly rounded) and
rounded as the result is displayed, gives the displayed result; a tie does not
count. Where no number of digits does, the line is marked ≈ and its stage says why.

The formula is read from the equation's own substituted LaTeX, so that what is
checked is what is shown: numbers, placeholders ⟨name⟩, + − ×, parentheses,
``\\frac{}{}``, ``e^{}``, ``\\log`` and ``\\tanh``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from decimal import Context, Decimal, localcontext

from sce.explain.derivation.stages import RESULT, Equation, Stage, exact_short
from sce.number_text import shown

#: Significant digits beyond which a float64 operand has nothing more to show.
MOST_DIGITS = 17
_PRECISION = Context(prec=60, Emax=10**6, Emin=-(10**6))
# Sums and differences exactly (1 + 4e-300 is not 1 here): 1000 digits span float64's exponents.
_EXACT = Context(prec=1000, Emax=10**6, Emin=-(10**6))

Value = Callable[[dict[str, Decimal]], Decimal]

_TOKEN = re.compile(
    r"\s+|\\,|\\left|\\right|⟨(?P<name>\w+)⟩|(?P<number>\d+(?:\.\d*)?(?:e[-+]?\d+)?)"
    r"|(?P<command>\\frac|\\log|\\tanh|\\times|\\cdot|e\^)|(?P<symbol>[-+(){}])"
)


class NotArithmetic(ValueError):
    """The substitution is not a formula over numbers (a vector, words)."""


def _tokens(latex: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(latex):
        match = _TOKEN.match(latex, position)
        if match is None:
            raise NotArithmetic(latex)
        position = match.end()
        if match.group("name"):
            tokens.append("⟨" + match.group("name"))
        elif match.lastgroup:
            tokens.append(match.group(match.lastgroup))
    return tokens


class _Parser:
    """Recursive descent over the tokens: sum → product → signed → atom."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise NotArithmetic(" ".join(self.tokens))
        self.position += 1
        return token

    def whole(self) -> Value:
        value = self.sum()
        if self.peek() is not None:
            raise NotArithmetic(" ".join(self.tokens))
        return value

    def sum(self) -> Value:
        value = self.product()
        while self.peek() in ("+", "-"):
            sign, right, left = self.take(), self.product(), value
            value = _added(left, right) if sign == "+" else _subtracted(left, right)
        return value

    def product(self) -> Value:
        value = self.signed()
        while self.peek() in ("\\times", "\\cdot"):
            self.take()
            right, left = self.signed(), value
            value = _multiplied(left, right)
        return value

    def signed(self) -> Value:
        if self.peek() == "-":
            self.take()
            inner = self.signed()
            return lambda v: inner(v).copy_negate()
        return self.atom()

    def group(self, opening: str, closing: str) -> Value:
        self.take(opening)
        value = self.sum()
        self.take(closing)
        return value

    def atom(self) -> Value:
        token = self.peek()
        if token == "(":
            return self.group("(", ")")
        if token == "{":
            return self.group("{", "}")
        self.take()
        if token is None:
            raise NotArithmetic(" ".join(self.tokens))
        if token.startswith("⟨"):
            name = token[1:]
            return lambda v: v[name]
        if token[0].isdigit():
            number = Decimal(token)
            return lambda v: number
        if token == "\\frac":
            top, bottom = self.group("{", "}"), self.group("{", "}")
            return lambda v: top(v) / bottom(v)
        if token == "e^":
            power = self.group("{", "}")
            return lambda v: power(v).exp()
        if token == "\\log":
            argument = self.group("(", ")") if self.peek() == "(" else self.atom()
            return lambda v: argument(v).ln()
        if token == "\\tanh":
            argument = self.group("(", ")")
            return lambda v: _tanh(argument(v))
        raise NotArithmetic(" ".join(self.tokens))


def _added(left: Value, right: Value) -> Value:
    return lambda v: _EXACT.add(left(v), right(v))


def _subtracted(left: Value, right: Value) -> Value:
    return lambda v: _EXACT.subtract(left(v), right(v))


def _multiplied(left: Value, right: Value) -> Value:
    return lambda v: left(v) * right(v)


def _tanh(x: Decimal) -> Decimal:
    if abs(x) < Decimal("1e-10"):  # 1 - e^{-2|x|} would cancel: the series, exact to x⁸
        return x - x**3 / 3 + 2 * x**5 / 15 - 17 * x**7 / 315
    t = (-2 * abs(x)).exp()
    return ((1 - t) / (1 + t)).copy_sign(x)


def formula_of(latex: str) -> Value:
    """The formula a substitution's LaTeX writes, as a function of its placeholders' values.

    >>> from decimal import Decimal
    >>> formula_of("-\\\\frac{1}{⟨s⟩}")({"s": Decimal("0.25")})
    Decimal('-4')
    """
    return _Parser(_tokens(latex)).whole()


def half_unit(text: str) -> Decimal:
    """Half a unit in the last digit of a displayed number: 0.0900 → 0.00005, 2 → 0.5."""
    return Decimal(5).scaleb(Decimal(text).as_tuple().exponent - 1)  # type: ignore[operator]


def checks(formula: Value, operands: dict[str, str], result_text: str) -> bool:
    """Whether ``formula`` on the displayed operands, rounded as ``result_text`` is, gives ``result_text``."""
    with localcontext(_PRECISION):
        try:
            exact = formula({name: Decimal(text) for name, text in operands.items()})
            # Strictly within: a tie would leave the reader to guess the rounding rule.
            return bool(abs(exact - Decimal(result_text)) < half_unit(result_text))
        except (ArithmeticError, ValueError):  # log of 0, a division by 0, an inf shown
            return False


def _finite(text: str) -> bool:
    return text not in ("inf", "-inf", "nan")


def fewest_digits(formula: Value, values: dict[str, float], result: str, digits: int) -> int | None:
    """The fewest significant digits, from ``digits`` to 17, with which the operands make the
    formula give ``values[result]`` as displayed with ``digits``; None where none do."""
    result_text = shown(values[result], digits)
    operand_names = [name for name in values if name != result]
    for operand_digits in range(digits, max(digits, MOST_DIGITS) + 1):
        operands = {
            name: exact_short(values[name], operand_digits) or shown(values[name], operand_digits)
            for name in operand_names
        }
        if checks(formula, operands, result_text):
            return operand_digits
    return None


def settled(equation: Equation, digits: int) -> Equation:
    """``equation`` with the digits its operands need (or marked approximate)."""
    match = RESULT.fullmatch(equation.substituted)
    if match is None or not equation.values:
        return equation
    try:
        formula = formula_of(match.group("formula"))
    except NotArithmetic:
        return equation
    if not all(_finite(shown(value, digits)) for value in equation.values.values()):
        return equation  # an infinite or NaN entry: said in the stage's notes
    operand_digits = fewest_digits(formula, equation.values, match.group("result"), digits)
    if operand_digits is None:
        return replace(equation, approximate=True)
    return replace(equation, operand_digits=operand_digits)


def approximate_as_written(equation: Equation, write: Callable[[float], str]) -> bool:
    """Whether ``equation``, every number written by ``write`` (the JSON's shortest round-trip digits),
    fails to check by hand: its formula on the operands as written, rounded as its result is written,
    does not give the result as written. An equation that is not a formula over finite numbers keeps
    its own flag."""
    match = RESULT.fullmatch(equation.substituted)
    if match is None or not equation.values:
        return equation.approximate
    try:
        formula = formula_of(match.group("formula"))
    except NotArithmetic:
        return equation.approximate
    texts = {name: write(value) for name, value in equation.values.items()}
    if not all(_finite(text) for text in texts.values()):
        return equation.approximate
    result = texts.pop(match.group("result"))
    return not checks(formula, texts, result)



def rounding_note(
    exact_input: float, exact_output: float, digits: int, symbol: str, formula: Callable[[str], str]
) -> list[str]:
    """The rounding-first mistake, where the operand as an earlier stage shows it would not give
    the value shown (-log(0.2447) = 1.4077 for the loss 1.4076): ``formula`` writes the LaTeX of the
    equation's formula applied to a number's text. Past 12 digits the lesson is moot: rounding is
    then float64's own."""
    if digits > 12:
        return []
    rounded, shown_output = shown(exact_input, digits), shown(exact_output, digits)
    written = formula_of(formula("⟨x⟩"))
    if not all(_finite(text) for text in (rounded, shown_output)) or checks(written, {"x": rounded}, shown_output):
        return []
    with localcontext(_PRECISION):
        try:
            wrong = shown(float(written({"x": Decimal(rounded)})), digits)
        except (ArithmeticError, ValueError):
            return []
    if wrong == shown_output:  # a tie: nothing the reader could see
        return []
    return [
        f"Rounding first would mislead: with ${symbol}$ as rounded above, ${formula(rounded)} = {wrong}$, not "
        f"${shown_output}$; so ${symbol}$ is written here with the digits it takes to give the value shown."
    ]


#: An operand this many times the result: the formula subtracts nearly equal numbers.
CANCELLATION = 1e3


def cancels(equation: Equation) -> bool:
    """Whether the equation's result is far smaller than an operand: digits cancelled on the way."""
    match = RESULT.fullmatch(equation.substituted)
    if match is None:
        return False
    result = abs(equation.values[match.group("result")])
    operands = [abs(value) for name, value in equation.values.items() if name != match.group("result")]
    return bool(operands) and max(operands) / CANCELLATION > result  # a product could overflow near 1.8e308


def approximate_note(digits: int, dtype: str, cancelled: bool) -> str:
    """Why a line is written with ≈: what the values carry, and the form the result came from."""
    precision = "about 7" if dtype == "float32" else "15 to 17"
    opening = (
        f"A line written with $\\approx$ does not check by hand to {digits} digits, "
        "whatever the digits of its operands: "
    )
    if cancelled:
        return opening + (
            "it subtracts nearly equal numbers, whose shared leading digits cancel, and what is left of "
            f"{dtype}'s {precision} digits is fewer than the result shows; sce computes the result in a "
            "form without that subtraction (see the last stage, \"How sce computes it\")."
        )
    return opening + (
        f"each number here is a {dtype} value, exact to {precision} significant digits, and the result was "
        "computed from the unrounded values, so the written formula, evaluated exactly, differs from it in "
        "the last digit shown."
    )


def checked_by_hand(stage: Stage, digits: int, dtype: str = "float64") -> Stage:
    """``stage`` with every equation :func:`settled`, and a note where one is approximate."""
    items = tuple(settled(item, digits) if isinstance(item, Equation) else item for item in stage.items)
    approximate = [item for item in items if isinstance(item, Equation) and item.approximate]
    notes = stage.notes
    for cancelled in (True, False):
        if any(cancels(item) == cancelled for item in approximate):
            notes = (*notes, approximate_note(digits, dtype, cancelled))
    return replace(stage, items=items, notes=notes)
