"""LaTeX math to Unicode text, for the subset the derivation writes.

The derivation writes each formula once, in LaTeX (the Markdown format prints
it as it is); the terminal shows it through :func:`to_unicode`:
``\\frac{\\partial L}{\\partial z_i}`` becomes ``∂L/∂zᵢ``, and a fraction that is a
factor of a product is grouped, ``(1/s_c) · s_c(1 - s_c)``, so that it never reads
as one long fraction.
"""

from __future__ import annotations

import re

SYMBOLS = {
    "partial": "∂",
    "sum": "Σ",
    "log": "log",
    "max": "max",
    "exp": "exp",
    "cdot": "·",
    "times": "×",
    "neq": "≠",
    "odot": "⊙",
    "delta": "δ",
    "varepsilon": "ε",
    "lambda": "λ",
    "ell": "ℓ",
    "tanh": "tanh",
    "Sigma": "Σ",
    "ldots": "…",
    "approx": "≈",
    "le": "≤",
    "ge": "≥",
    "leftarrow": "←",
    "to": "→",
    "top": "ᵀ",
    "quad": "  ",
    ",": " ",
    "!": "",
    " ": " ",
    "left": "",
    "right": "",
    "{": "{",
    "}": "}",
    "mid": "|",
    "infty": "∞",
    "pm": "±",
}
STYLES = {"mathbf", "mathrm", "operatorname", "text", "mathit"}
SUBSCRIPT = dict(zip("0123456789aehijklmnoprstuvx+-=()", "₀₁₂₃₄₅₆₇₈₉ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ₊₋₌₍₎"))
SUPERSCRIPT = dict(zip("0123456789+-=()nijT", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱʲᵀ"))

_TOKEN = re.compile(r"\\([A-Za-z]+|.)|([{}^_])|([^\\{}^_])", re.DOTALL)


def to_unicode(latex: str) -> str:
    tokens: list[tuple] = []
    for match in _TOKEN.finditer(latex):
        # ∂ binds to what follows (\\partial L is ∂L); other spaces are the author's.
        if match.group(3) == " " and tokens and tokens[-1][0] == "partial":
            continue
        tokens.append(match.groups())
    out: list[str] = []
    position = 0
    while position < len(tokens):
        text, position = _atom(tokens, position)
        out.append(text)
    return re.sub(r" {2,}", " ", _joined(out))


class _Fraction(str):
    """A fraction's text, ``a/b``: grouped in :func:`_joined` where it is a factor."""


#: What may stand beside a fraction without making it a factor of a product.
_OPEN = "=+-−,([{|≈≤≥→…:"
_CLOSE = "=+-−,)]}|≈≤≥→…:"
#: An operator written before its operand: Σᵢ ∂L/∂zᵢ sums the fraction, it is no product.
_OPERATOR_BEFORE = re.compile(r"(?:Σ|max|min|log|exp|tanh)\S*\s*$")


def _joined(parts: list[str]) -> str:
    """The parts side by side, each fraction in parentheses where a factor stands beside it."""
    texts = list(parts)
    for index, part in enumerate(parts):
        if not isinstance(part, _Fraction):
            continue
        before = "".join(texts[:index]).rstrip()
        after = "".join(parts[index + 1 :]).lstrip()
        factor_before = bool(before) and before[-1] not in _OPEN and not _OPERATOR_BEFORE.search(before)
        factor_after = bool(after) and after[0] not in _CLOSE
        if factor_before or factor_after:
            texts[index] = f"({part})"
    return "".join(texts)


def _atom(tokens: list[tuple], position: int) -> tuple[str, int]:
    """Convert one unit (a character, a {group}, or a command with its
    arguments and any ^/_ scripts on it) starting at ``position``."""
    if position >= len(tokens):
        return "", position
    command, operator, char = tokens[position]
    position += 1
    if char is not None:
        text = char
    elif operator == "{":
        parts: list[str] = []
        while position < len(tokens) and tokens[position][1] != "}":
            part, position = _atom(tokens, position)
            parts.append(part)
        text, position = _joined(parts), position + 1
    elif operator in ("^", "_"):
        argument, position = _atom(tokens, position)
        text = _script(argument, SUPERSCRIPT if operator == "^" else SUBSCRIPT, operator)
    elif operator == "}":
        text = ""
    elif command == "frac":
        top, position = _atom(tokens, position)
        bottom, position = _atom(tokens, position)
        text = _Fraction(f"{_wrap(top)}/{_wrap(bottom)}")
    elif command in STYLES:
        text, position = _atom(tokens, position)
    else:
        text = SYMBOLS.get(command, command)
    return text, position


def _script(argument: str, table: dict[str, str], operator: str) -> str:
    compact = argument.replace(" ", "")
    if compact and all(ch in table.values() for ch in compact):  # already a script (\\top)
        return compact
    if compact and all(ch in table for ch in compact):
        return "".join(table[ch] for ch in compact)
    if len(compact) == 1:
        return operator + compact
    return f"_({compact})" if operator == "_" else f"^({argument})"


_SIMPLE = re.compile(r"[-−]?[\w.∂Σ…·ᵀ" + "".join(SUBSCRIPT.values()) + "".join(SUPERSCRIPT.values()) + r"]+")


def _wrap(text: str) -> str:
    """Parenthesise a fraction's part unless it is a single term (``1``, ``∂L``, ``sᵢ``)."""
    plain = text.strip()
    if (
        _SIMPLE.fullmatch(plain)
        or re.fullmatch(r"\w+\^\([^()]*\)", plain)
        or re.fullmatch(r"-?\d+(\.\d+)?e[-+]\d+", plain)
    ):
        return plain
    return f"({plain})"
