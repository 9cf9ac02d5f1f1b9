"""The picture of ``sce grad --plot``: the probabilities and the signed gradient as bars, the
loss and its slope along the label's logit with the tangent at the given point, and, with a
temperature, the probabilities over a range of temperatures.

:func:`grad_figure_svg` gives the SVG text another page embeds; :func:`grad_picture` the
bytes of a file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sce.errors import UsageProblem
from sce.explain.curves import (
    LogitCurve,
    TemperatureSweep,
    curve_class,
    loss_along_logit,
    probabilities_over_temperature,
)
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import display, given
from sce.render.plots import (
    ACCENT,
    AXIS_LIMIT,
    NEUTRAL,
    PULLED_UP,
    PUSHED_DOWN,
    bars,
    class_ticks,
    figure_bytes,
    fixed_style,
    new_figure,
    svg_element,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Up to this many classes, one bar each; beyond, the label's and the most probable, SHOWN_OF_MANY in all.
BAR_LIMIT = 40
SHOWN_OF_MANY = 25
#: Lines of the temperature panel: the label's class and the most probable ones.
TEMPERATURE_LINES = 8
#: The other classes' lines: matplotlib's own colours, less its orange (the target's).
LINE_COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")


def plot_refusal(result: SoftmaxCrossEntropyResult) -> str | None:
    """Why no picture can be drawn of this result (one class, an ignored label, a
    masked label, an infinite loss), worded for the command line; None if it can."""
    rows = result.as_rows
    if rows.num_classes < 2:
        return "--plot needs 2 classes or more: with 1 class p = 1 and the loss is 0 whatever the logit"
    if rows.labels is not None and not rows.counted[0]:
        return (
            f"--plot: label {int(rows.labels[0])} is the ignore index, so the loss is 0 whatever the logits "
            "and there is nothing to draw; give a class index"
        )
    klass = curve_class(result)
    if not np.isfinite(rows.logits[0, klass]):
        return (
            f"--plot draws the loss along z_{klass}, the target's logit, which is -inf (a masked class); "
            "give it a value"
        )
    loss = rows.reported_loss()
    if np.isnan(loss):
        return "--plot: the loss is NaN (a mean over a weight of 0), so there is no curve to draw"
    if not np.isfinite(loss):
        return "--plot: the loss is infinite (a target class with probability 0), so there is no curve to draw"
    return None


def shown_classes(result: SoftmaxCrossEntropyResult) -> tuple[int, ...]:
    """Every class up to BAR_LIMIT; beyond, the target's and the most probable, SHOWN_OF_MANY in all, by index.

    Examples
    --------
    >>> from sce import softmax_cross_entropy
    >>> shown_classes(softmax_cross_entropy([[2.0, 3.0, 4.0]], [1]))
    (0, 1, 2)
    >>> many = softmax_cross_entropy([np.arange(1000.0)], [3])
    >>> shown = shown_classes(many)
    >>> len(shown), shown[:2], shown[-1]
    (25, (3, 976), 999)
    """
    rows = result.as_rows
    if rows.num_classes <= BAR_LIMIT:
        return tuple(range(rows.num_classes))
    klass = curve_class(result)
    # Stable, from the highest: of equal probabilities the lowest index comes first.
    probable = np.argsort(-rows.probabilities[0], kind="stable")[: SHOWN_OF_MANY]
    chosen = [klass, *(int(k) for k in probable if k != klass)][:SHOWN_OF_MANY]
    return tuple(sorted(chosen))


def grad_plot_note(result: SoftmaxCrossEntropyResult) -> str | None:
    """One line saying what a picture of many classes shows instead of every bar, or None."""
    rows = result.as_rows
    if rows.num_classes <= BAR_LIMIT:
        return None
    shown = shown_classes(result)
    rest = 1.0 - float(rows.probabilities[0, list(shown)].sum())
    return (
        f"--plot: {rows.num_classes:,} classes are too many for a bar each: the bars show {len(shown)} "
        f"(the target's class and the most probable; the other classes' p add up to {display(max(rest, 0.0), 3)})"
    )


def out_of_reach(curve: LogitCurve, sweep: TemperatureSweep | None) -> str | None:
    """Why the curves cannot be placed on a picture's axes (a value beyond AXIS_LIMIT, or
    infinite), worded for the command line; None if they can."""
    c = curve.klass
    for name, values in (
        (f"the range of z_{c}", curve.logits),
        (f"the loss along z_{c}", curve.losses),
        (f"∂L/∂z_{c} along z_{c}", curve.slopes),
    ):
        largest = float(np.max(np.abs(values)))
        if not largest <= AXIS_LIMIT:
            return (
                f"--plot: {name} reaches {display(largest, 2)}, beyond the {display(AXIS_LIMIT, 1)} "
                "a picture's axes can place; leave out --plot for the numbers"
            )
    temperatures = (1.0, 1.0) if sweep is None else (float(sweep.temperatures.min()), float(sweep.temperatures.max()))
    if not 1 / AXIS_LIMIT <= temperatures[0] <= temperatures[1] <= AXIS_LIMIT:
        return (
            f"--plot: temperatures from T/8 to 8·T reach beyond the {display(1 / AXIS_LIMIT, 1)} to "
            f"{display(AXIS_LIMIT, 1)} a picture's axes can place; leave out --plot for the numbers"
        )
    return None


def grad_figure(result: SoftmaxCrossEntropyResult, digits: int = 5) -> Figure:
    """The figure of a one-row result (call inside :func:`~sce.render.plots.fixed_style`)."""
    rows = result.as_rows
    classes = shown_classes(result)
    curve = loss_along_logit(result)
    sweep = None
    if rows.options.temperature != 1.0:
        sweep = probabilities_over_temperature(result, temperature_classes(result, classes))
    refusal = out_of_reach(curve, sweep)
    if refusal is not None:
        raise UsageProblem(refusal)
    figure = new_figure(10.0, 10.5 if sweep is not None else 7.0)
    grid = figure.add_gridspec(3 if sweep is not None else 2, 2)
    draw_probability_bars(figure.add_subplot(grid[0, 0]), rows, classes, curve.klass)
    draw_gradient_bars(figure.add_subplot(grid[0, 1]), rows, classes)
    draw_loss_curve(figure.add_subplot(grid[1, 0]), curve, digits)
    draw_slope_curve(figure.add_subplot(grid[1, 1]), curve, digits)
    if sweep is not None:
        draw_temperature_sweep(figure.add_subplot(grid[2, :]), sweep, curve.klass)
    if rows.num_classes > BAR_LIMIT:
        figure.suptitle(f"{len(classes)} of {rows.num_classes:,} classes: the target's and the most probable")
    return figure


def grad_figure_svg(result: SoftmaxCrossEntropyResult, digits: int = 5, embedded: bool = False) -> str:
    """The picture of ``sce grad --plot`` as SVG text, to embed in a page: the whole file, or with
    ``embedded`` the ``<svg>`` element alone, for inside an HTML page.

    Raises :class:`~sce.errors.UsageProblem` where matplotlib is missing, or where
    :func:`plot_refusal` says no picture can be drawn.

    Examples
    --------
    >>> from sce import softmax_cross_entropy
    >>> svg = grad_figure_svg(softmax_cross_entropy([[2.0, 3.0, 4.0]], [1], reduction="none"))
    >>> svg.startswith("<?xml"), 'id="tangent"' in svg
    (True, True)
    """
    svg = grad_picture(result, "svg", digits).decode("utf-8")
    return svg_element(svg) if embedded else svg


def grad_picture(result: SoftmaxCrossEntropyResult, kind: str, digits: int = 5) -> bytes:
    """The picture of ``sce grad --plot`` as the bytes of an ``svg`` or ``png`` file."""
    refusal = plot_refusal(result)
    if refusal is not None:
        raise UsageProblem(refusal)
    with fixed_style():
        return figure_bytes(grad_figure(result, digits), kind)


def temperature_classes(result: SoftmaxCrossEntropyResult, classes: tuple[int, ...]) -> tuple[int, ...]:
    """Of the shown classes, the target's and the most probable, TEMPERATURE_LINES in all, by index."""
    rows = result.as_rows
    klass = curve_class(result)
    by_probability = sorted(classes, key=lambda k: (-rows.probabilities[0, k], k))
    return tuple(sorted([klass, *(k for k in by_probability if k != klass)][:TEMPERATURE_LINES]))


