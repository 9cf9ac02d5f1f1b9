"""The options of ``sce exercise``, declared once as :mod:`.declarations` declares the others
(and registered in its table of every record, :data:`~.declarations.DECLARED`)."""

from __future__ import annotations

from typing import Annotated, Optional

from sce.cli.choices import ExerciseLevel, SheetFormat
from sce.cli.declared import FILES_PANEL, Declared

#: The panel of the worksheet's own options.
SHEET_PANEL = "The worksheet"

COUNT = Declared("count", ("--count", "-n"), "How many exercises (1 to 1,000).", SHEET_PANEL, show_default=False)
SHEET_SEED = Declared(
    "seed", ("--seed",), "The seed of the numbers: the same seed and options give the same bytes.", SHEET_PANEL,
    show_default=False, parameter="sheet_seed",
)
CLASSES = Declared(
    "classes", ("--classes", "-k"), "Classes per exercise, 2 to 10 (default: 3, 4 or 5, drawn from the seed).",
    SHEET_PANEL, show_default=False,
)
LEVEL = Declared(
    "level", ("--level",),
    "What the exercises add to the plain loss: labels, targets (soft targets), smoothing, weights, temperature, "
    "or language-model (a soft cap and a z-loss).",
    SHEET_PANEL,
)
SHEET_FORMAT = Declared(
    "sheet_format", ("--format", "-f"),
    "The worksheet's format: markdown (LaTeX math), or html (a printable page, MathML). Default: from -o's name "
    "(.md, .html), else markdown.",
    SHEET_PANEL, show_default=False,
)
CHOICES = Declared(
    "choices", ("--choices",),
    "Multiple choice: the right gradient among wrong ones, each a named usual mistake for those numbers.",
    SHEET_PANEL, show_default=False,
)
BLANKS = Declared(
    "blanks", ("--blanks",),
    "The derivation of each exercise (as sce grad --steps writes it) with chosen values left blank; "
    "their key in the answer key's blanks column.",
    SHEET_PANEL, show_default=False,
)
ANSWERS = Declared(
    "answers_path", ("--answers",),
    "The answer key's file: CSV in the columns sce check --csv reads, every answer at full precision. "
    "Written with the worksheet, both or neither.",
    FILES_PANEL, show_default=False, parameter="answers",
)

#: Every record of this module, for the table of every record.
EXERCISE_OPTIONS = (COUNT, SHEET_SEED, CLASSES, LEVEL, SHEET_FORMAT, CHOICES, BLANKS, ANSWERS)

CountOption = Annotated[Optional[int], COUNT.option()]
SheetSeedOption = Annotated[Optional[int], SHEET_SEED.option()]
ClassesOption = Annotated[Optional[int], CLASSES.option()]
LevelOption = Annotated[ExerciseLevel, LEVEL.option()]
SheetFormatOption = Annotated[Optional[SheetFormat], SHEET_FORMAT.option()]
ChoicesOption = Annotated[bool, CHOICES.option()]
BlanksOption = Annotated[bool, BLANKS.option()]
AnswersOption = Annotated[Optional[str], ANSWERS.option(metavar="KEY.csv")]
