"""Worksheets: exercises drawn from a seed, their exact answers, and wrong choices that are named mistakes.

A sheet is pure data. Its numbers come from numpy's ``Generator`` seeded with the
sheet's seed, so the same request gives the same sheet on every machine; they are
chosen to be pleasant to work by hand (small integers, or logits with one decimal),
and every exercise of a sheet shares its options (the level's smoothing, weights,
temperature, cap or z-loss, and the number of classes). The answers are the loss's
own (:func:`sce.loss.softmax_cross_entropy`, float64, each row's own loss); the
wrong choices of a multiple-choice question are what the catalogue's usual mistakes
give for those numbers (:func:`sce.grading.usual_mistakes`), each one named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sce.errors import OptionProblem
from sce.explain.derivation import Equation, Stage, build_derivation
from sce.explain.derivation.stages import RESULT
from sce.grading import Mistake, usual_mistakes
from sce.loss import SoftmaxCrossEntropyResult, softmax_cross_entropy
from sce.number_text import count_of, shown
from sce.options import LossOptions

#: The levels, from the plainest: each adds one thing to work through.
LEVELS: tuple[str, ...] = ("labels", "targets", "smoothing", "weights", "temperature", "language-model")
#: At most this many exercises on one sheet.
MAX_COUNT = 1000
#: The number of classes: at least 2 (a softmax of one class is always 1), at most what a page shows.
MIN_CLASSES, MAX_CLASSES = 2, 10
#: Without ``classes``, the sheet's number of classes is drawn from these.
DEFAULT_CLASSES = (3, 4, 5)
#: The options a multiple-choice question offers, the right one included (fewer where the
#: mistakes give fewer distinct answers).
CHOICE_COUNT = 4
#: Significant digits a choice is written with: the choices differ at these digits.
CHOICE_DIGITS = 4
#: The letters of the choices.
LETTERS = "ABCDEFGH"
#: Values left blank in one exercise's derivation.
BLANK_COUNT = 4


@dataclass(frozen=True)
class SheetRequest:
    """What a sheet is made of: how many exercises, the seed, the classes and the level.

    Examples
    --------
    >>> SheetRequest(count=0, seed=1)
    Traceback (most recent call last):
    ...
    sce.errors.OptionProblem: count: 0 exercises; give a count from 1 to 1,000
    """

    count: int
    seed: int
    classes: int | None = None
    level: str = "labels"
    choices: bool = False
    blanks: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_COUNT:
            raise OptionProblem("count", f"{count_of(self.count, 'exercise')}; give a count from 1 to {MAX_COUNT:,}")
        if self.seed < 0:
            raise OptionProblem("seed", f"{self.seed} is negative; give a seed of 0 or more")
        if self.classes is not None and not MIN_CLASSES <= self.classes <= MAX_CLASSES:
            raise OptionProblem(
                "classes",
                f"{count_of(self.classes, 'class', 'classes')}; a worksheet has {MIN_CLASSES} to {MAX_CLASSES} classes "
                "(one class has probability 1 and nothing to derive; more do not fit a page worked by hand)",
            )
        if self.level not in LEVELS:
            raise OptionProblem("level", f"no level {self.level!r}; the levels are {', '.join(LEVELS)}")


@dataclass(frozen=True)
class Choice:
    """One option of a multiple-choice question: a gradient, and the mistake that gives it (None: the right one)."""

    letter: str
    gradient: tuple[float, ...]
    mistake: Mistake | None = None

    @property
    def correct(self) -> bool:
        return self.mistake is None


@dataclass(frozen=True)
class Exercise:
    """One exercise: its logits and label (or targets), the exact result, its choices and its blanks."""

    number: int
    logits: tuple[float, ...]
    label: int | None
    targets: tuple[float, ...] | None
    result: SoftmaxCrossEntropyResult
    choices: tuple[Choice, ...] = ()
    derivation: tuple[Stage, ...] = ()
    """The derivation, as ``sce grad --steps`` shows it (:func:`sce.explain.derivation.build_derivation`),
    where the sheet has blanks."""
    blanks: tuple[float, ...] = ()
    """Values of the derivation left blank, in the order it reaches them: wherever one of these
    values is written, a blank stands."""

    @property
    def gradient(self) -> tuple[float, ...]:
        return tuple(float(value) for value in self.result.gradient[0])

    @property
    def loss(self) -> float:
        return float(self.result.losses[0])

    @property
    def right_letter(self) -> str | None:
        return next((choice.letter for choice in self.choices if choice.correct), None)


@dataclass(frozen=True)
class Sheet:
    """A worksheet: its request, the options every exercise shares, and the exercises."""

    request: SheetRequest
    classes: int
    options: LossOptions
    exercises: tuple[Exercise, ...]

    @property
    def has_targets(self) -> bool:
        return self.request.level == "targets"


def make_sheet(request: SheetRequest) -> Sheet:
    """The sheet ``request`` asks for: the same request gives the same sheet.

    Examples
    --------
    >>> sheet = make_sheet(SheetRequest(count=2, seed=7, classes=3))
    >>> [exercise.number for exercise in sheet.exercises], sheet.options.reduction
    ([1, 2], 'none')
    >>> one = sheet.exercises[0]
    >>> bool(np.isclose(sum(one.gradient), 0.0))  # s − y sums to 0
    True
    >>> again = make_sheet(SheetRequest(count=2, seed=7, classes=3))
    >>> [exercise.gradient for exercise in again.exercises] == [exercise.gradient for exercise in sheet.exercises]
    True
    """
    generator = np.random.default_rng(request.seed)
    classes = request.classes or int(generator.choice(DEFAULT_CLASSES))
    options = _shared_options(request.level, classes, generator)
    exercises = tuple(
        _exercise(number, request, classes, options, generator) for number in range(1, request.count + 1)
    )
    return Sheet(request, classes, options, exercises)


def _shared_options(level: str, classes: int, generator: np.random.Generator) -> LossOptions:
    """The options of every exercise of the sheet; each row's own loss (no reduction)."""
    if level == "smoothing":
        return LossOptions(reduction="none", label_smoothing=float(generator.choice([0.1, 0.2, 0.3])))
    if level == "weights":
        weights = generator.choice([0.5, 1.0, 1.5, 2.0], size=classes)
        return LossOptions(reduction="none", weight=tuple(float(w) for w in weights))
    if level == "temperature":
        return LossOptions(reduction="none", temperature=float(generator.choice([0.5, 2.0, 4.0])))
    if level == "language-model":
        return LossOptions(
            reduction="none",
            softcap=float(generator.choice([2.0, 5.0])),
            z_loss=float(generator.choice([0.01, 0.1])),
        )
    return LossOptions(reduction="none")


