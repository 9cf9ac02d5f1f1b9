"""Evaluate the arithmetic LaTeX that the derivation writes, at 60 digits.

Only the subset the stages use: numbers, placeholders ⟨name⟩, + - × ·,
parentheses (\\left( \\right)), \\frac{a}{b}, e^{x}, \\log(x), \\log x and \\tanh(x). It
exists so that a test can check every substituted equation against its own
displayed value, independently of how the derivation computed it.
"""

from __future__ import annotations

import re

import mpmath as mp

mp.mp.dps = 60

_PLACEHOLDER = re.compile(r"⟨(\w+)⟩")
_NUMBER = re.compile(r"\d+(\.\d*)?([eE][-+]?\d+)?")


class NotArithmetic(ValueError):
    """The text is not (only) arithmetic: prose, a vector, a case reference."""


def _group(text: str, start: int) -> tuple[str, int]:
    """The contents of the {…} group opening at ``start``, and the index after it."""
    if text[start] != "{":
        raise NotArithmetic(text)
    depth = 0
    for position in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[start + 1 : position], position + 1
    raise NotArithmetic(text)


def _function_at(text: str, position: int) -> str | None:
    """The name of the function (log or tanh) whose command starts at ``position``, if any."""
    for name in ("log", "tanh"):
        if text.startswith(f"\\{name}", position):
            return name
    return None


def to_python(latex: str) -> str:
    """The expression as Python source over exp, log and v[name]."""
    text = latex.replace("\\left(", "(").replace("\\right)", ")").replace("\\,", " ")
    text = text.replace("\\times", "*").replace("\\cdot", "*")
    out: list[str] = []
    position = 0
    while position < len(text):
        if text.startswith("\\frac", position):
            top, position = _group(text, position + 5)
            bottom, position = _group(text, position)
            out.append(f"(({to_python(top)})/({to_python(bottom)}))")
        elif text.startswith("e^", position):
            exponent, position = _group(text, position + 2)
            out.append(f"exp({to_python(exponent)})")
        elif (function := _function_at(text, position)) is not None:
            position += len(function) + 1
            rest = text[position:].lstrip()
            position = len(text) - len(rest)
            if rest.startswith("("):
                out.append(function)
            else:  # \log x: the argument is the number or placeholder that follows
                match = _PLACEHOLDER.match(rest) or _NUMBER.match(rest)
                if match is None:
                    raise NotArithmetic(latex)
                out.append(f"{function}({to_python(match.group(0))})")
                position += match.end()
        elif text[position] == "\\":
            raise NotArithmetic(latex)
        elif text[position] == "⟨":
            end = text.index("⟩", position) + 1
            out.append(text[position:end])
            position = end
        elif (number := _NUMBER.match(text, position)) is not None:
            out.append(f'N("{number.group(0)}")')  # exact: 1 + 4e-18 is not 1 here
            position = number.end()
        else:
            out.append(text[position])
            position += 1
    return _PLACEHOLDER.sub(lambda match: f'v["{match.group(1)}"]', "".join(out))


_KNOWN = re.compile(r"⟨\w+⟩|\\(frac|log|tanh|left|right|times|cdot)|\\,|e\^|\d[eE][-+]?\d")


_POWER_OF_TEN = re.compile(r"(\d+(?:\.\d*)?) \\times 10\^\{(-?\d+)\}")


def scientific(latex: str) -> str:
    """A number written for people in LaTeX, ``4.248 \\times 10^{-18}``, as ``4.248e-18``."""
    return _POWER_OF_TEN.sub(lambda match: f"{match.group(1)}e{match.group(2)}", latex)


def evaluate(latex: str, values: dict[str, float], digits: int | None = None) -> mp.mpf:
    """The value of ``latex`` with ``values`` for its placeholders, at ``digits`` digits (700 keep
    1 + 4e-300 apart from 1: sums of float64 values span about 650 digits), or mpmath's own."""
    latex = scientific(latex)
    if re.search(r"[A-Za-z_\\]", _KNOWN.sub("", latex)):
        raise NotArithmetic(latex)  # prose, a vector, a case reference
    exact = {name: mp.mpf(value) for name, value in values.items()}
    with mp.workdps(digits or mp.mp.dps):
        return +eval(to_python(latex), {"exp": mp.exp, "log": mp.log, "tanh": mp.tanh, "N": mp.mpf, "v": exact, "__builtins__": {}})  # noqa: S307
