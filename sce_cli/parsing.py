"""Turning what a user typed into numbers, with errors that say where."""

from __future__ import annotations

import re

from .errors import UsageProblem
from .numbers import normalise_minus, read_number, split_numbers


def parse_number(token: str, what: str) -> float:
    value = read_number(token)
    if value is None:
        raise UsageProblem(f"{what}: {token!r} is not a number; write numbers such as 2, -1.5 or 3e-2")
    return value


def parse_numbers(texts: list[str] | str, what: str) -> list[float]:
    """Parse a list of numbers; ``what`` names the argument in errors (``--weight``)."""
    tokens = split_numbers(texts)
    if not tokens:
        raise UsageProblem(f"{what}: no numbers given")
    return [parse_number(token, f"{what} (entry {i})") for i, token in enumerate(tokens)]


def parse_label(text: str) -> int:
    token = normalise_minus(text.strip())
    if not re.fullmatch(r"[+-]?\d+", token):
        raise UsageProblem(
            f"--label: {text!r} is not a class index; labels are 0-based integers such as 0, 1, 2"
        )
    return int(token)

