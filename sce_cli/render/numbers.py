"""How numbers are written: exactly (shortest round trip) or rounded for display."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np


def exact(value: float, dtype: np.dtype = np.dtype(np.float64)) -> str:
    """The shortest text that reads back as the same number in ``dtype``.

    float32 values are written with float32's shortest digits (0.09003057, not
    the float64 expansion 0.09003057330846786 of the same number).
    """
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if dtype == np.float32:
        return str(np.float32(value))
    return repr(value)


def json_number(value: float, dtype: np.dtype = np.dtype(np.float64)) -> float | str:
    """A JSON-ready value: a float with the shortest digits, or "inf"/"-inf"/"nan"."""
    text = exact(value, dtype)
    return text if text in ("inf", "-inf", "nan") else float(text)


def display(value: float, digits: int = 4) -> str:
    """Round for people: ``digits`` decimals, or ``digits`` significant digits
    in scientific notation where the fixed form would show 0 or be very long."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return f"{0:.{digits}f}"
    magnitude = abs(value)
    if magnitude < 0.5 * 10.0**-digits or magnitude >= 1e6:
        return f"{value:.{max(digits - 1, 0)}e}"
    return f"{value:.{digits}f}"


def given(value: float, dtype: np.dtype = np.dtype(np.float64)) -> str:
    """An input number as the user would type it: 2 rather than 2.0."""
    text = exact(value, dtype)
    return text[:-2] if text.endswith(".0") else text


def shown(value: float, digits: int = 4) -> str:
    """Like :func:`display`, but whole numbers as whole numbers (a one-hot 1, a shift of -2)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return display(value, digits)


def latex(value: float, digits: int = 4) -> str:
    """:func:`shown` in LaTeX: 4.248e-18 becomes 4.248 \\times 10^{-18}."""
    text = shown(value, digits)
    if text in ("inf", "-inf"):
        return text.replace("inf", "\\infty")
    if text == "nan":
        return "\\text{NaN}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa} \\times 10^{{{int(exponent)}}}"
    return text


_PLACEHOLDER = re.compile(r"⟨(\w+)⟩")


def fill(template: str, values: dict[str, float], write: Callable[[float], str]) -> str:
    """Replace each ⟨name⟩ in ``template`` by ``write(values[name])``."""
    return _PLACEHOLDER.sub(lambda match: write(values[match.group(1)]), template)
