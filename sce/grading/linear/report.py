"""The report of a fused linear cross-entropy check: a verdict, and each output's errors."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: The outputs graded, in the order reported.
OUTPUTS = ("loss", "grad_hidden", "grad_classifier", "grad_bias")


@dataclass(frozen=True)
class OutputReport:
    """One output's errors in ulps of its own type, against what is allowed."""

    name: str
    dtype: str
    passed: bool
    worst_ulp: float
    """The answer's worst error, in ulps of its type at the operands' size."""
    allowed_ulp: float
    """The worst error allowed: 4× the baseline's worst + a margin (+ the reference's own bound,
    where it decided past the cap of exact entries: ``decided_by``)."""
    baseline_ulp: float
    """The same-type baseline's worst error."""
    rms_ulp: float
    allowed_rms_ulp: float
    worst_entry: tuple[int, ...] | None
    """Where the worst error is (row, column), (class,) for the bias, () for a reduced loss."""
    expected: float | None
    given: float | None
    reference_ulp: float = 0.0
    """A bound on the reference's own error, in the same ulps."""
    decided_by: str = "bound"
    """"bound": the reference's bound could not change the verdict; "exact": entries it could not
    decide were recomputed exactly; "bound_past_cap": too many to recompute, so the allowance is
    widened by ``reference_ulp`` (see ``Report.exact``)."""
    recomputed: int = 0
    """Entries of this output recomputed exactly."""

    @property
    def against_reference(self) -> tuple[float, float]:
        """The worst and typical errors allowed against a float64 result only as exact as the
        reference's bound (a mistake's what-if): the allowances widened by it, unless they are."""
        widen = 0.0 if self.decided_by == "bound_past_cap" else self.reference_ulp
        return self.allowed_ulp + widen, self.allowed_rms_ulp + widen

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["worst_entry"] = None if self.worst_entry is None else list(self.worst_entry)
        return {key: _json_safe(value) for key, value in found.items()}

    def __post_init__(self) -> None:
        # The typical error is a root-mean-square over every entry: one entry off by infinitely many
        # ulps (not finite where the truth is) makes it infinite, not the mean of the finite ones.
        if math.isinf(self.worst_ulp) and math.isfinite(self.rms_ulp):
            object.__setattr__(self, "rms_ulp", math.inf)


@dataclass(frozen=True)
class Report:
    """What :func:`sce.testing.check_linear_cross_entropy` found.

    ``passed`` and ``verdict`` ("correct" or "not_correct") say whether every output given is as
    accurate as its type allows; ``mistake`` names the mistake where one explains the errors;
    ``profile`` and ``mode`` say how it was checked; ``summary`` is the verdict in one line; the
    outputs' own reports say how far off each is. ``to_dict()`` is JSON-safe (infinities and NaN as strings).
    """

    passed: bool
    verdict: str
    worst_ulp: float
    mistake: str | None
    profile: str
    mode: str
    loss: OutputReport | None = None
    grad_hidden: OutputReport | None = None
    grad_classifier: OutputReport | None = None
    grad_bias: OutputReport | None = None
    fix: str | None = None
    """How to fix the mistake named, where one is."""
    quick: dict[str, Any] | None = None
    """In quick mode: the seed, the rows compared whole, the number of projections, and the
    chance (``miss_probability``) that an error of a stated size went unseen, with its ``statement``."""
    exact: dict[str, Any] | None = None
    """In the full check: the entries recomputed exactly where the reference's bound could not
    decide a verdict (``recomputed``, ``by_output``), the ``cap``, the outputs decided past it by the
    bound (``past_cap``), and a ``statement``."""

    @property
    def outputs(self) -> list[OutputReport]:
        """The outputs given, in the order loss, grad_hidden, grad_classifier, grad_bias."""
        return [found for name in OUTPUTS if (found := getattr(self, name)) is not None]

    @property
    def summary(self) -> str:
        """The verdict in one line (the first line of an assertion's message, as on every sce
        report): what failed, by how much, and the mistake's name."""
        if self.passed:
            given = ", ".join(o.name for o in self.outputs) or "nothing"
            return f"correct: {given} within {_ulp(self.worst_ulp)} ulp (profile {self.profile}, {self.mode} check)"
        failed = [o for o in self.outputs if not o.passed]
        parts = ", ".join(f"{o.name} {_ulp(o.worst_ulp)} ulp > {_ulp(o.allowed_ulp)} allowed" for o in failed)
        named = f": {self.mistake}" if self.mistake else ""
        return f"not correct{named} ({parts}; profile {self.profile})"

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            key: _json_safe(getattr(self, key))
            for key in ("passed", "verdict", "summary", "worst_ulp", "mistake", "fix", "profile", "mode")
        }
        if self.quick is not None:
            found["quick"] = _json_safe(self.quick)
        if self.exact is not None:
            found["exact"] = _json_safe(self.exact)
        for name in OUTPUTS:
            output = getattr(self, name)
            found[name] = None if output is None else output.to_dict()
        return found

    def __str__(self) -> str:
        lines = [self.summary]
        for o in self.outputs:
            where = "" if o.worst_entry is None else f" at {list(o.worst_entry)}"
            if math.isnan(o.baseline_ulp):  # quick mode: no baseline, no typical error
                worst = f"worst {_ulp(o.worst_ulp)} ulp{where}"
                lines.append(f"  {o.name} ({o.dtype}): {worst} (allowed {_ulp(o.allowed_ulp)})")
                continue
            lines.append(
                f"  {o.name} ({o.dtype}): worst {_ulp(o.worst_ulp)} ulp{where} (allowed {_ulp(o.allowed_ulp)}, "
                f"baseline {_ulp(o.baseline_ulp)}); typical {_ulp(o.rms_ulp)} (allowed {_ulp(o.allowed_rms_ulp)})"
            )
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        if self.quick is not None:
            lines.append(f"  {self.quick['statement']}")
        if self.exact is not None and (self.exact["recomputed"] or self.exact["past_cap"]):
            lines.append(f"  exact: {self.exact['statement']}")
        return "\n".join(lines)


def _ulp(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)


def _json_safe(value: Any) -> Any:
    # numpy scalars (a seed or a count handed over by a caller) become Python's, so json.dumps takes them
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