def draw_probability_bars(axes: Any, rows: SoftmaxCrossEntropyResult, classes: tuple[int, ...], klass: int) -> None:
    values = rows.probabilities[0, list(classes)].astype(np.float64)
    colours = [ACCENT if k == klass else NEUTRAL for k in classes]
    bars(axes, values, colours, [f"p-bar-{k}" for k in classes])
    class_ticks(axes, classes)
    axes.set_ylim(0.0, 1.0)
    axes.set_title(f"softmax p (orange: class {klass}, the target's)")


def draw_gradient_bars(axes: Any, rows: SoftmaxCrossEntropyResult, classes: tuple[int, ...]) -> None:
    values = rows.gradient[0, list(classes)].astype(np.float64)
    colours = [PULLED_UP if value < 0 else PUSHED_DOWN for value in values]
    bars(axes, values, colours, [f"gradient-bar-{k}" for k in classes])
    axes.axhline(0.0, color="black", linewidth=0.8, gid="gradient-zero")
    class_ticks(axes, classes)
    reach = max(1.0, float(np.max(np.abs(values)))) * 1.05
    axes.set_ylim(-reach, reach)
    axes.set_title("∂L/∂z: descent raises the green logits, lowers the red")


def draw_loss_curve(axes: Any, curve: LogitCurve, digits: int) -> None:
    c, at = curve.klass, given(curve.at, "float64")
    axes.plot(curve.logits, curve.losses, color=NEUTRAL, gid="loss-curve", label="L")
    width = (curve.logits[-1] - curve.logits[0]) / 5
    ends = np.array([curve.at - width, curve.at + width])
    tangent = curve.loss_at + curve.slope_at * (ends - curve.at)
    axes.plot(ends, tangent, color=ACCENT, linewidth=1.5, gid="tangent", label="tangent")
    axes.plot([curve.at], [curve.loss_at], "o", color="black", gid="point")
    axes.set_xlabel(f"$z_{{{c}}}$ (the other logits held)")
    axes.set_ylabel("loss L")
    axes.set_title(f"L along $z_{{{c}}}$; tangent at {at}: slope {display(curve.slope_at, digits)}")
    axes.legend(loc="upper right")


