"""Signs no computation gets wrong, in a learner's function's answers (``sce test``).

A loss is never negative, and with labels, no smoothing and no z-loss each gradient entry is
p − y times factors ≥ 0: never positive at the label nor negative elsewhere, however rounded.
"""

from __future__ import annotations

import numpy as np

from sce.grading import catalogue
from sce.grading.answers import kept_signs, sign_flipped
from sce.grading.catalogue import Mistake
from sce.grading.implementations.mistaken_variants import Exact


def wrong_signs(arrays: dict[str, np.ndarray], exact: Exact) -> dict[str, np.ndarray]:
    """Each quantity's entries of a sign no computation gives (:func:`~sce.grading.answers.kept_signs`):
    a loss below 0, or for labels without smoothing or a z-loss a gradient entry positive at the
    label or negative elsewhere. Wrong however small: a confident row's p − 1 is allowed the
    rounding of the 1 it is formed from, where +5e-18 is a fraction of it."""
    found = {}
    for quantity, given in arrays.items():
        expected = exact.gradient if quantity == "gradient" else exact.loss
        kept = np.ones(np.shape(given)) if quantity == "loss" else None
        if quantity == "gradient" and exact.result is not None:
            kept = kept_signs(exact.result, quantity)
        values = np.asarray(given, dtype=np.float64)
        if kept is None or kept.size != values.size or np.shape(expected) != values.shape:
            found[quantity] = np.zeros(values.shape, dtype=bool)
            continue
        kept = np.reshape(kept, values.shape)
        with np.errstate(invalid="ignore"):
            found[quantity] = sign_flipped(values, np.asarray(expected, dtype=np.float64), np.zeros(values.shape), kept)
    return found


def sign_notes(quantity: str, flipped: np.ndarray, ratio: float) -> list[str]:
    """The note of a quantity wrong by its signs alone (its error within the allowance, ``ratio`` ≤ 1):
    none where it has no entry of a wrong sign, or is wrong besides (its error says so)."""
    if not flipped.any() or ratio > 1:
        return []
    why = "a loss is never negative" if quantity == "loss" else "p − 1 ≤ 0 at the label and p ≥ 0 elsewhere"
    return [f"{int(flipped.sum())} of {flipped.size} {quantity} entries of a sign no rounding gives ({why})"]


def with_negative_loss(named: list[Mistake], signs: dict[str, np.ndarray]) -> list[Mistake]:
    """``named``, or where it names nothing and a loss is below 0, the catalogue's negative loss
    (a gradient wrong only by its signs, or in a way no mistake names, beside it)."""
    negative = "loss" in signs and bool(signs["loss"].any())
    return named if named or not negative else [catalogue.NEGATIVE_LOSS]
