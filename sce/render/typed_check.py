"""The terminal view of `sce check`'s typed answers: each quantity entry by entry, the
mistakes named, the reduction and the verdict (apart from the other tables, so that
`sce grad` never loads the grading code)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sce.grading import verdicts
from sce.grading.answers import answer_verdict, diagnosis
from sce.number_text import DISPLAY_DIGITS, display, display_bound, given, significant_places
from sce.render.grid import Column, Grid, print_grid
from sce.render.table import print_mistake
from sce.render.words import reduction_line

if TYPE_CHECKING:
    from rich.console import Console

    from sce.grading import QuantityCheck


def _mark(ok: bool) -> tuple[str, str]:
    return ("✓", "green") if ok else ("✗ wrong", "bold red")


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
    from rich.text import Text

    for check in checks:
        headings = ("expected", "given", "difference", "tolerance")
        columns = [] if not check.per_class else [Column("j,k" if check.columns else "class", "right")]
        grid = Grid([*columns, *(Column(heading, "right") for heading in headings), Column()], title=check.name)
        for k in range(len(check.given)):
            cells = [] if not check.per_class else [check.entry(k)]
            # At least as many digits as the answer, so that the two can be compared by eye.
            shown = min(17, max(digits, significant_places(check.texts[k]) if check.texts else 0))
            cells += [
                display(check.expected[k], shown),
                check.texts[k] if check.texts else given(check.given[k]),
                display(check.difference[k], 2),
                display_bound(check.allowed[k]),
            ]
            grid.add_row(*cells, _mark(bool(check.ok[k])))
        print_grid(console, grid)
        console.print()
    for check in checks:
        wrong = int((~check.ok).sum())
        if wrong == 0 and check.ambiguous is None:
            console.print(Text.assemble(("✓ ", "green"), f"{check.name}: correct"))
            continue
        if check.ambiguous is not None:
            console.print(Text.assemble(("? ", "bold yellow"), f"{check.name}: {verdicts.WORDS[check.verdict]}"))
            mistake = check.ambiguous.worded_name(flag_of)
            console.print(
                Text(
                    f"  Right within --tol, but so is a usual mistake ({mistake}); give a smaller --tol to tell them "
                    "apart."
                    if check.tolerance_given
                    else "  Right to the digits given, but these digits also fit a usual mistake "
                    f"({mistake}); give more digits to tell them apart."
                )
            )
            continue
        where = "" if not check.per_class else f" ({wrong} of {len(check.ok)} entries)"
        console.print(Text.assemble(("✗ ", "bold red"), f"{check.name}: wrong{where}"))
        if check.mistake:
            print_mistake(console, check.mistake, flag_of)
        if check.also:
            console.print(
                Text(f"  or: {check.also.worded_name(flag_of)}, which fits these numbers too"), soft_wrap=True
            )
            console.print(Text(f"  fix: {check.also.worded_fix(flag_of)}"), soft_wrap=True)
        for slip in check.slips:
            console.print(Text(f"  {slip[0].upper()}{slip[1:]}."))
    several = diagnosis(checks)
    if several:
        named = "; ".join(f"{quantity}: {mistake.worded_name(flag_of)}" for quantity, mistake in several)
        console.print(Text(f"more than one mistake ({named})"), soft_wrap=True)
    console.print(Text(reduction_line(reduction)))
    verdict = answer_verdict(checks)
    style = {verdicts.CORRECT: "bold green", verdicts.TOO_FEW_DIGITS: "bold yellow"}.get(verdict, "bold red")
    console.print(Text(f"verdict: {verdicts.WORDS[verdict]}", style=style))
