"""The picture of ``sce batch --plot``: the distribution of the rows' losses, and the gradient of the
first rows as a heat map (classes across, rows down; blue below 0, where descent raises the logit)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sce.batch.picture_rows import PictureRows
from sce.number_text import display
from sce.render.plots import AXIS_LIMIT, NEUTRAL, figure_bytes, fixed_style, new_figure, svg_element

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Bars of the loss histogram, at most.
HISTOGRAM_BINS = 60
FEWEST_BINS = 10


def batch_plot_note(kept: PictureRows) -> str | None:
    """One line saying what the picture shows instead of every row or class, or None."""
    parts = []
    if kept.rows > kept.heat_map_rows:
        parts.append(f"the heat map shows the first {kept.heat_map_rows:,} of {kept.rows:,} rows")
    if kept.classes > kept.heat_map_classes:
        parts.append(f"classes 0 to {kept.heat_map_classes - 1} of {kept.classes:,}")
    if kept.stride > 1:
        parts.append(f"the losses' histogram every {kept.stride:,}th counted row ({kept.losses().size:,} rows)")
    return None if not parts else "--plot: " + "; ".join(parts)


def batch_figure(kept: PictureRows) -> Figure:
    """The figure (call inside :func:`~sce.render.plots.fixed_style`)."""
    figure = new_figure(10.0, 4.8)
    grid = figure.add_gridspec(1, 2, width_ratios=(1, 1.2))
    draw_loss_histogram(figure.add_subplot(grid[0, 0]), kept)
    draw_gradient_heat_map(figure, figure.add_subplot(grid[0, 1]), kept)
    return figure


def batch_figure_svg(kept: PictureRows, embedded: bool = False) -> str:
    """The picture of ``sce batch --plot`` as SVG text: the whole file, or with ``embedded`` the
    ``<svg>`` element alone, for inside an HTML page."""
    svg = batch_picture(kept, "svg").decode("utf-8")
    return svg_element(svg) if embedded else svg


def batch_picture(kept: PictureRows, kind: str) -> bytes:
    """The picture of ``sce batch --plot`` as the bytes of an ``svg`` or ``png`` file."""
    with fixed_style():
        return figure_bytes(batch_figure(kept), kind)


def draw_loss_histogram(axes: Any, kept: PictureRows) -> None:
    losses = kept.losses()
    drawn = losses[np.abs(losses) <= AXIS_LIMIT]  # NaN and infinities fail the comparison too
    if drawn.size:
        bins = min(HISTOGRAM_BINS, max(FEWEST_BINS, int(np.sqrt(drawn.size))))
        top = float(drawn.max())
        edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)
        counts, _ = np.histogram(drawn, edges)
        bars = axes.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=NEUTRAL, edgecolor="white")
        for k, patch in enumerate(bars.patches):
            patch.set_gid(f"loss-bin-{k}")
        axes.axvline(float(drawn.mean()), color="black", linestyle="--", linewidth=1.0, gid="loss-mean")
    from matplotlib.ticker import MaxNLocator

    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("loss of a row (dashed: the mean)")
    axes.set_ylabel("rows")
    sampled = "" if kept.stride == 1 else f", every {kept.stride:,}th"
    title = f"per-row loss: {drawn.size:,} rows{sampled}"
    if drawn.size:
        title += f", mean {display(float(drawn.mean()), 4)}"
    infinite = int(np.isinf(losses).sum())
    beyond = losses.size - drawn.size - infinite
    notes = [f"{infinite:,} with an infinite loss"] if infinite else []
    notes += [f"{beyond:,} beyond {display(AXIS_LIMIT, 1)}"] if beyond else []
    notes += [f"{kept.ignored:,} ignored"] if kept.ignored else []
    if notes:
        title += "\n(" + ", ".join(notes) + ": not drawn)"
    axes.set_title(title)


def draw_gradient_heat_map(figure: Any, axes: Any, kept: PictureRows) -> None:
    gradient = kept.gradient
    finite = np.abs(gradient[np.isfinite(gradient)])
    reach = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    image = axes.imshow(
        gradient, cmap="RdBu_r", vmin=-reach, vmax=reach, aspect="auto", interpolation="none", gid="gradient-heat-map"
    )
    colour_bar = figure.colorbar(image, ax=axes)
    colour_bar.set_label("∂L/∂z (blue: descent raises the logit)")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("class")
    axes.set_ylabel("row")
    shown = f"first {gradient.shape[0]:,} of {kept.rows:,} rows" if kept.rows > gradient.shape[0] else "every row"
    axes.set_title(f"gradient, {shown}")
