"""``--plot FILE``: the picture's file checked before anything is computed, and written whole."""

from __future__ import annotations

import os
from collections.abc import Callable

from sce.cli.commandline import say_warning
from sce.errors import OptionProblem


def check_plot_path(path: str) -> str:
    """The picture's kind (``svg`` or ``png``) from the file's name, once matplotlib is known
    to be there: both refused in one line before anything is computed."""
    from sce.render.plots import picture_kind, require_matplotlib

    kind = picture_kind(path)
    if kind is None:
        named = f"{path} is not" if path else "an empty name is not"
        raise OptionProblem(
            "plot_path", f"{named} a picture's file name: end it in .svg or .png, e.g. grad.svg"
        )
    if os.path.isdir(path):
        example = os.path.join(path, "grad." + kind)
        raise OptionProblem("plot_path", f"{path} is a folder; name a file in it, e.g. {example}")
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
