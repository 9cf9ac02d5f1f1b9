"""The printable page: one self-contained HTML5 file, its stylesheet and its building blocks.

A page carries everything it shows: the stylesheet inline (a print stylesheet in
it), the mathematics as MathML (converted from the LaTeX the Markdown format
writes), figures as inline SVG. It has no script and asks for nothing over the
network: no fonts, no images by URL; its Content-Security-Policy says so to the
browser too, so that even an SVG given to it cannot fetch or run anything.

Every text that is not the page's own (a learner's output, a function's name, a
mistake's wording, a file name) is escaped here, in :func:`text`.

Examples
--------
>>> text("<b>1 & 2</b>")
'&lt;b&gt;1 &amp; 2&lt;/b&gt;'
>>> math_html("s_1").startswith('<math display="inline">')
True
"""

from __future__ import annotations

import functools
import html
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sce.grading.implementations.captured import escaped
from sce.render.grid import Grid

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

#: What the page may load: its own inline styles and data: images, nothing else (no script, no request).
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLESHEET = """
:root { color-scheme: light; --ink: #1b1b1b; --rule: #c8c8c8; --good: #1a7f37; --bad: #b42318; --warn: #9a6700;
}
body { font-family: "DejaVu Serif", Georgia, "Times New Roman", serif; color: var(--ink); background: #fff;
  max-width: 52rem; margin: 2rem auto; padding: 0 1.5rem; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.15rem; margin-top: 1.6rem; }
header p { margin: 0.2rem 0; color: dimgray; }
math { font-family: math, "STIX Two Math", "Latin Modern Math", "DejaVu Serif", serif; font-size: 1.05em; }
math[display="block"] { margin: 0.35rem 0; overflow-x: auto; }
.equations { margin: 0.6rem 0 0.6rem 1.2rem; }
menclose[notation="box"] { border: 1px solid var(--ink); padding: 0.1em 0.15em; }
table { border-collapse: collapse; margin: 0.8rem 0; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: bold; padding-bottom: 0.3rem; }
th, td { padding: 0.2rem 0.45rem; border-bottom: 1px solid var(--rule); vertical-align: top; }
th { border-bottom: 2px solid var(--ink); font-weight: 600; white-space: nowrap; }
.right { text-align: right; } th { text-align: left; } th.right { text-align: right; }
.predicted td { font-weight: bold; }
.ok { color: var(--good); } .bad { color: var(--bad); font-weight: bold; }
.warn { color: var(--warn); font-weight: bold; }
.lines p { margin: 0.15rem 0; } .lines p.indented { margin-left: 1.5em; }
pre.output { background: #f6f6f6; border-left: 3px solid var(--rule); padding: 0.4rem 0.6rem; white-space: pre-wrap;
  overflow-wrap: anywhere; font-size: 0.9em; }
pre.report { font-family: "DejaVu Sans Mono", monospace; font-size: 0.8em; line-height: 1.3; white-space: pre; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 0.9em; }
figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; }
footer { margin-top: 2rem; color: dimgray; font-size: 0.85em; border-top: 1px solid var(--rule); }
@page { margin: 16mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10.5pt; }
  h2 { break-after: avoid-page; }
  table, figure, .equations, section.case { break-inside: avoid-page; }
  pre.output { white-space: pre-wrap; }
}
"""


def text(value: str) -> str:
    """``value`` as HTML text: control characters written as ``\\xNN`` (as the terminal shows
    them), then ``<``, ``>``, ``&`` and quotes escaped."""
    return html.escape(value if value.isprintable() else escaped(value), quote=True)  # printable: nothing to escape


def math_html(latex: str, block: bool = False) -> str:
    """One formula as MathML; a formula the converter cannot make well-formed MathML of is shown
    as its LaTeX source, escaped (never as raw markup). The same as :func:`mathml_of`, made fast for
    pages of thousands of formulas: formulas that differ only in their numbers, their signs and the
    letters of their blanks are converted once (each becomes a placeholder, written back after)."""
    found: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        found.append(match.group(0))
        number = str(_FIRST_PLACEHOLDER + len(found) - 1)
        return number if match.group(1) is None else f"\\text{{{number}}}"

    shape = _shape(_PLACED.sub(placeholder, latex), block, len(found))
    if shape is None:
        return _cached_mathml(latex, block)
    segments, slots = shape
    parts = [segments[0]]
    for (index, in_text, alone), segment in zip(slots, segments[1:]):
        value = found[index]
        if in_text:
            parts.append(f"<mtext>{value[6:-1]}</mtext>")
        elif value[0] == "-":
            parts.append(f"<mrow><mo>−</mo><mn>{value[1:]}</mn></mrow>" if alone else f"<mo>−</mo><mn>{value[1:]}</mn>")
        else:
            parts.append(f"<mn>{value}</mn>")
        parts.append(segment)
    return "".join(parts)


