"""Named mistakes of fused linear cross-entropy kernels (filled in by the what-ifs)."""

from __future__ import annotations

from typing import Any

from sce.grading.linear.answers import LinearAnswer, LinearInputs
from sce.grading.linear.profiles import Profile
from sce.grading.linear.report import Report


def named_mistake(
    report: Report, inputs: LinearInputs, answer: LinearAnswer, profile: Profile, reference: dict[str, Any]
) -> Report:
    return report
