"""`--format html`: one self-contained page, with MathML, no script and no request, every user string escaped."""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from latex2mathml.converter import convert

from sce.explain.derivation import build_derivation
from sce.loss import softmax_cross_entropy
from sce.render.html_format import derivation_html, grad_page, result_table_html
from sce.render.html_page import compact_mathml, figure_html, math_html, mathml_of, page, prose_html, text

TINY_SVG = (
    '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
    '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60" viewBox="0 0 120 60">'
    '<rect id="tiny-bar" x="10" y="10" width="40" height="40" fill="#3a7bd5"/></svg>\n'
)


class Elements(HTMLParser):
    """Every start tag with its attributes, and whether the parser met anything it had to guess about."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def elements(document: str) -> Elements:
    parser = Elements()
    parser.feed(document)
    parser.close()
    return parser


def assert_self_contained(document: str) -> None:
    """No script, nothing fetched: no src or href to anywhere, no url() or @import in the styles."""
    assert document.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    assert document.rstrip().endswith("</html>")
    tags = elements(document).tags
    names = {name for name, _ in tags}
    assert not names & {"script", "iframe", "object", "embed", "link", "img", "audio", "video", "base"}
    for name, attributes in tags:
        assert not any(key.startswith("on") for key in attributes), (name, attributes)
        for key in ("src", "href", "xlink:href", "action", "srcset"):
            assert key not in attributes, (name, attributes)
    assert "url(" not in document and "@import" not in document and "javascript:" not in document.lower()
    assert ("meta", {"http-equiv": "Content-Security-Policy", "content": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )}) in tags


def formulas(block: str) -> list[str]:
    """The formulas of a Markdown $$ block: the lines of its gathered environment, a matrix kept whole."""
    block = re.sub(r"\\(begin|end)\{gathered\}\n?", "", block)
    row_break = " \\\\\n"
    block = re.sub(
        r"\\begin\{bmatrix\}.*?\\end\{bmatrix\}",
        lambda match: match.group(0).replace(row_break, "\0"),
        block,
        flags=re.DOTALL,
    )
    return [line.replace("\0", row_break).strip() for line in block.split(row_break) if line.strip()]


def math_elements(document: str) -> list[str]:
    return re.findall(r"<math\b.*?</math>", document, re.DOTALL)


# --- the page's blocks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hostile",
    ["<script>alert(1)</script>", 'a"b\'c & <d>', "\x1b[31mred\x1b[0m", "\u202eevil", "</pre><img src=x onerror=1>"],
)
def test_user_text_is_escaped(hostile):
    escaped = text(hostile)
    assert "<" not in escaped and ">" not in escaped and '"' not in escaped and "\x1b" not in escaped
    assert "\u202e" not in escaped
    document = page(hostile, [f"<p>{escaped}</p>"], subtitle=[hostile])
    assert_self_contained(document)
    assert document.count("<script") == 0 and "onerror" not in re.sub(r"&lt;img[^<]*", "", document)


def test_formula_the_converter_makes_markup_of_is_shown_as_escaped_source():
    # latex2mathml writes \text{…} as it is: <b> would become markup; it is shown as LaTeX instead.
    shown = math_html(r"x = \text{<b>bold</b>}")
    assert shown.startswith('<code class="tex">') and "<b>" not in shown and "&lt;b&gt;" in shown
    assert math_html(r"\frac{1}{").startswith('<code class="tex">')  # a missing argument


def test_a_function_name_is_spaced_from_its_argument_but_not_from_a_parenthesis():
    assert "<mi>log</mi><mspace width=\"0.1667em\"></mspace><msub>" in math_html(r"-\log s_c")
    assert "<mi>log</mi><mo stretchy=\"false\">(</mo>" in math_html(r"-\log(0.24473)")
    assert "</msub><mspace width=\"0.1667em\"></mspace><mi>log</mi>" in math_html(r"y_i \log s_i")


def test_prose_keeps_its_words_and_converts_its_math():
    html = prose_html(r"The loss is $L = -\log s_c$ when *y* is one-hot & <plain>.")
    assert html.startswith("The loss is <math") and "<em>y</em>" in html and "&amp; &lt;plain&gt;." in html


def test_figure_is_embedded_inline_without_its_prolog():
    figure = figure_html(TINY_SVG)
    assert figure.startswith('<figure class="plot">\n<svg') and "<?xml" not in figure and "DOCTYPE" not in figure
    ElementTree.fromstring(figure)  # the figure stays well-formed XML
    with pytest.raises(ValueError, match="starts with <svg"):
        figure_html("<html><body>not a figure</body></html>")


def test_grad_page_embeds_figures_after_the_result():
    result = softmax_cross_entropy([[2.0, 3.0, 4.0]], [1], reduction="none")
    document = grad_page(result, stages=build_derivation(result), figures=[TINY_SVG, TINY_SVG])
    assert_self_contained(document)
    assert document.count('id="tiny-bar"') == 2
    assert document.index("<h2>Result</h2>") < document.index("tiny-bar") < document.index("<h2>Derivation</h2>")


def test_fragments_have_no_page_around_them():
    result = softmax_cross_entropy([[2.0, 3.0, 4.0]], [1], reduction="none")
    for fragment in (derivation_html(build_derivation(result)), result_table_html(result)):
        assert "<html" not in fragment and "<head" not in fragment and "<body" not in fragment
        assert "<math" in fragment


def test_result_table_numbers_are_the_exact_values_rounded():
    # s = e^z / Σ e^z for z = (2, 3, 4): 0.0900306, 0.244728, 0.665241 (by hand: e² = 7.38906, e³ = 20.0855,
    # e⁴ = 54.5982, sum 82.0728); the loss −log 0.244728 = 1.40761.
    table = result_table_html(softmax_cross_entropy([[2.0, 3.0, 4.0]], [1], reduction="none"))
    cells = re.findall(r'<td class="right">([^<]*)</td>', table)
    assert cells[:5] == ["0", "2", "0.0000", "0.090031", "0.090031"]
    assert cells[5:10] == ["1", "3", "1.0000", "0.24473", "-0.75527"]
    assert "<mn>1.4076</mn>" in table
    assert table.count("<tr") == 4 and 'class="predicted"' in table


# --- the command line ----------------------------------------------------------------------------------

GRAD_PAGES = [
    ("2", "3", "4", "-l", "1"),
    ("2", "3", "4", "-l", "1", "--steps"),
    ("2", "3", "4", "-l", "1", "--steps", "--route", "lse"),
    ("2", "3", "4", "-l", "1", "--steps", "--route", "jacobian"),
    ("0", "40", "-l", "1", "--steps"),
    ("1", "2", "3", "-t", "0.2,0.3,0.5", "--steps", "--temperature", "0.7"),
    ("1", "2", "3", "-l", "0", "--steps", "--smoothing", "0.1", "--softcap", "30", "--z-loss", "1e-4"),
    (*[str(k) for k in range(14)], "-l", "7", "--steps"),
]


@pytest.mark.parametrize("args", GRAD_PAGES, ids=[" ".join(a)[:40] for a in GRAD_PAGES])
def test_grad_page_holds_the_markdown_formulas_as_mathml(sce, args):
    result = sce("grad", *args, "--format", "html")
    assert result.exit_code == 0, result.stderr
    document = result.stdout
    assert_self_contained(document)
    maths = math_elements(document)
    assert maths and '<code class="tex">' not in document
    for mathml in maths:
        ElementTree.fromstring(mathml)
        assert "\\" not in mathml, mathml  # no LaTeX command left unconverted
    if "--steps" in args:
        markdown = sce("grad", *args, "--format", "markdown").stdout
        pieces = re.findall(r"^\$\$\n(.*?)\n\$\$$", markdown, re.MULTILINE | re.DOTALL)
        # Every displayed formula of the Markdown is on the page, converted by latex2mathml itself.
        # (The page adds TeX's thin space after a function's name: log s, not logs.)
        block = [m.replace('<mspace width="0.1667em"></mspace>', "") for m in maths if 'display="block"' in m]
        for piece in pieces:
            for line in formulas(piece):
                assert compact_mathml(convert(line, display="block")) in block, line


def test_page_goes_whole_to_a_file_and_stdout_stays_empty(sce, tmp_path):
    path = tmp_path / "handout.html"
    result = sce("grad", "2", "3", "4", "-l", "1", "--steps", "-f", "html", "-o", path)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert path.read_text(encoding="utf-8") == sce("grad", "2", "3", "4", "-l", "1", "--steps", "-f", "html").stdout
    assert os.listdir(tmp_path) == ["handout.html"]  # no temporary file left beside it


@pytest.mark.parametrize(
    "args,message",
    [
        (("grad", "2", "3", "-l", "1", "-o", "x.txt"), "-o x.txt writes the page of --format html; add it"),
        (("grad", "2", "3", "-l", "1", "-f", "html", "--verify"), "--verify is shown as a table or in JSON"),
        (("grad", "2", "3", "-l", "1", "-f", "html", "--hessian"), "--hessian is shown as a table or in JSON"),
        (("check", "--arrays", "x.npz", "-o", "x.txt"), "-o goes with --csv INPUT --id-col COL: it writes"),
        (("check", "2", "3", "-l", "1", "--grad", "0.1,0.2", "-o", "x.txt"), "-o goes with --csv INPUT"),
        (("grad", "2", "3", "-l", "1", "-f", "html", "-o", ""), "-o: the page file name is empty"),
    ],
)
def test_bad_page_requests_are_refused_in_one_line(sce, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = sce(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"sce: error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1 and not os.path.exists("x.html") and not os.path.exists("x.txt")


def test_an_unwritable_place_is_one_line_and_the_old_page_is_kept(sce, tmp_path):
    folder = tmp_path / "missing"
    result = sce("grad", "2", "3", "-l", "1", "-f", "html", "-o", folder / "page.html")
    assert result.exit_code != 0 and result.stderr.count("\n") == 1
    assert "does not exist" in result.stderr
    result = sce("grad", "2", "3", "-l", "1", "-f", "html", "-o", tmp_path)
    assert result.stderr.endswith(f"is a folder; name a file in it, e.g. {tmp_path}/page.html\n")
    old = tmp_path / "old.html"
    old.write_text("the teacher's page")
    result = sce("grad", "2", "nan", "-l", "1", "-f", "html", "-o", old)  # refused: the old page stays
    assert result.exit_code == 2 and old.read_text() == "the teacher's page"


def test_a_failed_write_leaves_the_existing_page_and_no_temporary_file(sce, tmp_path, monkeypatch):
    import sce.batch.loop as loop

    old = tmp_path / "page.html"
    old.write_text("the teacher's page")

    def failing(target, text):
        target.stream.write(text[:100].encode())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loop, "write_text", failing)
    result = sce("grad", "2", "3", "4", "-l", "1", "--steps", "-f", "html", "-o", old)
    assert result.exit_code != 0
    assert old.read_text() == "the teacher's page" and os.listdir(tmp_path) == ["page.html"]


def test_sigterm_while_the_page_is_written_keeps_the_old_page(tmp_path):
    # The installed sce, stopped by SIGTERM once the page is being written: the old page is kept whole.
    old = tmp_path / "page.html"
    old.write_text("the teacher's page")
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        import sce.batch.loop as loop
        original = loop.write_text
        def slow(target, text):
            target.stream.write(text[:50].encode())
            os.kill(os.getpid(), signal.SIGTERM)
            original(target, text[50:])
        loop.write_text = slow
        from sce.cli import main
        sys.argv = ["sce", "grad", "2", "3", "4", "-l", "1", "--steps", "-f", "html", "-o", {str(old)!r}]
        main()
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode in (128 + signal.SIGTERM, -signal.SIGTERM), done.stderr
    assert old.read_text() == "the teacher's page" and os.listdir(tmp_path) == ["page.html"]


def test_a_million_classes_list_the_most_probable_and_the_label(sce, tmp_path):
    logits = tmp_path / "logits.txt"
    values = [0.0] * 1_000_000
    values[123_456], values[999_999] = 9.0, -5.0  # one class far ahead; the label far behind
    logits.write_text(",".join(map(str, values)))
    result = sce("grad", "--logits-file", logits, "-l", "999999", "-f", "html")
    assert result.exit_code == 0, result.stderr
    assert "Shown: 21 of 1,000,000 classes (the 20 most probable and the label's)" in result.stdout
    listed = re.findall(r'<tr(?: class="predicted")?><td class="right">(\d+)</td>', result.stdout)
    # Of the equal ones, the first classes: 0 to 18, then 123456, and the label.
    assert listed == [str(k) for k in range(19)] + ["123456", "999999"]
    assert len(result.stdout) < 100_000


def test_check_page_shows_the_verdict_and_the_mistake(sce):
    # −1 at the label + 1 (an off-by-one): s − e_{c+1} = (0.090031, 0.24473, −0.33476), by hand from s above.
    result = sce("check", "2", "3", "4", "-l", "1", "--grad", "0.090031,0.24473,-0.33476", "-f", "html")
    assert result.exit_code == 1, result.stderr
    document = result.stdout
    assert_self_contained(document)
    words = " ".join(elements(document).text)
    assert "✗ gradient: wrong (2 of 3 entries)" in words and "verdict: not correct" in words
    # Label 1 plus one is class 2, the predicted one: both mistakes give these numbers.
    assert "mistake: −1 at the predicted class (the largest logit), not at the label" in words
    assert "or: −1 at the wrong class: the label's index plus one (off by one), which fits these numbers too" in words
    assert '<p class="bad">verdict: not correct</p>' in document


def test_check_page_of_a_correct_answer_exits_0(sce, tmp_path):
    path = tmp_path / "answer.html"
    result = sce("check", "2", "3", "4", "-l", "1", "--loss", "1.40761", "-f", "html", "-o", path)
    assert (result.exit_code, result.stdout) == (0, "")
    assert '<p class="ok">verdict: correct</p>' in path.read_text()


HOSTILE_LEARNER = '''
import sys
import numpy as np

def softmax_loss(logits, labels):
    print("<script>alert('x')</script></pre><img src=http://example.com/i.png>")
    print("\\x1b[2J\\x1b[31mred", file=sys.stderr)
    n = logits.shape[0]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = p.copy()
    grad[np.arange(n), labels] -= 1
    raise ValueError("<b>bold</b> & wrong")
'''


def test_test_page_escapes_what_the_learner_printed(sce, tmp_path):
    learner = tmp_path / "homework.py"
    learner.write_text(HOSTILE_LEARNER)
    result = sce("test", f"{learner}:softmax_loss", "-f", "html")
    assert result.exit_code == 1, result.stderr
    document = result.stdout
    assert_self_contained(document)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&lt;/pre&gt;&lt;img src=http://example.com/i.png&gt;" in document
    assert "\x1b" not in document and "\\x1b[2J\\x1b[31mred" in document
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; wrong" in document
    assert "verdict: not correct" in " ".join(elements(document).text)


def test_test_page_of_a_correct_function_exits_0(sce, tmp_path):
    path = tmp_path / "report.html"
    implementation = os.path.join(os.path.dirname(__file__), "implementations", "correct_vectorized.py")
    result = sce("test", f"{implementation}:softmax_loss", "-f", "html", "-o", path)
    assert (result.exit_code, result.stdout) == (0, ""), result.stderr
    document = path.read_text()
    assert_self_contained(document)
    assert re.search(r'<p class="ok">verdict: correct \((\d+) of \1 cases pass\)</p>', document)


def test_the_docs_worksheet_page_is_what_sce_exercise_writes(sce, tmp_path):
    import shlex

    from tests.test_html_in_browser import render_pages_script

    pages = render_pages_script()
    args = (*pages.WORKSHEET_COMMAND, "-o", tmp_path / "worksheet.html", "--answers", tmp_path / "key.csv")
    assert sce(*args).exit_code == 0
    written = (tmp_path / "worksheet.html").read_text(encoding="utf-8")
    assert written == pages.WORKSHEET_PAGE.read_text(encoding="utf-8"), "regenerate it: python docs/render_pages.py"
    assert written == pages.worksheet_page()
    page = (pages.DOCS / "commands" / "exercise.md").read_text(encoding="utf-8")
    assert f"sce {shlex.join(pages.WORKSHEET_COMMAND)} -o worksheet.html" in page  # the command the page names
    assert "](../images/worksheet.png)" in page


DOCS_EXAMPLES = {
    "handout.html": ("grad", "2", "3", "4", "--label", "1", "--steps"),
    "checked.html": ("check", "2", "3", "4", "--label", "1", "--grad", "0.090031,0.24473,-0.33476"),
}


@pytest.mark.parametrize("name", DOCS_EXAMPLES)
def test_the_docs_example_pages_are_what_sce_writes(sce, name):
    path = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "examples", name)
    with open(path, encoding="utf-8") as page_file:
        shown = page_file.read()
    args = DOCS_EXAMPLES[name]
    written = sce(*args, "--format", "html").stdout
    assert shown == written, f"regenerate it: sce {' '.join(args)} --format html -o docs/examples/{name}"


def test_a_class_gradebook_page_escapes_the_ids(sce, tmp_path):
    # alice right (s − e₁ and −log s₁ for [2, 3, 4], by hand above); "<b>bob</b>" gives the probabilities (−1 missing).
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "student,z0,z1,z2,label,grad_z0,grad_z1,grad_z2\n"
        "alice,2,3,4,1,0.090031,-0.75527,0.66524\n"
        '"<b>bob</b>",2,3,4,1,0.090031,0.24473,0.66524\n'
    )
    page_path = tmp_path / "class.html"
    result = sce("check", "--csv", answers, "--id-col", "student", "--grad-cols", "grad_*", "-o", page_path)
    assert result.exit_code == 1, result.stderr
    document = page_path.read_text()
    assert_self_contained(document)
    assert "<td>alice</td><td class=\"ok\">correct</td>" in document
    assert "<td>&lt;b&gt;bob&lt;/b&gt;</td><td class=\"bad\">not correct</td>" in document and "<b>" not in document
    assert "−1 missing: these are the probabilities" in document
    assert sce("check", "--csv", answers, "--id-col", "student", "--grad-cols", "grad_*", "-f", "html").stdout == document


def test_many_submissions_make_one_gradebook_page(sce, tmp_path):
    folder = os.path.join(os.path.dirname(__file__), "implementations")
    result = sce(
        "test", f"{folder}/correct_vectorized.py:softmax_loss", f"{folder}/sign_flipped.py:softmax_loss", "-f", "html"
    )
    assert result.exit_code == 1, result.stderr
    rows = re.findall(r'<tr><td>([^<]*)</td><td class="(\w+)">', result.stdout)
    assert [(os.path.basename(name), verdict) for name, verdict in rows] == [
        ("correct_vectorized.py", "ok"),
        ("sign_flipped.py", "bad"),
    ]


def test_file_reports_are_pages_of_the_terminals_report(sce, tmp_path):
    # The grads of [2, 3, 4], label 1 (by hand above), one row right and one with the sign flipped.
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "z0,z1,z2,label,grad_z0,grad_z1,grad_z2\n2,3,4,1,0.090031,-0.75527,0.66524\n2,3,4,1,-0.090031,0.75527,-0.66524\n"
    )
    page_path = tmp_path / "report.html"
    result = sce("check", "--csv", answers, "--grad-cols", "grad_*", "-f", "html", "-o", page_path)
    assert (result.exit_code, result.stdout) == (1, "")
    document = page_path.read_text()
    assert_self_contained(document)
    report = re.search(r'<pre class="report">(.*?)</pre>', document, re.DOTALL).group(1)
    table = sce("check", "--csv", answers, "--grad-cols", "grad_*").stdout
    assert html.unescape(report) == "\n".join(line.rstrip() for line in table.rstrip().split("\n"))
    assert "rows wrong: 1" in report and "verdict: not correct" in report
    assert "<title>Checked: " + str(answers) in document


def test_arrays_report_is_a_page(sce, tmp_path):
    import numpy as np

    dump = tmp_path / "dump.npz"
    logits = np.array([[2.0, 3.0, 4.0]])
    exps = np.exp(logits - 4.0)
    grad = exps / exps.sum() - np.array([[0.0, 1.0, 0.0]])
    np.savez(dump, logits=logits, labels=np.array([1]), grad=grad)
    result = sce("check", "--arrays", dump, "--reduction", "none", "-f", "html")
    assert result.exit_code == 0, result.stderr
    assert_self_contained(result.stdout)
    assert '<pre class="report">' in result.stdout and "verdict" in result.stdout


def test_a_worksheet_page_has_its_blanks_boxed_and_its_math_converted(sce, tmp_path):
    sheet, key = tmp_path / "sheet.html", tmp_path / "key.csv"
    result = sce("exercise", "--count", 2, "--seed", 7, "--blanks", "--format", "html", "-o", sheet, "--answers", key)
    assert result.exit_code == 0, result.stderr
    document = sheet.read_text()
    assert_self_contained(document)
    assert "<title>Softmax cross-entropy: worksheet</title>" in document
    assert '<menclose notation="box">' in document and '<code class="tex">' not in document
    assert "$" not in " ".join(elements(document).text)  # every formula converted, none left as LaTeX
    markdown = tmp_path / "sheet.md"
    sce("exercise", "--count", 2, "--seed", 7, "--blanks", "-o", markdown, "--answers", tmp_path / "key2.csv")
    assert (tmp_path / "key2.csv").read_bytes() == key.read_bytes()  # the same exercises, whatever the format
    headings = re.findall(r"^#+ (.*)$", markdown.read_text(), re.MULTILINE)
    assert re.findall(r"<h\d>([^<]*)</h\d>", document) == [h for h in headings if "$" not in h]


def test_markdown_that_is_no_markup_stays_text():
    from sce.render.html_markdown import markdown_html

    html_text = markdown_html("# <script>x</script>\n\n| a | b |\n\n- **<i>** & $x < y$\n\n$$\n\\text{<b>}\n$$")
    assert "<script>" not in html_text and "<i>" not in html_text and "<b>" not in html_text
    assert "<p>| a | b |</p>" in html_text and "&lt;script&gt;" in html_text


@settings(max_examples=40)
@given(
    logits=st.lists(
        st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_subnormal=True), min_size=1, max_size=12
    ),
    data=st.data(),
)
def test_any_row_derives_to_well_formed_mathml(logits, data):
    label = data.draw(st.integers(min_value=0, max_value=len(logits) - 1))
    result = softmax_cross_entropy([logits], [label], reduction="none")
    document = grad_page(result, stages=build_derivation(result))
    assert '<code class="tex">' not in document
    for mathml in math_elements(document):
        ElementTree.fromstring(mathml)


def test_the_page_embeds_the_picture_plot_draws(tmp_path, sce):
    picture = tmp_path / "grad.svg"
    result = sce("grad", "2", "3", "4", "-l", "1", "--format", "html", "--plot", picture)
    assert result.exit_code == 0, result.stderr
    embedded = re.findall(r"<svg\b.*?</svg>", result.stdout, flags=re.S)
    assert len(embedded) == 1
    assert embedded[0] == re.search(r"<svg\b.*</svg>", picture.read_text(), flags=re.S).group(0)
    for gid in ("p-bar-0", "p-bar-2", "gradient-zero", "tangent"):
        assert f'id="{gid}"' in embedded[0]
    assert "<?xml" not in result.stdout  # a second declaration inside a page is an error
    without = sce("grad", "2", "3", "4", "-l", "1", "--format", "html")
    assert "<svg" not in without.stdout


def test_the_page_and_the_picture_cannot_share_a_file(tmp_path, sce):
    picture = tmp_path / "x.svg"
    picture.write_text("kept")
    result = sce("grad", "2", "3", "4", "-l", "1", "--format", "html", "-o", picture, "--plot", picture)
    assert result.exit_code == 2
    assert result.stderr == f"sce: error: --plot: {picture} is the page's file (-o); draw the picture elsewhere\n"
    assert picture.read_text() == "kept"


def test_steps_as_csv_names_every_format_that_can_hold_them(sce):
    result = sce("grad", "2", "3", "4", "-l", "1", "--steps", "--format", "csv")
    assert result.exit_code == 2
    assert result.stderr.endswith("use --format table, markdown, json or html\n")


SUBMISSION = f"{os.path.dirname(__file__)}/implementations/correct_vectorized.py:softmax_loss"


@pytest.mark.parametrize(
    "args",
    [
        ("grad", "2", "3", "4", "-l", "1"),
        ("grad", "2", "3", "4", "-l", "1", "--steps"),
        ("check", "2", "3", "4", "-l", "1", "--grad", "0.09,-0.76,0.67"),
        ("test", SUBMISSION),
    ],
)
@pytest.mark.parametrize("name", ["page.html", "page.HTM"])
def test_an_output_named_html_is_the_page_without_format(sce, tmp_path, args, name):
    page = tmp_path / name
    result = sce(*args, "-o", page)
    assert result.exit_code in (0, 1), result.output
    assert page.read_text(encoding="utf-8") == sce(*args, "--format", "html").stdout
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    "args",
    [
        ("grad", "2", "3", "4", "-l", "1"),
        ("check", "2", "3", "4", "-l", "1", "--grad", "0.09,-0.76,0.67"),
        ("test", SUBMISSION),
    ],
)
@pytest.mark.parametrize(
    ("name", "chosen", "said"),
    [
        ("page.html", "json", ("html", "json")),
        ("page.md", "html", ("markdown", "html")),
        ("page.json", "html", ("json", "html")),
        ("page.csv", "html", ("csv", "html")),
        ("page.htm", "csv", ("html", "csv")),
    ],
)
def test_a_format_the_output_name_contradicts_is_refused(sce, tmp_path, args, name, chosen, said):
    result = sce(*args, "--format", chosen, "-o", tmp_path / name)
    assert result.exit_code == 2, result.output
    expected = f"sce: error: -o {tmp_path / name}: its name says {said[0]}, --format says {said[1]}; make them agree"
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("name", "said"), [("grad.md", "markdown"), ("grad.json", "json"), ("grad.csv", "csv")])
@pytest.mark.parametrize("chosen", [(), ("--format", "markdown"), ("--format", "json"), ("--format", "csv")])
def test_grad_to_a_file_named_for_a_terminal_format_says_to_redirect(sce, tmp_path, name, said, chosen):
    result = sce("grad", "2", "3", "-l", "1", *chosen, "-o", tmp_path / name)
    assert result.exit_code == 2, result.output
    if chosen and chosen[1] != said:
        assert f"its name says {said}, --format says {chosen[1]}" in result.stderr
    else:
        path = tmp_path / name
        assert result.stderr == (
            f"sce: error: -o {path}: -o writes the page of --format html, named .html; for {said}, redirect stdout "
            f"(> {path})\n"
        )
    assert os.listdir(tmp_path) == []


def _exact_digits(logits: list[int], label: int, digits: int) -> list[str]:
    """mpmath's softmax and gradient of ``logits``, to ``digits`` significant digits (every value here lies in
    [0.01, 1), where nstr writes what the page writes)."""
    import mpmath

    mpmath.mp.dps = 50
    exps = [mpmath.exp(z) for z in logits]
    probabilities = [e / mpmath.fsum(exps) for e in exps]
    gradient = [p - (k == label) for k, p in enumerate(probabilities)]
    return [mpmath.nstr(value, digits, strip_zeros=False) for value in probabilities + gradient]


@pytest.mark.parametrize("digits", [12, 16, 17])
@pytest.mark.parametrize(
    "command",
    [("grad",), ("grad", "--steps"), ("check", "--grad", "0.09,-0.755,0.665")],
)
def test_the_page_shows_the_exact_digits_the_terminal_shows(sce, digits, command):
    args = (command[0], "2", "3", "4", "-l", "1", *command[1:], "--digits", str(digits))
    page = sce(*args, "--format", "html").stdout
    terminal = sce("grad", "2", "3", "4", "-l", "1", "--digits", str(digits)).stdout
    for value in _exact_digits([2, 3, 4], 1, digits):
        assert f'<td class="right">{value}</td>' in page, value
        assert value in terminal, value
    if digits == 17:  # float64's nearest value to s₂ differs from the exact one in the 16th digit
        result = page.split('<section class="result">', 1)[1].split("</section>", 1)[0]
        assert "0.66524095577482178" not in result


def test_a_notebook_table_shows_no_digit_float64_does_not_hold():
    from sce.loss import softmax_cross_entropy
    from sce.render.notebook_html import result_html

    shown = result_html(softmax_cross_entropy([2.0, 3.0, 4.0], 1, reduction="none"), 17)
    assert "0.66524095577</td>" in shown and "0.66524095577482178" not in shown
    assert "digits: 11 shown; float64&#x27;s values, within 1e-14 of the exact ones" in shown


def _tree(mathml: str) -> str:
    """The MathML's elements and text as a tree: a lone child's ``<mrow>`` dropped, the namespace given."""
    if " xmlns=" not in mathml.split(">", 1)[0]:
        mathml = mathml.replace("<math", '<math xmlns="http://www.w3.org/1998/Math/MathML"', 1)
    root = ElementTree.fromstring(mathml)

    def shown(element: ElementTree.Element) -> str:
        children = list(element)
        if element.tag.endswith("}mrow") and len(children) == 1 and not (element.text or "").strip():
            return shown(children[0])
        attributes = sorted(element.attrib.items())
        inner = "".join(shown(child) for child in children)
        return f"<{element.tag.split('}')[-1]} {attributes}>{(element.text or '').strip()}{inner}</>"

    return shown(root)


@pytest.mark.parametrize("level", ["labels", "targets", "smoothing", "weights", "temperature", "language-model"])
def test_every_formula_of_a_sheet_is_the_converters_own(level):
    """Formulas that differ only in their numbers, signs and blanks are converted once on a page of
    thousands; each must still be what the converter makes of it, element for element."""
    from latex2mathml.converter import convert

    from sce.render.exercise_sheet import sheet_markdown
    from sce.teaching import SheetRequest, make_sheet

    sheet = sheet_markdown(make_sheet(SheetRequest(12, 5, None, level, True, True)))
    hand_made = ["e^{-5}", "x_{-1} = -2.5", "\\left(-1, 2, -3\\right)", "-\\frac{1}{2}", "K^2", "a-5", "\\text{row 1}"]
    formulas = set(re.findall(r"\$([^$]+)\$", sheet)) | set(hand_made)
    assert len(formulas) > 100
    for formula in formulas:
        for block in (False, True):
            fast = math_html(formula, block)
            assert fast == mathml_of(formula, block), formula
            if not fast.startswith("<code"):
                thin_spaces_apart = fast.replace('<mspace width="0.1667em"></mspace>', "")  # TeX's, after log
                assert _tree(thin_spaces_apart) == _tree(convert(formula, display="block" if block else "inline"))
