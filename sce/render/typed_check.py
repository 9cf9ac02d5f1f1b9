"""The terminal view of `sce check`'s typed answers: each quantity entry by entry, the
mistakes named, the reduction and the verdict (apart from the other tables, so that
`sce grad` never loads the grading code)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sce.explain.exact_values import rounded_text
from sce.grading import verdicts
from sce.grading.answers import answer_verdict, diagnosis
from sce.number_text import DISPLAY_DIGITS, display, display_bound, given, significant_places
from sce.render.grid import Column, Grid, print_grid
from sce.render.table import mistake_lines
from sce.render.words import reduction_line

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from sce.grading import QuantityCheck


def _mark(ok: bool, wrong_sign: bool = False) -> tuple[str, str]:
    """✓, or ✗ with why: a sign no computation gives is wrong however small the difference."""
    if ok:
        return ("✓", "green")
    return ("✗ wrong sign", "bold red") if wrong_sign else ("✗ wrong", "bold red")


def check_grid(check: QuantityCheck, digits: int = DISPLAY_DIGITS) -> Grid:
    """One quantity entry by entry: expected, given, difference, tolerance, ✓ or ✗."""
    headings = ("expected", "given", "difference", "tolerance")
    columns = [] if not check.per_class else [Column("j,k" if check.columns else "class", "right")]
    grid = Grid([*columns, *(Column(heading, "right") for heading in headings), Column()], title=check.name)
    for k in range(len(check.given)):
        cells = [] if not check.per_class else [check.entry(k)]
        # At least as many digits as the answer, so that the two can be compared by eye.
        shown = min(17, max(digits, significant_places(check.texts[k]) if check.texts else 0))
        cells += [
            display(check.expected[k], shown) if check.exact is None else rounded_text(check.exact[k], shown),
            check.texts[k] if check.texts else given(check.given[k]),
            display(check.difference[k], 2),
            display_bound(check.allowed[k]),
        ]
        grid.add_row(*cells, _mark(bool(check.ok[k]), check.wrong_sign(k)))
    return grid


def print_check(
    console: Console,
    checks: list[QuantityCheck],
    digits: int = DISPLAY_DIGITS,
    flag_of: Mapping[str, str] | None = None,
    *,
    reduction: str,
) -> None:
    """`sce check`: each quantity entry by entry, then the reduction graded and a verdict; a mistake's options
    worded by ``flag_of``."""
    for check in checks:
        print_grid(console, check_grid(check, digits))
        console.print()
    for line, soft_wrap in verdict_lines(checks, flag_of, reduction=reduction):
        console.print(line, soft_wrap=soft_wrap)


def verdict_lines(
    checks: list[QuantityCheck], flag_of: Mapping[str, str] | None = None, *, reduction: str
) -> list[tuple[Text, bool]]:
    """What each quantity's grade says (the mistake named, its fix), the reduction and the verdict;
    each line with whether the terminal leaves it whole (True: a mistake's long wording) or wraps it."""
    from rich.text import Text

    lines: list[tuple[Text, bool]] = []
    for check in checks:
        wrong = int((~check.ok).sum())
        if wrong == 0 and check.ambiguous is None:
            lines.append((Text.assemble(("✓ ", "green"), f"{check.name}: correct"), False))
            continue
        if check.ambiguous is not None:
            words = verdicts.WORDS[check.verdict]
            lines.append((Text.assemble(("? ", "bold yellow"), f"{check.name}: {words}"), False))
            mistake = check.ambiguous.worded_name(flag_of)
            why = (
                f"  Right within --tol, but so is a usual mistake ({mistake}); give a smaller --tol to tell them apart."
                if check.tolerance_given
                else "  Right to the digits given, but these digits also fit a usual mistake "
                f"({mistake}); give more digits to tell them apart."
            )
            lines.append((Text(why), False))
            continue
        where = "" if not check.per_class else f" ({wrong} of {len(check.ok)} entries)"
        lines.append((Text.assemble(("✗ ", "bold red"), f"{check.name}: wrong{where}"), False))
        if check.mistake:
            lines += [(line, True) for line in mistake_lines(check.mistake, flag_of)]
        if check.also:
            lines.append((Text(f"  or: {check.also.worded_name(flag_of)}, which fits these numbers too"), True))
            lines.append((Text(f"  fix: {check.also.worded_fix(flag_of)}"), True))
        lines += [(Text(f"  {slip[0].upper()}{slip[1:]}."), False) for slip in check.slips]
    several = diagnosis(checks)
    if several:
        named = "; ".join(f"{quantity}: {mistake.worded_name(flag_of)}" for quantity, mistake in several)
        lines.append((Text(f"more than one mistake ({named})"), True))
    lines.append((Text(reduction_line(reduction)), False))
    verdict = answer_verdict(checks)
    style = {verdicts.CORRECT: "bold green", verdicts.TOO_FEW_DIGITS: "bold yellow"}.get(verdict, "bold red")
    lines.append((Text(f"verdict: {verdicts.WORDS[verdict]}", style=style), False))
    return lines
