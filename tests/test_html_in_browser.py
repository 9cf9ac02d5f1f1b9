"""The printable pages in a real browser: headless Chromium (Debian's package), driven through the
DevTools protocol by playwright, renders each page to PNG and PDF; every formula has a size, the
screenshot is not blank, and the page asks for nothing over the network."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator

import numpy as np
import pytest

CHROMIUM = os.environ.get("SCE_TEST_CHROMIUM", "/usr/bin/chromium")

TINY_SVG = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60" viewBox="0 0 120 60">'
    '<rect id="tiny-bar" x="10" y="10" width="40" height="40" fill="#3a7bd5"/></svg>\n'
)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for the whole session (starting it takes about a second)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def png_pixels(png: bytes) -> np.ndarray:
    """The pixels (height × width × channels) of an 8-bit RGB or RGBA PNG, as Chromium writes them."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, data, header = 8, b"", b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind, body = png[position + 4 : position + 8], png[position + 8 : position + 8 + length]
        header = body if kind == b"IHDR" else header
        data += body if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    step = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(data), np.uint8).reshape(height, width * step + 1)
    pixels = np.zeros((height, width * step), np.uint8)
    previous = np.zeros(width * step, np.uint8)
    for y in range(height):
        kind, line = int(raw[y, 0]), raw[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # each byte plus the one a pixel to its left: a running sum, modulo 256
            row = (np.cumsum(line.reshape(width, step), axis=0, dtype=np.int64) & 0xFF).astype(np.uint8).ravel()
        elif kind == 2:
            row = line + previous  # uint8: modulo 256
        else:
            row = np.frombuffer(_unfiltered(kind, bytearray(line), previous.tobytes(), step), np.uint8)
        pixels[y], previous = row, row
    return pixels.reshape(height, width, step)


def _unfiltered(kind: int, line: bytearray, previous: bytes, step: int) -> bytes:
    """A row under PNG's Average (3) or Paeth (4) filter, byte by byte."""
    for x in range(len(line)):
        left = line[x - step] if x >= step else 0
        up, corner = previous[x], previous[x - step] if x >= step else 0
        if kind == 3:
            line[x] = (line[x] + (left + up) // 2) & 0xFF
            continue
        estimate = left + up - corner
        distances = (abs(estimate - left), abs(estimate - up), abs(estimate - corner))
        line[x] = (line[x] + (left, up, corner)[distances.index(min(distances))]) & 0xFF
    return bytes(line)


def dark_share(png: bytes) -> float:
    """The share of pixels that are not near white: text, rules, bars."""
    pixels = png_pixels(png)
    return float((pixels[:, :, :3].min(axis=2) < 160).mean())


def rendered(browser, document: str, tmp_path) -> dict[str, object]:
    """The page opened from a file, every request but the page's own refused and counted;
    each formula's size, a screenshot and a PDF."""
    path = tmp_path / "page.html"
    path.write_text(document, encoding="utf-8")
    # Without the page's Content-Security-Policy (which would block a request unseen): what the page
    # itself asks for is seen here, and refused.
    context = browser.new_context(viewport={"width": 900, "height": 800}, bypass_csp=True)
    page = context.new_page()
    requests: list[str] = []
    page.route("**/*", lambda route: route.continue_() if route.request.url == path.as_uri() else route.abort())
    page.on("request", lambda request: request.url != path.as_uri() and requests.append(request.url))
    page.goto(path.as_uri(), wait_until="load")
    boxes = [element.bounding_box() for element in page.locator("math").element_handles()]
    screenshot = page.screenshot(full_page=False)
    pdf = page.pdf(format="A4", print_background=True)
    figures = [element.bounding_box() for element in page.locator("figure svg").element_handles()]
    context.close()
    return {"requests": requests, "boxes": boxes, "png": screenshot, "pdf": pdf, "figures": figures}


def assert_renders(browser, document: str, tmp_path, formulas: bool = True) -> dict[str, object]:
    seen = rendered(browser, document, tmp_path)
    assert seen["requests"] == []
    boxes = seen["boxes"]
    if formulas:
        assert boxes, "no formula on the page"
    for box in boxes:
        assert box is not None and box["width"] > 0 and box["height"] > 0, box
    assert 0.005 < dark_share(seen["png"]) < 0.5  # neither blank nor a solid block
    pdf = seen["pdf"]
    assert pdf.startswith(b"%PDF-") and b"/Type /Page" in pdf.replace(b"/Type/Page", b"/Type /Page")
    return seen


PAGES = [
    ("grad", "2", "3", "4", "-l", "1"),
    ("grad", "2", "3", "4", "-l", "1", "--steps"),
    ("grad", "2", "3", "4", "-l", "1", "--steps", "--route", "jacobian"),
    ("grad", "1", "2", "3", "-l", "0", "--steps", "--smoothing", "0.1", "--softcap", "30", "--z-loss", "1e-4"),
    ("grad", "2", "-inf", "4", "-l", "0", "--steps", "--dtype", "float32"),
    ("check", "2", "3", "4", "-l", "1", "--grad", "0.090031,0.24473,-0.33476", "--loss", "1.4076"),
]


@pytest.mark.parametrize("args", PAGES, ids=[" ".join(a)[:40] for a in PAGES])
def test_page_renders_with_every_formula_visible_and_no_request(browser, sce, tmp_path, args):
    result = sce(*args, "--format", "html")
    assert result.exit_code in (0, 1), result.stderr
    assert_renders(browser, result.stdout, tmp_path)


def test_test_page_renders_with_the_learners_output_and_no_request(browser, sce, tmp_path):
    learner = tmp_path / "homework.py"
    learner.write_text(
        "import numpy as np\n"
        "def softmax_loss(logits, labels):\n"
        "    print('<img src=\"http://example.com/x.png\"><link rel=stylesheet href=http://example.com/s.css>')\n"
        "    raise ValueError('<img src=\"http://example.com/y.png\">')\n"
    )
    result = sce("test", f"{learner}:softmax_loss", "--format", "html")
    assert result.exit_code == 1, result.stderr
    assert_renders(browser, result.stdout, tmp_path, formulas=False)


def test_gradebook_page_renders_with_no_request(browser, sce, tmp_path):
    folder = os.path.join(os.path.dirname(__file__), "implementations")
    result = sce("test", f"{folder}/correct_vectorized.py:softmax_loss", f"{folder}/sign_flipped.py:softmax_loss", "-f", "html")
    assert result.exit_code == 1, result.stderr
    assert_renders(browser, result.stdout, tmp_path, formulas=False)


def test_worksheet_page_renders_with_every_formula_visible(browser, sce, tmp_path):
    sheet = tmp_path / "sheet.html"
    result = sce("exercise", "--count", 1, "--seed", 3, "--blanks", "-f", "html", "-o", sheet, "--answers", tmp_path / "k.csv")
    assert result.exit_code == 0, result.stderr
    assert_renders(browser, sheet.read_text(), tmp_path)


def test_page_with_a_figure_shows_it(browser, tmp_path):
    from sce.loss import softmax_cross_entropy
    from sce.render.html_format import grad_page

    result = softmax_cross_entropy([[2.0, 3.0, 4.0]], [1], reduction="none")
    seen = assert_renders(browser, grad_page(result, figures=[TINY_SVG]), tmp_path)
    assert len(seen["figures"]) == 1 and seen["figures"][0]["width"] == pytest.approx(120, abs=1)


def test_a_page_that_asks_for_something_is_caught(browser, tmp_path):
    # The guard itself: a page with an image by URL (not sce's) shows up as a request.
    document = "<!DOCTYPE html><html><body><p>x</p><img src='http://example.com/x.png'></body></html>"
    assert rendered(browser, document, tmp_path)["requests"] == ["http://example.com/x.png"]


def test_blank_screenshot_is_told_from_a_page(browser, tmp_path):
    blank = rendered(browser, "<!DOCTYPE html><html><body></body></html>", tmp_path)
    assert dark_share(blank["png"]) == 0


def test_a_request_behind_the_pages_own_policy_is_caught_too(browser, tmp_path):
    from sce.render.html_page import page

    document = page("sneaky", ["<p>x</p><img src='http://example.com/behind-the-policy.png'>"])
    assert rendered(browser, document, tmp_path)["requests"] == ["http://example.com/behind-the-policy.png"]


def render_pages_script():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "docs" / "render_pages.py"
    spec = importlib.util.spec_from_file_location("render_pages", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_worksheet_picture_is_what_chromium_draws_of_the_page(browser):
    """docs/images/worksheet.png is python docs/render_pages.py's screenshot of docs/examples/worksheet.html:
    the same bytes with the Chromium that drew it; with another (its own font rasteriser), the same size and
    nearly the same pixels."""
    pages = render_pages_script()
    drawn = pages.screenshot(pages.WORKSHEET_PAGE, browser)
    assert drawn == pages.screenshot(pages.WORKSHEET_PAGE, browser)  # deterministic
    committed = pages.WORKSHEET_PICTURE.read_bytes()
    if drawn != committed:
        today, then = png_pixels(drawn), png_pixels(committed)
        assert today.shape == then.shape, "redraw it: python docs/render_pages.py"
        assert abs(dark_share(drawn) - dark_share(committed)) < 0.01, "redraw it: python docs/render_pages.py"
    assert 0.01 < dark_share(committed) < 0.5
