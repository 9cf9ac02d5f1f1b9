"""Material for teaching: worksheets of exercises with exact answer keys, as data.

Built from the loss (:mod:`sce.loss`) and the catalogue of mistakes
(:mod:`sce.grading`); nothing here prints or writes files: :mod:`sce.render`
writes the sheets.
"""

from sce.teaching.exercises import LEVELS, Choice, Exercise, Sheet, SheetRequest, make_sheet

__all__ = ["LEVELS", "Choice", "Exercise", "Sheet", "SheetRequest", "make_sheet"]
