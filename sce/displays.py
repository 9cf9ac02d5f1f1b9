"""Rich displays (Jupyter's ``_repr_html_``) of values that know nothing of HTML, drawn by whoever can.

A loss result is made below the rendering layer and cannot import it; its ``_repr_html_`` asks here for the
drawing registered under its kind, which ``import sce`` registers (the table of :mod:`sce.render.notebook_html`).
Imports nothing: ``import sce`` stays fast.

Examples
--------
>>> register_html("example", lambda value: f"<b>{value}</b>")
>>> html_of("example", 3), html_of("nothing registered", 3)
('<b>3</b>', None)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_HTML: dict[str, Callable[[Any], str]] = {}


def register_html(kind: str, draw: Callable[[Any], str]) -> None:
    """Draw values of ``kind`` as HTML with ``draw``."""
    _HTML[kind] = draw


def html_of(kind: str, value: Any) -> str | None:
    """``value`` drawn as HTML, or None where nothing draws its kind (Jupyter then shows its repr)."""
    draw = _HTML.get(kind)
    return None if draw is None else draw(value)
