"""The pictures in the docs are what their documented commands draw today: the same bytes with the matplotlib that
drew them; with another (which lays text, and so the axes, out its own way), the same elements drawn with the same
number of points each."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.svg_reading import groups, parse_svg, path_points

matplotlib = pytest.importorskip("matplotlib", reason="the plot extra (pip install 'sce[plot]') draws the pictures")

DOCS = Path(__file__).resolve().parent.parent / "docs"

# (page, the command shown on it, the file it writes, the picture committed under docs/)
PICTURES = [
    ("commands/grad.md", "sce grad 2 3 4 --label 1 --temperature 2 --plot grad.svg --format csv", "grad.svg",
     "pictures/grad.svg"),
    ("commands/batch.md", "sce batch batch.csv -o scored.csv --plot batch.svg --quiet", "batch.svg",
     "pictures/batch.svg"),
]


def drawn(svg: bytes) -> dict[str, int]:
    """Every element sce names, with the number of points of its path."""
    found = groups(parse_svg(svg))
    return {
        gid: len(path_points(group))
        for gid, group in found.items()
        if re.match(r"(p-bar|gradient-bar|loss-bin|p-of-T)-|tangent$|loss-curve$|slope-curve$", gid)
    }


@pytest.mark.parametrize(("page", "command", "written", "picture"), PICTURES, ids=[p[3] for p in PICTURES])
def test_a_docs_picture_is_what_its_command_draws_today(tmp_path, page, command, written, picture):
    text = (DOCS / page).read_text(encoding="utf-8")
    assert f"$ {command}" in text, f"{page} no longer shows {command}"
    assert f"](../{picture})" in text, f"{page} no longer shows {picture}"
    run = [sys.executable, "-m", "sce"]
    subprocess.run([*run, "samples", "."], cwd=tmp_path, check=True, capture_output=True)
    subprocess.run([*run, *command.split()[1:]], cwd=tmp_path, check=True, capture_output=True)
    today, committed = (tmp_path / written).read_bytes(), (DOCS / picture).read_bytes()
    if f"Matplotlib v{matplotlib.__version__},".encode() in committed:
        assert today == committed, f"redraw it: cd docs/pictures && {command} (after sce samples .)"
    else:  # another matplotlib lays text out its own way: what is drawn must still be the same
        assert drawn(today) == drawn(committed)
