"""The Markdown sce writes, as HTML with MathML: for pages made from a Markdown text (a worksheet).

Only the Markdown that sce's own renderers write is read: ``#`` headings, paragraphs, ``- `` lists,
``**bold**`` and ``*emphasis*``, inline math between ``$…$`` and display math in ``$$`` blocks (a
``gathered`` environment one formula a line). Every word is escaped; a line of any other kind is a
paragraph of text, never markup.

Examples
--------
>>> print(markdown_html("## Exercise 1\\n\\nWhich is it?\\n\\n- **A** one\\n- **B** two"))
<h2>Exercise 1</h2>
<p>Which is it?</p>
<ul>
<li><strong>A</strong> one</li>
<li><strong>B</strong> two</li>
</ul>
"""

from __future__ import annotations

import re

from sce.render.html_page import math_html, page, prose_html

_HEADING = re.compile(r"(#{1,6}) (.*)")
_STRONG = re.compile(r"\*\*([^*]+)\*\*")
_ROW_BREAK = " \\\\\n"


def _inline(line: str) -> str:
    """A line's words escaped, its math converted, ``**bold**`` kept (``*emphasis*`` by :func:`prose_html`)."""
    parts = _STRONG.split(line)  # odd places: what stood between ** and **
    shown = [f"<strong>{prose_html(part)}</strong>" if i % 2 else prose_html(part) for i, part in enumerate(parts)]
    return "".join(shown)


def display_math_html(block: str) -> str:
    """A ``$$`` block's formulas, each a block of MathML (the lines of a gathered environment apart)."""
    body = re.sub(r"\\(begin|end)\{gathered\}\n?", "", block).strip()
    matrices = re.findall(r"\\begin\{bmatrix\}.*?\\end\{bmatrix\}", body, re.DOTALL)
    for number, matrix in enumerate(matrices):  # a matrix's rows are no formulas of their own
        body = body.replace(matrix, f"\0{number}\0", 1)
    formulas = [line.strip() for line in body.split(_ROW_BREAK) if line.strip()]
    for number, matrix in enumerate(matrices):
        formulas = [formula.replace(f"\0{number}\0", matrix) for formula in formulas]
    return '<div class="equations">\n' + "\n".join(math_html(f, block=True) for f in formulas) + "\n</div>"


def markdown_html(markdown: str) -> str:
    """The Markdown as HTML (no page around it): see the module's description for what is read."""
    out: list[str] = []
    lines = markdown.split("\n")
    position = 0
    while position < len(lines):
        line = lines[position]
        position += 1
        if not line.strip():
            continue
        if line.strip() == "$$":
            end = _closing(lines, position)
            out.append(display_math_html("\n".join(lines[position:end])))
            position = end + 1
            continue
        heading = _HEADING.fullmatch(line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            continue
        if line.startswith("- "):
            items = [line]
            while position < len(lines) and lines[position].startswith("- "):
                items.append(lines[position])
                position += 1
            out.append("<ul>\n" + "\n".join(f"<li>{_inline(item[2:])}</li>" for item in items) + "\n</ul>")
            continue
        paragraph = [line]
        while position < len(lines) and lines[position].strip() and not _starts_block(lines[position]):
            paragraph.append(lines[position])
            position += 1
        out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return "\n".join(out)


def _closing(lines: list[str], position: int) -> int:
    """Where the ``$$`` block open before ``position`` closes (the end where it never does)."""
    try:
        return lines.index("$$", position)
    except ValueError:
        return len(lines)


def _starts_block(line: str) -> bool:
    return line.strip() == "$$" or line.startswith("- ") or bool(_HEADING.fullmatch(line))


def markdown_page(markdown: str) -> str:
    """A whole page of the Markdown, its first ``#`` heading as the page's title."""
    first = next((m.group(2) for m in map(_HEADING.fullmatch, markdown.split("\n")) if m and m.group(1) == "#"), "")
    body = markdown
    if first:
        body = markdown.replace(f"# {first}\n", "", 1)
    return page(re.sub(r"\$([^$]*)\$", r"\1", first) or "sce", [markdown_html(body)])
