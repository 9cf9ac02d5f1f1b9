"""Reading a picture back from its SVG: the groups sce names (gids), the points of their paths, and
each axes' scale from its own tick marks and tick labels, so that a test can turn the drawn points
back into numbers without trusting the code that drew them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np

SVG = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def parse_svg(data: bytes | str) -> ET.Element:
    """The SVG's root, with the comments matplotlib writes before each text (the text itself)."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    parser.feed(data if isinstance(data, bytes) else data.encode())
    return parser.close()


def groups(root: ET.Element) -> dict[str, ET.Element]:
    return {group.get("id", ""): group for group in root.iter(f"{SVG}g") if group.get("id")}


def path_points(group: ET.Element) -> np.ndarray:
    """The (x, y) points of the first path in the group, in the SVG's coordinates (y down)."""
    path = next(group.iter(f"{SVG}path"))
    numbers = [float(n) for n in NUMBER.findall(path.get("d", ""))]
    return np.array(numbers).reshape(-1, 2)


def marker_point(group: ET.Element) -> tuple[float, float]:
    """Where a marker (a <use> of a symbol) is drawn."""
    use = next(group.iter(f"{SVG}use"))
    return float(use.get("x", "nan")), float(use.get("y", "nan"))


def axes_holding(root: ET.Element, gid: str) -> ET.Element:
    """The axes group that holds the group ``gid``."""
    for axes in root.iter(f"{SVG}g"):
        if (axes.get("id") or "").startswith("axes_") and any(g.get("id") == gid for g in axes.iter(f"{SVG}g")):
            return axes
    raise KeyError(gid)


def tick_label_value(text: str) -> float:
    """A tick label as matplotlib writes it: '−0.5' with a minus sign, or '$\\mathdefault{10^{1}}$'."""
    text = text.strip().replace("\u2212", "-")
    power = re.fullmatch(r"\$\\mathdefault\{(-?\d+)\^\{(-?\d+)\}\}\$", text)
    if power:
        return float(power.group(1)) ** float(power.group(2))
    return float(text.strip("$").replace("\\mathdefault{", "").rstrip("}"))


def ticks(axes: ET.Element, axis: str) -> list[tuple[float, float]]:
    """(position in the SVG, value of its label) of each labelled tick of the axis 'x' or 'y'."""
    found = []
    for group in axes.iter(f"{SVG}g"):
        if not (group.get("id") or "").startswith(f"{axis}tick_"):
            continue
        use = next(group.iter(f"{SVG}use"))
        comments = [node.text for node in group.iter() if node.tag is ET.Comment and node.text]
        if comments and comments[0].strip():
            position = float(use.get("x" if axis == "x" else "y", "nan"))
            found.append((position, tick_label_value(comments[0])))
    return found


def scale(axes: ET.Element, axis: str, log: bool = False):
    """The function from the axis' SVG coordinate to its value, fitted to the tick labels."""
    marks = ticks(axes, axis)
    positions = np.array([p for p, _ in marks])
    values = np.array([v for _, v in marks])
    if log:
        values = np.log10(values)
    slope, intercept = np.polyfit(positions, values, 1)
    residual = np.max(np.abs(slope * positions + intercept - values))
    assert residual < 1e-6 * max(1.0, float(np.max(np.abs(values)))), f"the {axis} ticks are not on a line"
    if log:
        return lambda position: 10 ** (slope * np.asarray(position) + intercept)
    return lambda position: slope * np.asarray(position) + intercept
