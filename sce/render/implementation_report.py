"""`sce test`: the report on an implementation as a rich table, a verdict, or JSON."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sce.grading.implementations.captured import escaped
from sce.grading.implementations.report import CaseResult, ImplementationReport
from sce.grading.verdicts import Verdict
from sce.number_text import display, json_number
from sce.render.failing_case import SHOWN_IN_TERMINAL, evidence_document, failing_case_blocks, output_document
from sce.render.stage_table import stages_document, stages_table
from sce.render.words import reduction_line


def _ratio(case: CaseResult) -> str:
    ratio = case.error_ratio
    if ratio is None:
        return ""
    if math.isinf(ratio):
        return "nan" if case.max_error is not None and math.isnan(case.max_error) else "∞"
    return f"{ratio:.2g}×" if ratio >= 0.01 or ratio == 0 else "<0.01×"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return "0" if value == 0 else display(value, 1)


def report_table(report: ImplementationReport, flag_of: Mapping[str, str] | None = None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("case")
    table.add_column("result")
    table.add_column("error", justify="right")
    table.add_column("allowance", justify="right")
    table.add_column("error/allowance", justify="right")
    table.add_column("mistake or message")
    for case in report.cases:
        mark = Text("✓ pass", style="green") if case.passed else Text("✗ fail", style="bold red")
        error = _number(case.max_error)
        allowance = _number(case.allowance)
        note = case.mistake.worded_name(flag_of) if case.mistake is not None else escaped(case.worded_message(flag_of))
        table.add_row(case.name, mark, error, allowance, _ratio(case), note)
    return table


def verdict_lines(report: ImplementationReport, flag_of: Mapping[str, str] | None = None) -> list[Text]:
    total = len(report.cases)
    verdict = report.verdict
    if verdict is Verdict.correct:
        return [Text(f"verdict: correct ({total} of {total} cases pass)", style="bold green")]
    failed = len(report.failed)
    if verdict is Verdict.not_robust:
        their = "fails only for its" if failed == 1 else "fail only for their"
        lines = [
            Text(
                f"verdict: {verdict.words} ({total - failed} of {total} cases pass; {failed} {their} extreme logits)",
                style="bold yellow",
            )
        ]
        for mistake, cases in report.range_failures.items():
            names = ", ".join(f"“{case.name}”" for case in cases)
            where = "case" if len(cases) == 1 else "cases"
            lines.append(Text(f"not robust: {mistake.worded_name(flag_of)}, in {where} {names}"))
            lines.append(Text(f"  fix: {mistake.worded_fix(flag_of)}"))
        return lines
    lines = [Text(f"verdict: not correct ({failed} of {total} cases fail)", style="bold red")]
    fix = report.worded_fix_first(flag_of)
    if fix:
        lines.append(Text(f"fix first: {escaped(fix)}"))
    return lines


def details(report: ImplementationReport, flag_of: Mapping[str, str] | None = None, after: int = 0) -> list[Text]:
    """The full message of each failing case whose table cell shows only the mistake (from the
    failing case ``after`` on: those before it are shown in full, their message with them)."""
    shown = [case for case in report.failed if case.evidence is not None][:after]
    return [
        Text(f"  {case.name}: {escaped(case.worded_message(flag_of))}")
        for case in report.failed
        if case.mistake is not None and case.note and case not in shown
    ]


def loss_option_words(report: ImplementationReport) -> list[str]:
    """The loss's options that differ from the defaults, as the function is graded with them."""
    options = report.configuration.loss
    words = []
    if options.label_smoothing:
        words.append(f"smoothing {options.label_smoothing:g} ({options.smoothing_style})")
    if options.temperature != 1.0:
        words.append(f"temperature {options.temperature:g}")
    if options.softcap is not None:
        words.append(f"softcap {options.softcap:g}")
    if options.z_loss:
        words.append(f"z-loss {options.z_loss:g}")
    return words


def print_report(
    console: Console,
    report: ImplementationReport,
    flag_of: Mapping[str, str] | None = None,
    show_output: bool = False,
) -> None:
    """The report; options its texts name are worded by ``flag_of`` (the command
    line's flags), or without it as check_implementation's keywords. A failing case's
    output is shown with it; ``show_output`` shows every case's."""
    options = "".join(f", {words}" for words in loss_option_words(report))
    console.print(
        Text(
            f"{report.function} ({report.configuration.convention} convention, "
            f"returns {report.configuration.returns}{options}, {report.framework})",
            style="bold",
        )
    )
    console.print(report_table(report, flag_of))
    console.print()
    stages = stages_table(report)
    if stages is not None:
        console.print(stages)
        console.print()
    for block in failing_case_blocks(report.cases, flag_of, show_output):
        console.print(block)
    for line in details(report, flag_of, after=SHOWN_IN_TERMINAL):
        console.print(line)
    console.print(Text(reduction_line(report.configuration.loss_options().reduction)))
    for line in verdict_lines(report, flag_of):
        console.print(line)


def report_text(report: ImplementationReport, width: int = 120) -> str:
    """The report as plain text (for AssertionError messages)."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None, highlight=False)
    print_report(console, report)
    return console.export_text()


def report_document(report: ImplementationReport, flag_of: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "verdict": report.verdict.value,
        "passed": report.passed,
        "function": report.function,
        "reduction": report.configuration.loss_options().reduction,
        "options": {
            "label_smoothing": report.configuration.loss.label_smoothing,
            "smoothing_style": report.configuration.loss.smoothing_style,
            "temperature": report.configuration.loss.temperature,
            "softcap": report.configuration.loss.softcap,
            "z_loss": report.configuration.loss.z_loss,
        },
        "cases": [
            {
                "name": case.name,
                "passed": case.passed,
                "max_error": None if case.max_error is None else json_number(case.max_error),
                "allowance": None if case.allowance is None else json_number(case.allowance),
                "mistake": None if case.mistake is None else case.mistake.worded_name(flag_of),
                "message": case.worded_message(flag_of),
                "fails_only_in_range": case.fails_only_in_range,
                **evidence_document(case.evidence),
                "output": output_document(case.output),
                **({"stages": stages_document(case)} if report.configuration.returns == "stages" else {}),
            }
            for case in report.cases
        ],
        "mistakes": [mistake.worded_name(flag_of) for mistake in report.mistakes],
    }
