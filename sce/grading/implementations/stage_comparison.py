"""One stage of one case as a function returning the derivation's intermediates gave it."""

from __future__ import annotations

from dataclasses import dataclass

from sce.grading.catalogue import Mistake


@dataclass(frozen=True)
class StageComparison:
    """One stage of one case, compared with sce's exact value."""

    stage: str
    shape: tuple[int, ...] | None
    """The shape given (None when the value is not an array)."""
    expected_shape: tuple[int, ...]
    exact: bool = False
    close: bool = False
    max_difference: float | None = None
    allowance: float | None = None
    found: str = ""
    """What was given instead of an array (None, a string…)."""
    mistakes: tuple[Mistake, ...] = ()
    """The known mistakes that give the stage's numbers, where it is not close."""
    per_cap_factor: bool = False
    """The gradient under a softcap: its difference and allowance are per unit of the cap's factor, as
    ``--returns loss,grad`` judges it (an entry that lost its digits is not hidden by being tiny)."""

    @property
    def shape_ok(self) -> bool:
        return self.shape is not None and squeezed(self.shape) == squeezed(self.expected_shape)


def squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape without its axes of length 1: sums kept N×1 (``keepdims=True``) are the N sums."""
    return tuple(n for n in shape if n != 1)


__all__ = ["StageComparison", "squeezed"]