def draw_slope_curve(axes: Any, curve: LogitCurve, digits: int) -> None:
    c, at = curve.klass, given(curve.at, "float64")
    axes.plot(curve.logits, curve.slopes, color=NEUTRAL, gid="slope-curve")
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.plot([curve.at], [curve.slope_at], "o", color=ACCENT, gid="slope-point")
    axes.set_xlabel(f"$z_{{{c}}}$ (the other logits held)")
    axes.set_ylabel(f"$\\partial L/\\partial z_{{{c}}}$")
    axes.set_title(f"$\\partial L/\\partial z_{{{c}}}$ = {display(curve.slope_at, digits)} at {at}")


def draw_temperature_sweep(axes: Any, sweep: TemperatureSweep, klass: int) -> None:
    others = iter(LINE_COLOURS)
    for column, k in enumerate(sweep.classes):
        style = {"color": ACCENT, "linewidth": 2.0} if k == klass else {"color": next(others), "linewidth": 1.2}
        axes.plot(sweep.temperatures, sweep.probabilities[:, column], gid=f"p-of-T-{k}", label=f"$p_{{{k}}}$", **style)
    axes.axvline(sweep.at, color="black", linewidth=0.8, linestyle="--", gid="temperature")
    axes.set_xscale("log")
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("temperature T (dashed: the one given)")
    axes.set_ylabel("softmax p")
    axes.set_title("p = softmax(z / T) as T changes: low T sharpens, high T flattens")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
