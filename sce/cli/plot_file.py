"""``--plot FILE``: the picture's file checked before anything is computed, and written whole."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from sce.cli.commandline import say_warning
from sce.errors import OptionDataProblem, OptionProblem


def check_plot_path(path: str) -> str:
    """The picture's kind (``svg`` or ``png``) from the file's name, once matplotlib is known
    to be there: both refused in one line before anything is computed."""
    from sce.render.plots import picture_kind, require_matplotlib

    kind = picture_kind(path)
    if kind is None:
        named = f"{path} is not" if path else "an empty name is not"
        raise OptionProblem(
            "plot_path", f"{named} a picture's file name: end it in .svg or .png, e.g. plot.svg"
        )
    if os.path.isdir(path):
        example = os.path.join(path, "plot." + kind)
        raise OptionProblem("plot_path", f"{path} is a folder; name a file in it, e.g. {example}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # said before a long run, not after it
        what = "is a file, not a folder:" if os.path.exists(folder) else "does not exist; create it, or"
        raise OptionDataProblem("plot_path", f"the folder {folder} {what} write the picture elsewhere")
    # sce draws in matplotlib's default style whatever the user's matplotlibrc says: its complaints
    # about that file (logged at import) would be raw lines on stderr about settings sce does not use.
    logging.getLogger("matplotlib").addHandler(logging.NullHandler())
    require_matplotlib()
    return kind


def write_picture(path: str, picture: Callable[[], bytes], input_path: str | None, note: str | None) -> None:
    """The picture ``picture()`` draws into ``path``, whole or not at all (an existing file is
    kept if anything fails, a signal included); ``note``, if any, says what it shows instead of everything."""
    from sce.batch.loop import write_whole_file
    from sce.io.signals import stopping_signals_handled
    from sce.io.writers.atomic import OutputTarget

    data = picture()
    if note is not None:
        say_warning(note)
    with stopping_signals_handled():
        write_whole_file(lambda: OutputTarget(path, input_path, field="plot_path", noun="picture"), data)


class BatchPicture:
    """``sce batch --plot FILE``: checked before the run (its name, matplotlib, and that it is
    neither the input, the output nor the summary), the rows kept during it, drawn after it."""

    def __init__(self, path: str, input_path: str | None, output: str | None, summary: str | None) -> None:
        from sce.batch.picture_rows import PictureRows
        from sce.io.writers.atomic import refuse_same_file

        self.path, self.kind = path, check_plot_path(path)
        if input_path not in (None, "-"):
            refuse_same_file(path, input_path, "plot_path", f"{path} is the input file; draw the picture elsewhere")
        for other, what in ((output, "the output"), (summary, "the summary")):
            if other not in (None, "-"):
                refuse_same_file(path, other, "plot_path", f"{path} is {what}'s file; draw the picture elsewhere")
        self.rows = PictureRows()

    def write(self, input_path: str | None) -> None:
        from sce.render.plot_batch import batch_picture, batch_plot_note

        note = batch_plot_note(self.rows)
        write_picture(self.path, lambda: batch_picture(self.rows, self.kind), input_path, note)
