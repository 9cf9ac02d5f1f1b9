"""Turning what a user typed into numbers, with errors that say where."""

from __future__ import annotations

import re

from .errors import UsageProblem

# Web pages and PDFs write minus as U+2212; people paste from them.
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2012": "-", "\u2013": "-"})
_SEPARATORS = re.compile(r"[,\s;]+")


def split_numbers(texts: list[str] | str) -> list[str]:
    """Split arguments such as ``["2,3", "4"]`` or ``"2, 3; 4"`` into number tokens."""
    if isinstance(texts, str):
        texts = [texts]
    tokens: list[str] = []
    for text in texts:
        tokens.extend(t for t in _SEPARATORS.split(text.translate(_MINUS_SIGNS)) if t)
    return tokens


def parse_number(token: str, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise UsageProblem(
            f"{what}: {token!r} is not a number; write numbers such as 2, -1.5 or 3e-2"
        ) from None
    return value


def parse_numbers(texts: list[str] | str, what: str) -> list[float]:
    """Parse a list of numbers; ``what`` names the argument in errors (``--weight``)."""
    tokens = split_numbers(texts)
    if not tokens:
        raise UsageProblem(f"{what}: no numbers given")
    return [parse_number(token, f"{what} (entry {i})") for i, token in enumerate(tokens)]


def parse_label(text: str) -> int:
    token = text.strip().translate(_MINUS_SIGNS)
    if not re.fullmatch(r"[+-]?\d+", token):
        raise UsageProblem(
            f"--label: {text!r} is not a class index; labels are 0-based integers such as 0, 1, 2"
        )
    return int(token)

