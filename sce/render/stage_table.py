"""`sce test --returns stages`: each stage compared over the cases, as a ``cmp`` prints it, and as JSON."""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from sce.grading.implementations.report import CaseResult, ImplementationReport
from sce.grading.implementations.stage_comparison import StageComparison
from sce.grading.stages import STAGES
from sce.number_text import display, json_number


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def _difference(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "∞"
    return "0" if value == 0 else display(value, 2)


def _worst(differences: list[float]) -> float | None:
    if not differences:
        return None
    if any(math.isnan(d) for d in differences):
        return math.nan
    return max(differences)


def stages_table(report: ImplementationReport) -> Table | None:
    """One row per stage returned: in how many cases it is exact and close, its largest difference
    from sce's exact value over the cases, and its shape (a row function's: one row's)."""
    by_stage: dict[str, list[StageComparison]] = {}
    for case in report.cases:
        for one in case.stages:
            by_stage.setdefault(one.stage, []).append(one)
    if not by_stage:
        return None
    total = len(report.cases)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name, justify in (("stage", "left"), ("exact", "right"), ("close", "right"), ("max difference", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("shape")
    for stage in STAGES:
        if stage not in by_stage:
            continue
        compared = by_stage[stage]
        exact = sum(c.exact and c.shape_ok for c in compared)
        close = sum(c.close and c.shape_ok for c in compared)
        fitting = [c.max_difference for c in compared if c.shape_ok and c.max_difference is not None]
        unfit = next((c for c in compared if not c.shape_ok), None)
        if unfit is None:
            shape = Text("✓", style="green")
        else:
            found = unfit.found or _shape(unfit.shape or ())
            shape = Text(f"✗ {found}; expected {_shape(unfit.expected_shape)}", style="bold red")
        table.add_row(stage, f"{exact} of {total}", f"{close} of {total}", _difference(_worst(fitting)), shape)
    return table


def stages_document(case: CaseResult) -> list[dict[str, Any]]:
    """A case's stages for JSON: exact, close, the largest difference and its allowance, the shapes."""
    return [
        {
            "stage": c.stage,
            "exact": c.exact and c.shape_ok,
            "close": c.close and c.shape_ok,
            "max_difference": None if c.max_difference is None else json_number(c.max_difference),
            "allowance": None if c.allowance is None else json_number(c.allowance),
            "shape": None if c.shape is None else list(c.shape),
            "expected_shape": list(c.expected_shape),
            "shape_ok": c.shape_ok,
            **({"found": c.found} if c.found else {}),
        }
        for c in case.stages
    ]


__all__ = ["stages_document", "stages_table"]
