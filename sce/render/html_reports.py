"""HTML: the grading commands' reports as printable pages, from the same verdicts the terminal shows.

``sce check``'s typed answers (:func:`check_page`) and ``sce test``'s report on an
implementation (:func:`implementation_page`): the tables and the lines of the terminal's report,
each text escaped (a learner's output, a function's name, an exception's message).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sce.grading import QuantityCheck
from sce.grading.gradebook import LearnerGrade
from sce.grading.implementations.captured import CapturedOutput
from sce.grading.implementations.report import CaseResult, ImplementationReport
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import DISPLAY_DIGITS
from sce.render.failing_case import cut_line, entry_table, loss_lines
from sce.render.gradebook import class_lines, gradebook_grid
from sce.render.html_format import logits_words, result_table_html
from sce.render.html_page import grid_html, lines_html, page, rich_table_html, text
from sce.render.implementation_report import loss_option_words, report_table, verdict_lines
from sce.render.stage_table import stages_table
from sce.render.typed_check import check_grid
from sce.render.typed_check import verdict_lines as check_verdict_lines
from sce.render.words import reduction_line


def check_html(
    checks: list[QuantityCheck],
    digits: int = DISPLAY_DIGITS,
    flag_of: Mapping[str, str] | None = None,
    *,
    reduction: str,
) -> str:
    """Typed answers graded, as HTML (no page around it): a table per quantity, then the verdict's lines."""
    tables = [grid_html(check_grid(check, digits)) for check in checks]
    lines = [line for line, _ in check_verdict_lines(checks, flag_of, reduction=reduction)]
    return "\n".join(tables) + "\n" + lines_html(lines) + "\n"


def check_page(
    result: SoftmaxCrossEntropyResult,
    checks: list[QuantityCheck],
    digits: int = DISPLAY_DIGITS,
    flag_of: Mapping[str, str] | None = None,
    *,
    reduction: str,
    figures: Sequence[str] = (),
) -> str:
    """``sce check``'s page: the answers graded, then the exact result they are graded against."""
    sections = [
        '<section class="verdict">\n<h2>Your answers</h2>\n'
        + check_html(checks, digits, flag_of, reduction=reduction)
        + "</section>",
        '<section class="result">\n<h2>The exact result</h2>\n' + result_table_html(result, digits) + "</section>",
    ]
    return page(f"Checked: {logits_words(result)}", sections, figures=figures)


def failing_case_html(case: CaseResult, flag_of: Mapping[str, str] | None = None) -> str:
    """A failing case: its message, its inputs with the expected and given entries, its loss, what it printed."""
    heading = f"✗ {case.name}" + (f": {case.worded_message(flag_of)}" if case.note else "")
    parts = ['<section class="case">', f'<h3 class="bad">{text(heading)}</h3>']
    if case.evidence is not None:
        parts.append(rich_table_html(entry_table(case.evidence)))
        cut = cut_line(case.evidence)
        parts.append(lines_html([*loss_lines(case.evidence), *([cut] if cut is not None else [])]))
    parts.append(output_html(case.output))
    parts.append("</section>")
    return "\n".join(part for part in parts if part)


def output_html(output: CapturedOutput) -> str:
    """What the function printed, each stream whole (as captured) and escaped."""
    parts = []
    for name, printed, left_out in (
        ("stdout", output.stdout, output.stdout_left_out),
        ("stderr", output.stderr, output.stderr_left_out),
    ):
        if not printed and not left_out:
            continue
        kept = f" ({left_out:,} more bytes not kept)" if left_out else ""
        parts.append(f'<p>What it wrote to {name}{kept}:</p>\n<pre class="output">{text(printed)}</pre>')
    return "\n".join(parts)


def implementation_page(
    report: ImplementationReport,
    flag_of: Mapping[str, str] | None = None,
    show_output: bool = False,
    figures: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """``sce test``'s page: every case, the stages returned, each failing case in full (every one,
    not only the terminal's first few), the other cases' output with ``show_output``, and the verdict
    with any ``notes`` (a hint) after it."""
    configuration = report.configuration
    options = "".join(f", {words}" for words in loss_option_words(report))
    subtitle = [
        f"{configuration.convention} convention, returns {configuration.returns}{options}, {report.framework}",
        reduction_line(configuration.loss_options().reduction),
    ]
    verdict = lines_html([*verdict_lines(report, flag_of), *notes])
    sections = [
        f'<section class="verdict">\n<h2>Verdict</h2>\n{verdict}\n</section>',
        '<section class="cases">\n<h2>Cases</h2>\n' + rich_table_html(report_table(report, flag_of)) + "</section>",
    ]
    stages = stages_table(report)
    if stages is not None:
        sections.append('<section class="stages">\n<h2>Stages</h2>\n' + rich_table_html(stages) + "</section>")
    failing = [failing_case_html(case, flag_of) for case in report.cases if not case.passed]
    if failing:
        sections.append('<section class="failing">\n<h2>Failing cases</h2>\n' + "\n".join(failing) + "\n</section>")
    printed = [case for case in report.cases if case.passed and case.output and show_output]
    if printed:
        blocks = "\n".join(f'<h3 class="ok">✓ {text(case.name)}</h3>\n{output_html(case.output)}' for case in printed)
        sections.append(f'<section class="output">\n<h2>What the function printed</h2>\n{blocks}\n</section>')
    return page(f"Tested: {report.function}", sections, subtitle=subtitle, figures=figures)


def gradebook_page(
    grades: list[LearnerGrade],
    column: str,
    flag_of: Mapping[str, str] | None = None,
    *,
    reduction: str,
    title: str = "Gradebook",
) -> str:
    """A class's gradebook as a page: one row per learner (each id escaped), then the class's counts
    and each mistake over the class with its fix."""
    table = grid_html(gradebook_grid(grades, column, flag_of))
    lines = lines_html(class_lines(grades, flag_of, reduction=reduction))
    return page(title, [f'<section class="gradebook">\n{table}\n{lines}\n</section>'])