@functools.lru_cache(maxsize=4096)
def _shape(shape: str, block: bool, count: int) -> tuple[list[str], list[tuple[int, bool, bool]]] | None:
    """``shape`` (a formula with placeholders) converted, cut at its placeholders: the MathML between them,
    and each placeholder's number, whether it is a blank's text, and whether it stood alone in an
    ``<mrow>`` (which a number keeps only with its minus); None where the converter did not put each of
    the ``count`` placeholders once into an ``<mn>`` or ``<mtext>`` of its own."""
    converted = _converted(shape, block)
    if converted is None:
        return None
    converted = _REFERENCE.sub(_character, converted.replace(_NAMESPACE, "", 1))
    segments, slots, position = [], [], 0
    for match in _SLOT.finditer(converted):
        index = int(match.group(2) or match.group(3)) - _FIRST_PLACEHOLDER
        if 0 <= index < count:
            alone = match.group(1) is not None and match.group(4) is not None
            segments.append(converted[position : match.start() + (0 if alone else len(match.group(1) or ""))])
            slots.append((index, match.group(3) is not None, alone))
            position = match.end() - (0 if alone else len(match.group(4) or ""))
    segments.append(converted[position:])
    if sorted(index for index, _, _ in slots) != list(range(count)):
        return None
    return [_LONE_TOKEN.sub(r"\1", segment) for segment in segments], slots


_cached_mathml = functools.lru_cache(maxsize=1024)(lambda latex, block: mathml_of(latex, block))


def _converted(latex: str, block: bool) -> str | None:
    """The converter's MathML with TeX's thin spaces around function names; None where it fails or
    writes anything but MathML's elements."""
    from latex2mathml.converter import convert

    try:
        mathml = convert(latex, display="block" if block else "inline")
        mathml = _FUNCTION_NAME.sub(r'\1<mspace width="0.1667em"></mspace>', mathml)
        mathml = _AFTER_A_FACTOR.sub(r'\1<mspace width="0.1667em"></mspace>\2', mathml)
        if _only_mathml(ElementTree.fromstring(mathml)):
            return mathml
    except Exception:  # the converter's own errors have no common base class
        pass
    return None


def mathml_of(latex: str, block: bool = False) -> str:
    """One formula converted by latex2mathml (:func:`compact_mathml`), with TeX's thin spaces around
    function names; its LaTeX source escaped where the result is not MathML's elements alone."""
    converted = _converted(latex, block)
    return f'<code class="tex">{text(latex)}</code>' if converted is None else compact_mathml(converted)


def compact_mathml(mathml: str) -> str:
    """The converter's MathML, as an HTML page holds it in fewer bytes and the same rendering: no namespace
    on ``<math>`` (HTML's parser gives it), characters for their references (but ``<``, ``>`` and ``&``),
    and no ``<mrow>`` around a single ``<mi>``, ``<mn>`` or ``<mtext>``.

    Examples
    --------
    >>> compact_mathml('<math xmlns="http://www.w3.org/1998/Math/MathML"><msub><mi>s</mi><mrow><mn>1</mn></mrow>'
    ...                '</msub><mo>&#x0003D;</mo><mn>0</mn></math>')
    '<math><msub><mi>s</mi><mn>1</mn></msub><mo>=</mo><mn>0</mn></math>'
    """
    mathml = _REFERENCE.sub(_character, mathml.replace(_NAMESPACE, "", 1))
    return _LONE_TOKEN.sub(r"\1", mathml)


def _character(reference: re.Match[str]) -> str:
    character = chr(int(reference.group(1), 16))
    return reference.group(0) if character in "<>&\"'" or not character.isprintable() else character