def _logits(level: str, classes: int, generator: np.random.Generator) -> tuple[float, ...]:
    """Small integers; one decimal where the level divides or caps them (temperature, language model)."""
    if level in ("temperature", "language-model"):
        tenths = generator.integers(-20, 31, size=classes)
        return tuple(float(tenth) / 10 for tenth in tenths)
    return tuple(float(value) for value in generator.integers(-3, 5, size=classes))


def _targets(classes: int, generator: np.random.Generator) -> tuple[float, ...]:
    """Probabilities in tenths, summing to 1 exactly in tenths: ten tenths dealt among the classes."""
    tenths = np.bincount(generator.integers(0, classes, size=10), minlength=classes)
    return tuple(float(tenth) / 10 for tenth in tenths)


def _exercise(
    number: int, request: SheetRequest, classes: int, options: LossOptions, generator: np.random.Generator
) -> Exercise:
    logits = _logits(request.level, classes, generator)
    label: int | None = None
    targets: tuple[float, ...] | None = None
    if request.level == "targets":
        targets = _targets(classes, generator)
        result = softmax_cross_entropy([logits], targets=[targets], options=options)
    else:
        label = int(generator.integers(0, classes))
        result = softmax_cross_entropy([logits], [label], options=options)
    exercise = Exercise(number, logits, label, targets, result)
    choices = _choices(exercise, generator) if request.choices else ()
    derivation = tuple(build_derivation(result)) if request.blanks else ()
    # With choices, the derivation would show the right one: the gradient's entries are blanks too.
    answers = exercise.gradient if request.choices else ()
    blanks = _blanks(derivation, generator, answers) if request.blanks else ()
    return Exercise(number, logits, label, targets, result, choices, derivation, blanks)


def _blanks(
    derivation: tuple[Stage, ...], generator: np.random.Generator, kept: tuple[float, ...] = ()
) -> tuple[float, ...]:
    """Up to :data:`BLANK_COUNT` results of the derivation's lines, after its setup, besides the values
    ``kept`` (blank whatever else is drawn): each a value a line computes, not a whole number (a 1 or
    a 0 stands in formulas for other reasons)."""
    computed: dict[float, None] = {}
    for stage in derivation[1:]:
        for item in stage.items:
            if not isinstance(item, Equation) or (found := RESULT.fullmatch(item.substituted)) is None:
                continue
            value = float(item.values[found.group("result")])
            if math.isfinite(value) and not value.is_integer():
                computed.setdefault(value)
    kept = tuple(dict.fromkeys(value for value in kept if math.isfinite(value) and not value.is_integer()))
    values = [value for value in computed if value not in kept]
    chosen = {values[index] for index in generator.permutation(len(values))[:BLANK_COUNT]} | set(kept)
    in_order = dict.fromkeys([*computed, *kept])  # the derivation's order, then any it does not compute
    return tuple(value for value in in_order if value in chosen)


def choice_text(gradient: tuple[float, ...] | np.ndarray) -> tuple[str, ...]:
    """A gradient as a choice writes it: each entry to :data:`CHOICE_DIGITS` significant digits,
    a whole number as one (the 0 of a class left out).

    Examples
    --------
    >>> choice_text((0.0900305731703805, -0.7552715289452516, 0.0))
    ('0.09003', '-0.7553', '0')
    """
    return tuple(shown(float(value), CHOICE_DIGITS) for value in gradient)


def _choices(exercise: Exercise, generator: np.random.Generator) -> tuple[Choice, ...]:
    """The right gradient and up to three named mistakes', each distinct at the digits shown, shuffled."""
    right = exercise.gradient
    seen = {choice_text(right)}
    candidates: list[Choice] = []
    targets = None if exercise.targets is None else [exercise.targets]
    for mistaken in usual_mistakes(exercise.result, targets):
        value = np.asarray(mistaken.value, dtype=np.float64)
        if mistaken.quantity != "gradient" or not np.isfinite(value).all():
            continue
        written = choice_text(value)
        if written in seen or any(mistaken.mistake == other.mistake for other in candidates):
            continue
        seen.add(written)
        candidates.append(Choice("", tuple(float(v) for v in value), mistaken.mistake))
    picked = [candidates[i] for i in sorted(generator.permutation(len(candidates))[: CHOICE_COUNT - 1])]
    offered = [Choice("", right), *picked]
    order = generator.permutation(len(offered))
    return tuple(
        Choice(LETTERS[place], offered[index].gradient, offered[index].mistake) for place, index in enumerate(order)
    )
