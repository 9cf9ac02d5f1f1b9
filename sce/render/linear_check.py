"""`sce check --arrays` on a dump of hidden states: each output's errors in ulps, the mistake, the verdict.

Laid out as the logits' report (:mod:`sce.render.dtype_check`): a table, the lines that say what
was checked and what is allowed, the mistake and its fix, and the verdict last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sce.grading.linear.report import OutputReport, Report
from sce.number_text import count_of, ulp_count
from sce.render.grid import Column, Grid, print_grid, print_styled
from sce.render.words import reduction_line

if TYPE_CHECKING:
    from rich.console import Console


def outputs_grid(report: Report) -> Grid:
    """One row per output graded: its worst and typical errors against what is allowed."""
    # On a terminal too narrow for the table (a failing one is over 100 columns), the baseline's column gives
    # way: its figure is the one the lines below the table repeat.
    numbers = [Column(h, "right", gives_way=h == "baseline") for h in ("worst ulp", "allowed", "baseline", "typical",
                                                                       "allowed")]  # fmt: skip
    columns = [Column("output"), Column("type"), *numbers, Column("worst entry"), Column("")]
    grid = Grid(columns, title="errors in ulps of each output's type")
    for o in report.outputs:
        mark = ("✓", "green") if o.passed else ("✗ beyond", "bold red")
        where = "" if not o.worst_entry else ("[" + ", ".join(map(str, o.worst_entry)) + "]")
        grid.add_row(
            o.name,
            o.dtype,
            _ulps(o.worst_ulp),
            _ulps(o.allowed_ulp),
            _ulps(o.baseline_ulp),
            _ulps(o.rms_ulp),
            _ulps(o.allowed_rms_ulp),
            where,
            mark,
            style="" if o.passed else "red",
        )
    return grid


def print_linear_check(
    console: Console,
    report: Report,
    shape: tuple[int, int, int],
    reduction: str,
    flag_of: Mapping[str, str] | None = None,
) -> None:
    """The report as ``sce check --arrays`` prints it; ``shape`` is N, D and V; the options a fix
    names are worded by ``flag_of`` (the command line's flags)."""
    from rich.text import Text

    print_grid(console, outputs_grid(report))
    console.print()
    rows, width, classes = shape
    types = ", ".join(dict.fromkeys(o.dtype for o in report.outputs))
    shape_words = f"{count_of(rows, 'row')} × {width:,} hidden × {count_of(classes, 'class', 'classes')}"
    console.print(
        Text(f"checked: {shape_words}, as {types} (profile {report.profile}, {report.mode} check)"),
        soft_wrap=True,
    )
    print_styled(console, reduction_line(reduction))
    for o in report.outputs:
        console.print(Text(_error_line(o)), soft_wrap=True)
    if report.quick is not None:
        console.print(Text(report.quick["statement"]), soft_wrap=True)
    if report.exact is not None and (report.exact["recomputed"] or report.exact["past_cap"]):
        console.print(Text(f"exact: {report.exact['statement']}"), soft_wrap=True)
    if report.mistake:
        console.print(Text(f"mistake: {report.mistake}"), soft_wrap=True)
    if report.fix:
        console.print(Text(f"fix: {_fix(report, flag_of)}"), soft_wrap=True)
    words = "correct" if report.passed else "not correct"
    console.print(Text(f"verdict: {words} for {types}", style="bold green" if report.passed else "bold red"))


def linear_check_document(
    report: Report, shape: tuple[int, int, int], reduction: str, flag_of: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``--format json``: the report's own ``to_dict()`` (its fix worded by ``flag_of``), and what was checked."""
    rows, width, classes = shape
    found = {**report.to_dict(), "rows": rows, "hidden": width, "classes": classes, "reduction": reduction}
    found["fix"] = _fix(report, flag_of)
    return found


def _fix(report: Report, flag_of: Mapping[str, str] | None) -> str | None:
    """The fix of the report's mistake, its options worded by ``flag_of``."""
    from sce.grading.linear.mistakes import LINEAR_MISTAKES

    named = next((m for m in LINEAR_MISTAKES if m.name == report.mistake), None)
    return report.fix if named is None else named.worded_fix(flag_of)


def _error_line(o: OutputReport) -> str:
    beyond = "" if o.passed else "; beyond"
    if o.given is not None and not math.isfinite(o.given) and o.expected is not None and math.isfinite(o.expected):
        beyond += " (not finite where the exact value is)"  # as the logits' report says it
    if math.isnan(o.baseline_ulp):  # the quick check and shards: no baseline, a correct kernel's worst case
        worst = f"{o.name}: worst error {_ulps(o.worst_ulp)} ulp"
        return f"{worst}; a correct kernel's worst case is {_ulps(o.allowed_ulp)}{beyond}"
    return (
        f"{o.name}: worst error {_ulps(o.worst_ulp)} ulp; a same-type computation's worst is "
        f"{_ulps(o.baseline_ulp)}, so up to {_ulps(o.allowed_ulp)} is allowed{beyond}"
    )


def _ulps(value: float) -> str:
    return "–" if math.isnan(value) else ulp_count(value)