#: A character reference as the converter writes one.
_REFERENCE = re.compile(r"&#x([0-9A-Fa-f]{1,6});")
#: An ``<mrow>`` holding one token and nothing else.
_LONE_TOKEN = re.compile(r"<mrow>(<(mi|mn|mtext)>[^<]*</\2>)</mrow>")


#: What a placeholder stands for: a number as the converter reads one into an ``<mn>`` (digits, a point and
#: digits), with its unary minus; and a blank's letter, ``\text{(a)}``.
_PLACED = re.compile(r"-?\d+(?:\.\d+)?|(\\text\{)\([a-z]{1,2}\)\}")
#: The placeholders numbers are replaced with: numbers too, and never written by sce in a formula.
_FIRST_PLACEHOLDER = 7_000_000_001
#: Where the converter put a placeholder.
_SLOT = re.compile(r"(<mrow>)?(?:<mn>(\d+)</mn>|<mtext>(\d+)</mtext>)(</mrow>)?")
_NAMESPACE = ' xmlns="http://www.w3.org/1998/Math/MathML"'


#: A function's name before its argument: TeX puts a thin space there (log s, not logs); browsers do
#: not, for the <mi> the converter writes; before a parenthesis neither does.
_FUNCTION_NAME = re.compile(r"(<mi>(?:log|ln|exp|tanh|sin|cos)</mi>)(?!<mo stretchy=\"false\">&#x00028;)")

#: After a factor (yᵢ log sᵢ) the same thin space goes before the name.
_AFTER_A_FACTOR = re.compile(r"(</mi>|</mn>|</msub>|</msup>|</mrow>)(<mi>(?:log|ln|exp|tanh|sin|cos)</mi>)")

