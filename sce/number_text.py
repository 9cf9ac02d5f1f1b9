"""Numbers in and out: one place for each rule.

How numbers are written (shortest round trip, rounded for display, LaTeX),
how typed numbers are read (one set of minus signs, one parser), and how
many digits an answer was written with says how close it must be (the
digits-to-tolerance rule). Below both the derivation and the renderers;
imports nothing of sce.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where it is used: `sce --help` need not wait for it
    import numpy as np
    import polars as pl

#: A float type named as numpy names it ("float64"), or a numpy dtype.
DTypeName = Any


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (what ``float`` takes: "2", "-1e3", "nan", "inf").

    Examples
    --------
    >>> is_number("-1e3"), is_number("rank1.npz")
    (True, False)
    """
    try:
        float(text)
    except ValueError:
        return False
    return True


def exact(value: float, dtype: DTypeName = "float64") -> str:
    """The shortest text that reads back as the same number in ``dtype``.

    float32 values are written with float32's shortest digits (0.09003057, not
    the float64 expansion 0.09003057330846786 of the same number).
    """
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if str(dtype) == "float32":
        import numpy as np

        return str(np.float32(value))
    return repr(value)


def json_number(value: float, dtype: DTypeName = "float64") -> float | str:
    """A JSON-ready value: a float with the shortest digits, or "inf"/"-inf"/"nan"."""
    text = exact(value, dtype)
    return text if text in ("inf", "-inf", "nan") else float(text)


#: Significant digits shown where the user did not ask (`--digits`): 1.4076, 0.090031.
DISPLAY_DIGITS = 5


def display(value: float, digits: int = DISPLAY_DIGITS) -> str:
    """Round for people: ``digits`` significant digits.

    Fixed notation from 1e-4 up to 10**digits, scientific beyond, so that no
    value is ever shown as 0 and no digit shown is a placeholder; trailing zeros
    are kept (they are digits shown). A zero, of either sign, is 0 with the same
    number of places as a value of magnitude 1.

    Examples
    --------
    >>> display(0.09003057317038046)
    '0.090031'
    >>> display(1.4076059644443804, 3)
    '1.41'
    >>> display(4.2e-18), display(123456.0), display(0.0), display(1.0, 1)
    ('4.2000e-18', '1.2346e+05', '0.0000', '1')
    """
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        value = 0.0
    text = format(value, f"#.{digits}g")
    return text[:-1] if text.endswith(".") else text.replace(".e", "e")


#: Ulp counts from here up are written with significant digits: the count is a float64 quotient, and
#: its digits beyond the 16th, written out, would be the binary value's, not the count's.
LARGEST_ULPS_WRITTEN_OUT = 1e9


def ulp_count(value: float) -> str:
    """An error in ulps for people: 3 significant digits below 1,000, whole ulps with thousands
    separators up to a billion, and 4 significant digits beyond; "inf" where it is not finite.

    Examples
    --------
    >>> ulp_count(0.1789), ulp_count(4.3), ulp_count(123456.7), ulp_count(2.3092699999999998e43)
    ('0.179', '4.3', '123,457', '2.309e+43')
    >>> ulp_count(float("nan")), ulp_count(float("inf"))
    ('inf', 'inf')
    """
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return "inf"
    if value >= LARGEST_ULPS_WRITTEN_OUT:
        return display(value, 4)
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def display_bound(value: float) -> str:
    """A bound (a tolerance) for people, never shown smaller than it is: with the fewest
    significant digits, up to 3, that read back as the value itself, else rounded up to 2.

    Examples
    --------
    >>> display_bound(0.05), display_bound(5e-18), display_bound(0.0123)
    ('0.05', '5e-18', '0.0123')
    >>> display_bound(1.4157855510712e-07)  # 1e-07 would show less than is allowed
    '1.5e-07'
    """
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return display(value, 1)
    for digits in (1, 2, 3):
        text = display(value, digits)
        if float(text) == value:
            return text
    exponent = math.floor(math.log10(abs(value))) - 1
    up = math.ceil(value / 10.0**exponent) * 10.0**exponent
    text = display(up, 2)
    return text if float(text) >= value else display(up + 10.0**exponent, 2)


