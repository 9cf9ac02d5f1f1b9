"""One run of ``sce test``: load the function, run every case, grade each answer."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from sce.grading import catalogue
from sce.grading.implementations.cases import build_cases, for_framework
from sce.grading.implementations.grade import grade_case
from sce.grading.implementations.loading import FunctionSpec
from sce.grading.implementations.report import CaseResult, Configuration, ImplementationReport
from sce.grading.implementations.runner import ChildRunner
from sce.grading.implementations.stage_answers import grade_stage_case

#: After this many cases in a row time out (or end the child process), the rest are
#: not run: the function hangs or crashes, and waiting for it helps no one.
CASES_LOST_BEFORE_GIVING_UP = 2


def grade_implementation(spec: FunctionSpec, configuration: Configuration) -> ImplementationReport:
    """Run the battery on the function in a child process. Raises UnusableImplementation
    when the function cannot be loaded or called as configured."""
    cases = build_cases(configuration.seed, targets=configuration.targets, options=configuration.loss)
    results: list[CaseResult] = []
    lost: list[str] = []  # how each of the latest cases in a row was lost: "timed out", "ended the process"
    with ChildRunner(
        spec,
        convention=configuration.convention,
        targets=configuration.targets,
        returns=configuration.returns,
        framework=configuration.framework,
        timeout=configuration.timeout,
        memory_limit=configuration.memory_limit,
    ) as runner:
        framework = runner.start()
        cases = for_framework(cases, framework)
        for index, case in enumerate(cases):
            if len(lost) >= CASES_LOST_BEFORE_GIVING_UP:
                how = lost[0] if len(set(lost)) == 1 else "timed out or ended the process"
                results.append(
                    CaseResult(case.name, False, None, None, None, f"not run: the {len(lost)} cases before {how}")
                )
                continue
            outcome = runner.run(case)
            if outcome.timed_out or outcome.process_ended:
                lost.append("timed out" if outcome.timed_out else "ended the process")
            else:
                lost = []
            grade = grade_stage_case if configuration.returns == "stages" else grade_case
            graded = grade(case, outcome, configuration, first=index == 0)
            extreme = case.overflow_prone or case.label_probability_underflows  # also where it raised
            results.append(replace(graded, output=outcome.output, overflow_prone=extreme))
    return ImplementationReport(spec.text, framework, configuration, tuple(settle_ambiguous_mistakes(results)))


def settle_ambiguous_mistakes(results: list[CaseResult]) -> list[CaseResult]:
    """Where a case's answer matches several mistakes, name the one that explains the most
    failing cases (every candidate of every case scored, not only the unambiguous ones): one
    diagnosis for all the cases it explains, not a different one on each."""
    counts = Counter(mistake for case in results for mistake in dict.fromkeys(case.candidates))
    nan_elsewhere = any(case.non_finite and not case.overflow_prone for case in results)
    settled = []
    for case in results:
        if nan_elsewhere and case.mistake in (catalogue.NO_MAX_SHIFT, catalogue.DIVIDED_BY_P):
            # NaN on ordinary logits too: extreme logits are not what is wrong (or not all).
            case = replace(case, mistake=None, candidates=())
        if len(case.candidates) > 1:
            likeliest = max(case.candidates, key=lambda mistake: counts.get(mistake, 0))  # ties: the first
            case = replace(case, mistake=likeliest)
        settled.append(case)
    return settled