_MATHML = "{http://www.w3.org/1998/Math/MathML}"
#: MathML's elements for presentation: the converter writes \\text{<b>} as <b>, markup that is none of these.
MATHML_ELEMENTS = frozenset(
    {
        *("math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "mfrac", "msqrt", "mroot"),
        *("msub", "msup", "msubsup", "munder", "mover", "munderover", "mmultiscripts", "mprescripts", "none"),
        *("mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose", "merror", "semantics"),
    }
)


def _only_mathml(root: ElementTree.Element) -> bool:
    """Every element MathML's own, and no attribute that could fetch or run anything."""
    for element in root.iter():
        if not element.tag.startswith(_MATHML) or element.tag.removeprefix(_MATHML) not in MATHML_ELEMENTS:
            return False
        names = [name.lower() for name in element.attrib]
        if any(name.startswith("on") or "href" in name or "src" in name for name in names):
            return False
    return True


_INLINE_MATH = re.compile(r"\$([^$]+)\$")
_EMPHASIS = re.compile(r"\*([^*]+)\*")


def prose_html(prose: str) -> str:
    """Prose with inline LaTeX between ``$…$`` (the derivation's notes): the words escaped, the math as MathML."""
    parts = []
    position = 0
    for match in _INLINE_MATH.finditer(prose):
        parts.append(_EMPHASIS.sub(r"<em>\1</em>", text(prose[position : match.start()])))
        parts.append(math_html(match.group(1)))
        position = match.end()
    parts.append(_EMPHASIS.sub(r"<em>\1</em>", text(prose[position:])))
    return "".join(parts)


def styled_class(style: str) -> str:
    """The page's class for a terminal style: green is good, red bad, yellow a warning."""
    if "red" in style:
        return "bad"
    if "green" in style:
        return "ok"
    return "warn" if "yellow" in style else ""


def _cell(tag: str, content: str, justify: str, style: str = "") -> str:
    classes = " ".join(name for name in ("right" * (justify == "right"), styled_class(style)) if name)
    return f'<{tag} class="{classes}">{content}</{tag}>' if classes else f"<{tag}>{content}</{tag}>"


def grid_html(grid: Grid, caption: str | None = None) -> str:
    """A :class:`~sce.render.grid.Grid` (a terminal table) as an HTML table, every cell escaped."""
    rows = []
    title = caption if caption is not None else grid.title
    if title:
        rows.append(f"<caption>{text(title)}</caption>")
    if grid.show_header:
        rows.append("<tr>" + "".join(_cell("th", text(c.header), c.justify) for c in grid.columns) + "</tr>")
    for cells, row_style in zip(grid.rows, grid.row_styles):
        parts = []
        for column, cell in zip(grid.columns, cells):
            content, style = (cell, "") if isinstance(cell, str) else cell
            parts.append(_cell("td", text(content), column.justify, style or column.style))
        row_class = ' class="predicted"' if "bold" in row_style else ""
        rows.append(f"<tr{row_class}>" + "".join(parts) + "</tr>")
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def rich_table_html(table: Table, caption: str | None = None) -> str:
    """A rich Table (the terminal's reports) as an HTML table, every cell escaped."""
    from rich.text import Text

    columns = table.columns
    rows = [f"<caption>{text(caption)}</caption>"] if caption else []
    rows.append("<tr>" + "".join(_cell("th", text(str(c.header)), _justify(c.justify)) for c in columns) + "</tr>")
    for cells in zip(*(list(column.cells) for column in columns)):
        parts = []
        for column, cell in zip(columns, cells):
            is_text = isinstance(cell, Text)
            content = cell.plain if is_text else str(cell)
            style = str(cell.style) if is_text else ""
            parts.append(_cell("td", text(content), _justify(column.justify), style))
        rows.append("<tr>" + "".join(parts) + "</tr>")
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def _justify(justify: str) -> str:
    return "right" if justify == "right" else ""


def lines_html(lines: Iterable[Text | str]) -> str:
    """Lines of the terminal's report (rich Texts or strings) as paragraphs, coloured as there."""
    paragraphs = []
    for line in lines:
        content, style = (line, "") if isinstance(line, str) else (line.plain, _style_of(line))
        # The terminal's indent (a mistake's fix under its name) is the page's margin.
        classes = " ".join(name for name in (styled_class(style), "indented" * content.startswith(" ")) if name)
        attribute = f' class="{classes}"' if classes else ""
        paragraphs.append(f"<p{attribute}>{text(content.lstrip())}</p>")
    return '<div class="lines">\n' + "\n".join(paragraphs) + "\n</div>"


def _style_of(line: Text) -> str:
    """A line's style, or that of its first styled part (the ✓ or ✗ before the words)."""
    return str(line.style) or next((str(span.style) for span in line.spans if str(span.style)), "")


_ANSI_SEQUENCE = re.compile(r"\x1b\[[0-9;]*m")


def terminal_html(report: str) -> str:
    """A report as the terminal shows it (its tables laid out in characters), kept as it is, escaped."""
    lines = [line.rstrip() for line in _ANSI_SEQUENCE.sub("", report).rstrip().split("\n")]
    return f'<pre class="report">{text(chr(10).join(lines))}</pre>'


_SVG_PROLOG = re.compile(r"^\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE[^>]*>\s*)?", re.DOTALL)


def figure_html(svg: str) -> str:
    """An SVG document (a plot) as a figure of the page: inline, its XML prolog and doctype left out."""
    body = _SVG_PROLOG.sub("", svg, count=1)
    if not body.lstrip().startswith("<svg"):
        raise ValueError("a figure is an SVG document: its text starts with <svg (after any XML prolog)")
    return f'<figure class="plot">\n{body.strip()}\n</figure>'


def page(title: str, sections: Sequence[str], subtitle: Sequence[str] = (), figures: Sequence[str] = ()) -> str:
    """A whole HTML5 document: ``title`` (escaped), the ``subtitle`` lines (escaped) under it, then
    the ``sections`` (HTML, in order) and the ``figures`` (SVG documents, embedded after them)."""
    from sce.version import __version__

    head = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="generator" content="sce {text(__version__)}">',
            f"<title>{text(title)}</title>",
            f"<style>{STYLESHEET}</style>",
            "</head>",
            "<body>",
            "<header>",
            f"<h1>{text(title)}</h1>",
            *(f"<p>{text(line)}</p>" for line in subtitle),
            "</header>",
            "<main>",
        ]
    )
    body = [*sections, *(figure_html(svg) for svg in figures)]
    tail = f"</main>\n<footer><p>Made with sce {text(__version__)}.</p></footer>\n</body>\n</html>\n"
    return head + "\n" + "\n".join(body) + "\n" + tail
