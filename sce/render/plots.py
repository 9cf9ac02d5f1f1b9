"""Pictures (the ``sce[plot]`` extra, on matplotlib), the same bytes for the same numbers.

matplotlib is imported only here, and only when a picture is asked for. A figure is made
without pyplot (no global backend, nothing shown on a screen) under matplotlib's default
style, whatever the user's matplotlibrc says, with a fixed hash salt for the SVG's ids,
no date in the SVG's metadata and no time stamp in the PNG: the same command gives the
same bytes. Every artist a reader may want to find back carries a gid, which the SVG
writes as the id of its group (``p-bar-1``, ``gradient-bar-1``, ``loss-curve``,
``tangent``, …).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from sce.errors import UsageProblem

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The kinds of picture, by the file name's ending.
PICTURE_KINDS = {".svg": "svg", ".png": "png"}
MISSING_MATPLOTLIB = "drawing pictures needs matplotlib: pip install 'sce[plot]'"
#: matplotlib's SVG ids are hashes salted with this (else with a random salt per run).
HASH_SALT = "sce"
#: Dots per inch of a PNG.
PNG_DPI = 100

#: The largest magnitude a picture's axes place (matplotlib's transforms overflow long before 1e308), and
#: the reciprocal of the smallest positive value they place on a log scale.
AXIS_LIMIT = 1e150

PULLED_UP = "#2a9d50"  # a negative gradient entry: descent raises that logit
PUSHED_DOWN = "#d1495b"  # a positive one: descent lowers it
NEUTRAL = "#4878a8"
ACCENT = "#e08a00"


def picture_kind(path: str) -> str | None:
    """``svg`` or ``png`` from the file name's ending (any case), else None.

    Examples
    --------
    >>> picture_kind("loss.SVG"), picture_kind("out/grad.png"), picture_kind("grad.pdf")
    ('svg', 'png', None)
    """
    for suffix, kind in PICTURE_KINDS.items():
        if path.lower().endswith(suffix):
            return kind
    return None


def require_matplotlib() -> None:
    """Raise :class:`~sce.errors.UsageProblem` naming the extra to install where matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageProblem(MISSING_MATPLOTLIB) from None
    except Exception as error:  # matplotlib's own start-up: MPLBACKEND or a matplotlibrc it refuses
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageProblem(
            f"matplotlib, which draws the pictures, does not start: {first}; check MPLBACKEND and your matplotlibrc"
        ) from None


@contextmanager
def fixed_style() -> Iterator[None]:
    """matplotlib's default style and the settings that make its output the same bytes each run."""
    require_matplotlib()
    import matplotlib
    from matplotlib import style

    settings: Any = {"svg.hashsalt": HASH_SALT, "svg.fonttype": "path", "font.family": "DejaVu Sans"}
    with style.context("default"), matplotlib.rc_context(settings):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure of its own (no pyplot: no backend is chosen, no window opened), laid out by matplotlib."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def figure_bytes(figure: Figure, kind: str) -> bytes:
    """The figure as SVG or PNG bytes, with no date or time in them (call inside :func:`fixed_style`)."""
    buffer = io.BytesIO()
    metadata: dict[str, Any] = {"Date": None} if kind == "svg" else {}
    figure.savefig(buffer, format=kind, metadata=metadata, dpi=PNG_DPI)
    return buffer.getvalue()


def svg_element(svg: str) -> str:
    r"""The ``<svg>`` element alone, without the XML declaration and DOCTYPE before it, to put inside an
    HTML page (where a second declaration would be an error).

    Examples
    --------
    >>> svg_element('<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg width="1pt"></svg>\n')
    '<svg width="1pt"></svg>\n'
    """
    return svg[svg.index("<svg"):]


def bars(axes: Any, values: np.ndarray, colours: list[str], gids: list[str]) -> None:
    """One bar per value, each with its own gid, in the given colours."""
    drawn = axes.bar(np.arange(len(values)), values, color=colours, width=0.7)
    for patch, gid in zip(drawn.patches, gids):
        patch.set_gid(gid)


def class_ticks(axes: Any, classes: tuple[int, ...]) -> None:
    """Class indices under the bars, thinned to at most 25 labels."""
    step = max(1, -(-len(classes) // 25))
    axes.set_xticks(np.arange(0, len(classes), step), [str(k) for k in classes[::step]])
    axes.set_xlim(-0.6, len(classes) - 0.4)
    axes.set_xlabel("class")