def display_all(values: Iterable[float], digits: int = DISPLAY_DIGITS) -> list[str]:
    """:func:`display` of many values at once (a table of a million classes spends its time here)."""
    write = f"{{:#.{digits}g}}".format
    texts = []
    for value in values:
        if value == 0 or value != value or abs(value) == math.inf:
            texts.append(display(value, digits))
            continue
        text = write(value)
        texts.append(text[:-1] if text.endswith(".") else text.replace(".e", "e"))
    return texts


def given(value: float, dtype: DTypeName = "float64") -> str:
    """An input number as the user would type it: 2 rather than 2.0."""
    text = exact(value, dtype)
    return text[:-2] if text.endswith(".0") else text


def shown(value: float, digits: int = DISPLAY_DIGITS) -> str:
    """Like :func:`display`, but whole numbers as whole numbers (a one-hot 1, a shift of -2)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return display(value, digits)


def latex(value: float, digits: int = DISPLAY_DIGITS) -> str:
    """:func:`shown` in LaTeX: 4.248e-18 becomes 4.248 \\times 10^{-18}."""
    return latex_text(shown(value, digits))


def latex_text(text: str) -> str:
    """A number's text in LaTeX: 4.248e-18 becomes 4.248 \\times 10^{-18}."""
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


# --- reading numbers ----------------------------------------------------------

# Web pages and PDFs write minus as U+2212 (or a dash); people paste from them.
MINUS_SIGNS = "\u2212\u2012\u2013\ufe63\uff0d"
# ... and the Arabic decimal separator with Arabic-Indic digits (٠٫٠٩٠).
_TO_HYPHEN_MINUS = str.maketrans({**{sign: "-" for sign in MINUS_SIGNS}, "\u066b": "."})
_FIELD_SEPARATORS = re.compile(r"[,;]")


def normalise_minus(text: str) -> str:
    """Every minus sign people paste, as the ASCII hyphen-minus."""
    return text.translate(_TO_HYPHEN_MINUS)


def plain_spelling(text: str) -> str:
    """A number as ASCII: minus signs, other scripts' digits (١٫ → 1) and the
    underscores Python allows (1_000) made plain, so that the digits-to-tolerance
    rule and the slip detector read the digits that float() reads."""
    plain = normalise_minus(text.strip()).replace("_", "")
    if plain.isascii():
        return plain
    return "".join(str(unicodedata.digit(ch)) if ch.isdecimal() else ch for ch in plain)


class EmptyField(ValueError):
    """Two commas or semicolons in a row (``2,3,,4``): a number left out, which read as one
    longer separator would move every later entry to the class before it."""

    def __init__(self, entry: int) -> None:
        super().__init__(
            f"entry {entry} is empty (two commas or semicolons in a row); write its number, or remove the extra one"
        )
        self.entry = entry


