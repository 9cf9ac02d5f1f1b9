"""One run of ``sce test``: load the function, run every case, grade each answer."""

from __future__ import annotations

from .cases import build_cases
from .grade import grade_case
from .loading import FunctionSpec
from .report import CaseResult, Configuration, ImplementationReport
from .runner import ChildRunner

#: After this many cases in a row time out, the rest are not run: the function hangs, and waiting helps no one.
TIMEOUTS_BEFORE_GIVING_UP = 2


def grade_implementation(spec: FunctionSpec, configuration: Configuration) -> ImplementationReport:
    """Run the battery on the function in a child process. Raises UnusableImplementation
    when the function cannot be loaded or called as configured."""
    cases = build_cases(configuration.seed, targets=configuration.targets)
    results: list[CaseResult] = []
    timeouts_in_a_row = 0
    with ChildRunner(spec, convention=configuration.convention, targets=configuration.targets,
                     returns=configuration.returns, framework=configuration.framework,
                     timeout=configuration.timeout) as runner:
        framework = runner.start()
        for index, case in enumerate(cases):
            if timeouts_in_a_row >= TIMEOUTS_BEFORE_GIVING_UP:
                results.append(CaseResult(case.name, False, None, None, None,
                                          f"not run: the {TIMEOUTS_BEFORE_GIVING_UP} cases before timed out"))
                continue
            outcome = runner.run(case)
            timeouts_in_a_row = timeouts_in_a_row + 1 if outcome.timed_out else 0
            results.append(grade_case(case, outcome, configuration, first=index == 0))
    return ImplementationReport(spec.text, framework, configuration, tuple(results))
