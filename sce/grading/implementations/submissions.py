"""Many submissions at once (``sce test a.py:f b.py:f …``): each graded in its own child
process, into one gradebook row per file.

A row's score is the cases passed out of the battery's; its mistake, the one named on every
failing case (or the two named most, "more than one mistake"). A submission that cannot be
graded (no such file, an import that fails, no such function) is a row too, not the end of the run.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from sce.grading import verdicts
from sce.grading.gradebook import LearnerGrade
from sce.grading.implementations.cases import build_cases
from sce.grading.implementations.loading import UnusableImplementation
from sce.grading.implementations.report import Configuration, ImplementationReport

#: The address space each submission's child process may take: enough for numpy and the
#: battery's arrays many times over; a runaway allocation fails there, not on the machine.
MEMORY_LIMIT_BYTES = 2 << 30


def submissions(named: Sequence[str]) -> list[tuple[str, str]]:
    """Each submission as (its id, FILE.py:FUNCTION), in the order named: a glob (``subs/*.py:f``)
    or a folder (``subs:f``, its .py files) stands for the files it names, sorted. The id is the
    file, or FILE:FUNCTION where two submissions share a file.

    Raises ValueError for a glob that matches nothing, a folder without .py files, or a
    submission named twice."""
    found: list[tuple[str, str]] = []
    for text in named:
        where, colon, function = text.rpartition(":")
        if not colon or not where:
            found.append((text, text))
            continue
        if glob.has_magic(where):
            paths = sorted(glob.glob(where))
            if not paths:
                raise ValueError(f"{where}: no file matches; check the pattern and the folder")
        elif os.path.isdir(where):
            paths = sorted(str(path) for path in Path(where).glob("*.py"))
            if not paths:
                raise ValueError(f"{where} is a folder without .py files; name the submissions' folder")
        else:
            paths = [where]
        found += [(path, f"{path}:{function}") for path in paths]
    specs = [spec for _, spec in found]
    twice = next((spec for spec, count in Counter(specs).items() if count > 1), None)
    if twice is not None:
        raise ValueError(f"{twice} is named twice; name each submission once")
    files = Counter(path for path, _ in found)
    return [(spec if files[path] > 1 else path, spec) for path, spec in found]


def grade_submissions(
    named: Sequence[tuple[str, str]],
    configuration: Configuration,
    grade: Callable[[str, Configuration], ImplementationReport],
    workers: int | None = None,
) -> list[LearnerGrade]:
    """Every submission's grade, in the order named, graded ``workers`` at a time (default: one
    per core), each child process with at most :data:`MEMORY_LIMIT_BYTES`."""
    limited = replace(configuration, memory_limit=MEMORY_LIMIT_BYTES)
    cases = len(build_cases(configuration.seed, targets=configuration.targets, options=configuration.loss))

    def one(submission: tuple[str, str]) -> LearnerGrade:
        learner, spec = submission
        try:
            return learner_grade(learner, grade(spec, limited))
        except UnusableImplementation as problem:
            return LearnerGrade(learner, cases, cases, 0, verdicts.NOT_CORRECT, note=f"not graded: {problem.message}")

    pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)
    try:
        return list(pool.map(one, named))
    finally:  # on a signal, the submissions not begun are not begun; those under way end theirs
        pool.shutdown(cancel_futures=True)


def learner_grade(learner: str, report: ImplementationReport) -> LearnerGrade:
    """One submission's report as a gradebook row: the cases passed, and the mistake named on
    every failing case (``whole``), or the two named on the most."""
    passing = sum(case.passed for case in report.cases)
    failed = report.failed
    named = Counter(case.mistake for case in failed if case.mistake is not None)
    if report.verdict.value == verdicts.NOT_ROBUST:
        named = Counter({mistake: len(found) for mistake, found in report.range_failures.items()})
    mistakes = tuple(mistake for mistake, _ in named.most_common(2))  # ties: the first named
    whole = len(named) == 1 and sum(named.values()) == len(failed)
    total = len(report.cases)
    unnamed = next((case.message for case in failed if case.mistake is None and case.note), "")
    note = unnamed if failed and not mistakes else ""  # what went wrong where no mistake is named: a timeout…
    return LearnerGrade(learner, total, total, passing, report.verdict.value, mistakes, whole, note=note)
