"""`sce check --arrays`: the worst entries, a histogram of errors in ulps, the verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sce.errors import worded
from sce.grading.catalogue import FIX_SEPARATOR
from sce.grading.dump.histogram import EDGES
from sce.number_text import DISPLAY_DIGITS, count_of, display
from sce.render.grid import Column, Grid, print_grid, print_styled
from sce.render.words import reduction_line

if TYPE_CHECKING:
    from rich.console import Console

    from sce.grading.dump.verdict import DtypeCheck, QuantityVerdict

BAR_WIDTH = 30


@dataclass(frozen=True)
class HistogramRow:
    """Entries whose error is in [low, high) ulps (both None: not finite)."""

    low: float | None
    high: float | None
    entries: int
    beyond: bool

    @property
    def label(self) -> str:
        if self.low is None or self.high is None:
            return "inf or NaN"
        return "< 1" if self.low == 0 else f"{self.low:,.0f} – {self.high:,.0f}"


def histogram_rows(verdict: QuantityVerdict) -> list[HistogramRow]:
    """Per octave of ulps: below 1 ulp, [1, 2), [2, 4)…, and the entries that are not finite;
    empty octaves left out."""
    counts = verdict.counts
    first_one = int((EDGES < 1).sum())
    rows = [HistogramRow(0.0, 1.0, int(counts[:first_one].sum()), verdict.allowed_ulps <= 0.5)]
    for octave, start in enumerate(range(first_one, len(EDGES), 4)):
        low, high = 2.0**octave, 2.0 ** (octave + 1)
        finite = int(counts[start : min(start + 4, len(EDGES))].sum())
        rows.append(HistogramRow(low, high, finite, high > verdict.allowed_ulps))
    rows = [row for row in rows if row.entries]
    if counts[-1]:
        rows.append(HistogramRow(None, None, int(counts[-1]), True))
    return rows


def _histogram_grid(verdict: QuantityVerdict) -> Grid:
    rows = histogram_rows(verdict)
    peak = max((row.entries for row in rows), default=0) or 1
    grid = Grid(
        [Column("error (ulp)", "right"), Column("entries", "right"), Column("", gives_way=True)],
        title=f"{verdict.name}: errors in ulps of the claimed type",
    )
    for row in rows:
        bar = "█" * max(1 if row.entries else 0, round(BAR_WIDTH * row.entries / peak))
        grid.add_row(row.label, f"{row.entries:,}", (bar, "red" if row.beyond else "green"))
    return grid


def _worst_grid(verdict: QuantityVerdict, digits: int) -> Grid:
    headings = ("row", "class", "expected", "given", "error (ulp)")
    grid = Grid([Column(h, "right") for h in headings], title=f"{verdict.name}: worst entries")
    for entry in verdict.worst:
        cells = (
            f"{entry.row:,}",
            "" if entry.column is None else f"{entry.column:,}",
            display(entry.expected, digits),
            display(entry.given, digits),
            _ulps(entry.ulps),
        )
        grid.add_row(*cells, style="red" if entry.ulps >= verdict.allowed_ulps else "")
    return grid


#: Counts of ulps from this size on are written with 4 significant digits (1.981e+28): the
#: count is a float64 quotient, and its digits beyond the 16th, written out, would be the
#: binary value's, not the count's.
LARGEST_WRITTEN_OUT = 1e9


def _ulps(value: float) -> str:
    if value != value or value == float("inf"):
        return "inf"
    if value >= LARGEST_WRITTEN_OUT:
        return display(value, 4)
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def print_dtype_check(
    console: Console, check: DtypeCheck, digits: int = DISPLAY_DIGITS, flag_of: Mapping[str, str] | None = None
) -> None:
    """The verdict by type; options a mistake names are worded by ``flag_of`` (the
    command line's flags), or without it as the Python API's keywords."""
    from rich.text import Text

    for verdict in check.quantities:
        if verdict.entries > 1:
            print_grid(console, _histogram_grid(verdict))
            console.print()
        if verdict.max_ulps > 0:
            print_grid(console, _worst_grid(verdict, min(max(digits, 8), 17)))
            console.print()
    shape = f"{count_of(check.rows, 'row')} × {count_of(check.classes, 'class', 'classes')}"
    console.print(f"checked: {shape}, as {check.claimed_dtype}")
    print_styled(console, reduction_line(check.options.reduction))
    if check.sum_order == "sequential":
        summed = (
            "summed: as one sequential sum over the classes: each row's probabilities may share one factor "
            f"1 + δ, |δ| up to 4× a running sum's over the row's own terms (≤ {check.sum_bound:.3g} here); "
            "the errors below are each row's without it"
        )
        console.print(Text(summed), soft_wrap=True)
    for verdict in check.quantities:
        for line in _error_lines(verdict, check.claimed_dtype):
            console.print(Text(line), soft_wrap=True)
    for mistake in check.mistakes:
        name, _, fix = worded(mistake, flag_of).partition(FIX_SEPARATOR)
        console.print(Text(f"mistake: {name}"), soft_wrap=True)
        if fix:
            console.print(Text(f"fix: {fix}"), soft_wrap=True)
    for hint in check.hints:
        console.print(Text(f"hint: {worded(hint, flag_of)}"), soft_wrap=True)
    console.print(Text(*_verdict_line(check)), soft_wrap=True)


def _error_lines(verdict: QuantityVerdict, dtype: str) -> list[str]:
    """A quantity's worst and typical errors against what is allowed, and its entries of the wrong sign."""
    lines = [
        f"{verdict.name}: worst error {_ulps(verdict.max_ulps)} ulp; a straightforward {dtype} "
        f"computation's worst is {_ulps(verdict.baseline_ulps)}, "
        f"so up to {_ulps(verdict.allowed_ulps)} is allowed; "
        f"{verdict.wrong:,} of {verdict.entries:,} entries beyond"
    ]
    if verdict.entries > 1:
        typical = (
            f"{verdict.name}: typical (root-mean-square) error {_ulps(verdict.rms_ulps)} ulp; "
            f"the straightforward computation's is {_ulps(verdict.baseline_rms_ulps)}, "
            f"so up to {_ulps(verdict.allowed_rms_ulps)} is allowed"
        )
        lines.append(typical + ("; beyond" if verdict.typical_beyond else ""))
    if verdict.beyond_rounding:
        lines.append(
            f"{verdict.name}: {verdict.beyond_rounding:,} of {verdict.entries:,} entries further off than a {dtype} "
            "computation's rounding at that entry allows (4 × what its logit and log-probability can cost + 8 ulp)"
        )
    if verdict.sign_flips:
        lines.append(
            f"{verdict.name}: {verdict.sign_flips:,} of {verdict.entries:,} entries of the opposite sign to the "
            f"exact value's, which no rounding explains ({verdict.sign_reason})"
        )
    return lines


def _verdict_line(check: DtypeCheck) -> tuple[str, str]:
    """The verdict and its colour: correct, not correct, or cannot be judged in the type."""
    dtype = check.claimed_dtype
    if not check.judgeable:
        off = max(q.baseline_rms_ulps for q in check.quantities if not q.judgeable)
        return (
            f"verdict: cannot be judged in {dtype}: a straightforward {dtype} computation of these inputs is "
            f"typically {_ulps(off)} ulp off, and what that allows would pass an answer half or 1.5 times the "
            "truth; grade it in a wider type",
            "bold yellow",
        )
    sequential = (
        ", consistent with a sequential sum over the classes"
        if check.sum_order == "sequential" and check.correct
        else ""
    )
    return f"verdict: {'correct' if check.correct else 'not correct'} for {dtype}{sequential}", (
        "bold green" if check.correct else "bold red"
    )
