"""What an output file's name says it holds, held against ``--format``: the name chooses the format
where ``--format`` is not given, and a ``--format`` the name contradicts is refused, in every command."""

from __future__ import annotations

import os

from sce.errors import UsageProblem

#: The format a file's suffix names (lower case); a suffix not here names none, and --format decides.
FORMAT_OF_SUFFIX = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".npz": "npz",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".ipynb": "notebook",
    ".svg": "svg",
    ".png": "png",
    ".pdf": "pdf",
}
#: The formats written into a file whose name says another: Gradescope's results are JSON.
_WRITTEN_AS = {"gradescope": "json"}


def named_format(path: str | None) -> str | None:
    """The format ``path``'s suffix names, or None (stdout, no suffix, or one that names no format).

    Examples
    --------
    >>> named_format("sheet.HTM"), named_format("key.csv"), named_format("notes.txt"), named_format("-")
    ('html', 'csv', None, None)
    """
    if path in (None, "", "-"):
        return None
    return FORMAT_OF_SUFFIX.get(os.path.splitext(path)[1].lower())


def format_of_output(path: str | None, chosen: str | None, flag: str = "-o") -> str | None:
    """``chosen`` (the ``--format`` given, or None) where given, else the format ``path``'s name says;
    None where neither says. A ``--format`` that contradicts the name is refused: a page named .md, or
    Markdown named .html, misleads whoever opens the file.

    Examples
    --------
    >>> format_of_output("page.html", None), format_of_output("page", "html"), format_of_output(None, None)
    ('html', 'html', None)
    >>> format_of_output("results.json", "gradescope")
    'gradescope'
    """
    named = named_format(path)
    if chosen is None or named is None or _WRITTEN_AS.get(chosen, chosen) == named:
        return chosen or named
    raise UsageProblem(
        f"{flag} {path}: its name says {named}, --format says {chosen}; make them agree, or leave --format out "
        "(the name chooses)"
    )


def example_name(stem: str, written: str) -> str:
    """A file name to suggest for a file written as ``written``: ``stem`` with that format's suffix.

    Examples
    --------
    >>> example_name("worksheet", "markdown"), example_name("gradebook", "gradescope")
    ('worksheet.md', 'gradebook.json')
    """
    suffix = {"markdown": ".md", "gradescope": ".json"}.get(written, f".{written}")
    return stem + suffix