def quoted_cell(value: str, limit: int = 40) -> str:
    """A cell or token as an error line quotes it: whole, or its start and its length when long
    (a 30 MB line of digits would otherwise be a 30 MB error line)."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value):,} characters)"


def split_numbers(texts: list[str] | str) -> list[str]:
    """Split arguments such as ``["2,3", "4"]`` or ``"2, 3; 4"`` into number tokens. Spaces
    may run on; a comma or semicolon ends a field, and an empty field (``2,,4``, ``,2``) is an
    :class:`EmptyField` (one comma at the very end is let pass)."""
    if isinstance(texts, str):
        texts = [texts]
    tokens: list[str] = []
    for text in texts:
        fields = _FIELD_SEPARATORS.split(normalise_minus(text))
        for position, field in enumerate(fields):
            words = field.split()
            if not words and len(fields) > 1 and position < len(fields) - 1:
                raise EmptyField(len(tokens))
            tokens.extend(words)
    return tokens


#: What a written number beyond float64 (1e400) is told, wherever it is written.
BEYOND_FLOAT64 = "is beyond float64's range (±1.8e308); write a smaller number or inf"


def beyond_float64(text: str, value: float) -> bool:
    """float("1e400") is inf: as an answer it would be within any tolerance of anything,
    as a logit an inf nobody wrote (and -1e400 a masked class). Refused where it is read."""
    return math.isinf(value) and "inf" not in text.lower()


def read_number(text: str) -> float | None:
    """The number ``text`` spells, or None: what Python's float() reads
    (``1_000``, other scripts' digits, inf, nan), after minus normalisation."""
    try:
        return float(normalise_minus(text))
    except ValueError:
        return None


# --- the digits-to-tolerance rule ---------------------------------------------

#: A written decimal number: its integer digits, decimals and exponent.
WRITTEN_NUMBER = r"\s*[+-]?(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?\s*"
_WRITTEN_NUMBER = re.compile(WRITTEN_NUMBER)


def half_unit(decimals: Any, exponent: Any) -> Any:
    """Half a unit in the last place written, from the number of decimals and
    the exponent: a correctly rounded answer is within it. Written once for
    ints, numpy arrays and polars expressions alike (hence Any)."""
    return 0.5 * 10.0 ** (exponent - decimals)


def tolerance_of(text: str) -> float:
    """Half a unit in the last place written: 0.090 → 0.0005, 1e-3 → 0.0005, 2 → 0.5.

    0 for text that is not a decimal number (inf, nan): only the same value matches.
    """
    match = _WRITTEN_NUMBER.fullmatch(plain_spelling(text))
    if match is None or not (match.group(1) or match.group(2)):
        return 0.0
    try:
        return float(half_unit(len(match.group(2) or ""), int(match.group(3) or 0)))
    except OverflowError:  # 1e400: beyond float64, and refused where it is read
        return math.inf


def decimal_places(text: str) -> int:
    """How many decimal places ``text`` writes (0.090 → 3, 1.5e-3 → 4, 12 → 0)."""
    match = _WRITTEN_NUMBER.fullmatch(plain_spelling(text))
    if match is None:
        return 0
    return max(0, len(match.group(2) or "") - int(match.group(3) or 0))


def significant_places(text: str) -> int:
    """How many significant digits ``text`` writes (0.0900 → 3, 1.5e-3 → 2, 12 → 2, 0 → 1)."""
    match = _WRITTEN_NUMBER.fullmatch(plain_spelling(text))
    if match is None:
        return 0
    digits = (match.group(1) or "").lstrip("+-") + (match.group(2) or "")
    return max(1, len(digits.lstrip("0")))


def written_tolerances(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """:func:`tolerance_of` for every cell of the named columns of a polars frame."""
    import numpy as np
    import polars as pl

    # The columns one after the other as one column, under one expression: an expression per
    # column costs polars time that grows faster than the columns (minutes at 60,000 columns).
    cells = pl.concat([frame.get_column(name) for name in columns], rechunk=True).cast(pl.String).alias("cell")
    text = pl.col("cell").str.strip_chars()
    matched = text.str.contains(f"^{WRITTEN_NUMBER}$") & text.str.contains(r"\d")
    decimals = text.str.extract(WRITTEN_NUMBER, 2).str.len_chars().fill_null(0)
    exponent = text.str.extract(WRITTEN_NUMBER, 3).cast(pl.Int64, strict=False).fill_null(0)
    tolerance = pl.when(matched).then(half_unit(decimals, exponent)).otherwise(0.0)
    values = pl.DataFrame([cells]).select(tolerance).to_series().to_numpy()
    return values.astype(np.float64, copy=False).reshape(len(columns), frame.height).T


def count_of(count: int, noun: str, plural: str | None = None) -> str:
    """'1 row', '2 rows', '1,000 rows': a count and its noun, singular for one."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {plural or noun + 's'}"
